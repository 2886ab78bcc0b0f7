//! `burstd simulate`: the command-line arguments and their wiring to [`crate::sim`].
//!
//! Bad input (arguments, trace, profile) exits with [`EX_BAD_INPUT`] and a message naming
//! what is wrong; failing to write the output exits with 1.

use super::args::{ArgError, ModeArg};
use super::exit::EX_BAD_INPUT;
use crate::credit::{builtin_profile, builtin_profile_names, Credits, Landing, Mode, NS_PER_SEC};
use crate::sim::engine::{ComparePrices, RAMP_LEVELS};
use crate::sim::report::{self, Format};
use crate::sim::{plot, simulate, trace, SimConfig};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Instance type, e.g. t3.nano (`burstd profiles` lists them).
    #[arg(long)]
    pub profile: String,
    /// Credit mode at launch [default: the profile's: standard for T2, unlimited for T3/T4g].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Earned credits (E) at launch [default: 0]; capped at the profile's accrual limit.
    #[arg(long, value_name = "N", value_parser = non_negative, allow_negative_numbers = true)]
    pub initial_credits: Option<f64>,
    /// Launch credits granted at launch (and at each start on T2) instead of the profile's;
    /// 0 for none.
    #[arg(long, value_name = "N", value_parser = non_negative, allow_negative_numbers = true)]
    pub launch_credits: Option<f64>,
    /// Trace CSV with header `seconds,utilization[,event]`; `-` reads standard input.
    #[arg(long, value_name = "FILE.csv")]
    pub trace: String,
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
    let mut profile = builtin_profile(&args.profile).ok_or_else(|| {
        format!(
            "unknown profile {:?}; known profiles: {}",
            args.profile,
            builtin_profile_names().join(", ")
        )
    })?;
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

fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("burstd simulate: error: {message}");
    ExitCode::from(EX_BAD_INPUT)
}

pub fn run(args: &SimulateArgs) -> ExitCode {
    let config = match config(args) {
        Ok(c) => c,
        Err(message) => return bad_input(message),
    };
    let segments = match trace::load_trace(&args.trace) {
        Ok(s) => s,
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
