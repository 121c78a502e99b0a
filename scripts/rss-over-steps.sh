#!/usr/bin/env bash
# Resident memory of a long meta-training run, sampled while it runs: does a meta step
# leak? Runs `maml train` on the paper's sinusoid setting (second order) for STEPS meta
# steps, prints VmRSS every INTERVAL seconds, then the run's summary (its steps per
# second map the seconds to meta steps).
#
# Usage: scripts/rss-over-steps.sh [STEPS] [INTERVAL] [BACKEND]   (default: 10000 1 flex)
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-10000}"
interval="${2:-1}"
backend="${3:-flex}"
maml="${MAML:-target/release/maml}"
[ -x "$maml" ] || cargo build --release -q -p maml-cli --bin maml
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$maml" train --family sinusoid --model mlp --hidden 40,40 --inner-lr 0.01 \
    --inner-steps 1 --meta-lr 0.001 --meta-batch 25 --meta-steps "$steps" \
    --baseline-steps 0 --no-compare --checkpoint-every 1000 --backend "$backend" \
    --out "$out/run" >"$out/summary.json" 2>/dev/null &
pid=$!
echo "seconds,VmRSS_kB"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(($(date +%s) - start)),$rss"
    sleep "$interval"
done
wait "$pid"
grep -E '"meta_steps"|"seconds"|meta_steps_per_s' "$out/summary.json" | tr -d ' ,' | paste -sd' '
