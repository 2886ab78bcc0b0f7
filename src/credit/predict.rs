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
