#!/usr/bin/env bash
# Makes a SoftHSM2 token in DIR so Tessera's `pkcs11:` custody can be run and
# tested against a real PKCS#11 module, with no hardware.
#
#   hsm-sim/softhsm-token.sh DIR [--label LABEL] [--pin PIN] [--so-pin SOPIN]
#                                [--keygen OBJECT]...
#
# Writes DIR/softhsm2.conf (tokens in DIR/tokens), initialises a token labelled
# LABEL (default "tessera"; PIN 1234, SO PIN 5678) in the first free slot unless
# one with that label exists (then it only checks that the PIN logs in), and
# writes the PIN to DIR/pin (0600, no newline). --keygen makes an EC P-256 key
# pair labelled OBJECT on the token unless one exists. Prints `export` lines
# for SOFTHSM2_CONF and TESSERA_TEST_PKCS11_{MODULE,TOKEN,PIN_FILE} on stdout,
# for `eval "$(hsm-sim/softhsm-token.sh DIR)"`; never prints the PIN.
# TESSERA_PKCS11_MODULE overrides the module path.
set -euo pipefail

say() { printf 'softhsm-token: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
usage() {
    sed -n '5,6p' "$0" | sed 's/^# *//' >&2
    exit 2
}

DIR=""
LABEL=tessera
PIN=1234
SO_PIN=5678
KEYGEN=()
while (($#)); do
    case "$1" in
        --label) LABEL=${2:?--label needs a value}; shift 2 ;;
        --pin) PIN=${2:?--pin needs a value}; shift 2 ;;
        --so-pin) SO_PIN=${2:?--so-pin needs a value}; shift 2 ;;
        --keygen) KEYGEN+=("${2:?--keygen needs a value}"); shift 2 ;;
        -h | --help) usage ;;
        -*) say "unknown argument: $1"; usage ;;
        *)
            [[ -z "$DIR" ]] || { say "one DIR only"; usage; }
            DIR=$1
            shift
            ;;
    esac
done
[[ -n "$DIR" ]] || usage
((${#LABEL} <= 32)) || die "token label longer than 32 bytes"

find_module() {
    local candidate
    for candidate in "${TESSERA_PKCS11_MODULE:-}" \
        /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/*/softhsm/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so; do
        if [[ -n "$candidate" && -f "$candidate" ]]; then
            echo "$candidate"
            return
        fi
    done
    return 1
}

MODULE=$(find_module) || die "libsofthsm2.so not found: install softhsm2 (or set TESSERA_PKCS11_MODULE)"
command -v softhsm2-util >/dev/null || die "softhsm2-util not found: install softhsm2"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
umask 077
mkdir -p "$DIR/tokens"
cat >"$DIR/softhsm2.conf" <<EOF
# SoftHSM2 configuration written by hsm-sim/softhsm-token.sh
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF=$DIR/softhsm2.conf

# The labels of initialised tokens, one a line (softhsm2-util pads them).
token_labels() {
    softhsm2-util --show-slots 2>/dev/null |
        sed -n 's/^[[:space:]]*Label:[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1/p'
}

# Reads `pkcs11-tool --list-objects` output; true when an object has this label.
has_label() {
    awk -v want="$1" '
        /^[[:space:]]*label:/ { sub(/^[[:space:]]*label:[[:space:]]*/, ""); sub(/[[:space:]]+$/, ""); if ($0 == want) found = 1 }
        END { exit !found }'
}

p11() { pkcs11-tool --module "$MODULE" --token-label "$LABEL" "$@"; }

if token_labels | grep -qxF -- "$LABEL"; then
    say "token '$LABEL' already exists in $DIR/tokens"
    if command -v pkcs11-tool >/dev/null; then
        p11 --login --pin "$PIN" --list-objects >/dev/null 2>&1 ||
            die "the PIN does not log in to the existing token '$LABEL'"
    fi
else
    softhsm2-util --init-token --free --label "$LABEL" --pin "$PIN" --so-pin "$SO_PIN" >/dev/null ||
        die "softhsm2-util --init-token failed"
    say "initialised token '$LABEL' in $DIR/tokens"
fi
printf '%s' "$PIN" >"$DIR/pin.tmp"
chmod 0600 "$DIR/pin.tmp"
mv -f "$DIR/pin.tmp" "$DIR/pin"

for object in "${KEYGEN[@]}"; do
    command -v pkcs11-tool >/dev/null || die "pkcs11-tool not found: install opensc"
    if p11 --login --pin "$PIN" --list-objects --type privkey 2>/dev/null | has_label "$object"; then
        say "key '$object' already exists on token '$LABEL'"
        continue
    fi
    # CKA_ID: the label's bytes in hex, so id and label name the same pair.
    id=$(printf '%s' "$object" | od -An -tx1 | tr -d ' \n')
    p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
        --label "$object" --id "$id" --usage-sign --sensitive >/dev/null ||
        die "generating key '$object' failed"
    say "generated EC P-256 key pair '$object' on token '$LABEL'"
done

printf 'export SOFTHSM2_CONF=%q\n' "$DIR/softhsm2.conf"
printf 'export TESSERA_TEST_PKCS11_MODULE=%q\n' "$MODULE"
printf 'export TESSERA_TEST_PKCS11_TOKEN=%q\n' "$LABEL"
printf 'export TESSERA_TEST_PKCS11_PIN_FILE=%q\n' "$DIR/pin"
