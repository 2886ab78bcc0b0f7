//! The credit bucket of one workload: the balances, the step rule and the events (SPEC §3–4).
//!
//! Every method takes the profile and the time as arguments; nothing here reads a clock.

use super::limiter::LaunchLimiter;
use super::profile::{Mode, Persistence, Profile};
use super::units::{mul_div, Credits};
use serde::{Deserialize, Serialize};

/// Cumulative counters of everything that ever entered or left the bucket.
///
/// They close the books: at any time
/// `earned + launch − surplus = initial + launch_granted + earned − discarded − spent
///  + charged + overdrawn − launch_removed − lost` (see [`Bucket::ledger_balance`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Credits spent (gross CPU use).
    pub spent: Credits,
    /// Credits earned (before the accrual limit).
    pub earned: Credits,
    /// Earnings thrown away at the accrual limit.
    pub discarded: Credits,
    /// Surplus credits charged (billed).
    pub charged: Credits,
    /// Launch credits granted.
    pub launch_granted: Credits,
    /// Launch credits removed by a switch to unlimited.
    pub launch_removed: Credits,
    /// Credits lost at a stop or by expiry after one.
    pub lost: Credits,
    /// Spend a standard bucket could not cover: the CPU used after zero before the cap
    /// landed. Zero in the simulator; in the agent a measure of enforcement lag.
    pub overdrawn: Credits,
}

/// What one step did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StepOutcome {
    pub spent: Credits,
    pub earned: Credits,
    pub discarded: Credits,
    pub charged: Credits,
    pub overdrawn: Credits,
}

/// How a standard workload lands on its baseline.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Landing {
    /// Full speed while any credit is left, baseline at zero (default).
    Exact,
    /// Below `credits` of balance the ceiling falls linearly from all vCPUs to the baseline,
    /// in `steps` levels (so the kernel quota is not rewritten on every tick).
    Ramp { credits: Credits, steps: u32 },
}

/// Decision parameters that are not part of the instance type.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Policy {
    pub landing: Landing,
    /// A workload held at baseline is released once its balance exceeds this (hysteresis, so
    /// a workload hovering at zero is not capped and uncapped on every tick). Zero: released
    /// as soon as it has any credit.
    pub release_above: Credits,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            landing: Landing::Exact,
            release_above: Credits::ZERO,
        }
    }
}

/// Whether the workload runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum RunState {
    /// Never started.
    New,
    Running,
    /// Stopped at this time (seconds, the caller's clock).
    Stopped {
        since_s: u64,
    },
}

/// Errors of events that a caller can ask for but the rules forbid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BucketError {
    #[error("profile {0} does not support unlimited mode")]
    UnlimitedNotAllowed(String),
}

/// One workload's credit state. Unknown keys are refused: it is read back only from the
/// state file, whose format changes only with its version.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub mode: Mode,
    /// E: earned credits, 0 ≤ E ≤ max_earned.
    pub earned: Credits,
    /// L: launch credits left (standard only), spent first, outside the accrual limit.
    /// Profiles whose launch credits count toward the limit (Azure B) grant them into E.
    pub launch: Credits,
    /// S: surplus credits spent but not yet earned (unlimited only), 0 ≤ S ≤ max_earned.
    pub surplus: Credits,
    /// Held at baseline (standard at zero).
    pub held: bool,
    pub run: RunState,
    /// Launch (or initial) credits were granted at least once.
    pub launched_once: bool,
    /// What E + L − S started at (for the ledger).
    pub initial: Credits,
    pub totals: Totals,
}

impl Bucket {
    /// A new, not yet started bucket with `initial_earned` in E (clamped to the accrual limit).
    pub fn new(
        profile: &Profile,
        mode: Mode,
        initial_earned: Credits,
    ) -> Result<Bucket, BucketError> {
        if mode == Mode::Unlimited && !profile.unlimited_allowed {
            return Err(BucketError::UnlimitedNotAllowed(profile.name.clone()));
        }
        Ok(Bucket::new_or_standard(profile, mode, initial_earned))
    }

    /// Like [`Bucket::new`], but a mode the profile does not allow falls back to standard.
    pub fn new_or_standard(profile: &Profile, mode: Mode, initial_earned: Credits) -> Bucket {
        let mode = if profile.unlimited_allowed {
            mode
        } else {
            Mode::Standard
        };
        let earned = initial_earned.max(Credits::ZERO).min(profile.max_earned);
        Bucket {
            mode,
            earned,
            launch: Credits::ZERO,
            surplus: Credits::ZERO,
            held: false,
            run: RunState::New,
            launched_once: false,
            initial: earned,
            totals: Totals::default(),
        }
    }

