//! The simulation engine: segments in, CloudWatch-like steps and a summary out. Pure.
//!
//! Accounting is exact in the model's fixed-point units. Inside a segment the engine splits
//! at output-step boundaries and at the instant a standard balance reaches zero (after which
//! the workload is held at its baseline), so results do not depend on how a trace is cut
//! into segments. With a ramp landing the ceiling depends on the balance, so near and inside
//! the ramp the engine sub-steps at 1 s.

use super::marks::{MarkRecorder, Marks};
use super::trace::{Event, Segment};
use crate::credit::{
    limiter::DAY_S, time_to_exhaustion, Bucket, BucketError, Credits, Landing, LaunchLimiter, Mode,
    Policy, Profile, Rate, DEFAULT_LAUNCH_LIMIT, NS_PER_SEC,
};
use serde::Serialize;

/// Levels of the ramp landing (`--ramp-credits`): the ceiling falls in 10 equal steps.
pub const RAMP_LEVELS: u32 = 10;

/// Everything a simulation needs besides the trace.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The instance type, with any surplus price override already applied.
    pub profile: Profile,
    pub mode: Mode,
    /// E at launch.
    pub initial_credits: Credits,
    /// Launch credits at every start instead of the profile's (`None`: the profile's rules).
    pub launch_credits: Option<Credits>,
    /// Launch-credit grants allowed per rolling 24 h, as the daemon's `launch_credit_limit`.
    pub launch_credit_limit: u32,
    /// Output step length (CloudWatch: 300 s).
    pub step_ns: u64,
    pub landing: Landing,
    /// Hourly prices for the cost comparison.
    pub compare: Option<ComparePrices>,
}

impl SimConfig {
    /// Defaults: the profile's default mode, E = 0, its own launch credits, 300 s steps, exact
    /// landing, no comparison.
    pub fn new(profile: Profile) -> SimConfig {
        SimConfig {
            mode: profile.default_mode,
            profile,
            initial_credits: Credits::ZERO,
            launch_credits: None,
            launch_credit_limit: DEFAULT_LAUNCH_LIMIT,
            step_ns: 300 * NS_PER_SEC,
            landing: Landing::Exact,
            compare: None,
        }
    }
}

/// On-demand hourly prices of this instance type and of a fixed-performance one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComparePrices {
    pub instance_hourly_usd: f64,
    pub compare_hourly_usd: f64,
}

/// One output step, named like the CloudWatch metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub t_end_s: f64,
    /// Time-averaged over the step, % of all vCPUs.
    pub utilization_demanded: f64,
    pub utilization: f64,
    /// Credits spent within the step.
    #[serde(rename = "CPUCreditUsage")]
    pub credit_usage: f64,
    /// E + L at the end of the step.
    #[serde(rename = "CPUCreditBalance")]
    pub credit_balance: f64,
    #[serde(rename = "CPUSurplusCreditBalance")]
    pub surplus_credit_balance: f64,
    /// Surplus credits charged within the step.
    #[serde(rename = "CPUSurplusCreditsCharged")]
    pub surplus_credits_charged: f64,
    /// Seconds of the step spent held at the baseline below the demand (standard mode). The
    /// utilisation columns are averages over the step; this says how much of it was held.
    pub held_at_baseline_s: f64,
}

/// The whole run at a glance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// First time a standard workload was held at baseline below its demand, or an unlimited
    /// one started spending surplus credits.
    pub credits_exhausted_at_s: Option<f64>,
    /// E + L right after the launch at t = 0.
    pub initial_balance: f64,
    pub total_credits_spent: f64,
    pub credits_earned: f64,
    /// Earnings thrown away at the accrual limit.
    pub credits_discarded: f64,
    pub launch_credits_granted: f64,
    /// Starts that would have granted launch credits but found the limit of grants per
    /// rolling 24 h reached (AWS: 100 launches or starts; `--launch-credit-limit`).
    pub launch_credit_grants_refused: u64,
    pub launch_credit_limit: u32,
    /// Charged above the limit, at stops and at switches to standard. Not the surplus still
    /// owed at the end of the trace (that is `final_surplus_balance`: the end is no stop).
    pub surplus_credits_charged: f64,
    pub surplus_cost_usd: f64,
    /// The price of `final_surplus_balance`: surplus spent but not yet billed, which AWS bills
    /// at the next stop (or the end of the billing period) unless earnings pay it down first.
    pub surplus_owed_usd: f64,
    pub price_per_vcpu_hour_usd: f64,
    pub final_balance: f64,
    pub final_surplus_balance: f64,
    pub final_mode: Mode,
    pub duration_s: f64,
    pub running_s: f64,
    /// Running in standard mode at the baseline while demanding more.
    pub held_at_baseline_s: f64,
    pub cpu_demanded_core_s: f64,
    pub cpu_delivered_core_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

