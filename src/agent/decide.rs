//! The agent's decisions as pure functions: the quota that enforces a ceiling, how a hold
//! landed, when a workload next needs a look, and drift-free time scaling. No files, clocks
//! or cgroups: numbers in, numbers out, each with its property tests.

use crate::cgroup::Quota;
use crate::credit::{Bucket, Credits, Profile, Rate};

const MS: u64 = 1_000_000;
/// Never wake a workload sooner than this after its last sample.
pub const MIN_INTERVAL_NS: u64 = MS;

/// How a hold landed: how far the balance went below zero before the cap was written, and how
/// long after the balance reached zero (estimated from the last interval's average rate, the
/// only thing known about when inside the interval it crossed zero). Real (unscaled) units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldLanding {
    /// CPU time used beyond the balance (net of earnings) before the cap, in nanoseconds.
    pub overshoot_cpu_ns: u64,
    /// From the balance reaching zero to the sample that wrote the cap, in nanoseconds.
    pub late_ns: u64,
}

/// Scales a cumulative raw quantity by `k/1000` without drift: the scaled total is computed
/// from the raw total each time, and only its growth is handed on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scaled {
    raw: u128,
    done: u128,
}

impl Scaled {
    pub fn add(&mut self, raw: u64, k_milli: u64) -> u64 {
        self.raw += raw as u128;
        let total = self.raw * k_milli as u128 / 1000;
        let delta = total - self.done;
        self.done = total;
        u64::try_from(delta).unwrap_or(u64::MAX)
    }
}

/// Converts a ceiling to the quota that enforces it. At or above the host's CPU count the
/// kernel could not use more anyway, so it is written as no limit.
pub fn quota_for(ceiling: Rate, period_us: u64, host_cpus: u32) -> Quota {
    if ceiling >= Rate::cores(host_cpus) {
        return Quota::unlimited(period_us);
    }
    // The kernel's minimum quota is 1 ms. A baseline below 1 ms per period (under 1% of a
    // core at the default 100 ms period) gets a longer period instead — up to the kernel's
    // 1 s — so the cap is the baseline and not the 1 ms floor.
    let mut period = period_us;
    if ceiling.quota_us(period) < 1000 && ceiling > Rate::ZERO {
        let needed = (1000u128 * 60_000).div_ceil(ceiling.milli_credits_per_hour() as u128);
        period = (needed as u64).clamp(period_us, 1_000_000);
    }
    Quota::limited(ceiling.quota_us(period).max(1000), period)
}

/// The CPU time (ns) charged for an interval of `dt_ns` in which the usage counter went
/// backwards on the same open cgroup. The kernel's counter never does that by itself; on
/// cgroup v1 whoever can write `cpuacct.usage` (the owner of a delegated cgroup) can zero it.
/// What was used in the interval is then unknown, so it is charged at the most the cgroup
/// could have used: the ceiling in force (`written`, the quota burstd last wrote: quota/period
/// of a core per ns) or, with no limit written, the host's CPU count.
pub fn charge_for_backwards_counter(written: Option<Quota>, host_cpus: u32, dt_ns: u64) -> u64 {
    let charged = match written {
        Some(Quota {
            quota_us: Some(quota),
            period_us,
        }) => dt_ns as u128 * quota as u128 / period_us.max(1) as u128,
        _ => dt_ns as u128 * host_cpus.max(1) as u128,
    };
    u64::try_from(charged).unwrap_or(u64::MAX)
}

/// Whether a quota found on a cgroup burstd has no record of is one burstd itself writes for
/// `profile`: its baseline hold, as [`quota_for`] gives it. After the state file is moved away
/// (what burstd's own message for a corrupt file suggests), the cgroup still carries the hold
/// an earlier burstd wrote; recording that as the cgroup's original would write the cap back at
/// exit and leave the workload held for good.
pub fn is_own_hold(found: Quota, profile: &Profile, period_us: u64, host_cpus: u32) -> bool {
    found.quota_us.is_some() && found == quota_for(profile.baseline(), period_us, host_cpus)
}

/// The landing of a hold decided by one step: the balance went from `before` to `overdrawn`
/// below zero over `dt_raw` real ns at time scale `k_milli`/1000.
pub fn hold_landing(before: Credits, overdrawn: Credits, dt_raw: u64, k_milli: u64) -> HoldLanding {
    let over = overdrawn.units().max(0) as u128;
    let above = before.units().max(0) as u128;
    let late_ns = if over == 0 {
        0
    } else {
        // Constant rate over the step: the part after zero is over / (above + over) of it.
        dt_raw as u128 * over / (above + over)
    };
    // Units are milli-credits/h × ns; one CPU-ns is 60,000 of them (on the scaled clock).
    let scaled_cpu_ns = over / 60_000;
    HoldLanding {
        overshoot_cpu_ns: u64::try_from(scaled_cpu_ns * 1000 / k_milli.max(1) as u128)
            .unwrap_or(u64::MAX),
        late_ns: u64::try_from(late_ns).unwrap_or(u64::MAX),
    }
}

/// Whether a workload only confirms that earnings are discarded: earned credits at the accrual
/// limit, no surplus, and using no more than it earns. Such a workload is looked at every
/// `full_interval` instead of every `max_interval`.
pub fn full_and_idle(bucket: &Bucket, profile: &Profile, usage: Rate) -> bool {
    bucket.earned >= profile.max_earned
        && !bucket.surplus.is_positive()
        && usage <= profile.earn_rate
}

