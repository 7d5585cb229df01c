//! One module per subcommand. Each returns the process exit code; an `Err` means the run
//! itself could not be carried out (exit 3).

pub mod dns;
pub mod doctor;
pub mod report;
pub mod run;
pub mod serve;
pub mod ua;
pub mod validate;

use std::process::ExitCode;

use srvlab::model::diag::Diagnostics;
use srvlab::tell;

/// Bad input: a zone or case file with an error.
pub fn exit_bad_input() -> ExitCode {
    ExitCode::from(2)
}
/// The run could not be carried out (a port in use, a missing privilege).
pub fn exit_run_failed() -> ExitCode {
    ExitCode::from(3)
}

/// Prints diagnostics to stderr with a one-line count.
pub fn print_diagnostics(diagnostics: &Diagnostics) {
    if diagnostics.is_empty() {
        return;
    }
    // Each diagnostic is a line of its own; the count follows.
    tell!("{}", diagnostics.to_string().trim_end());
    tell!(
        "{} error{}, {} warning{}",
        diagnostics.error_count(),
        if diagnostics.error_count() == 1 {
            ""
        } else {
            "s"
        },
        diagnostics.warning_count(),
        if diagnostics.warning_count() == 1 {
            ""
        } else {
            "s"
        },
    );
}
