//! burstd: the CPU-credit behaviour of cloud burstable instances for Linux cgroups.
//!
//! Layout: `credit` is the pure model (no files, clocks or threads); `cgroup` is the kernel I/O
//! (read CPU time, write quotas); `config` reads the configuration; `agent` runs the control
//! loop; `metrics` is the Prometheus endpoint; `api` the control API;
//! `http` the HTTP layer both share; `sim` replays utilisation traces through the model; `cli` is the command-line front end.
#![deny(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod credit;
pub mod exec;
pub mod host;
pub mod http;
pub mod metrics;
pub mod sim;
