//! The daemon: the layer above the agent and its servers. It builds the agent from the
//! configuration, starts the metrics endpoint and the control API with narrow handles to the
//! loop, forwards signals, and runs the event loop until a shutdown.
//!
//! `event_loop` is the loop itself, `saver` writes the state file off the loop, `servers` starts and moves the two servers, `signals`
//! turns signals into messages. Nothing below this module imports it.

pub mod event_loop;
pub mod recorder;
pub mod saver;
pub mod servers;
mod signals;
#[cfg(test)]
mod tests;

use crate::agent::clock::SystemClock;
use crate::agent::discover::Discoverer;
use crate::agent::persist::Sections;
use crate::agent::{state, Agent, AgentParts};
use crate::cgroup::layout::{RootError, SCHED_EXT_STATE};
use crate::cgroup::{read_own_cgroup_paths, sched_ext_enabled, Layout};
use crate::config::{self, ConfigError};
use crate::host;
use event_loop::{channels, run_loop, LoopOptions};
use servers::{ServerHandles, Servers, StartError};
use std::path::Path;
use tracing::{error, info, warn};

/// Why the daemon could not start, or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Layout(#[from] RootError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Server(#[from] StartError),
    /// The loop ran but never managed to save the state file (each failure was logged).
    #[error("the state file was never saved")]
    NeverSaved,
}

/// How a layout reads in logs and in `burstd check`.
pub fn describe_layout(layout: &Layout) -> String {
    match layout {
        Layout::V2 { root } => format!("cgroup v2 at {}", root.display()),
        Layout::V1 {
            cpu_root,
            cpuacct_root,
        } => {
            format!(
                "cgroup v1: cpu at {}, cpuacct at {}",
                cpu_root.display(),
                cpuacct_root.display()
            )
        }
    }
}

/// Runs the daemon with the configuration file at `config_path` until SIGTERM or SIGINT.
pub fn run(config_path: &Path) -> Result<(), DaemonError> {
    let cfg = config::load(config_path)?;
    let layout = Layout::resolve(cfg.agent.cgroup_root.as_deref())?;
    let files = host::raise_open_file_limit();
    info!(layout = %describe_layout(&layout), workloads = cfg.workloads.len(), config = %config_path.display(),
        open_file_limit = ?files, "burstd starting");
    if sched_ext_enabled(Path::new(SCHED_EXT_STATE)).unwrap_or(false) {
        warn!("a sched_ext scheduler is loaded: it may ignore CPU quotas, so baselines may not be enforced");
    }
    let own = read_own_cgroup_paths(&layout).unwrap_or_default();
    let saved = state::load(&cfg.agent.state_dir).inspect_err(|e| error!("{e}"))?;
    let mut agent = Agent::new(AgentParts {
        config: cfg.agent.clone(),
        specs: cfg.workloads.clone(),
        hierarchy: layout.hierarchy(),
        discover: Discoverer::system(),
        host_cpus: host::host_cpus(),
        own_cgroups: own,
        boot_id: state::boot_id(),
    });
    if cfg.containers.docker.is_some() {
        // Before the restore, so that saved container instances keep their balances.
        agent.enable_containers(cfg.custom_profiles.clone());
    }
    let sections = match saved {
        Some(s) => {
            info!(
                workloads = s.workloads.len(),
                "balances restored from the state file"
            );
            agent.restore(s)
        }
        None => Sections::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(async move {
        let (handles, inbox) = channels();
        let (hup_tx, mut hup_rx) = tokio::sync::mpsc::channel(1);
        signals::forward_signals(handles.control.clone(), hup_tx).map_err(DaemonError::Signals)?;
        let servers = ServerHandles {
            probes: handles.probes.clone(),
            api: handles.api.clone(),
        };
        let servers = std::sync::Arc::new(tokio::sync::Mutex::new(
            Servers::start(&cfg, servers).await?,
        ));
        // A reload moves the endpoint or the socket if their sections changed (the control
        // loop reloads the rest, and logs an invalid file).
        let reloading = std::sync::Arc::clone(&servers);
        let reload_path = config_path.to_path_buf();
        tokio::spawn(async move {
            while hup_rx.recv().await.is_some() {
                if let Ok(cfg) = config::load(&reload_path) {
                    reloading.lock().await.reload(&cfg).await;
                }
            }
        });
        if let Some(socket) = cfg.containers.docker.clone() {
            info!(socket = %socket.display(), "following labelled containers");
            crate::containers::bridge::spawn(
                socket,
                layout,
                cfg.custom_profiles.clone(),
                handles.containers.clone(),
            );
        }
        let opts = LoopOptions {
            config_path: Some(config_path.to_path_buf()),
            notify: true,
        };
        let stats = run_loop(agent, sections, opts, &SystemClock, inbox).await;
        servers.lock().await.remove_api_socket();
        if stats.saves == 0 {
            return Err(DaemonError::NeverSaved);
        }
        Ok(())
    })
}
