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

APT_PACKAGES=(openssl softhsm2 opensc p11-kit p11-kit-modules certbot lego pebble golang-cfssl wrk pkg-config libssl-dev curl jq python3 python3-venv)

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

TESSERA_PID=""
INTEROP_DIR=""

cleanup() {
    if [[ -n "$TESSERA_PID" ]]; then
        kill "$TESSERA_PID" 2>/dev/null || true
        wait "$TESSERA_PID" 2>/dev/null || true
    fi
    [[ -n "$INTEROP_DIR" ]] && rm -rf "$INTEROP_DIR"
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
    if [[ ! -f hsm-sim/setup.sh ]]; then
        echo "hsm-sim/setup.sh is missing: the key custody tests cannot run" >&2
        exit 1
    fi
    log "SoftHSM2 token and KMS emulator (hsm-sim/setup.sh)"
    # shellcheck source=/dev/null
    source hsm-sim/setup.sh
    # A custody test that cannot reach its custodian fails. Outside CI,
    # TESSERA_TEST_SKIP_KMS=1 leaves the KMS emulator out, and the tests
    # skip (saying so) only what needs it; with CI=true nothing is left out.
    export TESSERA_TEST_CUSTODIANS=required
}

# --- Python tools: pkilint, schemathesis, hvac ------------------------------

PKILINT_VERSION=0.13.3
SCHEMATHESIS_VERSION=4.32.5
HVAC_VERSION=2.4.0

# Installs PACKAGE==VERSION into the venv VENV of the machine's Python
# unless EXECUTABLE is there at that version already: venvs are kept
# between runs and rebuilt when the pin changes.
pinned_venv() {
    local venv=$1 package=$2 version=$3 executable=$4
    local marker="$venv/.tessera-$package"
    if [[ -x "$venv/bin/$executable" && "$(cat "$marker" 2>/dev/null)" == "$version" ]]; then
        return
    fi
    log "installing $package $version into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$package==$version" ||
        { rm -rf "$venv"; echo "pip install $package failed" >&2; exit 1; }
    echo "$version" >"$marker"
}

# tests/it/pkilint.rs lints what a dev CA signs with pkilint and fails,
# rather than skips, when it is missing.
setup_pkilint() {
    export TESSERA_PKILINT_VENV=${TESSERA_PKILINT_VENV:-$HOME/.cache/tessera/pkilint-venv}
    pinned_venv "$TESSERA_PKILINT_VENV" pkilint "$PKILINT_VERSION" lint_pkix_cert
    export TESSERA_TEST_PKILINT=required
}

# scripts/schemathesis.sh runs the admin API contract with it.
setup_schemathesis() {
    export TESSERA_SCHEMATHESIS_VENV=${TESSERA_SCHEMATHESIS_VENV:-$HOME/.cache/tessera/schemathesis-venv}
    pinned_venv "$TESSERA_SCHEMATHESIS_VENV" schemathesis "$SCHEMATHESIS_VERSION" schemathesis
}

# tests/it/vault.rs drives the Vault-compatible API with hvac, the Python
# Vault client, and fails, rather than skips, when it is missing.
setup_hvac() {
    export TESSERA_HVAC_VENV=${TESSERA_HVAC_VENV:-$HOME/.cache/tessera/hvac-venv}
    pinned_venv "$TESSERA_HVAC_VENV" hvac "$HVAC_VERSION" python
    export TESSERA_TEST_HVAC=required
}

# --- dependencies (deny.toml) ------------------------------------------------

# cargo deny checks licenses, bans (duplicate versions included), sources,
# and the RustSec advisories when their database can be fetched; without
# it the advisories are skipped, saying so, and the rest still runs.
run_cargo_deny() {
    command -v cargo-deny >/dev/null || { log "installing cargo-deny"; cargo install cargo-deny --locked; }
    log "cargo deny (licenses, bans, sources)"
    cargo deny --workspace --locked check bans licenses sources
    log "cargo deny (advisories)"
    if cargo deny --workspace fetch db >/dev/null 2>&1; then
        cargo deny --workspace --locked check advisories
    else
        echo "SKIPPED cargo deny advisories: the advisory database cannot be fetched from here" >&2
    fi
}

# --- ACME interop with real clients ------------------------------------------

