//! Exit codes: the one place where a typed error becomes a process exit status. The library
//! returns errors; only the command line turns them into codes (sysexits(3) where one fits,
//! the AWS CLI's 254 for an error the daemon answered, a shell's 126/127 for a command that
//! cannot be run).

use crate::api::client::ClientError;
use crate::daemon::servers::StartError;
use crate::daemon::DaemonError;
use crate::exec::ExecError;
use std::process::ExitCode;

/// Any other failure.
pub const EX_FAILURE: u8 = 1;
/// A bad command line or input file of `simulate` (clap's own code for a usage error).
pub const EX_BAD_INPUT: u8 = 2;
/// Bad input or configuration (sysexits EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// The state file cannot be used (sysexits EX_DATAERR).
pub const EX_DATAERR: u8 = 65;
/// The host or the daemon cannot do what is asked (sysexits EX_UNAVAILABLE).
pub const EX_UNAVAILABLE: u8 = 69;
/// Something inside burstd failed (sysexits EX_SOFTWARE).
pub const EX_SOFTWARE: u8 = 70;
/// The API socket refuses us (sysexits EX_NOPERM).
pub const EX_NOPERM: u8 = 77;
/// The command was found but cannot be run (as a shell answers).
pub const EX_CANNOT_RUN: u8 = 126;
/// The command was not found (as a shell answers).
pub const EX_NOT_FOUND: u8 = 127;
/// The daemon answered with an error (the AWS CLI's code for a service error).
pub const EX_SERVICE: u8 = 254;

/// The exit code of a `burstd exec` (or `demo`) that could not run its command.
pub fn of_exec(e: &ExecError) -> u8 {
    match e {
        ExecError::Unavailable(_) => EX_UNAVAILABLE,
        ExecError::State(_) => EX_DATAERR,
        ExecError::Usage(_) => EX_USAGE,
        ExecError::Spawn { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => EX_NOT_FOUND,
            _ => EX_CANNOT_RUN,
        },
        ExecError::Failed(_) => EX_SOFTWARE,
    }
}

/// The exit code of an API client that could not talk to the daemon.
pub fn of_client(e: &ClientError) -> u8 {
    match e {
        ClientError::PermissionDenied(_) => EX_NOPERM,
        _ => EX_UNAVAILABLE,
    }
}

/// The exit code of a daemon that could not start or ended badly.
pub fn of_daemon(e: &DaemonError) -> u8 {
    match e {
        DaemonError::Config(_) => EX_USAGE,
        DaemonError::Layout(_) => EX_UNAVAILABLE,
        DaemonError::State(_) => EX_DATAERR,
        DaemonError::Server(StartError::AdminGroup(_)) => EX_USAGE,
        DaemonError::Server(_) => EX_UNAVAILABLE,
        DaemonError::Runtime(_) | DaemonError::Signals(_) | DaemonError::NeverSaved => EX_FAILURE,
    }
}

/// Prints `burstd: {message}` to stderr and returns `code`.
pub fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("burstd: {message}");
    ExitCode::from(code)
}
