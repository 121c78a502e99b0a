//! Data-parallel `maml train` end to end: two workers (threads on burn-collective), a
//! two-thread CPU pool and two MPI ranks train to the same weights as one.

use std::path::Path;

use crate::train::{maml, ok, tmp};

fn weights_of(dir: &Path) -> Vec<f64> {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("weights.json")).unwrap()).unwrap();
    let mut values = Vec::new();
    // The linear model's file is version 1's `weight` and `bias`; an MLP's a layer list.
    let layers = match spec["layers"].as_array() {
        Some(layers) => layers.clone(),
        None => vec![spec.clone()],
    };
    for layer in &layers {
        for row in layer["weight"].as_array().unwrap() {
            values.extend(row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()));
        }
        values.extend(
            layer["bias"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap()),
        );
    }
    values
}

fn assert_same_weights(a: &[f64], b: &[f64], rel: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= rel * scale,
        "{what}: max |difference| {diff:e} > {rel:e} * {scale:e}"
    );
}

/// The data-parallel equivalence cases: (model, hidden, precision, relative tolerance,
/// method flag). Only the order of summation differs between one worker and several,
/// so 1e-12 relative in f64 and 1e-5 in f32.
const SPLITS: [(&str, &str, &str, f64, &str); 3] = [
    ("linear", "1", "f64", 1e-12, "--meta-sgd"),
    ("mlp", "8,8", "f64", 1e-12, "--no-compare"),
    ("mlp", "8,8", "f32", 1e-5, "--meta-sgd"),
];

