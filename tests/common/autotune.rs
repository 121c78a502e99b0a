//! A seed for cubecl's autotune cache on Mesa's software Vulkan device (lavapipe).
//!
//! On a new shape, Burn's wgpu backend first benchmarks every candidate kernel
//! (matmul, reduce, conv) and keeps the fastest in a cache under `target/autotune`.
//! On lavapipe each candidate is compiled by LLVM, 1.5 to 4 s, and the wgpu tests use
//! about 450 shapes: with an empty cache (a fresh clone) that was about 20 minutes of a
//! 2-core machine before the first test result. `tests/data-autotune` holds the choices
//! cubecl made for these tests on lavapipe (only the fastest index of each entry; the
//! timings are dropped), copied into the cache once per test process where the cache
//! has no file of that name yet. The kernels are still compiled and run as usual, so
//! the tests check the same numbers; a missing or stale entry (another cubecl version,
//! another device, a new shape) is simply tuned again. `scripts/autotune-seed.py`
//! refreshes the seed from a filled cache.

use std::path::{Path, PathBuf};
use std::sync::Once;

/// cubecl's version, the first folder of its cache (`autotune/0.10.0/`).
const CUBECL_VERSION: &str = "0.10.0";

/// cubecl's name for lavapipe's device (a CPU device, type 4, index 0, WGSL kernels).
const LAVAPIPE: &str = "device-4-0-wgpu_wgsl_";

/// Copies the seed into the autotune cache the first time it is called in a process;
/// never replaces a file already there. A failure is reported, not fatal: the tests
/// then tune as without the seed.
pub fn seed_autotune_cache() {
    static SEED: Once = Once::new();
    SEED.call_once(|| {
        if let Err(err) = seed() {
            eprintln!("the autotune seed was not copied: {err}");
        }
    });
}

fn seed() -> std::io::Result<()> {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data-autotune")
        .join(LAVAPIPE);
    let to = cache_root()?
        .join("autotune")
        .join(CUBECL_VERSION)
        .join(LAVAPIPE);
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if !target.exists() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// cubecl's default cache root: `target` beside the first `Cargo.toml` found from the
/// current directory upwards (cubecl-runtime's `CacheConfig::Target`).
fn cache_root() -> std::io::Result<PathBuf> {
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join("Cargo.toml").exists() {
            return Ok(dir.join("target"));
        }
        if !dir.pop() {
            return Err(std::io::Error::other(
                "no Cargo.toml above the current directory",
            ));
        }
    }
}
