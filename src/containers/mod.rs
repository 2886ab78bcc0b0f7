//! Containers that opt in with a label (`burstd.profile=t3.micro`) run as burstable instances.
//! `docker` talks to the Docker Engine API (Docker's or Podman's socket), `labels` reads what a
//! container asks for, `cgroup` finds its cgroup from its main process, and `tracker` is the
//! pure state machine that turns the runtime's list and events into managed containers.

pub mod cgroup;
pub mod docker;
pub mod labels;
pub mod tracker;
pub mod watch;

pub mod bridge;
#[cfg(test)]
pub(crate) mod fake;
