# shellcheck shell=bash
# Shared by the cluster scripts (sourced, not run): the state folder, pid files, starting and
# stopping daemons, waiting for Redis. Each daemon runs in its own session, so killing a script
# (or its terminal) never kills what it started, and running a script again skips what still runs.

AZJOBS_STATE_DIR="${AZJOBS_STATE_DIR:-$HOME/.azjobs}"
PIDS="$AZJOBS_STATE_DIR/pids"
LOGS="$AZJOBS_STATE_DIR/logs"

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The azjobs command: the one on PATH, else this checkout's package through python3.
# shellcheck disable=SC2034  # used by the scripts that source this file
if command -v azjobs >/dev/null 2>&1; then
  AZJOBS=(azjobs)
else
  AZJOBS=(python3 -m azjobs)
fi

# pid_alive FILE: FILE names a live process that is one of ours (a reused pid is not).
pid_alive() {
  local file=$1 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ ! -r /proc/$pid/cmdline ]] || grep -qa -e azjobs -e redis-server "/proc/$pid/cmdline"
}

# start_daemon NAME COMMAND...: start COMMAND detached, logging to $LOGS/NAME.log, unless it runs.
start_daemon() {
  local name=$1 pidfile="$PIDS/$1.pid" pid
  shift
  if pid_alive "$pidfile"; then
    say "$name is already running (pid $(<"$pidfile"))"
    return 0
  fi
  mkdir -p "$PIDS" "$LOGS"
  # A signal between the start and the pid file is held until the pid file is written (a daemon
  # without one would be started twice). A handler, not '' (ignore): children inherit an ignore.
  local held=""
  trap 'held=TERM' TERM
  trap 'held=INT' INT
  trap 'held=HUP' HUP
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$pidfile.tmp.$$" && mv -f "$pidfile.tmp.$$" "$pidfile"
  trap - INT TERM HUP
  say "started $name (pid $pid, log $LOGS/$name.log)"
  if [[ -n $held ]]; then
    kill -s "$held" $$
  fi
}

# stop_daemon NAME [GRACE_S] [SECOND_TERM_AFTER_S]: SIGTERM, an optional second SIGTERM, SIGKILL after GRACE_S.
stop_daemon() {
  local name=$1 grace=${2:-30} second=${3:-} pidfile="$PIDS/$1.pid" pid i
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    if [[ -n $second && $i -eq $((second * 10)) ]]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in ${grace} s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  else
    say "stopped $name"
  fi
  rm -f "$pidfile"
}

# daemons PATTERN: the names of our daemons whose pid files match PATTERN (a glob), one per line.
daemons() {
  local file
  for file in "$PIDS"/$1.pid; do
    [[ -e $file ]] && basename "$file" .pid
  done
  return 0
}

# redis_answers HOST PORT: a Redis answers there (a PONG, or NOAUTH from one that wants a password).
redis_answers() {
  local reply=""
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3>&-
  [[ $reply == +PONG* || $reply == -NOAUTH* ]]
}

# url_host_port URL: "HOST PORT" of a redis:// URL (default port 6379).
url_host_port() {
  local rest=${1#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  if [[ $rest == *:* ]]; then
    printf '%s %s\n' "${rest%:*}" "${rest##*:}"
  else
    printf '%s 6379\n' "$rest"
  fi
}

# load_password [FILE]: export AZJOBS_REDIS_PASSWORD from FILE when it is not set already.
load_password() {
  if [[ -n ${1:-} && -z ${AZJOBS_REDIS_PASSWORD:-} ]]; then
    [[ -r $1 ]] || die "cannot read the password file $1"
    AZJOBS_REDIS_PASSWORD=$(<"$1")
    export AZJOBS_REDIS_PASSWORD
  fi
}
