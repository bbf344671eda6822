#!/usr/bin/env bash
# Bounded fuzzing for CI (issue 3, item 5): builds every cargo-fuzz target of
# rig/fuzz and runs each one for FUZZ_SECONDS (default 20) from the seed
# corpus in fixtures/corpus/<target>/. Fails if any target finds a crash, a
# timeout (an input running longer than FUZZ_INPUT_TIMEOUT s, default 10) or
# a leak of memory over 2 GiB; the crashing input is printed in hex and kept
# under $FUZZ_OUT/artifacts/<target>/.
#
#   rig/fuzz/run-ci.sh                  # all targets, 20 s each, one per CPU at a time
#   FUZZ_SECONDS=30 rig/fuzz/run-ci.sh content_tlv coap_message
#
# Needs cargo-fuzz (installed here if missing) and, on a stable toolchain,
# RUSTC_BOOTSTRAP=1 for the -Z flags cargo-fuzz passes (set below).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${FUZZ_SECONDS:-20}
input_timeout=${FUZZ_INPUT_TIMEOUT:-10}
# A fixed seed makes CI's bounded run explore the same inputs every time, so a
# red CI means a change broke something, not that the dice rolled a new find.
# Longer campaigns (campaign.sh) use random seeds; set FUZZ_SEED to vary this one.
seed=${FUZZ_SEED:-20261127}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz}
export RUSTC_BOOTSTRAP=1
out=${FUZZ_OUT:-$CARGO_TARGET_DIR/ci-run}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "run-ci: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$here"
echo "run-ci: building every target (cargo fuzz build)"
cargo fuzz build --fuzz-dir .

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir .)
fi

# The targets run FUZZ_JOBS at a time (default: one per CPU), each on its
# own core, straight from the binaries `cargo fuzz build` made.
jobs=${FUZZ_JOBS:-$(nproc)}
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

run_one() {
    local t=$1
    local work="$out/corpus/$t" arts="$out/artifacts/$t" seeds="$root/fixtures/corpus/$t"
    local log="$out/$t.log"
    rm -rf "$arts"
    mkdir -p "$work" "$arts" "$seeds"
    # The first corpus directory receives new inputs; the seed corpus stays read-only.
    if "$bin/$t" "$work" "$seeds" \
        -max_total_time="$secs" -seed="$seed" -timeout="$input_timeout" -rss_limit_mb=2048 \
        -artifact_prefix="$arts/" -print_final_stats=1 >"$log" 2>&1; then
        local execs cov
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
        echo "$t: ok, ${execs:-?} execs, ${cov:-?}" >"$out/$t.result"
    else
        echo "$t: FAILED (log $log)" >"$out/$t.result"
    fi
}

mkdir -p "$out"
running=0
for t in "${targets[@]}"; do
    rm -f "$out/$t.result"
    echo "run-ci: $t for ${secs}s"
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

failed=()
summary=()
for t in "${targets[@]}"; do
    line=$(cat "$out/$t.result" 2>/dev/null || echo "$t: FAILED (no result)")
    summary+=("$line")
    case "$line" in
    *FAILED*)
        failed+=("$t")
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY" -A3 "$out/$t.log" | head -20 || true
        for a in "$out/artifacts/$t"/*; do
            [ -f "$a" ] || continue
            echo "run-ci: $t input $a:"
            od -An -tx1 -v "$a" | head -40
        done
        ;;
    esac
done

echo "run-ci: summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "run-ci: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
