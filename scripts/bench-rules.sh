#!/usr/bin/env bash
# Runs the rule-engine benchmark (benches/rules.rs) and prints a comparison table:
# evaluations per second for partnersync and for rhai, cel-interpreter and evalexpr, on
# the same 1,000,000 entries, and each one's ratio to the fastest of those three.
# Groups: upn_suffix / ext1_switch walk 1M distinct entries (memory-bound, like a full
# sync); the *_hot groups evaluate 500 cache-resident entries 2,000 times (the engines'
# own cost). native_rust is the decision as plain Rust: the floor. The *_prepared rows
# evaluate entries reduced once with RuleSet::prepare (only the attributes the rules read),
# and native_rust_prepared reads the same prepared entries.
#
#   scripts/bench-rules.sh                 # run the bench, then print the table
#   scripts/bench-rules.sh --wall          # time with the wall clock instead of CPU time
#   scripts/bench-rules.sh --no-run        # only print the table from the last run
#   scripts/bench-rules.sh -- upn_suffix   # pass a filter (or other criterion flags)
#
# Honours CARGO_TARGET_DIR (default: ./target of the workspace). The bench is single-
# threaded, so each figure is per core. By default it is timed with the bench thread's
# CPU time (RULES_BENCH_CLOCK=cpu), so that other jobs on the machine do not count
# against it; --wall (or RULES_BENCH_CLOCK=wall) uses criterion's wall clock. Issue 2's
# targets for the UPN rule: at least 5 million evaluations per second per core, and at
# least 3x the fastest other engine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
criterion_dir="$target_dir/criterion"

run=1
export RULES_BENCH_CLOCK="${RULES_BENCH_CLOCK:-cpu}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-run) run=0 ;;
        --wall) RULES_BENCH_CLOCK=wall ;;
        --) shift; break ;;
        *) break ;;
    esac
    shift
done

if (( run )); then
    cargo bench --bench rules -- "$@"
fi

# One criterion iteration evaluates every entry once.
evals_per_iter=1000000

# mean point estimate (ns per iteration) from criterion's estimates.json, without jq.
mean_ns() {
    tr -d ' \n' <"$1" | sed -n 's/.*"mean":{[^}]*}[^}]*"point_estimate":\([0-9.eE+-]*\).*/\1/p'
}

if [[ ! -d "$criterion_dir" ]]; then
    echo "no criterion results under $criterion_dir: run without --no-run first" >&2
    exit 1
fi

echo
if (( run )); then
    clock="$RULES_BENCH_CLOCK"
else
    clock="as in the last run"
fi
echo "rules bench: $(nproc) cores here, load average now $(cut -d' ' -f1-3 /proc/loadavg); single-threaded; clock: $clock"
for group in upn_suffix upn_suffix_hot ext1_switch ext1_switch_hot; do
    [[ -d "$criterion_dir/$group" ]] || continue
    rows=""
    for engine in native_rust native_rust_prepared partnersync_expression partnersync_ruleset partnersync_ruleset_prepared rhai cel_interpreter evalexpr; do
        file="$criterion_dir/$group/$engine/new/estimates.json"
        [[ -f "$file" ]] || continue
        ns="$(mean_ns "$file")"
        [[ -n "$ns" ]] || { echo "cannot read the mean from $file" >&2; exit 1; }
        rows+="$engine $ns"$'\n'
    done
    [[ -n "$rows" ]] || continue
    printf '%s' "$rows" | awk -v group="$group" -v per_iter="$evals_per_iter" '
        {
            name[NR] = $1
            rate[NR] = per_iter / ($2 / 1e9)
            nseval[NR] = $2 / per_iter
            if ($1 !~ /^(partnersync|native)/ && rate[NR] > best) { best = rate[NR]; best_name = $1 }
        }
        END {
            printf "\n%s (1 thread = per core)\n", group
            printf "  %-30s %16s %10s %14s\n", "engine", "evaluations/s", "ns/eval", "vs fastest other"
            for (i = 1; i <= NR; i++) {
                ratio = (best > 0) ? sprintf("%.1fx", rate[i] / best) : "-"
                printf "  %-30s %16.0f %10.1f %14s\n", name[i], rate[i], nseval[i], ratio
            }
            if (best > 0) printf "  fastest other engine: %s\n", best_name
            if (group ~ /^upn_suffix/) {
                for (i = 1; i <= NR; i++) {
                    if (name[i] !~ /^partnersync_/) continue
                    fast = rate[i] >= 5e6 ? "met" : "NOT met"
                    ratio_ok = (best > 0 && rate[i] / best >= 3) ? "met" : "NOT met"
                    printf "  target (%s): >= 5M evals/s/core %s; >= 3x fastest other %s\n", name[i], fast, ratio_ok
                }
            }
        }'
done
