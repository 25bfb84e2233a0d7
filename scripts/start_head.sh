#!/usr/bin/env bash
# The head (CPU machine): Redis on the LAN with a password, protected mode, persistence on, and
# rq-dashboard. Prints the head's address and the dashboard's URL. Safe to run again (what runs is
# kept) and to kill (what it started goes on; run it again to finish).
#
#   scripts/start_head.sh [--bind ADDR] [--port 6379] [--data DIR] [--dashboard-port 9181]
#                         [--dashboard-bind 127.0.0.1] [--no-dashboard]
#
# The password: $AZJOBS_REDIS_PASSWORD if set, else the one in $AZJOBS_STATE_DIR/redis.password
# (made on the first run, readable by you alone). Copy that file to the same place on the other machines,
# where the scripts read it by default; it is never printed. A dashboard bound beyond loopback asks for it.
# Each daemon started is checked alive after $AZJOBS_START_CHECK_S s (8); a dead one's log tail is printed.
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

bind=0.0.0.0 port=6379 data="$AZJOBS_STATE_DIR/redis" dash_port=9181 dash_bind=127.0.0.1 dashboard=1
while (($#)); do
  case $1 in
    --bind) bind=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --dashboard-port) dash_port=$2; shift 2 ;;
    --dashboard-bind) dash_bind=$2; shift 2 ;;
    --no-dashboard) dashboard=0; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

find_azjobs
mkdir -p "$AZJOBS_STATE_DIR"
chmod 700 "$AZJOBS_STATE_DIR"
password_file=$PASSWORD_FILE
if [[ -n ${AZJOBS_REDIS_PASSWORD:-} ]]; then
  (umask 077 && printf '%s\n' "$AZJOBS_REDIS_PASSWORD" >"$password_file.tmp" && mv -f "$password_file.tmp" "$password_file")
elif [[ ! -s $password_file ]]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$password_file.tmp" \
    && mv -f "$password_file.tmp" "$password_file")
  say "made a new Redis password in $password_file"
fi
load_password "$password_file"

# The address the other machines use: the one bound, else this machine's first address.
if [[ $bind == 0.0.0.0 ]]; then
  address=$(hostname -I 2>/dev/null | awk '{print $1}')
  address=${address:-$(hostname)}
else
  address=$bind
fi
probe=$bind
[[ $probe == 0.0.0.0 ]] && probe=127.0.0.1

if redis_answers "$probe" "$port" && ! pid_alive "$PIDS/redis.pid"; then
  die "something else already answers on $probe:$port: stop it, or pass --port"
fi
start_daemon redis "${AZJOBS[@]}" redis --bind "$bind" --port "$port" --dir "$data" --password-file "$password_file"
for _ in $(seq 200); do
  redis_answers "$probe" "$port" && break
  pid_alive "$PIDS/redis.pid" || die "Redis exited: see $LOGS/redis.log"
  sleep 0.1
done
redis_answers "$probe" "$port" || die "Redis does not answer on $probe:$port: see $LOGS/redis.log"

url="redis://$address:$port/0"
if ((dashboard)); then
  dash_password=()
  case $dash_bind in
    127.* | ::1 | localhost) ;;
    *) dash_password=(--password-file "$password_file") ;;  # beyond loopback: the Redis password guards it
  esac
  AZJOBS_REDIS_URL="redis://$probe:$port/0" start_daemon dashboard \
    "${AZJOBS[@]}" dashboard --bind "$dash_bind" --port "$dash_port" "${dash_password[@]}"
fi
check_started
cat <<TEXT
head: Redis at $url (password required: in $password_file)
on every machine of the run: copy $password_file to the same place (mode 600); the scripts read it there
  export AZJOBS_REDIS_URL=$url
  export AZJOBS_REDIS_PASSWORD="\$(cat $password_file)"   # for azjobs status, doctor and the roles by hand
workers here:  scripts/start_worker.sh --run-dir DIR
GPU machine:   scripts/start_gpu.sh --run-dir DIR --game connect4
TEXT
if ((dashboard)); then
  if [[ $dash_bind == 127.0.0.1 ]]; then
    echo "dashboard: http://127.0.0.1:$dash_port/ (from another machine: ssh -L $dash_port:127.0.0.1:$dash_port $address)"
  else
    echo "dashboard: http://$address:$dash_port/ (user azjobs, the Redis password)"
  fi
fi
