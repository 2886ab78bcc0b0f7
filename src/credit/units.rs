//! Fixed-point quantities of the credit model.
//!
//! One internal unit is one milli-credit-per-hour sustained for one nanosecond. With that
//! choice both sides of the ledger are exact integers: earning at `credits_per_hour` (given
//! to 1/1000 of a credit, so t2.2xlarge's 81.6 is exact) for `ns` nanoseconds is
//! `rate_milli * ns` units, and spending `cpu_ns` of CPU time is `cpu_ns * 60_000` units
//! (one credit = 60 CPU-seconds = 3.6e15 units). Nothing is ever rounded while accounting.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// Units in one CPU credit.
pub const UNITS_PER_CREDIT: i128 = 3_600_000_000_000_000;
/// Units in one nanosecond of one busy CPU.
pub const UNITS_PER_CPU_NS: i128 = 60_000;
/// Nanoseconds in one second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// An amount of CPU credits, exact.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credits(i128);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    /// From raw internal units.
    pub const fn from_units(units: i128) -> Self {
        Credits(units)
    }

    /// Raw internal units.
    pub const fn units(self) -> i128 {
        self.0
    }

    /// Whole credits.
    pub const fn whole(credits: i64) -> Self {
        Credits(credits as i128 * UNITS_PER_CREDIT)
    }

    /// Thousandths of a credit (config values such as 81.6 are given this way).
    pub const fn milli(milli_credits: i64) -> Self {
        Credits(milli_credits as i128 * (UNITS_PER_CREDIT / 1000))
    }

    /// From a decimal number of credits as a user types it (rounded to the nearest unit).
    /// Returns `None` for NaN, infinities and values too large to account.
    pub fn from_f64(credits: f64) -> Option<Self> {
        if !credits.is_finite() || credits.abs() > 1e12 {
            return None;
        }
        // Split into whole and fraction so the whole part is exact.
        let whole = credits.trunc();
        let frac = credits - whole;
        Some(Credits(
            whole as i128 * UNITS_PER_CREDIT + (frac * UNITS_PER_CREDIT as f64).round() as i128,
        ))
    }

    /// CPU time worth of credits.
    pub const fn from_cpu_ns(cpu_ns: u64) -> Self {
        Credits(cpu_ns as i128 * UNITS_PER_CPU_NS)
    }

    /// CPU nanoseconds this amount buys (rounded down).
    pub const fn as_cpu_ns(self) -> i128 {
        self.0 / UNITS_PER_CPU_NS
    }

    /// For display and export only; never fed back into the accounting.
    pub fn as_f64(self) -> f64 {
        let whole = self.0 / UNITS_PER_CREDIT;
        let rest = self.0 % UNITS_PER_CREDIT;
        whole as f64 + rest as f64 / UNITS_PER_CREDIT as f64
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn min(self, other: Credits) -> Credits {
        Credits(self.0.min(other.0))
    }

    pub fn max(self, other: Credits) -> Credits {
        Credits(self.0.max(other.0))
    }

    /// `self * num / den`, rounded down, without overflow for the magnitudes used here.
    pub fn mul_div(self, num: i128, den: i128) -> Credits {
        debug_assert!(den > 0);
        Credits(mul_div(self.0, num, den))
    }
}

/// `a * b / c` rounded toward zero, for `c > 0`, falling back to a split computation when
/// the product would overflow i128.
pub(crate) fn mul_div(a: i128, b: i128, c: i128) -> i128 {
    match a.checked_mul(b) {
        Some(p) => p / c,
        None => {
            let (q, r) = (a / c, a % c);
            q * b + r * b / c
        }
    }
}

impl fmt::Debug for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}cr", self.as_f64())
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(p) => write!(f, "{:.*}", p, self.as_f64()),
            None => write!(f, "{:.3}", self.as_f64()),
        }
    }
}

impl Add for Credits {
    type Output = Credits;
    fn add(self, o: Credits) -> Credits {
        Credits(self.0 + o.0)
    }
}
impl Sub for Credits {
    type Output = Credits;
    fn sub(self, o: Credits) -> Credits {
        Credits(self.0 - o.0)
    }
}
impl Neg for Credits {
    type Output = Credits;
    fn neg(self) -> Credits {
        Credits(-self.0)
    }
}
impl AddAssign for Credits {
    fn add_assign(&mut self, o: Credits) {
        self.0 += o.0
    }
}
impl SubAssign for Credits {
    fn sub_assign(&mut self, o: Credits) {
        self.0 -= o.0
    }
}

