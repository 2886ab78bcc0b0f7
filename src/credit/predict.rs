//! Predictions the agent schedules its wake-ups on: when a balance runs out, when it is full.
//!
//! Both assume the workload keeps using CPU at one constant rate from now on.

use super::bucket::Bucket;
use super::profile::{Mode, Profile};
use super::units::{ns_to_cover, Credits, Rate};

/// Nanoseconds until the workload runs out of credits at `usage` (standard: E + L reaches 0;
/// unlimited: E reaches 0 and surplus spending starts). `Some(0)` when already out, `None`
/// when the balance does not fall at that rate.
pub fn time_to_exhaustion(bucket: &Bucket, profile: &Profile, usage: Rate) -> Option<u64> {
    let spend = usage.milli_credits_per_hour() as i128;
    let earn = profile.earn_rate.milli_credits_per_hour() as i128;
    if bucket.mode == Mode::Unlimited && bucket.surplus.is_positive() {
        return Some(0);
    }
    if bucket.balance().is_zero() {
        return if spend > earn { Some(0) } else { None };
    }
    let mut t = 0u64;
    let mut earned = bucket.earned;
    if bucket.launch.is_positive() {
        if spend == 0 {
            return None;
        }
        // Phase 1: launch credits drain at the full usage rate while E grows (up to its limit).
        let t1 = ns_to_cover(bucket.launch, spend)?;
        earned = (earned + Credits::from_units(earn * t1 as i128)).min(profile.max_earned);
        t = t1;
    }
    // Phase 2: E alone, net rate usage − earn.
    let t2 = ns_to_cover(earned, spend - earn)?;
    Some(t.saturating_add(t2))
}

/// Nanoseconds until E reaches the accrual limit at `usage` (after paying down any surplus);
/// `Some(0)` when full, `None` when it never fills at that rate.
pub fn time_to_full(bucket: &Bucket, profile: &Profile, usage: Rate) -> Option<u64> {
    let spend = usage.milli_credits_per_hour() as i128;
    let earn = profile.earn_rate.milli_credits_per_hour() as i128;
    if bucket.earned >= profile.max_earned {
        return Some(0);
    }
    let mut missing = profile.max_earned - bucket.earned + bucket.surplus;
    let mut t = 0u64;
    if bucket.launch.is_positive() && spend > 0 {
        // While launch credits last, E grows at the full earning rate.
        let t1 = ns_to_cover(bucket.launch, spend)?;
        let grown = Credits::from_units(earn * t1 as i128);
        if grown >= missing {
            return ns_to_cover(missing, earn);
        }
        missing -= grown;
        t = t1;
    } else if bucket.launch.is_positive() {
        return ns_to_cover(missing, earn);
    }
    let t2 = ns_to_cover(missing, earn - spend)?;
    Some(t.saturating_add(t2))
}