/// When the next look is due, from `now_ns`: at the latest after `max_ns`, sooner at
/// `to_zero_ns` (real ns until the balance can reach zero) but never sooner than
/// [`MIN_INTERVAL_NS`]. Routine looks are coalesced on a grid of `max_ns / 10` (rounded down,
/// so the interval never exceeds `max_ns`): 1,000 idle workloads then cost ten loop turns a
/// second, not a thousand. Predicted exhaustions keep their exact time.
pub fn next_look_ns(now_ns: u64, max_ns: u64, to_zero_ns: Option<u64>) -> u64 {
    let interval = to_zero_ns.map_or(max_ns, |t| max_ns.min(t.max(MIN_INTERVAL_NS)));
    if interval == max_ns {
        let grid = (max_ns / 10).max(MS);
        let at = (now_ns.saturating_add(max_ns) / grid) * grid;
        if at > now_ns {
            at
        } else {
            now_ns.saturating_add(max_ns)
        }
    } else {
        now_ns.saturating_add(interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_prediction_sooner_than_the_interval_keeps_its_exact_time() {
        // 1 s interval, exhaustion predicted in 250 ms: looked at exactly then.
        assert_eq!(next_look_ns(10 * S + 3, S, Some(S / 4)), 10 * S + 3 + S / 4);
        // Never sooner than 1 ms, however close the prediction.
        assert_eq!(next_look_ns(5 * S, S, Some(10)), 5 * S + MS);
        // No prediction: on the 100 ms grid, within the interval.
        assert_eq!(next_look_ns(5 * S + 123, S, None), 6 * S);
    }

    #[test]
    fn a_hold_that_landed_exactly_has_no_overshoot() {
        let l = hold_landing(Credits::whole(1), Credits::ZERO, S, 1000);
        assert_eq!(l, HoldLanding::default());
        // Half the step's spending past zero at real time: half the step late, and the CPU
        // beyond the balance is what the overdraft is worth (1 CPU-ms = 60,000 units per ns).
        let over = Credits::from_units(60_000 * MS as i128);
        let l = hold_landing(over, over, 2 * S, 1000);
        assert_eq!((l.overshoot_cpu_ns, l.late_ns), (MS, S));
    }

    #[test]
    fn a_backwards_counter_is_charged_at_the_ceiling_in_force() {
        // Held at t3.micro's 0.2-core baseline: 1 s is charged as 0.2 CPU-s.
        let held = Some(Quota::limited(20_000, 100_000));
        assert_eq!(charge_for_backwards_counter(held, 4, S), S / 5);
        // No limit written (or nothing yet): all of the host's CPUs.
        assert_eq!(
            charge_for_backwards_counter(Some(Quota::unlimited(100_000)), 4, S),
            4 * S
        );
        assert_eq!(charge_for_backwards_counter(None, 2, S), 2 * S);
    }

    proptest! {
        #[test]
        fn next_look_is_after_now_and_within_the_interval(
            now in 0u64..1 << 60,
            max_ms in 10u64..600_000,
            to_zero in proptest::option::of(0u64..1 << 40),
        ) {
            let max = max_ms * MS;
            let at = next_look_ns(now, max, to_zero);
            prop_assert!(at > now);
            prop_assert!(at <= now + max);
            match to_zero {
                Some(t) if t.max(MIN_INTERVAL_NS) < max => {
                    prop_assert_eq!(at, now + t.max(MIN_INTERVAL_NS))
                }
                // Routine looks land on the grid, so idle workloads share loop turns.
                _ => prop_assert!(at % (max / 10).max(MS) == 0 || at == now + max),
            }
        }

        #[test]
        fn scaling_cumulative_totals_never_drifts(
            steps in proptest::collection::vec(0u64..10 * S, 1..50),
            k_milli in 1u64..1_000_000,
        ) {
            let mut scaled = Scaled::default();
            let handed: u128 = steps.iter().map(|&d| scaled.add(d, k_milli) as u128).sum();
            let raw: u128 = steps.iter().map(|&d| d as u128).sum();
            prop_assert_eq!(handed, raw * k_milli as u128 / 1000);
        }

        #[test]
        fn quota_enforces_at_most_the_ceiling_with_the_kernels_limits(
            ceiling_milli in 1u64..64 * 60_000,
            period in 1000u64..=1_000_000,
            host in 1u32..64,
        ) {
            let ceiling = Rate::from_milli_credits_per_hour(ceiling_milli);
            let q = quota_for(ceiling, period, host);
            match q.quota_us {
                None => prop_assert!(ceiling >= Rate::cores(host)),
                Some(quota) => {
                    prop_assert!(ceiling < Rate::cores(host));
                    prop_assert!(quota >= 1000);
                    prop_assert!((period..=1_000_000).contains(&q.period_us));
                    // Quota / period is the ceiling, rounded down; or the kernel's 1 ms floor.
                    let allowed = ceiling.quota_us(q.period_us);
                    prop_assert!(quota == allowed.max(1000));
                }
            }
        }

        #[test]
        fn a_hold_is_never_later_than_its_step(
            before in -(1i128 << 80)..(1i128 << 80),
            overdrawn in 0i128..(1i128 << 80),
            dt in 0u64..1 << 40,
            k_milli in 1u64..1_000_000,
        ) {
            let l = hold_landing(Credits::from_units(before), Credits::from_units(overdrawn), dt, k_milli);
            prop_assert!(l.late_ns <= dt);
            if overdrawn == 0 {
                prop_assert_eq!(l, HoldLanding::default());
            }
        }
    }
}
