//! `burstd advise`: which instance type should carry this trace, and at what monthly cost.
//!
//! Bad input (arguments, trace, price file) exits with [`EX_BAD_INPUT`] and a message naming
//! the file, line and value; failing to write the output exits with 1.

use super::exit::EX_BAD_INPUT;
use crate::credit::profile;
use crate::sim::advise::{self, Advice, AdviseRequest};
use crate::sim::import::{self, TraceFormat};
use crate::sim::prices;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

const READING: &str = "\
Prices: built in for us-east-1, on-demand Linux, as listed in June 2024 (config/prices.toml),
T2/T3/T3a/T4g and fixed-size m5/m6i/m6g/c5/c6i/c6g/c7g/m7g types, surplus credits at $0.05
per vCPU-hour ($0.04 on T4g). Override any of them with --prices FILE: TOML shaped like
config/prices.toml (or bare \"t3.micro\" = 0.0104 lines), or CSV `instance_type,hourly_usd[,vcpus]`.

Reading the output:
  The trace's utilisation is a percentage of --vcpus vCPUs; each burstable option replays it
  rescaled to its own vCPUs exactly as `burstd simulate --profile P --mode M` does, from a
  fresh launch. monthly_cost_usd is the trace's cost (instance hours, surplus charged, and
  surplus still owed at the end, which AWS bills at the stop) × 730 h / the trace's duration,
  as if the trace repeated. unserved_cpu_seconds is demand not delivered: held at baseline in
  standard mode, or beyond the type's vCPUs. The recommendation is the cheapest option with
  no unserved demand; cheaper options that leave some unserved are named as the trade-off.";

/// Output of `burstd advise`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum AdviseFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = READING)]
pub struct AdviseArgs {
    /// Trace: CSV with header `seconds,utilization[,event]`, a CloudWatch CPUUtilization export
    /// (`aws cloudwatch get-metric-statistics|get-metric-data --output json`) or a Prometheus
    /// `/api/v1/query_range` answer; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub trace: String,
    /// The trace's format [default: detected from its content].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub trace_format: Option<TraceFormat>,
    /// vCPUs of the machine the trace was measured on: its utilisation is a percentage of them
    /// [default: as `burstd record` wrote in the trace's header, else 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub vcpus: Option<u32>,
    /// Region of the prices: the built-in table is us-east-1 (June 2024); another region
    /// needs --prices.
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// Burstable types to compare instead of every T2/T3/T3a/T4g that can carry the peak
    /// (comma-separated, e.g. t3.micro,t4g.small).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub profiles: Option<Vec<String>>,
    /// An aligned table (fits 100 columns), or one JSON object `{options, recommendation, …}`.
    #[arg(long, value_enum, default_value_t = AdviseFormat::Table)]
    pub format: AdviseFormat,
    /// Also write a chart of the demand against the top 3 options' delivered CPU as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// Prices overriding the built-in ones: TOML or CSV `instance_type,hourly_usd[,vcpus]`.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<String>,
}

fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("burstd advise: error: {message}");
    ExitCode::from(EX_BAD_INPUT)
}

/// The price table: built in, then the user's file.
fn price_table(args: &AdviseArgs) -> Result<prices::PriceTable, String> {
    let mut table = prices::builtin().map_err(|e| e.to_string())?;
    if let Some(path) = &args.prices {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: cannot read the price file: {e}"))?;
        table
            .merge_user_file(&text, path)
            .map_err(|e| e.to_string())?;
    }
    if let Some(region) = &args.region {
        if args.prices.is_none() && !region.eq_ignore_ascii_case(&table.region) {
            return Err(format!(
                "--region {region}: the built-in prices are for {} only; give that region's \
                 prices with --prices FILE",
                table.region
            ));
        }
        table.region = region.clone();
    }
    Ok(table)
}

