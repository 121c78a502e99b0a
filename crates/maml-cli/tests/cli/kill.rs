//! Killing `maml train` at random moments never leaves a half-written checkpoint: what
//! is left always loads (checkpoints are written to a temporary file and renamed).

use std::process::{Command, Stdio};
use std::time::Duration;

use maml_burn::maml_data::stored::ModelCheckpoint;
use rand::{Rng, SeedableRng};

#[test]
fn a_killed_training_run_leaves_a_loadable_checkpoint() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let dir = crate::train::tmp("kill");
    let mut loaded = 0;
    for round in 0..8 {
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_maml"))
            .args([
                "train",
                "--in",
                "8",
                "--meta-steps",
                "100000",
                "--checkpoint-every",
                "1",
            ])
            .args(["--no-compare", "--out", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        let path = dir.join("checkpoint.json");
        if path.exists() {
            let checkpoint = ModelCheckpoint::load(&path).unwrap_or_else(|e| {
                panic!("round {round}: the checkpoint left behind is broken: {e}")
            });
            let weights = checkpoint.model.as_linear().expect("a linear model");
            assert!(weights.max_abs().is_finite());
            loaded += 1;
        }
        // No temporary file may be mistaken for a checkpoint; stray ones are allowed.
    }
    assert!(
        loaded >= 4,
        "only {loaded} of 8 runs had written a checkpoint before the kill"
    );
}