# Starts `tessera serve` (dev mode, SQLite, fresh data dir) with ACME
# validation on the ports and DNS server the shared interop harness uses,
# makes a reusable EAB key, and runs ../shared/interop/run-all.sh (certbot,
# lego, acme2-eab) against its directory, checking revocation through the
# OCSP and CRL URLs in the certificates. One backend is enough here: the run
# checks what real clients send and accept, which no SQL touches; the same
# ACME flows run on both backends in tests/it/acme_*.rs.
# Tessera's listeners take ports the kernel picks and report them through
# --ready-file, so no other process can take them first.
run_acme_interop() {
    local harness="$ROOT/../shared/interop/run-all.sh"
    if [[ ! -x "$harness" && ! -f "$harness" ]]; then
        echo "ACME interop: $harness not found (the shared folder sits beside the repository)" >&2
        return 1
    fi
    log "ACME interop: certbot, lego and acme2-eab against tessera serve"
    cargo build --locked --bin tessera
    INTEROP_DIR=$(mktemp -d -t tessera-interop.XXXXXX)
    local data="$INTEROP_DIR/data" ready="$INTEROP_DIR/ready.json" https admin
    TESSERA_LOG=info "$ROOT/target/debug/tessera" serve --data-dir "$data" \
        --https-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --ready-file "$ready" \
        --http01-port 5002 --tlsalpn01-port 5001 --dns-resolver 127.0.0.1:8053 \
        >"$INTEROP_DIR/tessera.log" 2>&1 &
    TESSERA_PID=$!
    local i
    for i in $(seq 300); do
        [[ -s "$ready" ]] && break
        kill -0 "$TESSERA_PID" 2>/dev/null || break
        sleep 0.2
    done
    if [[ ! -s "$ready" ]]; then
        echo "ACME interop: tessera serve did not report its addresses" >&2
        tail -n 20 "$INTEROP_DIR/tessera.log" >&2
        return 1
    fi
    https=$(jq -r .https_addr "$ready")
    admin=$(jq -r .admin_addr "$ready")
    local eab kid hmac
    eab=$(curl -fsS --cacert "$data/root.pem" -H "Authorization: Bearer $(cat "$data/admin-token")" \
        -H 'Content-Type: application/json' -d '{"policy": "default", "reusable": true}' \
        "https://$admin/api/v1/eab-keys") || { cat "$INTEROP_DIR/tessera.log" >&2; return 1; }
    kid=$(jq -r .kid <<<"$eab")
    hmac=$(jq -r .hmac_key <<<"$eab")
    local status=0
    # The acme2-eab driver builds outside the repository.
    CARGO_TARGET_DIR="${TMPDIR:-/tmp}/tessera-interop-target" INTEROP_BUILD_DIR="$INTEROP_DIR/build" \
        bash "$harness" --directory "https://$https/acme/default/directory" \
        --ca-bundle "$data/root.pem" --trust-anchor "$data/root.pem" --eab-kid "$kid" --eab-hmac "$hmac" \
        --http-port 5002 --tls-port 5001 --dns-port 8053 </dev/null | tee "$INTEROP_DIR/results.txt" || status=$?
    kill "$TESSERA_PID" 2>/dev/null || true
    wait "$TESSERA_PID" 2>/dev/null || true
    TESSERA_PID=""
    ((status == 0)) || { echo "ACME interop failed; Tessera's log: $INTEROP_DIR/tessera.log" >&2; tail -n 20 "$INTEROP_DIR/tessera.log" >&2; }
    return "$status"
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
setup_pkilint
setup_schemathesis
setup_hvac

if ((LINT)); then
    log "module cycles (scripts/module-cycles.py)"
    python3 scripts/module-cycles.py
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings
fi

run_cargo_deny

# The workspace: Tessera's suite, and fuzz/'s replay of every committed
# corpus file through its target (stable; no fuzzing).
# The agent's tests run the tessera-agent binary, which `cargo test` builds
# only as a test harness: build the binary itself first.
log "cargo build -p tessera-agent"
cargo build --locked -p tessera-agent
log "cargo test (PostgreSQL and SQLite; fuzz corpus replay)"
cargo test --locked --workspace --all-targets </dev/null

log "schemathesis over the admin API (api/openapi.yaml)"
cargo build --locked --bin tessera
scripts/schemathesis.sh "$ROOT/target/debug/tessera"

run_acme_interop

log "all checks passed"