    /// `CPUCreditBalance`: E + L.
    pub fn balance(&self) -> Credits {
        self.earned + self.launch
    }

    pub fn is_running(&self) -> bool {
        self.run == RunState::Running
    }

    /// E + L − S as derived from the counters alone; equal to the live value at all times.
    pub fn ledger_balance(&self) -> Credits {
        let t = &self.totals;
        self.initial + t.launch_granted + t.earned - t.discarded - t.spent + t.charged + t.overdrawn
            - t.launch_removed
            - t.lost
    }

    /// Account `spend` of CPU and `earn` of earnings that accrued together at constant rates
    /// over one interval. Exact for any split of an interval with constant rates: the only
    /// change of regime inside an interval (launch credits running out while E may be at its
    /// limit) is split at the exact point, to one unit: the earnings of the part before L ran
    /// out are rounded down (1 unit = 1/3.6e15 credit; in `simulate`, a time found 1 ns apart).
    pub fn step(
        &mut self,
        profile: &Profile,
        policy: &Policy,
        spend: Credits,
        earn: Credits,
    ) -> StepOutcome {
        let mut out = StepOutcome {
            spent: spend,
            earned: earn,
            ..StepOutcome::default()
        };
        let (mut spend, mut earn) = (spend.max(Credits::ZERO), earn.max(Credits::ZERO));
        // Launch credits are spent first. While they last, earnings go to E untouched.
        if self.launch.is_positive() && spend.is_positive() {
            if spend <= self.launch {
                self.launch -= spend;
                spend = Credits::ZERO;
            } else {
                // L runs out part-way: the earnings of that part of the interval go to E
                // while it is still untouched by spending.
                let part = earn.mul_div(self.launch.units(), spend.units());
                spend -= self.launch;
                self.launch = Credits::ZERO;
                self.add_earned(profile, part, &mut out);
                earn -= part;
            }
        }
        match self.mode {
            Mode::Standard => {
                let next = self.earned + earn - spend;
                if next < Credits::ZERO {
                    out.overdrawn = -next;
                    self.earned = Credits::ZERO;
                } else if next > profile.max_earned {
                    out.discarded += next - profile.max_earned;
                    self.earned = profile.max_earned;
                } else {
                    self.earned = next;
                }
            }
            Mode::Unlimited => {
                // AWS: A = (E − S) + earned − used. The path is monotone within a step, so the
                // clamps at ±max are exact for one big step as for many small ones.
                let a = self.earned - self.surplus + earn - spend;
                if a >= Credits::ZERO {
                    self.earned = a.min(profile.max_earned);
                    out.discarded += a - self.earned;
                    self.surplus = Credits::ZERO;
                } else {
                    self.earned = Credits::ZERO;
                    self.surplus = (-a).min(profile.max_earned);
                    out.charged += -a - self.surplus;
                }
            }
        }
        let t = &mut self.totals;
        t.spent += out.spent;
        t.earned += out.earned;
        t.discarded += out.discarded;
        t.charged += out.charged;
        t.overdrawn += out.overdrawn;
        self.update_hold(policy);
        out
    }

    fn add_earned(&mut self, profile: &Profile, amount: Credits, out: &mut StepOutcome) {
        let next = self.earned + amount;
        if next > profile.max_earned {
            out.discarded += next - profile.max_earned;
            self.earned = profile.max_earned;
        } else {
            self.earned = next;
        }
    }

    /// Spend `cpu_ns` of CPU time over `elapsed_ns` of (credit-clock) time.
    pub fn step_cpu(
        &mut self,
        profile: &Profile,
        policy: &Policy,
        cpu_ns: u64,
        elapsed_ns: u64,
    ) -> StepOutcome {
        self.step(
            profile,
            policy,
            Credits::from_cpu_ns(cpu_ns),
            profile.earn_rate.over(elapsed_ns),
        )
    }

    fn update_hold(&mut self, policy: &Policy) {
        if self.mode != Mode::Standard || !self.is_running() {
            self.held = false;
        } else if self.held {
            self.held = self.balance() <= policy.release_above;
        } else {
            self.held = self.balance().is_zero();
        }
    }

    /// Start (or launch) the workload at `now_s`. Applies expiry of kept credits, then grants
    /// launch credits where the profile and mode call for them and the limiter allows.
    /// Returns the launch credits granted.
    pub fn start(
        &mut self,
        profile: &Profile,
        policy: &Policy,
        now_s: u64,
        limiter: &mut LaunchLimiter,
    ) -> Credits {
        self.start_granting(profile, policy, now_s, profile.launch_credits, limiter)
    }

