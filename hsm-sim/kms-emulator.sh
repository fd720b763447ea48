#!/usr/bin/env bash
# Runs an AWS KMS emulator (LocalStack, from PyPI, without Docker) on a
# loopback port, so Tessera's `awskms:` custody can be tested against a real
# KMS API that signs DIGEST messages correctly (moto does not).
#
#   hsm-sim/kms-emulator.sh start  [--port PORT] [--dir DIR] [--venv VENV]
#   hsm-sim/kms-emulator.sh stop   [--port PORT] [--dir DIR]
#   hsm-sim/kms-emulator.sh status [--port PORT] [--dir DIR] [--venv VENV]
#
# PORT defaults to 4599, DIR to $TESSERA_KMS_EMULATOR_DIR or
# ~/.cache/tessera/kms-emulator (pidfile, log, LocalStack state), VENV to
# $TESSERA_KMS_EMULATOR_VENV or DIR/venv. The first start builds VENV with
# Python 3.13 (LocalStack's current releases need it) and pip-installs
# localstack-core; later starts reuse it. `start` prints `export` lines for
# TESSERA_TEST_KMS_ENDPOINT and the emulator's AWS credentials on stdout
# (eval them); progress goes to stderr. Python 3.13 is found on PATH or under
# pyenv; TESSERA_PYTHON313 names one explicitly.
set -euo pipefail

LOCALSTACK_VERSION=2026.3.0
# The [base-runtime] extra is the server itself (plain localstack-core is only
# the CLI and fails with "No module named 'rolo'"); the pins are what
# localstack-core 2026.3.0 is known to need on Python 3.13.
PIP_PINS=("cbor2<6" "cryptography==44.0.3" "pyopenssl==24.3.0" "service_identity<25")

