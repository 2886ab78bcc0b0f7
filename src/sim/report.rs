//! Printing a [`SimResult`]: an aligned table with a `key: value` summary, CSV, or JSON.

use super::engine::{SimResult, Summary};
use crate::credit::Profile;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Output format of `burstd simulate`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Writes `result` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    profile: &Profile,
    result: &SimResult,
) -> io::Result<()> {
    match format {
        Format::Table => out.write_all(table(profile, result).as_bytes()),
        Format::Csv => write_csv(out, result),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, result)?;
            writeln!(out)
        }
    }
}

/// The steps as CSV, one header line with the CloudWatch-like field names.
pub fn write_csv(out: &mut dyn Write, result: &SimResult) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    for step in &result.steps {
        w.serialize(step).map_err(io::Error::other)?;
    }
    if result.steps.is_empty() {
        w.write_record(CSV_FIELDS).map_err(io::Error::other)?;
    }
    w.flush()
}

/// The CSV header (also the JSON step fields).
pub const CSV_FIELDS: [&str; 8] = [
    "t_end_s",
    "utilization_demanded",
    "utilization",
    "CPUCreditUsage",
    "CPUCreditBalance",
    "CPUSurplusCreditBalance",
    "CPUSurplusCreditsCharged",
    "held_at_baseline_s",
];

/// `h:mm:ss`, hours unbounded (720:00:00 is 30 days), milliseconds when there are any.
pub fn hms(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    let (s, ms) = (ms / 1000, ms % 1000);
    let base = format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if ms == 0 {
        base
    } else {
        format!("{base}.{ms:03}")
    }
}

/// The human-readable report: a title, the steps, then the summary.
pub fn table(profile: &Profile, result: &SimResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "profile {} ({} vCPU, {} credits/h, baseline {}% per vCPU), mode {}",
        profile.name,
        profile.vcpus,
        num(profile.earn_rate.credits_per_hour(), 3),
        num(profile.baseline_percent_per_vcpu(), 3),
        result.mode
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:>12} {:>12} {:>13} {:>12} {:>14} {:>14} {:>14} {:>10}",
        "t_end", "demanded", "utilization", "usage", "balance", "surplus", "charged", "held"
    );
    let _ = writeln!(
        out,
        "{:>12} {:>12} {:>13} {:>12} {:>14} {:>14} {:>14} {:>10}",
        "[h:mm:ss]",
        "[% CPU]",
        "[% CPU]",
        "[credits]",
        "[credits]",
        "[credits]",
        "[credits]",
        "[s]"
    );
    for s in &result.steps {
        let _ = writeln!(
            out,
            "{:>12} {:>12.2} {:>13.2} {:>12.3} {:>14.3} {:>14.3} {:>14.3} {:>10.1}",
            hms(s.t_end_s),
            s.utilization_demanded,
            s.utilization,
            s.credit_usage,
            s.credit_balance,
            s.surplus_credit_balance,
            s.surplus_credits_charged,
            s.held_at_baseline_s
        );
    }
    let _ = writeln!(out);
    for (key, value) in summary_lines(&result.summary) {
        let _ = writeln!(out, "{key}: {value}");
    }
    out
}

/// The summary as `(key, value)` pairs, keys as in JSON.
pub fn summary_lines(s: &Summary) -> Vec<(&'static str, String)> {
    let hours = |x: f64| format!("{} s ({})", num(x, 3), hms(x));
    let mut v = vec![
        (
            "credits_exhausted_at_s",
            s.credits_exhausted_at_s.map_or("never".to_string(), hours),
        ),
        ("initial_balance", num(s.initial_balance, 3)),
        ("total_credits_spent", num(s.total_credits_spent, 3)),
        ("credits_earned", num(s.credits_earned, 3)),
        ("credits_discarded", num(s.credits_discarded, 3)),
        ("launch_credits_granted", num(s.launch_credits_granted, 3)),
        (
            "launch_credit_grants_refused",
            format!(
                "{} (limit {} per rolling 24 h)",
                s.launch_credit_grants_refused, s.launch_credit_limit
            ),
        ),
        ("surplus_credits_charged", num(s.surplus_credits_charged, 3)),
        ("surplus_cost_usd", format!("{:.2}", s.surplus_cost_usd)),
        ("surplus_owed_usd", format!("{:.2}", s.surplus_owed_usd)),
        ("price_per_vcpu_hour_usd", num(s.price_per_vcpu_hour_usd, 4)),
        ("final_balance", num(s.final_balance, 3)),
        ("final_surplus_balance", num(s.final_surplus_balance, 3)),
        ("final_mode", s.final_mode.to_string()),
        ("duration_s", hours(s.duration_s)),
        ("running_s", hours(s.running_s)),
        ("held_at_baseline_s", hours(s.held_at_baseline_s)),
        ("cpu_demanded_core_s", num(s.cpu_demanded_core_s, 3)),
        ("cpu_delivered_core_s", num(s.cpu_delivered_core_s, 3)),
    ];
    if let Some(c) = &s.comparison {
        v.extend([
            ("comparison.running_hours", num(c.running_hours, 3)),
            (
                "comparison.burstable_cost_usd",
                format!("{:.2}", c.burstable_cost_usd),
            ),
            (
                "comparison.fixed_cost_usd",
                format!("{:.2}", c.fixed_cost_usd),
            ),
            ("comparison.cheaper", c.cheaper.to_string()),
            (
                "comparison.break_even_utilization",
                c.break_even_utilization
                    .map_or("n/a (surplus credits are free)".to_string(), |u| {
                        format!("{u:.1}% of all vCPUs")
                    }),
            ),
        ]);
    }
    v
}

/// A number with at most `decimals` decimals, trailing zeros trimmed (144, 81.6, 0.015).
fn num(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_numbers() {
        assert_eq!(hms(9600.0), "2:40:00");
        assert_eq!(hms(2_592_000.0), "720:00:00");
        assert_eq!(hms(0.5), "0:00:00.500");
        assert_eq!(num(144.0, 3), "144");
        assert_eq!(num(81.6, 3), "81.6");
        assert_eq!(num(-0.0001, 3), "0");
    }
}
