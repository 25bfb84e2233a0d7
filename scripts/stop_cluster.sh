#!/usr/bin/env bash
# Stops what the cluster scripts started on this machine, in order: workers (their jobs are cut
# short and retried), inference servers, trainers (they checkpoint), the dashboard, then Redis (it
# saves). Safe to run again and to kill: each daemon's pid file goes only once it has stopped.
#
#   scripts/stop_cluster.sh [--keep-redis] [--gpu-host SSH_TARGET [--remote-dir DIR]]
#
# --gpu-host also stops the GPU machine's part, by running this script there over ssh.
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

keep_redis=0 gpu_host="" remote_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
while (($#)); do
  case $1 in
    --keep-redis) keep_redis=1; shift ;;
    --gpu-host) gpu_host=$2; shift 2 ;;
    --remote-dir) remote_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if [[ -n $gpu_host ]]; then
  # shellcheck disable=SC2029  # the folder is this side's argument, quoted for the remote shell
  ssh "$gpu_host" "cd $(printf '%q' "$remote_dir") && scripts/stop_cluster.sh --keep-redis" || say "could not stop $gpu_host's part"
fi
stopped=0
# Workers all at once: SIGTERM, and a second one after 2 s (RQ then stops the job now; it is retried).
mapfile -t workers < <(daemons 'worker.*')
for name in "${workers[@]}"; do stop_daemon "$name" 60 2 & done
wait
stopped=$((stopped + ${#workers[@]}))
for pattern in 'gpu-serve.*' 'trainer.*' dashboard; do
  mapfile -t names < <(daemons "$pattern")
  for name in "${names[@]}"; do stop_daemon "$name" 120; done
  stopped=$((stopped + ${#names[@]}))
done
if ((!keep_redis)) && [[ -e $PIDS/redis.pid ]]; then
  stop_daemon redis 120
  stopped=$((stopped + 1))
fi
((stopped)) || say "nothing of the cluster runs on this machine (state in $AZJOBS_STATE_DIR)"