    /// [`Bucket::start`] granting `launch` instead of the profile's launch credits (the
    /// simulator's `--launch-credits`), under the same rules: standard mode only, at every
    /// start or only the first as the profile says, and only if the limiter allows.
    pub fn start_granting(
        &mut self,
        profile: &Profile,
        policy: &Policy,
        now_s: u64,
        launch: Credits,
        limiter: &mut LaunchLimiter,
    ) -> Credits {
        if self.is_running() {
            return Credits::ZERO;
        }
        self.expire(profile, now_s);
        self.run = RunState::Running;
        let eligible = self.mode == Mode::Standard
            && launch.is_positive()
            && (profile.launch_credits_every_start || !self.launched_once);
        let mut granted = Credits::ZERO;
        if eligible && limiter.try_grant(now_s) {
            granted = launch;
            self.totals.launch_granted += granted;
            self.launched_once = true;
            if profile.launch_credits_within_limit {
                // Azure's initial credits are banked credits: what would exceed the limit
                // is discarded like earnings at the limit.
                let mut out = StepOutcome::default();
                self.add_earned(profile, granted, &mut out);
                self.totals.discarded += out.discarded;
            } else {
                self.launch += granted;
            }
        }
        self.update_hold(policy);
        granted
    }

    /// Start with an explicit amount of launch credits, not subject to the limiter.
    pub fn start_with_launch(
        &mut self,
        profile: &Profile,
        policy: &Policy,
        now_s: u64,
        launch: Credits,
    ) {
        self.start_granting(
            profile,
            policy,
            now_s,
            launch,
            &mut LaunchLimiter::unlimited(),
        );
    }

    /// Stop at `now_s`: all surplus is charged; T2 loses E and L. Returns the credits charged.
    pub fn stop(&mut self, profile: &Profile, now_s: u64) -> Credits {
        if !self.is_running() {
            return Credits::ZERO;
        }
        let charged = self.surplus;
        self.totals.charged += charged;
        self.surplus = Credits::ZERO;
        if profile.persistence == Persistence::Lost {
            self.lose_all();
        }
        self.run = RunState::Stopped { since_s: now_s };
        self.held = false;
        charged
    }

    fn lose_all(&mut self) {
        self.totals.lost += self.earned + self.launch;
        self.earned = Credits::ZERO;
        self.launch = Credits::ZERO;
    }

    /// Drop credits whose persistence after a stop has run out (T3: 7 days). Safe to call at
    /// any time; does nothing unless stopped long enough.
    pub fn expire(&mut self, profile: &Profile, now_s: u64) {
        if let (RunState::Stopped { since_s }, Persistence::KeptFor { seconds }) =
            (self.run, profile.persistence)
        {
            if now_s.saturating_sub(since_s) > seconds {
                self.lose_all();
            }
        }
    }

    /// Switch the credit mode (SPEC §4). Standard → unlimited removes launch credits;
    /// unlimited → standard charges all surplus. Returns the credits charged.
    pub fn switch(
        &mut self,
        profile: &Profile,
        policy: &Policy,
        mode: Mode,
    ) -> Result<Credits, BucketError> {
        if mode == self.mode {
            return Ok(Credits::ZERO);
        }
        let mut charged = Credits::ZERO;
        match mode {
            Mode::Unlimited => {
                if !profile.unlimited_allowed {
                    return Err(BucketError::UnlimitedNotAllowed(profile.name.clone()));
                }
                self.totals.launch_removed += self.launch;
                self.launch = Credits::ZERO;
            }
            Mode::Standard => {
                charged = self.surplus;
                self.totals.charged += charged;
                self.surplus = Credits::ZERO;
            }
        }
        self.mode = mode;
        self.update_hold(policy);
        Ok(charged)
    }

    /// The CPU the workload may use next: all vCPUs while it has credits or is unlimited, its
    /// baseline while held; with a ramp landing, in between as the balance nears zero.
    pub fn ceiling(&self, profile: &Profile, policy: &Policy) -> super::units::Rate {
        let full = profile.full();
        if self.mode == Mode::Unlimited {
            return full;
        }
        if self.held {
            return profile.baseline();
        }
        match policy.landing {
            Landing::Exact => full,
            Landing::Ramp { credits, steps } => {
                if !credits.is_positive() || self.balance() >= credits {
                    return full;
                }
                let steps = steps.max(1) as i128;
                // Quantised: the level is rounded up so the ceiling never drops early.
                let level =
                    (mul_div(self.balance().units(), steps, credits.units()) + 1).min(steps);
                let span = full.saturating_sub(profile.baseline());
                profile.baseline() + span.scale(level as u64, steps as u64)
            }
        }
    }
}
