//! The `mqsim` command line. Argument parsing lives here; the commands are in the library.

// The doc comments of the argument types are clap's help text, read on a terminal, where
// `<unix seconds>` is a placeholder and not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use clap::{Parser, Subcommand};
use mqsim_harness::Exit;
use mqsim_harness::batch;
use mqsim_harness::commands::{self, Streams};
use mqsim_harness::compare;
use mqsim_harness::poke::{self, Poke};
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Deterministic test harness for message queues.
///
/// Exit codes: 0 pass, 1 an invariant or expectation failed, 2 bad input or usage, 3 liveness
/// (the system did not recover).
#[derive(Debug, Parser)]
#[command(name = "mqsim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios: simulate each, check its history and its expectations, and write the
    /// results (summary.json, summary.txt and a history file per run) to a results directory.
    Run {
        /// Scenario files, or directories whose *.yaml and *.yml files are used (not recursive).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Run every scenario with this seed instead of its own.
        #[arg(long, value_name = "N", conflicts_with = "seeds")]
        seed: Option<u64>,
        /// Run every scenario with its own seed and the next N-1 (at most 10000).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
        seeds: Option<u64>,
        /// The results directory (default: results/run-<unix seconds>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Simulations to run at once (default: the number of CPUs).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
        /// The final report: a table (text) or summary.json's content (json).
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// Compare with this baseline (from `mqsim baseline save`); a regression exits 1.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// With --baseline: `5%` for every simulated-time metric (default 0: they are exact), or
        /// `METRIC=5%` for one; `wall_seconds=50%` for wall-clock time (default 100%).
        #[arg(long, value_name = "TOL", requires = "baseline")]
        tolerance: Vec<String>,
        /// With --baseline: fail on a wall-clock regression instead of warning.
        #[arg(long, requires = "baseline")]
        gate_wall_clock: bool,
        /// Run only shard I of N of the runs (1-based), for spreading seeds over machines;
        /// `mqsim merge` combines the shards' results directories.
        #[arg(long, value_name = "I/N")]
        shard: Option<batch::Shard>,
    },
    /// Explore: for each seed, draw a fault schedule and workload variation within the
    /// scenario's `explore` bounds, run and check it; shrink the first failure of each scenario
    /// to a minimal scenario file that reproduces it (written to the results directory).
    Explore {
        /// Scenario files, or directories whose *.yaml and *.yml files are used (not recursive).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Seeds per scenario: its own seed (or --seed) and the next N-1 (at most 100000).
        #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
        seeds: u64,
        /// Start from this seed instead of each scenario's own; with --seeds 1, explore (and
        /// shrink) just that seed again.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Stop starting new seeds after this much wall-clock time, such as 60s or 10m.
        #[arg(long, value_name = "TIME", value_parser = parse_budget)]
        budget: Option<std::time::Duration>,
        /// Simulations to run at once (default: the number of CPUs).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
        /// Explore only shard I of N of the seeds (1-based); `mqsim merge` combines the shards'
        /// results directories.
        #[arg(long, value_name = "I/N")]
        shard: Option<batch::Shard>,
        /// The results directory (default: results/explore-<unix seconds>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Most runs shrinking one failure may take.
        #[arg(long, default_value_t = 200, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=10_000))]
        shrink_runs: u32,
    },
    /// Combine the results directories of `run --shard` (or of any runs) into one, as if one
    /// run had made them all.
    Merge {
        /// Results directories.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Where the merged results go.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Regression baselines.
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
    /// Run one scenario under several delivery modes or broker profiles, on the same seeds and
    /// faults, and print one table (compare.json and compare.html go to a results directory).
    ///
    /// Without --delivery or --profiles, the three delivery modes are compared.
    Compare {
        /// The scenario file.
        #[arg(value_name = "FILE")]
        scenario: PathBuf,
        /// Delivery modes, comma-separated: at-most-once, at-least-once, exactly-once.
        #[arg(long, value_enum, value_delimiter = ',', value_name = "MODES")]
        delivery: Vec<DeliveryArg>,
        /// Broker profiles, comma-separated (see `mqsim profiles`).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        profiles: Vec<String>,
        /// Seeds per variant: the scenario's own and the next N-1 (at most 10000).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
        seeds: u64,
        /// The results directory (default: results/compare-<unix seconds>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Simulations to run at once (default: the number of CPUs).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: Option<u64>,
    },
    /// Run again what a results directory (or one history file in it) records and confirm that
    /// each history hash is the same.
    Replay {
        /// A results directory, or a history file inside one.
        #[arg(value_name = "PATH")]
        target: PathBuf,
    },
    /// Check scenario files without running them, printing `ok PATH` for each valid one.
    Validate {
        /// Scenario files, or directories whose *.yaml and *.yml files are used (not recursive).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List the scenarios in a directory with their one-line descriptions.
    List {
        /// The directory to list.
        #[arg(default_value = "scenarios/", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Show the broker profiles (presets standing for real systems) and what each setting of
    /// a profile stands for.
    Profiles {
        /// One profile's name; without it, all.
        name: Option<String>,
    },
    /// Run the reference broker on a loopback address until stopped, printing `listening on ADDR`.
    ///
    /// Without --config it has a queue `q` and a topic `t` with a consumer group `g`. Its log is
    /// kept in memory, so stopping it loses everything.
    Broker {
        /// The address to listen on, such as 127.0.0.1:7000 (port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// A broker configuration in YAML (durability and destinations).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Send one request to a broker started with `mqsim broker`.
    Client {
        /// The broker's address, as `mqsim broker` printed it.
        #[arg(long, value_name = "ADDR")]
        connect: SocketAddr,
        #[command(subcommand)]
        action: ClientAction,
    },
}

#[derive(Debug, Subcommand)]
enum BaselineAction {
    /// Write a baseline from a run's results directory.
    Save {
        /// The results directory (default: the latest results/run-*).
        #[arg(value_name = "DIR")]
        results: Option<PathBuf>,
        /// Where to write it.
        #[arg(long, value_name = "FILE", default_value = "results/baseline.json")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[allow(clippy::enum_variant_names)] // The names are the delivery modes' own.
enum DeliveryArg {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Publish one message and print its id, partition and offset.
    Publish {
        /// The queue or topic.
        destination: String,
        /// The message body, as text.
        payload: String,
        /// The partitioning key (the message group on a FIFO queue).
        #[arg(long)]
        key: Option<String>,
    },
    /// Receive messages, print one line each, and acknowledge them.
    Receive {
        /// The queue or topic.
        destination: String,
        /// The consumer group; required for a topic, not allowed for a queue.
        #[arg(long)]
        group: Option<String>,
        /// The most messages to receive (1 to 1024).
        #[arg(long, default_value_t = 10, value_name = "N")]
        max: u32,
        /// The consumer id; the in-flight limit is kept per consumer.
        #[arg(long, default_value_t = 1, value_name = "ID")]
        consumer: u64,
        /// Leave the messages leased instead of acknowledging them: they come back once their
        /// visibility timeout ends.
        #[arg(long)]
        no_ack: bool,
    },
}

impl ClientAction {
    fn to_poke(&self) -> Poke {
        match self {
            ClientAction::Publish {
                destination,
                payload,
                key,
            } => Poke::Publish {
                destination: destination.clone(),
                payload: payload.clone(),
                key: key.clone(),
            },
            ClientAction::Receive {
                destination,
                group,
                max,
                consumer,
                no_ack,
            } => Poke::Receive {
                destination: destination.clone(),
                group: group.clone(),
                max: *max,
                consumer: *consumer,
                no_ack: *no_ack,
            },
        }
    }
}

/// A wall-clock budget written as a duration with a unit (`90s`, `10m`, `1h`).
fn parse_budget(text: &str) -> Result<std::time::Duration, String> {
    let d = mqsim_harness::scenario::HumanDuration::parse(text)?;
    if d.as_ms() == 0 {
        return Err("a budget must be more than 0".into());
    }
    Ok(std::time::Duration::from_millis(d.as_ms()))
}

/// `--jobs`, or as many as there are CPUs.
fn jobs_or_cpus(jobs: Option<u64>) -> usize {
    jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |j| j as usize,
    )
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap sends help and version to stdout and real errors to stderr; only the latter
            // are failures. If even this output fails there is nowhere left to report it.
            let _ = err.print();
            return if err.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Pass
            }
            .into();
        }
    };
    // Unlocked handles, which lock for each write: a lock held for the whole command would
    // make any write to stderr from a worker thread (a debugging print in the simulation, a
    // dependency's warning) wait for ever, and the run hang instead of finishing.
    let mut streams = Streams {
        out: io::stdout(),
        err: io::stderr(),
    };
    let result = match &cli.command {
        Command::Run {
            paths,
            seed,
            seeds,
            out,
            jobs,
            format,
            baseline,
            tolerance,
            gate_wall_clock,
            shard,
        } => {
            let baseline = match baseline {
                None => None,
                Some(path) => match commands::load_baseline(path, tolerance, *gate_wall_clock) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        let _ = writeln!(streams.err, "mqsim: {e}");
                        return Exit::BadInput.into();
                    }
                },
            };
            let options = batch::Options {
                seeds: match (seed, seeds) {
                    (Some(s), _) => batch::Seeds::One(*s),
                    (None, Some(n)) => batch::Seeds::Count(*n),
                    (None, None) => batch::Seeds::Own,
                },
                out: out.clone(),
                jobs: jobs_or_cpus(*jobs),
                format: match format {
                    OutputFormat::Text => batch::Format::Text,
                    OutputFormat::Json => batch::Format::Json,
                },
                progress_bar: io::stderr().is_terminal(),
                baseline,
                shard: *shard,
            };
            commands::run(paths, &options, &mut streams)
        }
        Command::Compare {
            scenario,
            delivery,
            profiles,
            seeds,
            out,
            jobs,
        } => {
            let mut deliveries: Vec<compare::Delivery> = delivery
                .iter()
                .map(|d| match d {
                    DeliveryArg::AtMostOnce => compare::Delivery::AtMostOnce,
                    DeliveryArg::AtLeastOnce => compare::Delivery::AtLeastOnce,
                    DeliveryArg::ExactlyOnce => compare::Delivery::ExactlyOnce,
                })
                .collect();
            if deliveries.is_empty() && profiles.is_empty() {
                deliveries = compare::Delivery::ALL.to_vec();
            }
            let options = compare::Options {
                deliveries,
                profiles: profiles.clone(),
                seeds: *seeds,
                jobs: jobs_or_cpus(*jobs),
                out: out.clone(),
            };
            commands::compare(scenario, &options, &mut streams)
        }
        Command::Baseline {
            action: BaselineAction::Save { results, out },
        } => commands::save_baseline(results.as_deref(), out, &mut streams),
        Command::Explore {
            paths,
            seeds,
            seed,
            budget,
            jobs,
            shard,
            out,
            shrink_runs,
        } => {
            let options = mqsim_harness::explore::Options {
                seeds: *seeds,
                first_seed: *seed,
                budget: *budget,
                jobs: jobs_or_cpus(*jobs),
                shard: *shard,
                out: out.clone(),
                shrink_runs: *shrink_runs,
            };
            commands::explore(paths, &options, &mut streams)
        }
        Command::Merge { dirs, out } => {
            mqsim_harness::merge::merge(dirs, out, &mut streams.out, &mut streams.err)
        }
        Command::Replay { target } => commands::replay(target, &mut streams),
        Command::Validate { paths } => commands::validate(paths, &mut streams),
        Command::List { dir } => commands::list(dir, &mut streams),
        Command::Profiles { name } => commands::profiles(name.as_deref(), &mut streams),
        Command::Broker { listen, config } => {
            poke::broker(*listen, config.as_deref(), &mut streams)
        }
        Command::Client { connect, action } => {
            poke::client(*connect, &action.to_poke(), &mut streams)
        }
    };
    let result = result.and_then(|exit| streams.out.flush().map(|()| exit));
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            // Output that could not be written (a closed pipe, a full disk) means the caller did
            // not get the report, so the run cannot count as a pass. A closed pipe is the
            // reader's choice and needs no message.
            if err.kind() != io::ErrorKind::BrokenPipe {
                let _ = writeln!(streams.err, "mqsim: cannot write output: {err}");
            }
            Exit::BadInput.into()
        }
    }
}