/// The same running hours on the burstable instance and on a fixed-performance one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub running_hours: f64,
    pub instance_hourly_usd: f64,
    pub compare_hourly_usd: f64,
    /// Instance price × hours + surplus charged + surplus still owed at the end of the trace
    /// (`surplus_cost_usd + surplus_owed_usd`), so that it agrees with the break-even.
    pub burstable_cost_usd: f64,
    /// Compare price × hours.
    pub fixed_cost_usd: f64,
    /// `burstable` or `fixed`; `equal` on a tie.
    pub cheaper: &'static str,
    /// Average utilisation (% of all vCPUs) at which both cost the same in unlimited mode,
    /// every surplus credit paid for; `None` when surplus credits are free (no price).
    pub break_even_utilization: Option<f64>,
}

/// The simulation's output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimResult {
    pub profile: String,
    pub mode: Mode,
    pub steps: Vec<Step>,
    pub summary: Summary,
    /// Events, stopped and held spans, for the chart (not part of the report).
    #[serde(skip)]
    pub marks: Marks,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("profile {profile} does not support unlimited mode; use --mode standard")]
    UnlimitedNotAllowed { profile: String },
    #[error("line {line}: event `unlimited`: profile {profile} does not support unlimited mode")]
    UnlimitedEvent { line: u64, profile: String },
}

/// Runs `segments` from a fresh launch at t = 0.
pub fn simulate(config: &SimConfig, segments: &[Segment]) -> Result<SimResult, SimError> {
    let mut run = Run::launch(config)?;
    // Events at a step boundary open the next step, except after the trace's last moment
    // (e.g. a final `stop`), where they close the last step.
    let last_timed = segments.iter().rposition(|s| s.duration_ns > 0);
    for (i, seg) in segments.iter().enumerate() {
        if let Some(event) = seg.event {
            if run.now == run.step_end && last_timed.is_some_and(|last| i <= last) {
                run.emit_step();
            }
            run.apply(event, seg.line)?;
        }
        let demand = demand_rate(&config.profile, seg.utilization);
        let mut left = seg.duration_ns;
        while left > 0 {
            if run.now == run.step_end {
                run.emit_step();
            }
            let piece = left.min(run.step_end - run.now);
            run.advance(piece, demand);
            left -= piece;
        }
    }
    if run.step_open {
        run.emit_step();
    }
    Ok(run.finish())
}

/// Demanded utilisation (% of all vCPUs) as a rate.
fn demand_rate(profile: &Profile, utilization: f64) -> Rate {
    let cores = utilization.clamp(0.0, 100.0) / 100.0 * profile.vcpus as f64;
    Rate::from_cores_f64(cores)
        .unwrap_or(Rate::ZERO)
        .min(profile.full())
}

/// Units (credit-units) to core-seconds.
fn core_s(units: i128) -> f64 {
    units as f64 / Rate::ONE_CORE.milli_credits_per_hour() as f64 / NS_PER_SEC as f64
}

/// Output values are rounded to 6 decimals (a micro-credit is 60 µs of CPU) so that exact
/// amounts print as such (174, not 173.99999999999997).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn credits(c: Credits) -> f64 {
    round6(c.as_f64())
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NS_PER_SEC as f64
}

struct Run<'a> {
    config: &'a SimConfig,
    profile: &'a Profile,
    policy: Policy,
    bucket: Bucket,
    limiter: LaunchLimiter,
    now: u64,
    step_start: u64,
    step_end: u64,
    /// The current step has time or an event in it.
    step_open: bool,
    step_demanded: i128,
    step_held_ns: u64,
    step_spent_before: Credits,
    step_charged_before: Credits,
    steps: Vec<Step>,
    demanded: i128,
    running_ns: u64,
    held_ns: u64,
    exhausted_at: Option<u64>,
    initial_balance: Credits,
    /// The ramp ceiling in force for one whole second of trace time: (second, ceiling).
    ramp_latch: Option<(u64, Rate)>,
    marks: MarkRecorder,
}

