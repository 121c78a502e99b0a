#!/usr/bin/env bash
# Runs maml-burn's benchmarks (linreg-16 and sinusoid, Flex) and the JAX peers (and the
# PyTorch peers, when torch is installed) one after another, in one run on one machine,
# and prints the ratios (ours / peer).
#
# Usage: scripts/bench-peers.sh [SECONDS]     (default 5 seconds per measurement)
#        MAML=target/release/maml scripts/bench-peers.sh   (skip the build)
# The peers are installed into a virtual environment outside the repository
# ($MAML_PEERS_VENV, default ~/.cache/maml-burn/peers-venv) when missing: JAX always;
# PyTorch only with MAML_PEERS_TORCH=1 (PyPI's wheel brings its CUDA libraries even for
# the CPU: several GB, about 80 s to install at 60 MB/s here). Not part of CI.
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

# MAML: an already built `maml` (e.g. the test command's), as in bench-scaling.sh;
# otherwise build it.
maml="${MAML:-}"
if [ -z "$maml" ]; then
    cargo build --release -q -p maml-cli --bin maml
    maml=target/release/maml
fi
py="$venv/bin/python"
rate() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["meta_steps_per_s"])'; }
sine_rate() { sed -n 's/.*: \([0-9.]*\) meta-steps\/s.*/\1/p'; }

torch_on=0
"$py" -c 'import torch' 2>/dev/null && torch_on=1
# Ours, JAX and (when installed) PyTorch eager, and the ratios.
row() {
    if [ "$torch_on" = 1 ]; then
        printf '| %s | %s | %.0f | %.0f | %.0f | %.2f | %.1f |\n' "$1" "$2" "$3" "$4" "$5" \
            "$(python3 -c "print($3 / $4)")" "$(python3 -c "print($3 / $5)")"
    else
        printf '| %s | %s | %.0f | %.0f | %.2f |\n' "$1" "$2" "$3" "$4" "$(python3 -c "print($3 / $4)")"
    fi
}

echo "one run, $(nproc) cores $(uname -m), ${seconds} s per measurement"
if [ "$torch_on" = 1 ]; then
    echo "| configuration | order | maml-burn (flex, f32) | JAX (jit + vmap) | PyTorch eager | ours / JAX | ours / PyTorch |"
    echo "|---|---|---|---|---|---|---|"
else
    echo "| configuration | order | maml-burn (flex, f32) | JAX (jit + vmap) | ours / JAX |"
    echo "|---|---|---|---|---|"
fi
for order in second first; do
    flag=""; [ "$order" = first ] && flag="--first-order"
    ours=$($maml bench --config linreg-16 --order "$order" --seconds "$seconds" --json | rate)
    jax=$($py scripts/peers/peer_jax.py --seconds "$seconds" $flag | rate)
    torch=0
    [ "$torch_on" = 1 ] && torch=$($py scripts/peers/peer_torch.py --seconds "$seconds" $flag | rate)
    row linreg-16 "$order" "$ours" "$jax" "$torch"
    ours=$($maml bench --config sinusoid --order "$order" --seconds "$seconds" --json | rate)
    steps=$(python3 -c "print(max(200, int($ours * $seconds)))")
    jax=$($py "$shared/peers/peer_jax_sinusoid.py" --steps "$steps" $flag | sine_rate)
    [ "$torch_on" = 1 ] && torch=$($py "$shared/peers/peer_torch_sinusoid.py" --steps 100 $flag | sine_rate)
    row sinusoid "$order" "$ours" "$jax" "$torch"
done
