//! The process exit codes of `mqsim`, kept in one place because scripts and CI depend on them.

use std::process::ExitCode;

/// How an `mqsim` invocation ended. Each variant maps to one fixed process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything that was asked for succeeded (exit code 0).
    Pass,
    /// A scenario ran but an invariant or expectation failed (exit code 1); it outranks a
    /// liveness failure in the same batch.
    InvariantFailed,
    /// The input or the command line was unusable: a missing file, invalid YAML, a bad field, an
    /// unknown option, or output that could not be written (exit code 2).
    BadInput,
    /// A scenario's drain did not finish: the system did not recover (exit code 3).
    Liveness,
}

impl Exit {
    /// The numeric process exit code for this outcome.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Pass => 0,
            Exit::InvariantFailed => 1,
            Exit::BadInput => 2,
            Exit::Liveness => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    // The numbers are a public contract with scripts, so they are pinned here explicitly.
    #[test]
    fn exit_codes_are_fixed() {
        assert_eq!(Exit::Pass.code(), 0);
        assert_eq!(Exit::InvariantFailed.code(), 1);
        assert_eq!(Exit::BadInput.code(), 2);
        assert_eq!(Exit::Liveness.code(), 3);
    }
}
