//! `burstd simulate`: the command-line arguments and their wiring to [`crate::sim`].
//!
//! Bad input (arguments, trace, profile) exits with [`EX_BAD_INPUT`] and a message naming
//! what is wrong; failing to write the output exits with 1.

use super::args::{ArgError, ModeArg};
use super::exit::EX_BAD_INPUT;
use crate::credit::{profile, Credits, Landing, Mode, NS_PER_SEC};
use crate::sim::engine::{ComparePrices, RAMP_LEVELS};
use crate::sim::import::{self, TraceFormat};
use crate::sim::report::{self, Format};
use crate::sim::{plot, simulate, SimConfig};
use std::io::Write;
use std::process::ExitCode;

/// How to read the output; `--help` prints it after the options.
const READING: &str = "\
Reading the output:
  Each step's utilization is the average over the step. A t2.micro with 9 credits at 100%
  runs out after 10 minutes and then gets its 10% baseline: with --step 3600 that hour shows
  25% (10 min at 100%, 50 at 10%), not 10%; held_at_baseline_s (per step and in the summary)
  says how much of it was held at the baseline below the demand.
  credits_exhausted_at_s is when the workload first ran short: held at its baseline below
  its demand (standard) or spending surplus credits (unlimited). It is 0 when the workload
  starts at zero and bursts at once, and `never` (null in JSON) when it never runs short.
  The end of the trace is no stop: surplus still owed is final_surplus_balance and
  surplus_owed_usd, not charged; the price comparison counts it, as AWS bills it at the next
  stop or the end of the billing period.
  launch_credit_grants_refused counts starts that found --launch-credit-limit reached.";

#[derive(clap::Args, Debug)]
#[command(after_long_help = READING)]
pub struct SimulateArgs {
    /// Instance type, e.g. t3.nano (`burstd profiles` lists them).
    #[arg(long)]
    pub profile: String,
    /// Credit mode at launch [default: the profile's: standard for T2, unlimited for T3/T4g].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Earned credits (E) at launch [default: 0]. Above the profile's accrual limit (24 h of
    /// earning) it is capped, with a warning.
    #[arg(long, value_name = "N", value_parser = non_negative, allow_negative_numbers = true)]
    pub initial_credits: Option<f64>,
    /// Launch credits granted at launch (and at each start on T2) instead of the profile's;
    /// 0 for none. Standard mode only; an error on T3/T3a/T4g, which AWS never grants any.
    #[arg(long, value_name = "N", value_parser = non_negative, allow_negative_numbers = true)]
    pub launch_credits: Option<f64>,
    /// Launch-credit grants allowed per rolling 24 h, like the daemon's `launch_credit_limit`
    /// (AWS: 100 launches or starts); starts beyond it get none (`launch_credit_grants_refused`).
    #[arg(long, value_name = "N", default_value_t = crate::credit::DEFAULT_LAUNCH_LIMIT)]
    pub launch_credit_limit: u32,
    /// Trace: CSV with header `seconds,utilization[,event]`, a CloudWatch CPUUtilization export
    /// (`aws cloudwatch get-metric-statistics|get-metric-data --output json`) or a Prometheus
    /// `/api/v1/query_range` answer; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub trace: String,
    /// The trace's format [default: detected from its content].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub trace_format: Option<TraceFormat>,
    /// Output step in seconds (CloudWatch: 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, value_parser = positive_ms, allow_negative_numbers = true)]
    pub step: f64,
    /// Output: an aligned table and `key: value` summary, CSV of the steps, or one JSON
    /// object `{profile, mode, steps, summary}`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write a chart of utilisation and credits as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// Surplus credit price in USD per vCPU-hour [default: the profile's, $0.05 on Linux].
    #[arg(long, value_name = "USD", value_parser = non_negative, allow_negative_numbers = true)]
    pub price_per_vcpu_hour: Option<f64>,
    /// Hourly price of a fixed-performance instance to compare with (e.g. m5.large 0.096).
    #[arg(long, value_name = "USD", value_parser = non_negative, allow_negative_numbers = true, requires = "instance_hourly_price")]
    pub compare_hourly_price: Option<f64>,
    /// Hourly price of this burstable instance (e.g. t3.large 0.0832).
    #[arg(long, value_name = "USD", value_parser = non_negative, allow_negative_numbers = true, requires = "compare_hourly_price")]
    pub instance_hourly_price: Option<f64>,
    /// Land on the baseline gradually: below N credits the ceiling falls in 10 levels from
    /// all vCPUs to the baseline [default: off, exact cap at zero].
    #[arg(long, value_name = "N", value_parser = positive, allow_negative_numbers = true)]
    pub ramp_credits: Option<f64>,
}

fn number(s: &str) -> Result<f64, ArgError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && x.abs() < 1e12)
        .ok_or_else(|| ArgError::NotANumber(s.to_string()))
}

fn non_negative(s: &str) -> Result<f64, ArgError> {
    let x = number(s)?;
    if x < 0.0 {
        return Err(ArgError::Negative(s.to_string()));
    }
    Ok(x)
}

fn positive(s: &str) -> Result<f64, ArgError> {
    let x = number(s)?;
    if x <= 0.0 {
        return Err(ArgError::NotPositive(s.to_string()));
    }
    Ok(x)
}

