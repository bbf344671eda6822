#!/usr/bin/env bash
# The long campaign (issue 3, item 5): each target, one at a time, for
# FUZZ_RUNS executions (default 10 000 000), niced. Appends one line per
# target to $FUZZ_OUT/campaign.tsv (target, execs, exec/s, cov, ft, corpus,
# result, seconds) for the figures table in rig/proto/README.md.
# FUZZ_SANITIZER picks cargo-fuzz's sanitizer (default address; `none` runs
# several times faster, and rig-proto has no unsafe code for ASan to watch;
# overflow checks stay on through --debug-assertions either way).
# FUZZ_MAX_TIME (seconds, default none) stops a target earlier than FUZZ_RUNS
# (the shared machine's deadline); its row then gives the executions reached.
# FUZZ_NICE (default 10) is the nice level.
#
#   rig/fuzz/campaign.sh                       # every target
#   rig/fuzz/campaign.sh content_cbor path_parse
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${FUZZ_RUNS:-10000000}
max_time=()
if [ -n "${FUZZ_MAX_TIME:-}" ]; then max_time=(-max_total_time="$FUZZ_MAX_TIME"); fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz}
export RUSTC_BOOTSTRAP=1
out=${FUZZ_OUT:-$CARGO_TARGET_DIR/campaign}
mkdir -p "$out"

cd "$here"
san=${FUZZ_SANITIZER:-address}
cargo fuzz build --fuzz-dir . --sanitizer "$san" --debug-assertions >/dev/null
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list --fuzz-dir .); fi

for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    log="$out/$t.log"
    start=$(date +%s)
    result=ok
    nice -n ${FUZZ_NICE:-10} "$bin/$t" -runs="$runs" "${max_time[@]}" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 \
        "$out/corpus/$t" "$root/fixtures/corpus/$t" >"$log" 2>&1 || result=CRASH
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$execs" "$rate" "$cov" "$ft" "$corp" "$result" "$secs" \
        | tee -a "$out/campaign.tsv"
done
