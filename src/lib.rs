//! burstd: the CPU-credit behaviour of cloud burstable instances for Linux cgroups.
//!
//! Layout: `credit` is the pure model (no files, clocks or threads); `sim` replays
//! utilisation traces through it; `cli` is the command-line front end.
#![deny(unsafe_code)]

pub mod cli;
pub mod credit;
pub mod sim;
