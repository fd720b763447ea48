#!/usr/bin/env bash
# Runs every Tessera check: formatting, clippy, and all tests against
# PostgreSQL and SQLite. Installs and starts what the tests need.
#
#   scripts/test.sh            everything
#   scripts/test.sh --no-lint  skip cargo fmt and clippy
#
# DATABASE_URL (postgres://...) points the tests at an existing server;
# without it a throwaway cluster is made in a temp dir on a free port and
# removed afterwards. TESSERA_TEST_SKIP_INSTALL=1 skips package installs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LINT=1
for arg in "$@"; do
    case "$arg" in
        --no-lint) LINT=0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '\n==> %s\n' "$*" >&2; }

# --- packages -------------------------------------------------------------

APT_PACKAGES=(openssl softhsm2 opensc p11-kit p11-kit-modules certbot lego pebble golang-cfssl wrk pkg-config libssl-dev curl jq)

install_packages() {
    [[ "${TESSERA_TEST_SKIP_INSTALL:-0}" == 1 ]] && return
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return
    log "installing ${missing[*]}"
    local sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo -n)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq </dev/null
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

# --- PostgreSQL -----------------------------------------------------------

PG_DIR=""
PG_BIN=""
PG_AS=()

cleanup() {
    if declare -F hsm_sim_cleanup >/dev/null; then
        hsm_sim_cleanup
    fi
    if [[ -n "$PG_DIR" ]]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
trap cleanup EXIT

find_pg_bin() {
    local candidate
    for candidate in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")" \
        $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
            echo "$candidate"
            return
        fi
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_throwaway_postgres() {
    PG_BIN=$(find_pg_bin) || { echo "initdb/pg_ctl not found: install postgresql or set DATABASE_URL" >&2; exit 1; }
    PG_DIR=$(mktemp -d -t tessera-pg.XXXXXX)
    # initdb refuses to run as root; run the cluster as the postgres user then.
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_DIR"
        PG_AS=(runuser -u postgres --)
    fi
    local port
    port=$(free_port)
    log "starting a throwaway PostgreSQL on 127.0.0.1:$port"
    "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; exit 1; }
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { cat "$PG_DIR/server.log" >&2; exit 1; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# --- key custodians (SoftHSM2 token, KMS emulator) -------------------------

setup_key_custodians() {
    if [[ -f hsm-sim/setup.sh ]]; then
        log "SoftHSM2 token and KMS emulator (hsm-sim/setup.sh)"
        # shellcheck source=/dev/null
        source hsm-sim/setup.sh
        # With the custodians set up, a custody test that cannot reach one fails.
        [[ "${TESSERA_TEST_SKIP_KMS:-0}" == 1 ]] || export TESSERA_TEST_CUSTODIANS=required
    fi
}

# --- run --------------------------------------------------------------------

install_packages
if [[ -z "${DATABASE_URL:-}" ]]; then
    start_throwaway_postgres
else
    log "using PostgreSQL from DATABASE_URL"
fi
export TESSERA_TEST_POSTGRES=required
setup_key_custodians

if ((LINT)); then
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy --all-targets --locked -- -D warnings
fi

log "cargo test (PostgreSQL and SQLite)"
cargo test --locked --all-targets </dev/null

log "all checks passed"