/// How long (credit-clock ns) one linear step of `bucket` stays exact, whatever the CPU use in
/// it between zero and `ceiling`: until the earliest moment the balance could reach one of its
/// clamps — zero at the ceiling (standard: E + L; unlimited: the surplus limit, A = E − S at
/// −max), or the accrual limit using nothing. Inside that time the model's result depends only
/// on the total CPU used, so a look at its end gives the same balances as looks every
/// millisecond. `None`: no clamp can be reached (nothing is earned and nothing can be spent).
pub fn exact_horizon_ns(bucket: &Bucket, profile: &Profile, ceiling: Rate) -> Option<u64> {
    let to_max = time_to_full(bucket, profile, Rate::ZERO);
    let to_min = match bucket.mode {
        Mode::Standard => time_to_exhaustion(bucket, profile, ceiling),
        Mode::Unlimited => {
            let a = bucket.earned - bucket.surplus;
            let net = ceiling.milli_credits_per_hour() as i128
                - profile.earn_rate.milli_credits_per_hour() as i128;
            ns_to_cover(a + profile.max_earned, net)
        }
    };
    match (to_max, to_min) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Nanoseconds until a workload held at its baseline has earned past `release_above` using
/// nothing (the earliest it can be released); `Some(0)` when it already has. While held, the
/// kernel keeps its use at or under the baseline, which is what it earns: the balance cannot
/// fall, so this is the only moment a look can change anything.
pub fn time_to_release(bucket: &Bucket, profile: &Profile, release_above: Credits) -> Option<u64> {
    let earn = profile.earn_rate.milli_credits_per_hour() as i128;
    let missing = release_above - bucket.balance() + Credits::from_units(1);
    ns_to_cover(missing, earn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::profile::builtin_profile;
    use crate::credit::units::NS_PER_SEC;

    #[test]
    fn t2_micro_full_bank_runs_out_after_160_minutes() {
        let p = builtin_profile("t2.micro").unwrap();
        let b = Bucket::new(&p, Mode::Standard, Credits::whole(144)).unwrap();
        let t = time_to_exhaustion(&b, &p, Rate::cores(1)).unwrap();
        assert_eq!(t, 160 * 60 * NS_PER_SEC);
        assert_eq!(time_to_exhaustion(&b, &p, p.baseline()), None);
    }

    #[test]
    fn full_at_idle_after_24_hours() {
        let p = builtin_profile("t3.nano").unwrap();
        let b = Bucket::new(&p, Mode::Unlimited, Credits::ZERO).unwrap();
        assert_eq!(
            time_to_full(&b, &p, Rate::ZERO),
            Some(24 * 3600 * NS_PER_SEC)
        );
        // At the baseline it never fills.
        assert_eq!(time_to_full(&b, &p, p.baseline()), None);
    }
}

/// Issue 22: any schedule of looks that waits no longer than [`exact_horizon_ns`] gives the
/// same bucket as a look every millisecond, for any CPU use up to the full ceiling.
#[cfg(test)]
mod horizon_props {
    use super::*;
    use crate::credit::profile::builtin_profile;
    use crate::credit::{Bucket, LaunchLimiter, Policy};
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn started(
        profile: &Profile,
        mode: Mode,
        earned_milli: i64,
        launch: bool,
        surplus_milli: i64,
    ) -> Bucket {
        let mut b = Bucket::new(profile, mode, Credits::milli(earned_milli)).unwrap();
        let mut limiter = LaunchLimiter::unlimited();
        if launch {
            b.start(profile, &Policy::default(), 0, &mut limiter);
        } else {
            b.start_granting(profile, &Policy::default(), 0, Credits::ZERO, &mut limiter);
        }
        if mode == Mode::Unlimited && surplus_milli > 0 {
            // Spend into surplus: E first, then S.
            let spend = Credits::milli(earned_milli + surplus_milli);
            b.step(profile, &Policy::default(), spend, Credits::ZERO);
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn looks_at_the_horizon_equal_looks_every_millisecond(
            which in 0usize..3,
            unlimited in any::<bool>(),
            near_full in any::<bool>(),
            gap_milli in 0i64..400,
            launch in any::<bool>(),
            surplus_milli in 0i64..400,
            // (duration in ms, CPU in thousandths of the profile's vCPUs)
            segments in prop::collection::vec(
                (1u64..3_000, prop_oneof![Just(0u64), Just(1000u64), 0u64..=1000]),
                1..30,
            ),
        ) {
            let name = ["t2.micro", "t3.micro", "t3.large"][which];
            let p = builtin_profile(name).unwrap();
            let mode = if unlimited { Mode::Unlimited } else { Mode::Standard };
            let max_milli = (p.max_earned.units() / (crate::credit::units::UNITS_PER_CREDIT / 1000)) as i64;
            let earned = if near_full { max_milli - gap_milli.min(max_milli) } else { gap_milli.min(max_milli) };
            let b0 = started(&p, mode, earned, launch, surplus_milli);
            // CPU ns used in each millisecond.
            let per_ms: Vec<u64> = segments
                .iter()
                .flat_map(|&(ms, k)| std::iter::repeat_n(MS * p.vcpus as u64 * k / 1000, ms as usize))
                .collect();
            let pol = Policy::default();
            let mut every_ms = b0.clone();
            for &u in &per_ms {
                every_ms.step_cpu(&p, &pol, u, MS);
            }
            let mut at_horizon = b0;
            let (mut t, mut looks) = (0usize, 0usize);
            while t < per_ms.len() {
                let h = exact_horizon_ns(&at_horizon, &p, p.full()).unwrap_or(u64::MAX);
                let wait = (h.saturating_sub(1) / MS).max(1) as usize;
                let end = (t + wait).min(per_ms.len());
                let used: u64 = per_ms[t..end].iter().sum();
                at_horizon.step_cpu(&p, &pol, used, (end - t) as u64 * MS);
                t = end;
                looks += 1;
            }
            prop_assert_eq!(&at_horizon.earned, &every_ms.earned);
            prop_assert_eq!(&at_horizon.launch, &every_ms.launch);
            prop_assert_eq!(&at_horizon.surplus, &every_ms.surplus);
            prop_assert_eq!(&at_horizon.totals, &every_ms.totals);
            prop_assert!(looks <= per_ms.len());
        }
    }

    /// The horizon of a t3.micro half full: 80 minutes to zero flat out (2 vCPUs spending 120
    /// credits an hour, earning 12), 12 hours to full using nothing: looks every second buy
    /// nothing.
    #[test]
    fn a_half_full_t3_micro_needs_no_look_for_80_minutes() {
        let p = builtin_profile("t3.micro").unwrap();
        let b = started(&p, Mode::Standard, 144_000, false, 0);
        let h = exact_horizon_ns(&b, &p, p.full()).unwrap();
        assert_eq!(h, 80 * 60 * crate::credit::units::NS_PER_SEC);
        let b = started(&p, Mode::Unlimited, 144_000, false, 0);
        // Unlimited: the surplus limit is 288 credits further down: 240 minutes.
        let h = exact_horizon_ns(&b, &p, p.full()).unwrap();
        assert_eq!(h, 240 * 60 * crate::credit::units::NS_PER_SEC);
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;
    use crate::credit::profile::builtin_profile;
    use crate::credit::units::NS_PER_SEC;

    /// A t3.micro held at zero earns 12 credits an hour: past 0.1 credits after 30 s.
    #[test]
    fn a_held_t3_micro_can_be_released_after_30_seconds() {
        let p = builtin_profile("t3.micro").unwrap();
        let b = Bucket::new(&p, Mode::Standard, Credits::ZERO).unwrap();
        let t = time_to_release(&b, &p, Credits::milli(100)).unwrap();
        assert!(t > 30 * NS_PER_SEC && t <= 30 * NS_PER_SEC + 1, "{t}");
        let b = Bucket::new(&p, Mode::Standard, Credits::milli(200)).unwrap();
        assert_eq!(time_to_release(&b, &p, Credits::milli(100)), Some(0));
    }
}
