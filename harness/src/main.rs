//! The `mqsim` command line. Argument parsing lives here; the commands are in the library.

use clap::{Parser, Subcommand};
use mqsim_harness::Exit;
use mqsim_harness::commands::{self, Streams};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Deterministic test harness for message queues.
///
/// Exit codes: 0 pass, 1 an invariant or expectation failed, 2 bad input or usage, 3 liveness
/// (no progress). The simulation is not implemented yet; `run` only validates scenarios.
#[derive(Debug, Parser)]
#[command(name = "mqsim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios. For now this only validates and lists them: the simulation does not exist yet.
    Run {
        /// Scenario files, or directories whose *.yaml and *.yml files are used (not recursive).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
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
    let mut streams = Streams {
        out: io::stdout().lock(),
        err: io::stderr().lock(),
    };
    let result = match &cli.command {
        Command::Run { paths } => commands::run(paths, &mut streams),
        Command::Validate { paths } => commands::validate(paths, &mut streams),
        Command::List { dir } => commands::list(dir, &mut streams),
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