/// Runs the comparison; `Err` is a message for the user (exit 2).
pub fn compute(args: &AdviseArgs) -> Result<(Advice, Vec<String>), String> {
    let table = price_table(args)?;
    let loaded = import::load(&args.trace, args.trace_format).map_err(|e| e.to_string())?;
    let segments = loaded.segments;
    let (vcpus, from) = match (args.vcpus, loaded.vcpus) {
        (Some(n), _) => (n, "--vcpus"),
        (None, Some(n)) => (n, "from the trace's `burstd record` header"),
        (None, None) => (2, "the default; give --vcpus"),
    };
    let profiles = match &args.profiles {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .filter(|n| !n.trim().is_empty())
                .map(|n| profile::lookup(n, []).map_err(|e| format!("--profiles: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let advice = advise::advise(&AdviseRequest {
        segments: &segments,
        vcpus,
        profiles,
        prices: &table,
    })
    .map_err(|e| format!("{}: {e}", trace_name(&args.trace)))?;
    let mut notes = vec![format!(
        "the trace ({}) is taken as a percentage of {vcpus} vCPUs ({from})",
        loaded.format.as_str(),
    )];
    notes.extend(loaded.notes);
    if advice.mode_switches_ignored > 0 {
        notes.push(format!(
            "{} mode switches (standard/unlimited events) in the trace ignored: each option \
             runs in its own mode throughout; stops and starts are kept",
            advice.mode_switches_ignored
        ));
    }
    Ok((advice, notes))
}

pub fn run(args: &AdviseArgs) -> ExitCode {
    let (advice, notes) = match compute(args) {
        Ok(a) => a,
        Err(message) => return bad_input(message),
    };
    if let Some(path) = &args.plot {
        if let Err(e) = crate::sim::plot::write_advice_svg(path, &advice) {
            eprintln!("burstd advise: error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let text = match args.format {
        AdviseFormat::Table => table(&advice, &notes),
        AdviseFormat::Json => {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                #[serde(flatten)]
                advice: &'a Advice,
                notes: &'a [String],
            }
            match serde_json::to_string_pretty(&Out {
                advice: &advice,
                notes: &notes,
            }) {
                Ok(s) => s + "\n",
                Err(e) => {
                    eprintln!("burstd advise: error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burstd advise: error: writing the output: {e}");
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

/// Lines of at most `width` characters, `indent` before each continuation.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The human-readable ranking, at most 100 columns wide.
pub fn table(a: &Advice, notes: &[String]) -> String {
    use crate::sim::report::hms;
    let mut out = String::new();
    let t = &a.trace;
    out.push_str(&wrap(
        &format!(
            "burstd advise: trace of {} (running {}), demand peak {} and mean {} of {} vCPUs",
            hms(t.duration_s),
            hms(t.running_s),
            t.peak_vcpus,
            t.mean_vcpus,
            t.vcpus
        ),
        100,
        "  ",
    ));
    let p = &a.prices;
    let overridden = if p.overridden_by.is_empty() {
        "built in".to_string()
    } else {
        format!("overridden by {}", p.overridden_by.join(", "))
    };
    out.push_str(&wrap(
        &format!(
            "prices: {} on-demand Linux, {} ({overridden}); a month is 730 h",
            p.region, p.date
        ),
        100,
        "  ",
    ));
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<14} {:<9} {:>4} {:>10} {:>14} {:>16} {:>17}",
        "instance_type", "mode", "vCPU", "$/month", "held", "unserved", "surplus"
    );
    let _ = writeln!(
        out,
        "{:<14} {:<9} {:>4} {:>10} {:>14} {:>16} {:>17}",
        "", "", "", "[USD]", "[h:mm:ss]", "[CPU-s]", "[credits]"
    );
    for o in &a.options {
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:>4} {:>10.2} {:>14} {:>16.3} {:>17.3}",
            o.instance_type,
            o.mode,
            o.vcpus,
            o.monthly_cost_usd,
            hms(o.held_at_baseline_s),
            o.unserved_cpu_seconds,
            o.surplus_charged_credits + o.surplus_owed_credits
        );
    }
    out.push('\n');
    match &a.recommendation {
        Some(r) => {
            out.push_str(&wrap(
                &format!("recommendation: {} {}: {}", r.instance_type, r.mode, r.why),
                100,
                "  ",
            ));
        }
        None => out.push_str("recommendation: none (no option to compare)\n"),
    }
    for n in notes {
        out.push_str(&wrap(&format!("note: {n}"), 100, "  "));
    }
    out.push_str(&wrap(
        "note: surplus = charged during the trace + still owed at its end (billed at the \
         stop); both are in $/month",
        100,
        "  ",
    ));
    if !a.skipped.is_empty() {
        out.push_str(&wrap(
            &format!(
                "skipped: {} types too small for the peak or without a price \
                 (`--format json` lists them)",
                a.skipped.len()
            ),
            100,
            "  ",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_within_the_width() {
        let text = "a ".repeat(120);
        let w = wrap(&text, 20, "  ");
        assert!(w.lines().all(|l| l.chars().count() <= 20), "{w}");
        assert_eq!(w.split_whitespace().count(), 120);
    }
}
