#!/usr/bin/env bash
# Runs maml-burn's benchmarks (linreg-16 and sinusoid, Flex) and the JAX peers (and the
# PyTorch peers, when torch is installed) one after another, in one run on one machine,
# and prints the ratios (ours / peer).
#
# Usage: scripts/bench-peers.sh [SECONDS]     (default 5 seconds per measurement)
# The peers are installed into a virtual environment outside the repository
# ($MAML_PEERS_VENV, default ~/.cache/maml-burn/peers-venv) when missing: JAX always;
# PyTorch only with MAML_PEERS_TORCH=1 (several GB: it brings CUDA libraries even for
# the CPU). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
venv="${MAML_PEERS_VENV:-$HOME/.cache/maml-burn/peers-venv}"
shared="${MAML_SHARED:-../shared}"

if ! "$venv/bin/python" -c 'import jax' 2>/dev/null; then
    echo "installing JAX into $venv (once)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q jax jaxlib
fi
if [ "${MAML_PEERS_TORCH:-0}" = 1 ] && ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    "$venv/bin/pip" install -q torch
fi
# Older OpenBLAS builds need these on some processors; they slow a current numpy/JAX.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

cargo build --release -q -p maml-cli --bin maml
maml=target/release/maml
py="$venv/bin/python"
rate() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["meta_steps_per_s"])'; }
sine_rate() { sed -n 's/.*: \([0-9.]*\) meta-steps\/s.*/\1/p'; }

row() { printf '| %s | %s | %s | %s | %.2f |\n' "$1" "$2" "$3" "$4" "$(python3 -c "print($3 / $4)")"; }

echo "one run, $(nproc) cores $(uname -m), ${seconds} s per measurement"
echo "| configuration | order | maml-burn (flex, f32) | JAX (jit + vmap) | ours / JAX |"
echo "|---|---|---|---|---|"
for order in second first; do
    flag=""; [ "$order" = first ] && flag="--first-order"
    ours=$($maml bench --config linreg-16 --order "$order" --seconds "$seconds" --json | rate)
    jax=$($py scripts/peers/peer_jax.py --seconds "$seconds" $flag | rate)
    row linreg-16 "$order" "$ours" "$jax"
    ours=$($maml bench --config sinusoid --order "$order" --seconds "$seconds" --json | rate)
    steps=$(python3 -c "print(max(200, int($ours * $seconds)))")
    jax=$($py "$shared/peers/peer_jax_sinusoid.py" --steps "$steps" $flag | sine_rate)
    row sinusoid "$order" "$ours" "$jax"
done
if "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    ours=$($maml bench --config sinusoid --order second --seconds "$seconds" --json | rate)
    torch=$($py "$shared/peers/peer_torch_sinusoid.py" --steps 100 | sine_rate)
    echo "sinusoid second order, ours / PyTorch eager: $(python3 -c "print(round($ours / $torch, 1))")"
fi
