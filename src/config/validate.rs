//! Rules a value must follow wherever it is given, in the configuration file or on the
//! command line. Each caller words its own message (it knows the key or flag); the rule is here
//! once.

use crate::credit::Credits;

/// The slowest and the fastest credit clock, as a ratio to real time.
pub const TIME_SCALE_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1_000_000.0;

/// A time scale `k` as thousandths (the agent's `time_scale_milli`), if it is a number in
/// [`TIME_SCALE_RANGE`].
pub fn time_scale_milli(k: f64) -> Option<u64> {
    (k.is_finite() && TIME_SCALE_RANGE.contains(&k)).then(|| (k * 1000.0).round() as u64)
}

/// A number of credits, if it is one and not negative.
pub fn credits(v: f64) -> Option<Credits> {
    Credits::from_f64(v).filter(|c| *c >= Credits::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_nan_is_refused() {
        assert_eq!(time_scale_milli(0.001), Some(1));
        assert_eq!(time_scale_milli(1_000_000.0), Some(1_000_000_000));
        assert_eq!(time_scale_milli(0.0009), None);
        assert_eq!(time_scale_milli(f64::INFINITY), None);
        assert_eq!(credits(0.0), Some(Credits::ZERO));
        assert_eq!(credits(-0.001), None);
        assert_eq!(credits(f64::NAN), None);
    }
}
