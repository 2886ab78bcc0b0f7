//! `burstd demo`: a busy loop under `exec`, first in standard mode (the credits run out and it
//! is held at its baseline), then in unlimited mode (never held; surplus and its cost grow).
//! Every number shown is measured from the kernel's counters.

use super::args::time_scale_milli;
use super::exec::profile_named;
use super::exit::{self, EX_USAGE};
use crate::credit::{Credits, CustomProfile, Mode, Persistence, Profile, Rate};
use crate::exec::{self, report, ExecError, ExecOptions, Output};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The instance type (launch credits are left out so the balance shown is the one that
    /// drains). Default: a t2.micro-like profile (1 vCPU, 6 credits/h, baseline 10%).
    #[arg(long)]
    pub profile: Option<String>,
    /// Seconds per phase (the credits run out after about a third of it).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Credit clock speed (60: one real second is one credit-minute).
    #[arg(long, default_value_t = 60.0)]
    pub time_scale: f64,
    /// Short phases (8 s each, credits out after about a third of it), for CI.
    #[arg(long)]
    pub quick: bool,
}

/// t2.micro's figures without launch credits.
fn demo_profile() -> Result<Profile, String> {
    Profile::custom(CustomProfile {
        name: "t2.micro-like".into(),
        vcpus: 1,
        credits_per_hour_milli: 6_000,
        max_earned: None,
        launch_credits: Credits::ZERO,
        default_mode: Mode::Standard,
        unlimited_allowed: true,
        persistence: Persistence::Lost,
        surplus_price_nano_usd: crate::credit::profile::PRICE_LINUX_NANO,
    })
    .map_err(|e| e.to_string())
}

pub fn run_demo(a: DemoArgs) -> ExitCode {
    super::logging::init_logging_with("warn");
    match demo(a) {
        Ok(code) => code,
        Err(DemoError::Usage(m)) => {
            eprintln!("burstd demo: {m}");
            ExitCode::from(EX_USAGE)
        }
        Err(DemoError::Exec(e)) => {
            eprintln!("burstd: {e}");
            if matches!(e, ExecError::Unavailable(_)) {
                eprintln!(
                    "burstd demo: this host cannot run the demo. What needs no cgroup at all:\n  \
                     burstd simulate --profile t2.micro --trace config/example-trace.csv"
                );
            }
            ExitCode::from(exit::of_exec(&e))
        }
    }
}

enum DemoError {
    Usage(String),
    Exec(ExecError),
}

fn demo(a: DemoArgs) -> Result<ExitCode, DemoError> {
    let mut profile = match &a.profile {
        Some(name) => profile_named(name).map_err(DemoError::Usage)?,
        None => demo_profile().map_err(DemoError::Usage)?,
    };
    profile.launch_credits = Credits::ZERO;
    let seconds = a.seconds.unwrap_or(if a.quick { 8.0 } else { 30.0 });
    if !(1.0..=3600.0).contains(&seconds) {
        return Err(DemoError::Usage(format!(
            "--seconds {seconds}: must be from 1 to 3600"
        )));
    }
    let k_milli = time_scale_milli(a.time_scale).map_err(|e| DemoError::Usage(e.to_string()))?;
    // One busy core drains (1 − baseline) credits per credit-minute; the rest of the phase
    // shows the baseline.
    let drain = Rate::ONE_CORE.saturating_sub(profile.baseline()).as_cores();
    if drain <= 0.0 {
        return Err(DemoError::Usage(format!(
            "{}'s baseline is {:.2} vCPU: one busy core never runs out of credits; pick a smaller type",
            profile.name,
            profile.baseline().as_cores()
        )));
    }
    // Sized so one full core runs out after a third of the phase: on a busy host, where the
    // loop gets less than a core, the hold still comes well inside the phase.
    let drain_s = seconds / 3.0;
    let k = k_milli as f64 / 1000.0;
    let initial = drain * drain_s * k / 60.0;
    let initial = Credits::from_f64(initial).unwrap_or(Credits::ZERO);
    let exe = std::env::current_exe().map_err(|e| {
        DemoError::Exec(ExecError::Failed(format!(
            "cannot find burstd's own binary: {e}"
        )))
    })?;
    eprintln!(
        "burstd demo: one busy loop on a {} ({} vCPU, {} credits/h, baseline {:.0}% of a vCPU), \
         {initial:.2} credits, no launch credits; credit clock {k}× real time. In standard mode \
         the credits run out after about {drain_s:.0} s and the loop is held at its baseline; then \
         the same in unlimited mode. Every number is measured from the kernel's counters.",
        profile.name,
        profile.vcpus,
        profile.earn_rate.credits_per_hour(),
        profile.baseline().as_cores() * 100.0,
    );
    let mut modes = vec![Mode::Standard];
    if profile.unlimited_allowed {
        modes.push(Mode::Unlimited);
    } else {
        eprintln!(
            "burstd demo: {} has no unlimited mode; only the standard phase runs",
            profile.name
        );
    }
    let mut results = Vec::new();
    for mode in modes {
        let opts = ExecOptions {
            profile: profile.clone(),
            mode: Some(mode),
            initial_credits: initial,
            time_scale_milli: k_milli,
            state_file: None,
            parent: None,
            record: None,
            output: Output::Live,
            log_every_s: 2.0,
            label: format!("demo {mode}"),
            command: vec![
                exe.clone().into_os_string(),
                "burn".into(),
                "--seconds".into(),
                format!("{seconds}").into(),
            ],
        };
        let outcome = exec::run(&opts).map_err(DemoError::Exec)?;
        results.push(outcome.summary);
    }
    println!("burstd demo: what the kernel measured");
    for s in &results {
        println!("  {}", comparison_line(s));
    }
    Ok(ExitCode::SUCCESS)
}

/// One phase in one line.
pub fn comparison_line(s: &report::RunSummary) -> String {
    let held = match (s.held_after_s, s.usage_before_held, s.usage_while_held) {
        (Some(at), Some(b), Some(h)) => format!(
            "held at baseline after {}: usage {b:.2} → {h:.2} vCPU",
            report::duration(at)
        ),
        _ => format!("never held: usage {:.2} vCPU", s.usage_vcpu()),
    };
    format!(
        "{:<9} {held}; CPU {:.1} s in {}; surplus charged {:.3} credits = ${:.5}",
        s.mode.as_str(),
        s.cpu_s,
        report::duration(s.run_s),
        s.charged,
        s.cost_usd
    )
}
