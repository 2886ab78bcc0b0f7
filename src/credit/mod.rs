//! The pure credit model: profiles, the bucket, events and decisions.
//!
//! Nothing in this module tree touches files, clocks, threads or tokio: callers pass usage
//! and elapsed time in and get balances and ceilings out.

pub mod bucket;
pub mod limiter;
pub mod predict;
pub mod profile;
pub mod units;

pub use bucket::{Bucket, BucketError, Landing, Policy, RunState, StepOutcome, Totals};
pub use limiter::{LaunchLimiter, DEFAULT_LAUNCH_LIMIT};
pub use predict::{exact_horizon_ns, time_to_exhaustion, time_to_full, time_to_release};
pub use profile::{
    builtin_profile, builtin_profile_names, builtin_profiles, CustomProfile, Family, Mode,
    Persistence, Profile, UnknownProfile,
};
pub use units::{Credits, Rate, NS_PER_SEC};

#[cfg(test)]
mod tests;
