# shellcheck shell=bash
# Shared by the cluster scripts (sourced, not run): the state folder, pid files, starting and
# stopping daemons, waiting for Redis. Each daemon runs in its own session, so killing a script
# (or its terminal) never kills what it started, and running a script again skips what still runs.

AZJOBS_STATE_DIR="${AZJOBS_STATE_DIR:-$HOME/.azjobs}"
PIDS="$AZJOBS_STATE_DIR/pids"
LOGS="$AZJOBS_STATE_DIR/logs"

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

PASSWORD_FILE="$AZJOBS_STATE_DIR/redis.password"  # start_head.sh makes it; copy it to the same place elsewhere
AZJOBS_START_CHECK_S="${AZJOBS_START_CHECK_S:-8}"  # a started daemon must still run after this many seconds
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STARTED=()          # the daemons this script started, for check_started
declare -A LOG_FROM # NAME -> the size of its log before this start: what came after is this start's

# find_azjobs: set AZJOBS to the azjobs command: $AZJOBS_VENV/bin/azjobs if named, else azjobs on PATH,
# else this checkout's .venv, else python3 -m azjobs where python3 has it; else say so and fail (an ssh
# session's PATH often has no virtual environment: name it with AZJOBS_VENV rather than run the wrong python).
# shellcheck disable=SC2034  # AZJOBS is used by the scripts that source this file
find_azjobs() {
  if [[ -n ${AZJOBS_VENV:-} ]]; then
    [[ -x $AZJOBS_VENV/bin/azjobs ]] \
      || die "no azjobs in the virtual environment $AZJOBS_VENV (AZJOBS_VENV) on $(hostname): install it there (pip install -e .)"
    AZJOBS=("$AZJOBS_VENV/bin/azjobs")
  elif command -v azjobs >/dev/null 2>&1; then
    AZJOBS=(azjobs)
  elif [[ -x $LIB_DIR/../.venv/bin/azjobs ]]; then
    AZJOBS=("$LIB_DIR/../.venv/bin/azjobs")
  elif python3 -c 'import azjobs.cli' >/dev/null 2>&1; then
    AZJOBS=(python3 -m azjobs)
  else
    die "azjobs is not installed on $(hostname) (not on PATH, and python3 has no azjobs): activate its virtual environment, or name it with AZJOBS_VENV=DIR (run_distributed.sh: --remote-venv DIR)"
  fi
}

# pid_alive FILE: FILE names a live process that is one of ours (a reused pid is not).
pid_alive() {
  local file=$1 pid stat cmdline
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -r /proc/$pid/cmdline ]] || return 0
  stat=$(<"/proc/$pid/stat") 2>/dev/null || return 1
  [[ ${stat##*) } != Z* ]] || return 1  # exited, not yet reaped: dead, whatever kill -0 says
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  # A daemon started a moment ago may still run this script ($0: forked, not yet exec'd) or read empty
  # (inside exec); on a busy machine a check right after start_daemon sees either.
  [[ -z $cmdline || $cmdline == *azjobs* || $cmdline == *redis-server* || $cmdline == *"$0"* ]]
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
  LOG_FROM[$name]=$(stat -c %s "$LOGS/$name.log" 2>/dev/null || echo 0)
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
  STARTED+=("$name")
  say "started $name (pid $pid, log $LOGS/$name.log)"
  if [[ -n $held ]]; then
    kill -s "$held" $$
  fi
}

# check_started: the daemons this script started must still run AZJOBS_START_CHECK_S seconds on (a wrong
# password or a missing module ends them at once). A dead one's log tail is printed and the script fails.
check_started() {
  local name i dead=()
  ((${#STARTED[@]})) || return 0
  for ((i = 0; i <= AZJOBS_START_CHECK_S * 10; i++)); do
    for name in "${STARTED[@]}"; do
      pid_alive "$PIDS/$name.pid" || dead+=("$name")
    done
    ((${#dead[@]} == 0)) || break
    sleep 0.1
  done
  STARTED=()
  ((${#dead[@]})) || return 0
  for name in "${dead[@]}"; do
    printf 'error: %s exited right after it started; the last lines of %s:\n' "$name" "$LOGS/$name.log" >&2
    tail -c "+$((${LOG_FROM[$name]:-0} + 1))" "$LOGS/$name.log" | tail -n 15 | sed 's/^/  | /' >&2
    rm -f "$PIDS/$name.pid"
  done
  exit 1
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

# load_password [FILE]: export AZJOBS_REDIS_PASSWORD, unless set already, from FILE (which must be readable),
# else from the state folder's $PASSWORD_FILE where it exists.
load_password() {
  local file=${1:-}
  [[ -z ${AZJOBS_REDIS_PASSWORD:-} ]] || return 0
  if [[ -z $file ]]; then
    [[ -e $PASSWORD_FILE ]] || return 0
    file=$PASSWORD_FILE
  fi
  [[ -r $file ]] || die "cannot read the password file $file"
  AZJOBS_REDIS_PASSWORD=$(<"$file")
  [[ -n $AZJOBS_REDIS_PASSWORD ]] || die "the password file $file is empty: copy the head's $PASSWORD_FILE there"
  export AZJOBS_REDIS_PASSWORD
}
