//! `burstd profiles`: the built-in instance types as a table, with the other names each is
//! accepted under. Every name matches in any case (`T3.NANO`, `standard_b1s`).

use crate::credit::{builtin_profiles, Profile};
use std::fmt::Write;

/// The table `burstd profiles` prints.
pub fn table(profiles: &[Profile]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:>4} {:>10} {:>9} {:>14} {:>14} {:<10} {:<9} also accepted",
        "type", "vCPU", "credits/h", "max", "baseline/vCPU", "launch", "default", "unlimited"
    );
    for p in profiles {
        let launch = if p.launch_credits.is_positive() {
            format!("{:.0}", p.launch_credits)
        } else {
            "-".to_string()
        };
        let aliases = p.aliases();
        let aliases = if aliases.is_empty() {
            "-".to_string()
        } else {
            aliases.join(", ")
        };
        let _ = writeln!(
            out,
            "{:<11} {:>4} {:>10} {:>9} {:>13}% {:>14} {:<10} {:<9} {}",
            p.name,
            p.vcpus,
            trim(p.earn_rate.credits_per_hour()),
            trim(p.max_earned.as_f64()),
            trim(p.baseline_percent_per_vcpu()),
            launch,
            p.default_mode.as_str(),
            if p.unlimited_allowed { "yes" } else { "no" },
            aliases,
        );
    }
    let _ = writeln!(out, "Names match in any case (T3.NANO, standard_b1s).");
    out
}

/// 81.6 → "81.6", 144 → "144", 22.5 → "22.5".
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn run() -> std::process::ExitCode {
    print!("{}", table(&builtin_profiles()));
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_profile_with_spec_numbers() {
        let t = table(&builtin_profiles());
        // A header, a row per profile, the note on case.
        assert_eq!(t.lines().count(), 1 + builtin_profiles().len() + 1);
        let row = t.lines().find(|l| l.starts_with("t2.2xlarge ")).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "t2.2xlarge",
                "8",
                "81.6",
                "1958.4",
                "17%",
                "240",
                "standard",
                "yes",
                "-"
            ]
        );
        let row = t.lines().find(|l| l.starts_with("B1ls ")).unwrap();
        assert!(row.split_whitespace().eq([
            "B1ls",
            "1",
            "3",
            "72",
            "5%",
            "30",
            "standard",
            "no",
            "Standard_B1ls"
        ]));
        assert!(t.ends_with("Names match in any case (T3.NANO, standard_b1s).\n"));
    }
}
