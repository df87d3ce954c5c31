//! Exploration speed (issue 7 item 5): seeds explored per wall-clock minute for a scenario of
//! 10 simulated seconds (`scenarios/explore-orders.yaml`), through the same code as
//! `mqsim explore` (draw, run, check, judge; no shrinking, since no seed fails), on 1 thread
//! and on as many as the machine has. A plain bench binary: one exploration is many runs, so
//! its wall time is already an average; each configuration is repeated and the best and
//! median rates are printed.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p mqsim-benches --bench explore
//! # fewer seeds or repetitions (defaults 200 and 3):
//! MQSIM_EXPLORE_SEEDS=50 MQSIM_EXPLORE_REPEAT=1 CARGO_TARGET_DIR=/tmp/target-bench \
//!     cargo bench -p mqsim-benches --bench explore
//! ```

use std::path::Path;
use std::time::Instant;

use mqsim_harness::Exit;
use mqsim_harness::explore::{self, Options};
use mqsim_harness::scenario::ScenarioFile;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench -- --test` (and cargo's own probing) pass flags; a smoke run is enough then.
    let smoke = std::env::args().any(|a| a == "--test");
    let seeds = if smoke {
        4
    } else {
        env("MQSIM_EXPLORE_SEEDS", 200)
    };
    let repeat = if smoke {
        1
    } else {
        env("MQSIM_EXPLORE_REPEAT", 3)
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/explore-orders.yaml");
    let file = ScenarioFile::load(&path).expect("the scenario loads");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let out = tempfile::tempdir().expect("a temporary directory");
    println!(
        "explore {} ({} simulated s): {seeds} seeds, best and median of {repeat}",
        path.display(),
        file.scenario.spec.duration_ms / 1000
    );
    for jobs in [1, cpus] {
        let mut rates = Vec::new();
        for _ in 0..repeat {
            let options = Options {
                seeds,
                first_seed: None,
                budget: None,
                jobs,
                shard: None,
                out: Some(out.path().to_path_buf()),
                shrink_runs: 0,
            };
            let started = Instant::now();
            let exit = explore::explore(
                std::slice::from_ref(&file),
                &options,
                &mut std::io::sink(),
                &mut std::io::sink(),
            )
            .expect("exploration writes its results");
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(exit, Exit::Pass, "every seed passes");
            rates.push(seeds as f64 * 60.0 / seconds);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "  jobs {jobs}: best {:.0} seeds per minute, median {:.0}",
            rates[rates.len() - 1],
            rates[rates.len() / 2]
        );
    }
}
