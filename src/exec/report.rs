//! What `burstd exec` shows: the live status line and the summary at the end. Pure formatting
//! of numbers the caller measured from the kernel's counters (through the agent's samples).

use crate::credit::{Credits, Mode};
use std::fmt::Write;

/// One moment of a run, for the status line.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub elapsed_s: f64,
    pub mode: Mode,
    pub balance: Credits,
    pub surplus: Credits,
    pub ceiling_vcpu: f64,
    /// Measured CPU use over the last status interval, in cores.
    pub usage_vcpu: f64,
    pub baseline_vcpu: f64,
    pub held: bool,
    /// Real seconds until the balance reaches zero at the current usage (None: it does not).
    pub to_zero_s: Option<f64>,
}

/// The status line, without a line end.
pub fn status_line(s: &Status) -> String {
    let mut out = format!(
        "{:>6.1}s  balance {:>8.3} cr  surplus {:>7.3}  ceiling {:.2} vCPU  usage {:.2} vCPU  ",
        s.elapsed_s, s.balance, s.surplus, s.ceiling_vcpu, s.usage_vcpu
    );
    if s.held {
        let _ = write!(out, "HELD at baseline {:.2} vCPU", s.baseline_vcpu);
    } else if s.mode == Mode::Unlimited && s.surplus.is_positive() {
        out.push_str("unlimited: spending surplus");
    } else {
        match s.to_zero_s {
            Some(t) if s.mode == Mode::Standard => {
                let _ = write!(out, "full speed, held in {}", duration(t));
            }
            Some(t) => {
                let _ = write!(out, "surplus starts in {}", duration(t));
            }
            None => out.push_str("balance not falling"),
        }
    }
    out
}

/// A duration for people: `4.2s`, `3m07s`, `2h05m`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".to_string();
    }
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// Everything measured over one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub profile: String,
    pub mode: Mode,
    pub time_scale: f64,
    pub run_s: f64,
    /// CPU time of everything in the cgroup (cpuacct / cpu.stat), real seconds.
    pub cpu_s: f64,
    pub start_balance: Credits,
    pub end_balance: Credits,
    pub spent: Credits,
    pub earned: Credits,
    /// Real seconds from the start until it was first held at baseline.
    pub held_after_s: Option<f64>,
    pub held_s: f64,
    /// Measured usage (cores) before the first hold and while held.
    pub usage_before_held: Option<f64>,
    pub usage_while_held: Option<f64>,
    /// Surplus at the end of the run, before the stop charged it.
    pub surplus_at_end: Credits,
    pub charged: Credits,
    pub cost_usd: f64,
    /// What the command's exit looked like: `exit status 0`, `killed by signal 9`.
    pub exit: String,
}

impl RunSummary {
    /// Average measured usage over the whole run, in cores.
    pub fn usage_vcpu(&self) -> f64 {
        if self.run_s > 0.0 {
            self.cpu_s / self.run_s
        } else {
            0.0
        }
    }
}

/// The summary block (several lines, each ending in `\n`).
pub fn summary_text(s: &RunSummary) -> String {
    let mut o = String::new();
    let scale = if (s.time_scale - 1.0).abs() > 1e-9 {
        format!(", credit clock {}× real time", trim(s.time_scale))
    } else {
        String::new()
    };
    let _ = writeln!(o, "summary ({} {}{scale}; {}):", s.profile, s.mode, s.exit);
    let _ = writeln!(
        o,
        "  run time       {}   CPU used {:.3} s (avg {:.3} vCPU, measured by the kernel)",
        duration(s.run_s),
        s.cpu_s,
        s.usage_vcpu()
    );
    let _ = writeln!(
        o,
        "  credits        start {:.3}  spent {:.3}  earned {:.3}  end {:.3}",
        s.start_balance, s.spent, s.earned, s.end_balance
    );
    match s.held_after_s {
        Some(at) => {
            let _ = writeln!(
                o,
                "  baseline       held after {}, for {} in all",
                duration(at),
                duration(s.held_s)
            );
            let _ = writeln!(
                o,
                "  usage          {:.3} vCPU before, {:.3} vCPU while held",
                s.usage_before_held.unwrap_or(0.0),
                s.usage_while_held.unwrap_or(0.0)
            );
        }
        None => {
            let _ = writeln!(o, "  baseline       never held");
        }
    }
    let _ = writeln!(
        o,
        "  surplus        {:.3} at the end, charged {:.3} credits = ${:.6}",
        s.surplus_at_end, s.charged, s.cost_usd
    );
    o
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            elapsed_s: 3.25,
            mode: Mode::Standard,
            balance: Credits::milli(1500),
            surplus: Credits::ZERO,
            ceiling_vcpu: 1.0,
            usage_vcpu: 0.987,
            baseline_vcpu: 0.1,
            held: false,
            to_zero_s: Some(1.6),
        }
    }

    #[test]
    fn status_line_says_full_speed_then_held() {
        let mut s = status();
        let l = status_line(&s);
        assert!(l.contains("balance 1.500 cr"), "{l}");
        assert!(l.contains("usage 0.99 vCPU"), "{l}");
        assert!(l.ends_with("full speed, held in 1.6s"), "{l}");
        s.held = true;
        s.balance = Credits::ZERO;
        assert!(status_line(&s).ends_with("HELD at baseline 0.10 vCPU"));
        s.held = false;
        s.mode = Mode::Unlimited;
        s.surplus = Credits::milli(200);
        assert!(status_line(&s).ends_with("spending surplus"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration(4.24), "4.2s");
        assert_eq!(duration(187.0), "3m07s");
        assert_eq!(duration(7500.0), "2h05m");
    }

    #[test]
    fn summary_shows_measured_numbers() {
        let s = RunSummary {
            profile: "t2.micro".into(),
            mode: Mode::Unlimited,
            time_scale: 60.0,
            run_s: 10.0,
            cpu_s: 9.9,
            start_balance: Credits::whole(3),
            end_balance: Credits::ZERO,
            spent: Credits::milli(9_900),
            earned: Credits::whole(1),
            held_after_s: None,
            held_s: 0.0,
            usage_before_held: None,
            usage_while_held: None,
            surplus_at_end: Credits::milli(5_900),
            charged: Credits::milli(5_900),
            cost_usd: 5.9 * 0.05 / 60.0,
            exit: "exit status 0".into(),
        };
        let t = summary_text(&s);
        assert!(t.contains("credit clock 60× real time"), "{t}");
        assert!(t.contains("CPU used 9.900 s (avg 0.990 vCPU"), "{t}");
        assert!(t.contains("never held"), "{t}");
        assert!(t.contains("charged 5.900 credits = $0.004917"), "{t}");
    }
}
