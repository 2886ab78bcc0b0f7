//! burstd: the CPU-credit behaviour of cloud burstable instances for Linux cgroups.
//!
//! Layout, top to bottom (a module imports only from below it; docs/architecture.md):
//! `cli` is the command-line front end; `daemon` runs the event loop and starts the servers,
//! `exec` runs one command under the credit rules; `metrics` is the Prometheus endpoint and
//! `api` the control API, each reaching the loop through a narrow [`ask::Asker`] handle;
//! `containers` follows a Docker-API socket (Docker's or Podman's) and tells the loop which
//! labelled containers to manage; `agent` is the control core (workloads, sampling, quotas, state); `config` reads the
//! configuration; `credit` is the pure model (no files, clocks or threads), `cgroup` the
//! kernel I/O, `http` the HTTP layer both servers share, `host` facts about the host, `sim`
//! replays utilisation traces through the model.
#![deny(unsafe_code)]

pub mod agent;
pub mod api;
pub mod ask;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod containers;
pub mod credit;
pub mod daemon;
pub mod exec;
pub mod host;
pub mod http;
pub mod metrics;
pub mod sim;

#[cfg(test)]
pub(crate) mod testkit;
