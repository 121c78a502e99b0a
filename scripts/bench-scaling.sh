#!/usr/bin/env bash
# The scaling tables of docs/benchmarks.md: time per meta step and peak memory of
# `maml bench --config linreg-16` as in-dim, tasks and inner steps grow, and of
# `--config sinusoid` as MLP width, tasks and inner steps grow, both orders. Each row is
# its own process, so peak RSS is that configuration's.
#
# Usage: scripts/bench-scaling.sh [BACKEND] [SECONDS] [linreg|sinusoid|all]
#        (default: flex 2 all)
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-flex}"
seconds="${2:-2}"
which="${3:-all}"
maml="${MAML:-target/release/maml}"
[ -x "$maml" ] || cargo build --release -q -p maml-cli --bin maml

row() { # in tasks inner order
    "$maml" bench --config linreg-16 --backend "$backend" --in "$1" --tasks "$2" \
        --inner-steps "$3" --order "$4" --seconds "$seconds" --json |
        python3 scripts/bench-row.py
}

sine() { # width tasks inner order
    "$maml" bench --config sinusoid --backend "$backend" --width "$1" --tasks "$2" \
        --inner-steps "$3" --order "$4" --seconds "$seconds" --json |
        python3 scripts/bench-row.py
}

if [ "$which" != linreg ]; then
    echo "maml bench --config sinusoid --backend $backend (--seconds $seconds), $(nproc) cores, $(uname -m)"
    echo
    echo "| width | tasks | inner steps | order | ms / meta step | meta-steps/s | peak RSS (MiB) | heap of a meta step (MiB) |"
    echo "|---:|---:|---:|---|---:|---:|---:|---:|"
    for order in second first; do
        for w in 40 256 1024; do sine "$w" 25 1 "$order"; done
        sine 40 250 1 "$order"
        for k in 5 10; do sine 40 25 "$k" "$order"; done
    done
    echo
    [ "$which" = sinusoid ] && exit 0
fi

echo "maml bench --config linreg-16 --backend $backend (--seconds $seconds), $(nproc) cores, $(uname -m)"
echo
echo "| in | tasks | inner steps | order | ms / meta step | meta-steps/s | peak RSS (MiB) | heap of a meta step (MiB) |"
echo "|---:|---:|---:|---|---:|---:|---:|---:|"
for order in second first; do
    for d in 16 128 1024; do row "$d" 25 5 "$order"; done
    row 16 250 5 "$order"
    for k in 1 20; do row 16 25 "$k" "$order"; done
done
echo
echo "Memory as inner steps grow (in 256, 1000 tasks):"
echo
echo "| in | tasks | inner steps | order | ms / meta step | meta-steps/s | peak RSS (MiB) | heap of a meta step (MiB) |"
echo "|---:|---:|---:|---|---:|---:|---:|---:|"
for k in 0 1 5 10 20 40; do for order in second first; do row 256 1000 "$k" "$order"; done; done
