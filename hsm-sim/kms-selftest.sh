#!/usr/bin/env bash
# Checks that the KMS emulator signs MessageType=DIGEST the way AWS KMS does
# (the digest is signed as given, not hashed again), which is what Tessera's
# `awskms:` custody relies on. For ECC_NIST_P256/ECDSA_SHA_256 and
# ECC_NIST_P384/ECDSA_SHA_384 it creates a key, fetches the public key, signs
# the digest of a 10 kB message (over KMS's 4096-byte RAW cap) and verifies the
# signature with `openssl dgst -verify` over the message itself.
#
#   hsm-sim/kms-selftest.sh
#
# Uses the emulator at $TESSERA_TEST_KMS_ENDPOINT when set; otherwise starts
# one on a free loopback port with kms-emulator.sh and stops it afterwards.
# The Python side uses boto3 from the emulator's venv
# ($TESSERA_KMS_EMULATOR_VENV, default ~/.cache/tessera/kms-emulator/venv).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${TESSERA_KMS_EMULATOR_VENV:-${TESSERA_KMS_EMULATOR_DIR:-$HOME/.cache/tessera/kms-emulator}/venv}
WORK=$(mktemp -d -t tessera-kms-selftest.XXXXXX)
STARTED=""

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [[ -n "$STARTED" ]]; then
        "$HERE/kms-emulator.sh" stop --port "$STARTED" --dir "$WORK/emulator" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${TESSERA_TEST_KMS_ENDPOINT:-}" ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    STARTED=$port
    exports=$("$HERE/kms-emulator.sh" start --port "$port" --dir "$WORK/emulator" --venv "$VENV")
    eval "$exports"
fi
[[ -x "$VENV/bin/python" ]] || { echo "no venv at $VENV: run hsm-sim/kms-emulator.sh start once" >&2; exit 1; }
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check boto3 >&2
fi

head -c 10000 /dev/urandom >"$WORK/msg"
failed=0
for case in "ECC_NIST_P256 ECDSA_SHA_256 sha256" "ECC_NIST_P384 ECDSA_SHA_384 sha384"; do
    read -r spec alg hash <<<"$case"
    dir=$WORK/$spec
    mkdir -p "$dir"
    openssl dgst "-$hash" -binary "$WORK/msg" >"$dir/digest"
    AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test} \
        "$VENV/bin/python" - "$TESSERA_TEST_KMS_ENDPOINT" "$spec" "$alg" "$dir" <<'PY'
import sys, boto3
endpoint, spec, alg, out = sys.argv[1:]
kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")
key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY", Description="tessera selftest")
key_id = key["KeyMetadata"]["KeyId"]
pub = kms.get_public_key(KeyId=key_id)
assert alg in pub["SigningAlgorithms"], pub["SigningAlgorithms"]
open(f"{out}/pub.der", "wb").write(pub["PublicKey"])
digest = open(f"{out}/digest", "rb").read()
sig = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)
open(f"{out}/sig", "wb").write(sig["Signature"])
print(f"{spec}: key {key_id}, {len(sig['Signature'])}-byte DER signature", file=sys.stderr)
PY
    openssl pkey -pubin -inform DER -in "$dir/pub.der" -out "$dir/pub.pem"
    if openssl dgst "-$hash" -verify "$dir/pub.pem" -signature "$dir/sig" "$WORK/msg" >&2; then
        echo "ok   $spec $alg DIGEST signature verifies with openssl"
    else
        echo "FAIL $spec $alg DIGEST signature does not verify with openssl"
        failed=1
    fi
done
exit "$failed"
