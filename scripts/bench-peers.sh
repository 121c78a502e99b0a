#!/usr/bin/env bash
# Runs maml-burn's linreg-16 benchmark and the JAX and PyTorch peers one after another,
# in one run on one machine, and prints the ratios (ours / peer).
#
# Usage: scripts/bench-peers.sh [SECONDS]     (default 5 seconds per measurement)
# The peers need JAX and PyTorch: they are installed into a virtual environment outside
# the repository ($MAML_PEERS_VENV, default ~/.cache/maml-burn/peers-venv) when missing.
# PyTorch from PyPI is several GB (it brings CUDA libraries even for the CPU).
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
venv="${MAML_PEERS_VENV:-$HOME/.cache/maml-burn/peers-venv}"

if ! "$venv/bin/python" -c 'import jax, torch' 2>/dev/null; then
    echo "installing JAX and PyTorch into $venv (once)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q jax jaxlib torch
fi

cargo build --release -q -p maml-cli --bin maml
maml=target/release/maml
py="$venv/bin/python"

ours_second=$($maml bench --config linreg-16 --order second --seconds "$seconds" --json)
ours_first=$($maml bench --config linreg-16 --order first --seconds "$seconds" --json)
jax_second=$($py scripts/peers/peer_jax.py --seconds "$seconds")
jax_first=$($py scripts/peers/peer_jax.py --seconds "$seconds" --first-order)
torch_second=$($py scripts/peers/peer_torch.py --seconds "$seconds")

rate() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["meta_steps_per_s"])'; }
os=$(rate <<<"$ours_second"); of=$(rate <<<"$ours_first")
js=$(rate <<<"$jax_second"); jf=$(rate <<<"$jax_first"); ts=$(rate <<<"$torch_second")

python3 - "$os" "$of" "$js" "$jf" "$ts" "$(nproc)" "$(uname -m)" <<'PY'
import sys
os_, of, js, jf, ts = map(float, sys.argv[1:6])
print(f"linreg-16 (in 16, 25 tasks, 10/15 shots, 5 inner steps), one run, {sys.argv[6]} cores {sys.argv[7]}")
print("| who | order | meta-steps/s |")
print("|---|---|---|")
for who, order, v in [("maml-burn (ndarray, f32, 1 thread)", "second", os_), ("maml-burn (ndarray, f32, 1 thread)", "first", of),
                      ("JAX (jit + vmap)", "second", js), ("JAX (jit + vmap)", "first", jf), ("PyTorch eager (1 thread)", "second", ts)]:
    print(f"| {who} | {order} | {v:,.1f} |")
print()
print(f"ours / JAX, second order:     {os_ / js:.2f}")
print(f"ours / JAX, first order:      {of / jf:.2f}")
print(f"ours / PyTorch, second order: {os_ / ts:.1f}")
print(f"ours first / ours second:     {of / os_:.2f}")
PY
