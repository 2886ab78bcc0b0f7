//! `burstd exec` (a command under the credit rules) and the hidden `burstd burn` (a busy loop
//! on one core, the demo's workload).

use super::args::{self, ArgError, ModeArg};
use super::exit::{self, EX_USAGE};
use crate::credit::{profile, Profile};
use crate::exec::{self, ExecOptions, Output};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The instance type whose credit rules apply (see `burstd profiles`).
    #[arg(long)]
    pub profile: String,
    /// standard (held at baseline when credits run out) or unlimited (surplus, charged).
    /// Default: the profile's (T2 standard, T3 unlimited), or the mode saved in --state.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Earned credits to start with (ignored when --state holds a balance).
    #[arg(long, default_value_t = 0.0)]
    pub initial_credits: f64,
    /// Launch credits granted at each start instead of the profile's (0: none).
    #[arg(long)]
    pub launch_credits: Option<f64>,
    /// Credit clock speed: K credit-seconds per real second (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Keep the balance between runs in this file (each run is a stop and a start).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The cgroup to create the command's cgroup under, relative to the cgroup root.
    /// Default: `burstd` on cgroup v1 or as root; on v2 otherwise, burstd's own (delegated) cgroup.
    #[arg(long)]
    pub parent: Option<String>,
    /// Also write the command's measured CPU usage every second as a trace for `simulate` and
    /// `advise` (utilisation in % of the profile's vCPUs). While it is held at its baseline
    /// its usage is not its demand: the summary says for how long.
    #[arg(long, value_name = "FILE.csv")]
    pub record: Option<PathBuf>,
    /// No live status; only the summary and errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(clap::Args, Debug)]
pub struct BurnArgs {
    /// How long to keep one core busy, in seconds of wall time.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

/// A built-in profile by name or alias, in any case ([`profile::lookup`]), or a message
/// listing every accepted name.
pub fn profile_named(name: &str) -> Result<Profile, String> {
    profile::lookup(name, []).map_err(|e| e.to_string())
}

fn options(a: ExecArgs) -> Result<ExecOptions, ArgError> {
    let mut profile = profile_named(&a.profile).map_err(ArgError::Profile)?;
    if let Some(l) = a.launch_credits {
        profile.launch_credits = args::credits("--launch-credits", l)?;
    }
    Ok(ExecOptions {
        initial_credits: args::credits("--initial-credits", a.initial_credits)?,
        time_scale_milli: args::time_scale_milli(a.time_scale)?,
        profile,
        mode: a.mode.map(Into::into),
        state_file: a.state,
        parent: a.parent,
        record: a.record,
        output: if a.quiet { Output::Quiet } else { Output::Live },
        log_every_s: 5.0,
        label: "burstd exec".into(),
        command: a.command,
    })
}

pub fn run_exec(a: ExecArgs) -> ExitCode {
    super::logging::init_logging_with("warn");
    let opts = match options(a) {
        Ok(o) => o,
        Err(e) => return exit::fail(EX_USAGE, e),
    };
    match exec::run(&opts) {
        Ok(outcome) => ExitCode::from(outcome.exit_code),
        Err(e) => exit::fail(exit::of_exec(&e), e),
    }
}

/// Keeps one core busy for `seconds` of wall time.
pub fn run_burn(a: BurnArgs) -> ExitCode {
    let limit = Duration::from_secs_f64(a.seconds.clamp(0.0, 1e9));
    let start = Instant::now();
    let mut x: u64 = 0;
    while start.elapsed() < limit {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    std::hint::black_box(x);
    ExitCode::SUCCESS
}
