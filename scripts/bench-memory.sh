#!/usr/bin/env bash
# Memory and time of one meta step against the number of inner steps K, for MAML (second
# order) with every step kept, MAML with gradient checkpointing (--inner-checkpoint-every
# auto, C = ceil(sqrt(K))) and implicit MAML (--algorithm imaml), by `maml bench`.
# Prints one markdown row per K: for each variant, ms per meta step and the heap of one
# meta step (meta_step_heap_bytes, MiB).
#
# Usage: scripts/bench-memory.sh CONFIG "K1 K2 ..." [extra maml bench flags...]
#   e.g. scripts/bench-memory.sh sinusoid "1 5 10 100 1000"
#        scripts/bench-memory.sh omniglot-conv "1 5 10 100" --tasks 1
# Variants for a config with a hand-derived road (linreg-16, sinusoid): hand-derived,
# hand-derived checkpointed, nested autodiff, nested autodiff checkpointed, iMAML; for
# omniglot-conv (nested autodiff only): autodiff, autodiff checkpointed, iMAML.
# MAML (the binary) defaults to target/release/maml; SECONDS_PER_RUN (default 0.5) is
# passed as --seconds (every run measures at least one meta step after a warm-up one).
set -euo pipefail
cd "$(dirname "$0")/.."
config="$1"
steps="$2"
shift 2
maml="${MAML:-target/release/maml}"
[ -x "$maml" ] || cargo build --release -q -p maml-cli --bin maml
seconds="${SECONDS_PER_RUN:-0.5}"
if [ "$config" = omniglot-conv ]; then
    variants=("--gradient autodiff" "--gradient autodiff --inner-checkpoint-every auto"
        "--algorithm imaml")
    echo "| K | MAML | MAML, checkpointed | iMAML |"
    echo "|---:|---:|---:|---:|"
else
    variants=("--gradient auto" "--gradient auto --inner-checkpoint-every auto"
        "--gradient autodiff" "--gradient autodiff --inner-checkpoint-every auto"
        "--algorithm imaml")
    echo "| K | hand-derived | hand-derived, checkpointed | nested autodiff | nested autodiff, checkpointed | iMAML |"
    echo "|---:|---:|---:|---:|---:|---:|"
fi
for k in $steps; do
    row="| $k |"
    for variant in "${variants[@]}"; do
        # shellcheck disable=SC2086 # a variant is several flags
        cell=$("$maml" bench --config "$config" --order second --inner-steps "$k" \
            --seconds "$seconds" --json $variant "$@" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ms, heap = r["ms_per_meta_step"], r["meta_step_heap_bytes"] / 1048576
print(f"{ms:,.1f} ms, {heap:,.2f} MiB")')
        row="$row $cell |"
    done
    echo "$row"
done
