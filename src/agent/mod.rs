//! The agent: the control core (`control`), its clocks (`clock`), the state file (`state`)
//! and saving it (`persist`), the instances of the `[containers]` source (`containers`), how a workload spec becomes cgroups (`discover`) and a read-only
//! picture of the workloads for metrics and the API (`view`). The event loop that drives it is
//! one layer up, in [`crate::daemon`].

pub mod clock;
mod containers;
pub mod control;
pub mod decide;
pub mod discover;
mod lifecycle;
pub mod persist;
mod sampling;
pub mod state;
pub mod view;
pub mod workload;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_tamper;

pub use control::{Agent, AgentParts};
pub use decide::{quota_for, HoldLanding};
pub use workload::{ContainerRun, Health, Recorded, Workload, WorkloadEvent};