impl<'a> Run<'a> {
    fn launch(config: &'a SimConfig) -> Result<Run<'a>, SimError> {
        let profile = &config.profile;
        let policy = Policy {
            landing: config.landing,
            ..Policy::default()
        };
        let bucket = Bucket::new(profile, config.mode, config.initial_credits).map_err(
            |BucketError::UnlimitedNotAllowed(profile)| SimError::UnlimitedNotAllowed { profile },
        )?;
        let mut run = Run {
            config,
            profile,
            policy,
            bucket,
            limiter: LaunchLimiter::new(config.launch_credit_limit, DAY_S),
            now: 0,
            step_start: 0,
            step_end: config.step_ns.max(1),
            step_open: false,
            step_demanded: 0,
            step_held_ns: 0,
            step_spent_before: Credits::ZERO,
            step_charged_before: Credits::ZERO,
            steps: Vec::new(),
            demanded: 0,
            running_ns: 0,
            held_ns: 0,
            exhausted_at: None,
            initial_balance: Credits::ZERO,
            ramp_latch: None,
            marks: MarkRecorder::default(),
        };
        run.start();
        run.initial_balance = run.bucket.balance();
        Ok(run)
    }

    fn start(&mut self) {
        let (p, pol) = (self.profile, &self.policy);
        let amount = self.config.launch_credits.unwrap_or(p.launch_credits);
        self.bucket
            .start_granting(p, pol, self.now / NS_PER_SEC, amount, &mut self.limiter);
    }

    fn apply(&mut self, event: Event, line: u64) -> Result<(), SimError> {
        self.step_open = true;
        self.ramp_latch = None;
        let (p, pol) = (self.profile, &self.policy);
        match event {
            Event::Stop => {
                self.bucket.stop(p, self.now / NS_PER_SEC);
            }
            Event::Start => self.start(),
            Event::Standard | Event::Unlimited => {
                let mode = if event == Event::Standard {
                    Mode::Standard
                } else {
                    Mode::Unlimited
                };
                self.bucket
                    .switch(p, pol, mode)
                    .map_err(|_| SimError::UnlimitedEvent {
                        line,
                        profile: p.name.clone(),
                    })?;
            }
        }
        self.marks.event(self.now, event, self.bucket.is_running());
        Ok(())
    }

    /// Runs `dt` (inside the current step) at `demand`.
    fn advance(&mut self, mut dt: u64, demand: Rate) {
        self.step_open = true;
        let demanded = demand.over(dt).units();
        self.step_demanded += demanded;
        self.demanded += demanded;
        if !self.bucket.is_running() {
            self.now += dt;
            return;
        }
        self.running_ns += dt;
        let (p, pol) = (self.profile, self.policy);
        let earn = p.earn_rate;
        while dt > 0 {
            let b = &self.bucket;
            let ceiling = b.ceiling(p, &pol);
            let mut delivered = demand.min(ceiling);
            let mut piece = dt;
            if b.mode == Mode::Standard {
                if b.held {
                    // At zero: delivered = min(demand, baseline) keeps the balance at zero (or
                    // lifts it, which releases the hold after this piece).
                    if demand > ceiling {
                        self.held_ns += piece;
                        self.marks.held(self.now, piece);
                        self.step_held_ns += piece;
                        self.exhausted_at.get_or_insert(self.now);
                    }
                } else {
                    if let Landing::Ramp { credits, .. } = pol.landing {
                        if demand > p.baseline() {
                            // Near or inside the ramp the ceiling is set at each whole second
                            // of trace time and held through it; before that, pieces end on
                            // whole seconds. Either way segment boundaries change nothing.
                            let safe = ramp_safe_ns(b.balance() - credits, demand);
                            if safe > NS_PER_SEC {
                                let end = (self.now + safe) / NS_PER_SEC * NS_PER_SEC;
                                piece = piece.min(end - self.now);
                            } else {
                                piece = piece.min(NS_PER_SEC - self.now % NS_PER_SEC);
                                let tick = self.now / NS_PER_SEC;
                                let level = match self.ramp_latch {
                                    Some((t, level)) if t == tick => level,
                                    _ => {
                                        self.ramp_latch = Some((tick, ceiling));
                                        ceiling
                                    }
                                };
                                delivered = demand.min(level);
                            }
                        }
                    }
                    // A crossing of zero is possible only if the gross spend covers the balance.
                    if delivered > earn && delivered.over(piece) >= b.balance() {
                        if let Some(t) = time_to_exhaustion(b, p, delivered) {
                            // At least 1 ns, so a bucket at zero but not yet held makes progress.
                            let t = t.max(1);
                            if t <= piece {
                                self.cross_zero(t, delivered);
                                dt -= t;
                                continue;
                            }
                        }
                    }
                }
            } else if self.exhausted_at.is_none()
                && delivered > earn
                && b.surplus.is_zero()
                && delivered.over(piece) >= b.earned
            {
                if let Some(t) = time_to_exhaustion(b, p, delivered) {
                    if t < piece {
                        self.exhausted_at = Some(self.now + t);
                    }
                }
            }
            self.step_at(piece, delivered);
            dt -= piece;
        }
    }

    fn step_at(&mut self, ns: u64, delivered: Rate) {
        let p = self.profile;
        self.bucket
            .step(p, &self.policy, delivered.over(ns), p.earn_rate.over(ns));
        self.now += ns;
    }

    /// The balance reaches zero `t` ≥ 1 ns from now (`t` rounded up to the ns): run `t − 1` ns
    /// at `delivered`, then spend in the last ns exactly what is left, so nothing is overdrawn.
    fn cross_zero(&mut self, t: u64, delivered: Rate) {
        self.step_at(t - 1, delivered);
        let p = self.profile;
        let earn = p.earn_rate.over(1);
        let spend = delivered.over(1).min(self.bucket.balance() + earn);
        self.bucket.step(p, &self.policy, spend, earn);
        self.now += 1;
        if self.bucket.held {
            self.exhausted_at.get_or_insert(self.now);
        }
    }

    fn emit_step(&mut self) {
        let len = self.now - self.step_start;
        let full = self.profile.full().over(len).units();
        let t = self.bucket.totals;
        let spent = t.spent - self.step_spent_before;
        let percent = |units: i128| {
            if full > 0 {
                units as f64 * 100.0 / full as f64
            } else {
                0.0
            }
        };
        self.steps.push(Step {
            t_end_s: secs(self.now),
            utilization_demanded: round6(percent(self.step_demanded)),
            utilization: round6(percent(spent.units())),
            credit_usage: credits(spent),
            credit_balance: credits(self.bucket.balance()),
            surplus_credit_balance: credits(self.bucket.surplus),
            surplus_credits_charged: credits(t.charged - self.step_charged_before),
            held_at_baseline_s: secs(self.step_held_ns),
        });
        self.step_start = self.now;
        self.step_end = self.now + self.config.step_ns.max(1);
        self.step_open = false;
        self.step_demanded = 0;
        self.step_held_ns = 0;
        self.step_spent_before = t.spent;
        self.step_charged_before = t.charged;
    }

    fn finish(self) -> SimResult {
        let p = self.profile;
        let t = self.bucket.totals;
        let surplus_cost_usd = p.surplus_cost_usd(t.charged);
        let surplus_owed_usd = p.surplus_cost_usd(self.bucket.surplus);
        let running_s = secs(self.running_ns);
        let comparison = self.config.compare.map(|c| {
            let hours = running_s / 3600.0;
            let burstable = c.instance_hourly_usd * hours + surplus_cost_usd + surplus_owed_usd;
            let fixed = c.compare_hourly_usd * hours;
            let per_credit = p.surplus_price_per_credit_usd();
            Comparison {
                running_hours: hours,
                instance_hourly_usd: c.instance_hourly_usd,
                compare_hourly_usd: c.compare_hourly_usd,
                burstable_cost_usd: burstable,
                fixed_cost_usd: fixed,
                cheaper: if burstable < fixed {
                    "burstable"
                } else if fixed < burstable {
                    "fixed"
                } else {
                    "equal"
                },
                break_even_utilization: (per_credit > 0.0).then(|| {
                    let credits_per_hour = p.earn_rate.credits_per_hour()
                        + (c.compare_hourly_usd - c.instance_hourly_usd) / per_credit;
                    credits_per_hour * 100.0 / (p.vcpus as f64 * 60.0)
                }),
            }
        });
        SimResult {
            profile: p.name.clone(),
            mode: self.config.mode,
            steps: self.steps,
            marks: self.marks.finish(self.now),
            summary: Summary {
                credits_exhausted_at_s: self.exhausted_at.map(secs),
                initial_balance: credits(self.initial_balance),
                total_credits_spent: credits(t.spent),
                credits_earned: credits(t.earned),
                credits_discarded: credits(t.discarded),
                launch_credits_granted: credits(t.launch_granted),
                launch_credit_grants_refused: self.limiter.refused(),
                launch_credit_limit: self.config.launch_credit_limit,
                surplus_credits_charged: credits(t.charged),
                surplus_cost_usd: round6(surplus_cost_usd),
                surplus_owed_usd: round6(surplus_owed_usd),
                price_per_vcpu_hour_usd: p.surplus_price_nano_usd as f64 / 1e9,
                final_balance: credits(self.bucket.balance()),
                final_surplus_balance: credits(self.bucket.surplus),
                final_mode: self.bucket.mode,
                duration_s: secs(self.now),
                running_s,
                held_at_baseline_s: secs(self.held_ns),
                cpu_demanded_core_s: round6(core_s(self.demanded)),
                cpu_delivered_core_s: round6(core_s(t.spent.units())),
                comparison,
            },
        }
    }
}

/// How long a workload spending `demand` can run before its balance could enter a ramp that
/// is `gap` above it: at least 1 s (then it sub-steps at 1 s), since the balance falls no
/// faster than the gross spend.
fn ramp_safe_ns(gap: Credits, demand: Rate) -> u64 {
    let per_ns = demand.milli_credits_per_hour() as i128;
    if per_ns == 0 || gap < demand.over(NS_PER_SEC) {
        return NS_PER_SEC;
    }
    u64::try_from(gap.units() / per_ns).unwrap_or(u64::MAX)
}