/// A CPU rate: credits per hour in thousandths, which is also units per nanosecond.
/// One fully busy CPU is 60 credits/h = 60_000.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rate(u64);

impl Rate {
    pub const ZERO: Rate = Rate(0);
    /// One fully busy CPU.
    pub const ONE_CORE: Rate = Rate(60_000);

    pub const fn from_milli_credits_per_hour(milli: u64) -> Self {
        Rate(milli)
    }

    pub const fn milli_credits_per_hour(self) -> u64 {
        self.0
    }

    /// `n` whole cores.
    pub const fn cores(n: u32) -> Self {
        Rate(n as u64 * 60_000)
    }

    /// A decimal number of cores (rounded to 1/60000 of a core). `None` if negative or absurd.
    pub fn from_cores_f64(cores: f64) -> Option<Self> {
        if !cores.is_finite() || !(0.0..=1e9).contains(&cores) {
            return None;
        }
        Some(Rate((cores * 60_000.0).round() as u64))
    }

    pub fn as_cores(self) -> f64 {
        self.0 as f64 / 60_000.0
    }

    pub fn credits_per_hour(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Credits accrued at this rate over `ns` nanoseconds.
    pub const fn over(self, ns: u64) -> Credits {
        Credits(self.0 as i128 * ns as i128)
    }

    /// `part/whole` of this rate, rounded down.
    pub fn scale(self, part: u64, whole: u64) -> Rate {
        if whole == 0 {
            return Rate::ZERO;
        }
        Rate((self.0 as u128 * part as u128 / whole as u128) as u64)
    }

    pub fn min(self, o: Rate) -> Rate {
        Rate(self.0.min(o.0))
    }

    pub fn max(self, o: Rate) -> Rate {
        Rate(self.0.max(o.0))
    }

    pub fn saturating_sub(self, o: Rate) -> Rate {
        Rate(self.0.saturating_sub(o.0))
    }

    /// The CFS quota in µs that lets a cgroup use this rate in a period of `period_us`,
    /// rounded down (the kernel then enforces at most this rate).
    pub fn quota_us(self, period_us: u64) -> u64 {
        (self.0 as u128 * period_us as u128 / 60_000) as u64
    }
}

impl Add for Rate {
    type Output = Rate;
    fn add(self, o: Rate) -> Rate {
        Rate(self.0 + o.0)
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.4}cores", self.as_cores())
    }
}

/// Nanoseconds for an amount at a net rate, rounded up: the first instant at which the
/// amount is used up. `None` when the rate is zero.
pub fn ns_to_cover(amount: Credits, rate_units_per_ns: i128) -> Option<u64> {
    if rate_units_per_ns <= 0 {
        return None;
    }
    if amount.0 <= 0 {
        return Some(0);
    }
    let ns = (amount.0 + rate_units_per_ns - 1) / rate_units_per_ns;
    Some(u64::try_from(ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_credit_is_one_cpu_minute() {
        assert_eq!(Credits::from_cpu_ns(60 * NS_PER_SEC), Credits::whole(1));
        assert_eq!(Rate::ONE_CORE.over(60 * NS_PER_SEC), Credits::whole(1));
    }

    #[test]
    fn fractional_hourly_rate_is_exact() {
        // t2.2xlarge earns 81.6 credits per hour: exactly that after one hour.
        let r = Rate::from_milli_credits_per_hour(81_600);
        assert_eq!(r.over(3600 * NS_PER_SEC), Credits::milli(81_600));
    }

    #[test]
    fn from_f64_rounds_to_the_credit_value() {
        assert_eq!(Credits::from_f64(0.5), Some(Credits::milli(500)));
        assert_eq!(Credits::from_f64(144.0), Some(Credits::whole(144)));
        assert_eq!(Credits::from_f64(f64::NAN), None);
    }

    #[test]
    fn quota_from_rate() {
        assert_eq!(
            Rate::from_milli_credits_per_hour(6_000).quota_us(100_000),
            10_000
        );
        assert_eq!(Rate::cores(2).quota_us(100_000), 200_000);
    }

    #[test]
    fn mul_div_survives_large_products() {
        let a = i128::MAX / 4;
        assert_eq!(mul_div(a, 2, 2), a);
    }
}