usage() {
    sed -n '6,8p' "$0" | sed 's/^# *//' >&2
    exit 2
}
say() { printf 'kms-emulator: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

(($# >= 1)) || usage
CMD=$1
shift
PORT=4599
DIR=${TESSERA_KMS_EMULATOR_DIR:-$HOME/.cache/tessera/kms-emulator}
VENV=${TESSERA_KMS_EMULATOR_VENV:-}
while (($#)); do
    case "$1" in
        --port) PORT=${2:?--port needs a value}; shift 2 ;;
        --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
        --venv) VENV=${2:?--venv needs a value}; shift 2 ;;
        -h | --help) usage ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
VENV=${VENV:-$DIR/venv}
PIDFILE=$DIR/localstack-$PORT.pid
LOGFILE=$DIR/localstack-$PORT.log
ENDPOINT=http://127.0.0.1:$PORT
MARKER=$VENV/.tessera-localstack
WANTED="localstack-core[base-runtime]==$LOCALSTACK_VERSION ${PIP_PINS[*]} boto3"

find_python313() {
    local candidate root
    local candidates=()
    [[ -n "${TESSERA_PYTHON313:-}" ]] && candidates+=("$TESSERA_PYTHON313")
    candidates+=("$(command -v python3.13 2>/dev/null || true)")
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    candidates+=("$root"/versions/3.13*/bin/python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13)
    candidates+=(/usr/local/bin/python3.13 /usr/bin/python3.13)
    for candidate in "${candidates[@]}"; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        # A pyenv shim exists on PATH even when 3.13 is not selected; run it.
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    return 1
}

ensure_venv() {
    mkdir -p "$(dirname "$VENV")"
    # Two runs may share one venv: the first builds it, the other waits.
    exec 9>"$VENV.lock"
    flock 9
    if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANTED" && -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import localstack, boto3' >/dev/null 2>&1; then
        exec 9>&-
        return
    fi
    local py start
    py=$(find_python313) || die "Python 3.13 not found (set TESSERA_PYTHON313, or install it with pyenv)"
    start=$(date +%s)
    say "installing localstack-core $LOCALSTACK_VERSION into $VENV (once per venv; about half a minute)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    # boto3 is a dependency of localstack-core already; named for kms-selftest.sh.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "localstack-core[base-runtime]==$LOCALSTACK_VERSION" "${PIP_PINS[@]}" boto3 >&2 ||
        { rm -rf "$VENV"; die "pip install failed"; }
    echo "$WANTED" >"$MARKER"
    say "installed in $(($(date +%s) - start)) s"
    exec 9>&-
}

running_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 1
    pid=$(cat "$PIDFILE")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    # A stale pidfile whose pid now belongs to something else is not ours.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'localstack\.runtime\.main' || return 1
    echo "$pid"
}

# KMS answers ListKeys: the service really is up, not only the gateway.
kms_answers() {
    curl -fsS -m 5 -o /dev/null -X POST "$ENDPOINT/" \
        -H 'Content-Type: application/x-amz-json-1.1' \
        -H 'X-Amz-Target: TrentService.ListKeys' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=0' \
        --data '{}' 2>/dev/null
}

print_exports() {
    cat <<EOF
export TESSERA_TEST_KMS_ENDPOINT=$ENDPOINT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
EOF
}

wait_ready() {
    local pid=$1 deadline=$((SECONDS + 120))
    while ! kms_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOGFILE" >&2 || true
            rm -f "$PIDFILE"
            die "LocalStack exited during start-up (log: $LOGFILE)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$LOGFILE" >&2 || true
            stop_emulator
            die "KMS did not answer on $ENDPOINT within 120 s (log: $LOGFILE)"
        fi
        sleep 0.5
    done
}

start_emulator() {
    local pid start
    if pid=$(running_pid); then
        wait_ready "$pid"
        say "already running on $ENDPOINT (pid $pid)"
        print_exports
        return
    fi
    if kms_answers; then
        die "something else already answers on $ENDPOINT"
    fi
    ensure_venv
    mkdir -p "$DIR/state-$PORT"
    start=${EPOCHREALTIME/./}
    say "starting LocalStack KMS on $ENDPOINT (log: $LOGFILE)"
    # setsid: its own process group, so `stop` ends LocalStack and its children.
    # Host mode: no Docker, no persistence, no analytics events, no certificate
    # download, no DNS server. GATEWAY_SERVER=hypercorn because the default
    # (twisted) server ignores the host in GATEWAY_LISTEN and binds 0.0.0.0.
    # TMPDIR keeps LocalStack's tmp folder (cleared at start) per instance.
    env SERVICES=kms \
        GATEWAY_LISTEN="127.0.0.1:$PORT" \
        DNS_ADDRESS=0 \
        GATEWAY_SERVER=hypercorn \
        LOCALSTACK_HOST="127.0.0.1:$PORT" \
        EAGER_SERVICE_LOADING=1 \
        PERSISTENCE=0 \
        DISABLE_EVENTS=1 \
        SKIP_SSL_CERT_DOWNLOAD=1 \
        DOCKER_HOST=unix:///nonexistent/docker.sock \
        FILESYSTEM_ROOT="$DIR/state-$PORT" \
        TMPDIR="$DIR/state-$PORT" \
        DEBUG=0 \
        setsid "$VENV/bin/python" -m localstack.runtime.main \
        </dev/null >"$LOGFILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    wait_ready "$pid"
    local ms=$(((${EPOCHREALTIME/./} - start) / 1000))
    say "KMS answers on $ENDPOINT (pid $pid, ready after $((ms / 1000)).$((ms % 1000 / 100)) s)"
    print_exports
}

stop_emulator() {
    local pid i
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        say "not running on port $PORT"
        return
    fi
    say "stopping LocalStack (pid $pid)"
    # The process group first (setsid made pid its leader), the pid as fallback.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    # A clean stop takes about a second. LocalStack's hypercorn shutdown stops
    # its event loop from another thread without waking it, so now and then
    # the process idles forever after "Stopping all services"; it keeps no
    # state (PERSISTENCE=0), so after 5 s it is killed.
    for ((i = 0; i < 25; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "no clean exit after 5 s (known LocalStack shutdown hang); killing"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 25; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    # Children that outlived the leader are still in its group.
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

case "$CMD" in
    start) start_emulator ;;
    stop) stop_emulator ;;
    status)
        if pid=$(running_pid) && kms_answers; then
            say "running on $ENDPOINT (pid $pid)"
        else
            say "not running on $ENDPOINT"
            exit 1
        fi
        ;;
    *) usage ;;
esac
