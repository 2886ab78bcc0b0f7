//! Applies what the watcher reports to the agent: the one place where a container becomes a
//! workload (named after its instance id, with the `Container` source) and where its stop,
//! its own CPU limit and its label errors reach the control core.

use super::tracker::Managed;
use super::watch::Change;
use crate::agent::daemon::Control;
use crate::agent::Agent;
use crate::config::{ContainerSource, Source, WorkloadSpec};

/// The workload spec of a running container.
pub fn spec_of(m: &Managed) -> WorkloadSpec {
    WorkloadSpec {
        name: m.spec.instance_id.clone(),
        source: Source::Container(ContainerSource {
            container: m.name.clone(),
            cgroup: Some(m.cgroup.clone()),
            cpu_limit: m.cpu_limit,
        }),
        profile: m.spec.profile.clone(),
        mode: m.spec.mode,
        mode_explicit: m.spec.mode_explicit,
        initial_credits: m.spec.initial_credits,
    }
}

/// Applies one change. The agent's events (start, stop) make the loop save the state.
pub fn apply(agent: &mut Agent, change: Change, now_ns: u64, wall_s: u64) {
    match change {
        Change::Manage(m) => {
            if !agent.container_started(spec_of(&m), now_ns, wall_s) {
                agent.container_label_error();
            }
        }
        Change::Unmanage { instance_id, .. } => {
            agent.container_stopped(&instance_id, now_ns, wall_s)
        }
        Change::Limit {
            instance_id,
            cpu_limit,
        } => agent.container_limit(&instance_id, cpu_limit),
        Change::LabelError(_) => agent.container_label_error(),
        Change::Connected => agent.containers_synced(now_ns, wall_s),
        Change::Unreachable(_) => {}
    }
}

/// Starts following the Docker-API socket `socket`: the watcher's changes reach the control
/// loop as [`Control::Container`] messages on `loop_tx`. Ends when the loop is gone.
pub fn spawn(
    socket: std::path::PathBuf,
    layout: crate::cgroup::layout::Layout,
    custom: std::collections::BTreeMap<String, crate::credit::Profile>,
    loop_tx: tokio::sync::mpsc::Sender<Control>,
) {
    let client = super::docker::Client::new(socket, super::docker::Limits::default());
    let watcher = super::watch::Watcher::new(client, layout, custom);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(watcher.run(tx));
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            if loop_tx.send(Control::Container(change)).await.is_err() {
                break;
            }
        }
    });
}
