//! The agent: the control core (`control`), its event loop (`daemon`), the state file
//! (`state`), how systemd units map to cgroups (`units`) and a read-only picture of the
//! workloads for metrics and the API (`view`).

pub mod control;
pub mod daemon;
pub mod state;
pub mod units;
pub mod view;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use control::{quota_for, Agent, Event, Health, Workload};
