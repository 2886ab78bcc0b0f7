//! The agent: the control core (`control`), its event loop (`daemon`), the state file
//! (`state`) and how systemd units map to cgroups (`units`).

pub mod control;
pub mod daemon;
pub mod state;
pub mod units;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use control::{quota_for, Agent, Event, Health, Workload};
