//! Values on the command line shared by several subcommands: the credit mode, and the checks
//! of a time scale and of a number of credits (the same rules as the configuration file's).

use crate::config::validate;
use crate::credit::{Credits, Mode};

/// A credit mode on the command line (`--mode standard|unlimited`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum ModeArg {
    Standard,
    Unlimited,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Standard => Mode::Standard,
            ModeArg::Unlimited => Mode::Unlimited,
        }
    }
}

/// A value on the command line that is not allowed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArgError {
    #[error("--time-scale {0}: must be a number from 0.001 to 1000000 (1 = real time)")]
    TimeScale(f64),
    #[error("{flag} {value}: must be a number ≥ 0")]
    Credits { flag: &'static str, value: f64 },
    /// A part of `--instance-credit-specification` that is not `Key=value` of a known key.
    #[error("{0:?}: expected InstanceId=NAME,CpuCredits=standard|unlimited")]
    SpecPart(String),
    #[error("give both InstanceId=NAME and CpuCredits=standard|unlimited")]
    SpecIncomplete,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0:?} is negative; expected a number ≥ 0")]
    Negative(String),
    #[error("{0:?} must be greater than 0")]
    NotPositive(String),
    #[error("{0:?} is below the 1 ms resolution")]
    BelowResolution(String),
    #[error("{0:?} is longer than 100 years")]
    TooLong(String),
    /// No profile of that name (the message lists the known ones).
    #[error("{0}")]
    Profile(String),
}

/// `--time-scale` as the agent's thousandths, checked like the config's `time_scale`.
pub fn time_scale_milli(k: f64) -> Result<u64, ArgError> {
    validate::time_scale_milli(k).ok_or(ArgError::TimeScale(k))
}

/// A number of credits given with `flag`: at least 0.
pub fn credits(flag: &'static str, value: f64) -> Result<Credits, ArgError> {
    validate::credits(value).ok_or(ArgError::Credits { flag, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_scale_and_credits_follow_the_config_rules() {
        assert_eq!(time_scale_milli(60.0), Ok(60_000));
        assert_eq!(time_scale_milli(0.001), Ok(1));
        assert_eq!(time_scale_milli(0.0), Err(ArgError::TimeScale(0.0)));
        assert!(time_scale_milli(f64::NAN).is_err());
        assert_eq!(credits("--initial-credits", 1.5), Ok(Credits::milli(1500)));
        assert_eq!(
            credits("--launch-credits", -1.0).unwrap_err().to_string(),
            "--launch-credits -1: must be a number ≥ 0"
        );
    }
}
