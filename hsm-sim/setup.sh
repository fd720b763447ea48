#!/usr/bin/env bash
# Sourced by scripts/test.sh: gives the tests a fresh SoftHSM2 token and a
# running KMS emulator, so Tessera's pkcs11: and awskms: custody are tested
# against real parts.
#
#   source hsm-sim/setup.sh     # exports SOFTHSM2_CONF, TESSERA_TEST_PKCS11_*,
#                               # TESSERA_TEST_P11KIT_CLIENT, P11_KIT_SERVER_ADDRESS,
#                               # TESSERA_TEST_KMS_ENDPOINT, AWS_* (test/test)
#   hsm_sim_cleanup             # stops the emulator, removes the temp dir
#
# The token and the emulator's pidfile, log and state live in one mktemp -d
# directory; the emulator's Python venv is shared and built once per machine
# at $TESSERA_KMS_EMULATOR_VENV (default ~/.cache/tessera/kms-emulator/venv).
# TESSERA_TEST_SKIP_KMS=1 skips the emulator, except in CI (CI=true), where
# every custodian is required. Call hsm_sim_cleanup on exit
# (scripts/test.sh does); it is defined before anything starts, so it also
# cleans up after a failed setup.

# The caller's shell options come back at the end; a failure exits (set -e).
# (Read from $- and shopt, not $(set +o): a command substitution drops -e.)
_hsm_sim_saved_flags=$-
_hsm_sim_saved_pipefail=0
if shopt -qo pipefail; then _hsm_sim_saved_pipefail=1; fi
set -euo pipefail

HSM_SIM_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HSM_SIM_DIR=$(mktemp -d -t tessera-hsm-sim.XXXXXX)
HSM_SIM_KMS_PORT=""

hsm_sim_cleanup() {
    if [[ -n "${HSM_SIM_KMS_PORT:-}" ]]; then
        "$HSM_SIM_HOME/kms-emulator.sh" stop --port "$HSM_SIM_KMS_PORT" --dir "$HSM_SIM_DIR/kms" >/dev/null 2>&1 || true
        HSM_SIM_KMS_PORT=""
    fi
    if [[ -n "${HSM_SIM_DIR:-}" ]]; then
        rm -rf "$HSM_SIM_DIR"
        HSM_SIM_DIR=""
    fi
}

_hsm_sim_exports=$("$HSM_SIM_HOME/softhsm-token.sh" "$HSM_SIM_DIR/softhsm")
eval "$_hsm_sim_exports"

# The same token as a network HSM: the tests run `p11-kit server` on this
# socket and load p11-kit's client module, so stopping the server takes the
# HSM away mid-run.
for _hsm_sim_client in /usr/lib/*/pkcs11/p11-kit-client.so /usr/lib/pkcs11/p11-kit-client.so; do
    if [[ -f "$_hsm_sim_client" ]]; then
        export TESSERA_TEST_P11KIT_CLIENT="$_hsm_sim_client"
        export P11_KIT_SERVER_ADDRESS="unix:path=$HSM_SIM_DIR/p11-kit.sock"
        break
    fi
done
unset _hsm_sim_client

# In CI (CI=true) every custodian is required, so the emulator always starts.
if [[ "${TESSERA_TEST_SKIP_KMS:-0}" == 1 && "${CI:-}" == true ]]; then
    printf 'hsm-sim: CI=true: TESSERA_TEST_SKIP_KMS=1 is ignored, the KMS emulator starts\n' >&2
fi
if [[ "${TESSERA_TEST_SKIP_KMS:-0}" == 1 && "${CI:-}" != true ]]; then
    printf 'hsm-sim: TESSERA_TEST_SKIP_KMS=1: no KMS emulator (its tests skip, saying so)\n' >&2
else
    HSM_SIM_KMS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    _hsm_sim_exports=$("$HSM_SIM_HOME/kms-emulator.sh" start --port "$HSM_SIM_KMS_PORT" --dir "$HSM_SIM_DIR/kms" \
        --venv "${TESSERA_KMS_EMULATOR_VENV:-${TESSERA_KMS_EMULATOR_DIR:-$HOME/.cache/tessera/kms-emulator}/venv}") ||
        { printf 'hsm-sim: the KMS emulator did not start (TESSERA_TEST_SKIP_KMS=1 runs without it)\n' >&2; false; }
    eval "$_hsm_sim_exports"
fi

unset _hsm_sim_exports
[[ "$_hsm_sim_saved_flags" == *e* ]] || set +e
[[ "$_hsm_sim_saved_flags" == *u* ]] || set +u
((_hsm_sim_saved_pipefail)) || set +o pipefail
unset _hsm_sim_saved_flags _hsm_sim_saved_pipefail
