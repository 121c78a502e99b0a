#!/usr/bin/env bash
# The GPU checks for a lent device machine (no Rust toolchain, no network there): runs
# binaries built here and carried in .device/ (scripts/device-pack.sh), with the Vulkan
# loader from .gl/. Writes logs to $OUT.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p "$XDG_RUNTIME_DIR"
export MAML_REQUIRE_WGPU=1
out="${OUT:-/tmp/out}"; mkdir -p "$out"
tar -xJf .device/bins.tar.xz -C .device
# The test binaries look for files under the path they were built in.
if [ ! -e /work/main ]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
mkdir -p target/release && cp .device/maml target/release/maml
nvidia-smi -L | tee "$out/gpu.txt"
ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ 2>/dev/null | tee -a "$out/gpu.txt"
if ! .device/maml bench --backend wgpu --seconds 0.2 >/dev/null 2>&1; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    echo "using VK_DRIVER_FILES=$VK_DRIVER_FILES" | tee -a "$out/gpu.txt"
fi
{ echo "== gpu example"; time .device/gpu; } > "$out/gpu-example.txt" 2>&1
{ echo "== wgpu backend tests"; time .device/backends wgpu_f32 --test-threads 4; } > "$out/wgpu-tests.txt" 2>&1
{ echo "== maml grad on wgpu"; time .device/grad wgpu; } >> "$out/wgpu-tests.txt" 2>&1
{
    echo "== maml bench, wgpu"
    for o in second first; do .device/maml bench --backend wgpu --order "$o" --seconds 5 --json; done
    .device/maml bench --backend wgpu --config seed --seconds 3 --json
    for d in 128 1024; do .device/maml bench --backend wgpu --in "$d" --seconds 3 --json; done
    .device/maml bench --backend wgpu --tasks 250 --seconds 3 --json
    for k in 1 20; do .device/maml bench --backend wgpu --inner-steps "$k" --seconds 3 --json; done
    .device/maml bench --backend wgpu --in 1024 --tasks 250 --seconds 3 --json
    echo "== maml bench, ndarray on the device's CPU"
    .device/maml bench --backend ndarray --order second --seconds 3 --json
    echo "== JAX peer on the GPU"
    python3 scripts/peers/peer_jax.py --seconds 5
    python3 scripts/peers/peer_jax.py --seconds 5 --first-order
    python3 scripts/peers/peer_jax.py --seconds 3 --dim 1024 --tasks 250
} > "$out/bench.txt" 2>&1
tail -5 "$out/wgpu-tests.txt"
grep -h "meta_steps_per_s\|jax" "$out/bench.txt"
