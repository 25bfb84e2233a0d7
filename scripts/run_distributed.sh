#!/usr/bin/env bash
# The two-machine setup in one command, run on the head (CPU machine): Redis, the dashboard and the
# workers here, the trainer and the inference server on the GPU machine over ssh (or here too,
# without --gpu-host: a real cluster on one machine). Safe to run again and to kill.
#
#   scripts/run_distributed.sh --run-dir DIR [--gpu-host SSH_TARGET] [--gpu-run-dir DIR]
#                              [--remote-dir DIR] [--remote-venv DIR] [--game G] [-n WORKERS] [--port 6379]
#                              [-- more flags for azjobs train, e.g. --net-blocks 6]
#
# --gpu-run-dir: the run's folder as the GPU machine mounts the storage root (default: DIR);
# --remote-dir: this checkout's place there (default: the same path); --remote-venv (env
# AZJOBS_REMOTE_VENV): the virtual environment of azjobs there, which an ssh session has not activated
# (default: azjobs on the remote PATH, else the checkout's .venv; without either the GPU side says so and
# fails). The password travels over ssh's stdin, never on a command line. Stop it all with
# scripts/stop_cluster.sh --gpu-host ...
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/cluster-lib.sh
source "$here/cluster-lib.sh"

run_dir="" gpu_host="" gpu_run_dir="" remote_dir=$(dirname "$here") remote_venv=${AZJOBS_REMOTE_VENV:-} game=""
workers=() port=6379 train_flags=()
while (($#)); do
  case $1 in
    --run-dir) run_dir=$2; shift 2 ;;
    --gpu-host) gpu_host=$2; shift 2 ;;
    --gpu-run-dir) gpu_run_dir=$2; shift 2 ;;
    --remote-dir) remote_dir=$2; shift 2 ;;
    --remote-venv) remote_venv=$2; shift 2 ;;
    --game) game=$2; shift 2 ;;
    -n | --workers) workers=(-n "$2"); shift 2 ;;
    --port) port=$2; shift 2 ;;
    --) shift; train_flags=("$@"); break ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n $run_dir ]] || die "--run-dir is required: the run's folder on the shared storage root"
gpu_run_dir=${gpu_run_dir:-$run_dir}

"$here/start_head.sh" --port "$port"
load_password "$AZJOBS_STATE_DIR/redis.password"
if [[ -n $gpu_host ]]; then
  address=$(hostname -I 2>/dev/null | awk '{print $1}')
  url="redis://${address:-$(hostname)}:$port/0"
else
  url="redis://127.0.0.1:$port/0"
fi
gpu_flags=()
[[ -n $game ]] && gpu_flags=(--game "$game")
gpu_flags+=(-- "${train_flags[@]}")
if [[ -n $gpu_host ]]; then
  remote="cd $(printf '%q' "$remote_dir") && IFS= read -r AZJOBS_REDIS_PASSWORD && export AZJOBS_REDIS_PASSWORD"
  [[ -z $remote_venv ]] || remote+=" && export AZJOBS_VENV=$(printf '%q' "$remote_venv")"
  remote+=" && scripts/start_gpu.sh --redis-url $(printf '%q' "$url") --run-dir $(printf '%q' "$gpu_run_dir")"
  for flag in "${gpu_flags[@]}"; do remote+=" $(printf '%q' "$flag")"; done
  # shellcheck disable=SC2029  # built and quoted on this side on purpose
  ssh "$gpu_host" "$remote" <<<"$AZJOBS_REDIS_PASSWORD" \
    || die "the GPU side on $gpu_host did not start (its error is above); the head here keeps running"
else
  "$here/start_gpu.sh" --redis-url "$url" --run-dir "$run_dir" "${gpu_flags[@]}"
fi
"$here/start_worker.sh" --redis-url "$url" --run-dir "$run_dir" "${workers[@]}"
cat <<TEXT
running. Look:  AZJOBS_REDIS_URL=redis://127.0.0.1:$port/0 azjobs status --run-dir $run_dir --watch
check:          AZJOBS_REDIS_URL=redis://127.0.0.1:$port/0 azjobs doctor --run-dir $run_dir
(both want the password: export AZJOBS_REDIS_PASSWORD="\$(cat $AZJOBS_STATE_DIR/redis.password)")
stop:           scripts/stop_cluster.sh${gpu_host:+ --gpu-host $gpu_host}
TEXT
