//! burstd: the CPU-credit behaviour of cloud burstable instances for Linux cgroups.
//!
//! Layout: `credit` is the pure model (no files, clocks or threads); `cgroup` is the kernel I/O
//! (read CPU time, write quotas); `sim` replays utilisation traces through the model; `cli` is
//! the command-line front end.
#![deny(unsafe_code)]

pub mod cgroup;
pub mod credit;
