#!/usr/bin/env bash
# The GPU machine: the trainer (it creates or resumes the run) and the inference server. Safe to
# run again (what runs is kept) and to kill (what it started goes on).
#
#   scripts/start_gpu.sh --run-dir DIR [--redis-url URL] [--game G] [--device cuda] [--password-file FILE]
#                        [--train-device cuda:0] [--serve-device cuda:1]
#                        [-- more flags for azjobs train, e.g. --net-blocks 6]
#
# --device places both on one device (default: the first GPU, else the CPU); --train-device and
# --serve-device (or $AZJOBS_TRAIN_DEVICE and $AZJOBS_SERVE_DEVICE) place the trainer and gpu-serve
# apart, e.g. on a two-GPU machine. `azjobs doctor` shows the card each one runs on.
# --redis-url defaults to $AZJOBS_REDIS_URL; the password comes from $AZJOBS_REDIS_PASSWORD, else
# --password-file, else $AZJOBS_STATE_DIR/redis.password (the head's file, copied). Each daemon started is
# checked alive after $AZJOBS_START_CHECK_S s (8): a dead one's log tail is printed and the script fails.
# azjobs: $AZJOBS_VENV/bin/azjobs if set, else the one on PATH, else this checkout's .venv.
# The trainer's settings apply when it creates the run; a run that exists keeps its own.
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

run_dir="" url=${AZJOBS_REDIS_URL:-} game="" device="" password_file="" train_flags=()
train_device=${AZJOBS_TRAIN_DEVICE:-} serve_device=${AZJOBS_SERVE_DEVICE:-}
while (($#)); do
  case $1 in
    --run-dir) run_dir=$2; shift 2 ;;
    --redis-url) url=$2; shift 2 ;;
    --game) game=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --train-device) train_device=$2; shift 2 ;;
    --serve-device) serve_device=$2; shift 2 ;;
    --password-file) password_file=$2; shift 2 ;;
    --) shift; train_flags=("$@"); break ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n $run_dir ]] || die "--run-dir is required: the run's folder on the shared storage root"
[[ -n $url ]] || die "give the head's Redis: --redis-url redis://HEAD:6379/0 or \$AZJOBS_REDIS_URL"
[[ $url != *@* ]] || die "keep the password out of the URL (it would show in ps): use \$AZJOBS_REDIS_PASSWORD"
find_azjobs
load_password "$password_file"
read -r host port < <(url_host_port "$url")
redis_answers "$host" "$port" || die "no Redis answers at $host:$port: start scripts/start_head.sh there first"

run=$(basename "$(realpath -m "$run_dir")")
export AZJOBS_REDIS_URL=$url
game_flag=()
[[ -n $game ]] && game_flag=(--game "$game")
train_device=${train_device:-$device} serve_device=${serve_device:-$device}
train_on=() serve_on=()
[[ -n $train_device ]] && train_on=(--device "$train_device")
[[ -n $serve_device ]] && serve_on=(--device "$serve_device")
start_daemon "trainer.$run" "${AZJOBS[@]}" train --run-dir "$run_dir" "${game_flag[@]}" "${train_on[@]}" \
  "${train_flags[@]}"
start_daemon "gpu-serve.$run" "${AZJOBS[@]}" gpu-serve --run-dir "$run_dir" "${serve_on[@]}"
check_started
say "trainer and gpu-serve of run $run on this machine; look with: azjobs status --run-dir $run_dir --watch"
