#!/usr/bin/env bash
# Runs Tessera's fuzz targets (fuzz/, ARCHITECTURE.md "Fuzzing").
#
#   scripts/fuzz.sh TARGET SECONDS  fuzz one target for SECONDS on one core, then
#                                   report its executions and findings
#   scripts/fuzz.sh --merge TARGET  add the inputs of earlier runs that reach new
#                                   code to the committed corpus (fuzz/corpus/TARGET)
#   scripts/fuzz.sh --cmin TARGET   minimise the committed corpus of TARGET
#   scripts/fuzz.sh --seed          write the seed corpora (stable toolchain)
#   scripts/fuzz.sh --list          the targets
#
# Fuzzing needs the nightly toolchain and cargo-fuzz (installed here with
# `cargo install cargo-fuzz --locked` when missing). A run reads the
# committed corpus and writes what it finds to fuzz/work/TARGET (not
# committed; runs may span sessions); a crash, hang or out-of-memory input
# goes to fuzz/artifacts/TARGET. Replay a finding with
# `cargo +nightly fuzz run --features libfuzzer TARGET fuzz/artifacts/TARGET/<file>`;
# the stable replay of the committed corpus is `cargo test -p tessera-fuzz`.
set -euo pipefail

cd "$(dirname "$0")/.."

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^tessera-fuzz$'; }

need_target() {
    targets | grep -qx "$1" || { echo "no fuzz target $1 (scripts/fuzz.sh --list)" >&2; exit 2; }
}

need_cargo_fuzz() {
    rustup toolchain list | grep -q '^nightly' || { echo "the nightly toolchain is missing (rustup toolchain install nightly)" >&2; exit 1; }
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
}

fuzz() { cargo +nightly fuzz "$@"; }

# libFuzzer's options for every run: one core, a hang is an input slower
# than 10 s, and the run ends with its statistics.
LIBFUZZER_OPTIONS=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

run_target() {
    local target=$1 seconds=$2 log started status=0
    need_target "$target"
    [[ "$seconds" =~ ^[0-9]+$ ]] || usage
    need_cargo_fuzz
    mkdir -p "fuzz/work/$target" "fuzz/artifacts/$target"
    log=$(mktemp -t "tessera-fuzz-$target.XXXXXX")
    started=$(mktemp -t "tessera-fuzz-start.XXXXXX")
    fuzz run --features libfuzzer "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        "${LIBFUZZER_OPTIONS[@]}" -max_total_time="$seconds" \
        2>&1 | tee "$log" | grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' || status=$?
    local runs findings
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    findings=$(find "fuzz/artifacts/$target" -type f -newer "$started" | wc -l)
    rm -f "$log" "$started"
    echo "fuzz $target: ${runs:-?} executions in ${seconds}s; $findings new finding(s) in fuzz/artifacts/$target"
    return "$status"
}

case "${1:-}" in
    --list) targets ;;
    --seed) cargo run --locked -p tessera-fuzz --example seed -- fuzz/corpus ;;
    --merge)
        [[ $# -eq 2 ]] || usage
        need_target "$2"
        need_cargo_fuzz
        mkdir -p "fuzz/work/$2"
        fuzz run --features libfuzzer "$2" "fuzz/corpus/$2" "fuzz/work/$2" -- -merge=1 "${LIBFUZZER_OPTIONS[@]}"
        ;;
    --cmin)
        [[ $# -eq 2 ]] || usage
        need_target "$2"
        need_cargo_fuzz
        fuzz cmin --features libfuzzer "$2" "fuzz/corpus/$2" -- "${LIBFUZZER_OPTIONS[@]}"
        ;;
    -*|"") usage ;;
    *)
        [[ $# -eq 2 ]] || usage
        run_target "$1" "$2"
        ;;
esac