/// A step in seconds: at least 1 ms (the resolution), at most 100 years (the clock's range).
fn positive_ms(s: &str) -> Result<f64, ArgError> {
    let x = positive(s)?;
    if x < 0.001 {
        return Err(ArgError::BelowResolution(s.to_string()));
    }
    if x > 100.0 * 365.25 * 86_400.0 {
        return Err(ArgError::TooLong(s.to_string()));
    }
    Ok(x)
}

fn credits(x: f64) -> Credits {
    // The value parsers bound x, so from_f64 cannot fail; 0 is a harmless fallback.
    Credits::from_f64(x).unwrap_or(Credits::ZERO)
}

/// Builds the simulation from the arguments; `Err` is a message for the user (exit 2).
pub fn config(args: &SimulateArgs) -> Result<SimConfig, String> {
    let mut profile = profile::lookup(&args.profile, []).map_err(|e| e.to_string())?;
    if let Some(usd) = args.price_per_vcpu_hour {
        profile.surplus_price_nano_usd = (usd * 1e9).round() as u64;
    }
    let mut config = SimConfig::new(profile);
    if let Some(mode) = args.mode {
        config.mode = mode.into();
    }
    if config.mode == Mode::Unlimited && !config.profile.unlimited_allowed {
        return Err(format!(
            "profile {} does not support unlimited mode; use --mode standard",
            config.profile.name
        ));
    }
    config.initial_credits = credits(args.initial_credits.unwrap_or(0.0));
    config.launch_credits = args.launch_credits.map(credits);
    if let Some(n) = args.launch_credits.filter(|&n| n > 0.0) {
        let p = &config.profile;
        if !p.launch_credits.is_positive() {
            return Err(format!(
                "--launch-credits {n}: {} never gets launch credits (AWS grants them to T2 \
                 instances in standard mode only); use --initial-credits {n} to start with a balance",
                p.name
            ));
        }
    }
    config.launch_credit_limit = args.launch_credit_limit;
    config.step_ns = (args.step * 1000.0).round() as u64 * (NS_PER_SEC / 1000);
    if let Some(n) = args.ramp_credits {
        config.landing = Landing::Ramp {
            credits: credits(n),
            steps: RAMP_LEVELS,
        };
    }
    if let (Some(compare), Some(instance)) = (args.compare_hourly_price, args.instance_hourly_price)
    {
        config.compare = Some(ComparePrices {
            instance_hourly_usd: instance,
            compare_hourly_usd: compare,
        });
    }
    Ok(config)
}

/// What `config` did with the arguments that a user would not expect: a value changed or
/// not used, and why. `run` prints each to standard error; the simulation goes ahead.
pub fn warnings(args: &SimulateArgs, config: &SimConfig) -> Vec<String> {
    let p = &config.profile;
    let mut out = Vec::new();
    if let Some(n) = args.initial_credits {
        if credits(n) > p.max_earned {
            out.push(format!(
                "--initial-credits {n}: capped at {}, the most {} can bank (24 h of its {} \
                 credits/h); earned credits above it are discarded",
                p.max_earned.as_f64(),
                p.name,
                p.earn_rate.credits_per_hour()
            ));
        }
    }
    if let Some(n) = args.launch_credits.filter(|&n| n > 0.0) {
        if config.mode == Mode::Unlimited {
            out.push(format!(
                "--launch-credits {n}: none granted at launch: {} launches in unlimited mode, \
                 which gets no launch credits (AWS: \"T2 Unlimited instances do not receive \
                 launch credits\"); they apply only to a `start` in standard mode later in the trace",
                p.name
            ));
        }
    }
    if args.ramp_credits.is_some() && config.mode == Mode::Unlimited {
        out.push(format!(
            "--ramp-credits: unused while {} runs in unlimited mode (it is never held at its \
             baseline); it applies after a `standard` event in the trace",
            p.name
        ));
    }
    if args.price_per_vcpu_hour.is_some() && !p.unlimited_allowed {
        out.push(format!(
            "--price-per-vcpu-hour: unused: {} has no unlimited mode, so it never spends \
             surplus credits",
            p.name
        ));
    }
    out
}

fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("burstd simulate: error: {message}");
    ExitCode::from(EX_BAD_INPUT)
}

pub fn run(args: &SimulateArgs) -> ExitCode {
    let config = match config(args) {
        Ok(c) => c,
        Err(message) => return bad_input(message),
    };
    for warning in warnings(args, &config) {
        eprintln!("burstd simulate: warning: {warning}");
    }
    let segments = match import::load(&args.trace, args.trace_format) {
        Ok(loaded) => {
            for note in &loaded.notes {
                eprintln!("burstd simulate: note: {note}");
            }
            loaded.segments
        }
        Err(e) => return bad_input(e),
    };
    let result = match simulate(&config, &segments) {
        Ok(r) => r,
        // Engine errors carry the line; name the file too.
        Err(e) => return bad_input(format_args!("{}: {e}", trace_name(&args.trace))),
    };
    if let Some(path) = &args.plot {
        if let Err(e) = plot::write_svg(path, &config.profile, &result) {
            eprintln!("burstd simulate: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match report::write(&mut out, args.format, &config.profile, &result).and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burstd simulate: error: writing the output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trace_name(path: &str) -> &str {
    if path == "-" {
        "<stdin>"
    } else {
        path
    }
}