/// `maml train` arguments of one [`SPLITS`] case: 30 meta steps on 7 sinusoid tasks.
fn split_args(case: (&str, &str, &str, f64, &str), out: &Path) -> Vec<String> {
    let (model, hidden, precision, _, method) = case;
    [
        "train",
        "--family",
        "sinusoid",
        "--model",
        model,
        "--hidden",
        hidden,
        method,
        "--inner-steps",
        "2",
        "--inner-lr",
        "0.01",
        "--meta-batch",
        "7",
        "--meta-steps",
        "30",
        "--baseline-steps",
        "0",
        "--precision",
        precision,
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Trains every [`SPLITS`] case with `flag 1` and with `flag 2` and checks that both
/// reach the same weights (tolerances: [`SPLITS`]).
fn two_train_the_same_weights_as_one(flag: &str) {
    for case in SPLITS {
        let (model, _, precision, rel, _) = case;
        let mut runs = Vec::new();
        for count in ["1", "2"] {
            let dir = tmp(&format!("{}-{model}-{precision}-{count}", &flag[2..]));
            let mut args = split_args(case, &dir);
            args.extend([flag.into(), count.into()]);
            ok(&maml(&strs(&args)));
            runs.push(weights_of(&dir));
        }
        assert_same_weights(
            &runs[0],
            &runs[1],
            rel,
            &format!("{model} {precision} {flag}"),
        );
    }
}

/// Two data-parallel workers (threads on burn-collective) train to the same weights as
/// one, for a linear and an MLP model, MAML and Meta-SGD.
#[test]
fn two_workers_train_the_same_weights_as_one() {
    two_train_the_same_weights_as_one("--workers");
}

/// A two-thread CPU pool (`--threads 2`, where the MLP's meta-gradient splits its tasks
/// over the threads) trains to the same weights as one thread.
#[test]
fn two_threads_train_the_same_weights_as_one() {
    two_train_the_same_weights_as_one("--threads");
}

/// `maml train --mpi` under `mpirun -np 2` (a build with `--features mpi`).
#[cfg(feature = "mpi")]
mod mpi {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use maml_burn::maml_data::stored::ModelCheckpoint;

    use super::{SPLITS, assert_same_weights, split_args, strs, weights_of};
    use crate::train::{maml, ok, tmp};

    /// `mpirun -np 2 maml ARGS`, in a process group of its own.
    fn mpirun(args: &[&str]) -> Command {
        let mut command = Command::new("mpirun");
        command
            .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
            .arg(env!("CARGO_BIN_EXE_maml"))
            .args(args)
            .process_group(0);
        command
    }

    /// Kills a job's whole process group (mpirun and its ranks) when dropped, so that a
    /// failing test leaves no process behind.
    struct Group(u32);

    impl Drop for Group {
        fn drop(&mut self) {
            let group = format!("-{}", self.0);
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Runs `mpirun -np 2 maml ARGS` to its end (at most 300 s).
    fn run(args: &[&str]) -> std::process::Output {
        let child = mpirun(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpirun runs (apt-get install openmpi-bin)");
        let _group = Group(child.id());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        rx.recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| panic!("mpirun {args:?} ran past 300 s"))
            .unwrap()
    }

    /// Two MPI ranks train to the same weights as one process, for a linear and an MLP
    /// model: each rank's share of every meta-batch is drawn from the same seeded stream
    /// and only the order of summation differs (tolerances: [`SPLITS`]).
    #[test]
    fn two_mpi_ranks_train_the_same_weights_as_one_process() {
        for case in SPLITS {
            let (model, _, precision, rel, _) = case;
            let one = tmp(&format!("mpi-{model}-{precision}-1"));
            ok(&maml(&strs(&split_args(case, &one))));
            let two = tmp(&format!("mpi-{model}-{precision}-2"));
            let mut args = split_args(case, &two);
            args.push("--mpi".into());
            ok(&run(&strs(&args)));
            let (a, b) = (weights_of(&one), weights_of(&two));
            assert_same_weights(&a, &b, rel, &format!("mpi {model} {precision}"));
        }
    }

    /// The pid of `rank` among the children of `parent` (OpenMPI puts the rank in each
    /// process's environment).
    fn rank_pid(parent: u32, rank: usize) -> Option<u32> {
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent pid is the 2nd field after the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid != Some(parent) {
                continue;
            }
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if environ
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
            {
                return Some(pid);
            }
        }
        None
    }

    /// Killing one rank (SIGKILL) ends the whole job within seconds, with a non-zero
    /// status; the checkpoint on disk is complete, and `--resume` (here in one process)
    /// continues from it to the requested step.
    #[test]
    fn killing_one_rank_stops_the_job_and_resume_continues_from_the_last_checkpoint() {
        let dir = tmp("mpi-kill");
        let child = mpirun(&[
            "train",
            "--family",
            "sinusoid",
            "--model",
            "mlp",
            "--hidden",
            "8",
            "--inner-lr",
            "0.01",
            "--inner-steps",
            "1",
            "--meta-batch",
            "4",
            "--meta-steps",
            "100000000",
            "--checkpoint-every",
            "5",
            "--baseline-steps",
            "0",
            "--no-compare",
            "--mpi",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mpirun runs (apt-get install openmpi-bin)");
        let _group = Group(child.id());
        let mut job = child;
        let checkpoint = dir.join("checkpoint.json");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                job.try_wait().unwrap().is_none(),
                "the job ended before the kill"
            );
            assert!(
                Instant::now() < deadline,
                "no checkpoint at step 20 after 120 s"
            );
            if ModelCheckpoint::load(&checkpoint).is_ok_and(|c| c.step >= 20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = rank_pid(job.id(), 1).expect("rank 1 is a child of mpirun");
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let killed = Instant::now();
        let status = loop {
            if let Some(status) = job.try_wait().unwrap() {
                break status;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "mpirun still running 30 s after rank 1 was killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            !status.success(),
            "a job with a killed rank reported success"
        );
        // Rank 0 may be killed in the middle of a write: the checkpoint is replaced only
        // by a complete one, so it loads.
        let step = ModelCheckpoint::load(&checkpoint)
            .expect("the checkpoint left behind loads")
            .step;
        assert!(step >= 20, "checkpoint at step {step}");
        let target = (step + 10).to_string();
        ok(&maml(&[
            "train",
            "--resume",
            "--meta-steps",
            &target,
            "--out",
            dir.to_str().unwrap(),
        ]));
        let resumed = ModelCheckpoint::load(&checkpoint).unwrap();
        assert_eq!(resumed.step, step + 10);
    }
}
