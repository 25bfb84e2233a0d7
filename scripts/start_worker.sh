#!/usr/bin/env bash
# Self-play workers on this CPU machine for one run, given the head's Redis. Safe to run again
# (it starts only the workers missing up to -n) and to kill (the workers it started go on).
#
#   scripts/start_worker.sh --run-dir DIR [--redis-url URL] [-n WORKERS] [--evaluator remote|local]
#                           [--password-file FILE]
#
# --redis-url defaults to $AZJOBS_REDIS_URL; the password comes from $AZJOBS_REDIS_PASSWORD, else
# --password-file, else $AZJOBS_STATE_DIR/redis.password (the head's file, copied). Each daemon started is
# checked alive after $AZJOBS_START_CHECK_S s (8): a dead one's log tail is printed and the script fails.
# azjobs: $AZJOBS_VENV/bin/azjobs if set, else the one on PATH, else this checkout's .venv.
# -n defaults to the cores less one.
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

run_dir="" url=${AZJOBS_REDIS_URL:-} workers=$(($(nproc) > 1 ? $(nproc) - 1 : 1)) evaluator=remote password_file=""
while (($#)); do
  case $1 in
    --run-dir) run_dir=$2; shift 2 ;;
    --redis-url) url=$2; shift 2 ;;
    -n | --workers) workers=$2; shift 2 ;;
    --evaluator) evaluator=$2; shift 2 ;;
    --password-file) password_file=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
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
export AZJOBS_REDIS_URL=$url OMP_NUM_THREADS=1
for ((i = 1; i <= workers; i++)); do
  start_daemon "worker.$run.$i" "${AZJOBS[@]}" worker --run-dir "$run_dir" --evaluator "$evaluator" --threads 1
done
check_started
say "$workers worker(s) of run $run on this machine; stop them with scripts/stop_cluster.sh"
