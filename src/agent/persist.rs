//! What the agent keeps across restarts: saving its state file, and counting how that went.

use super::control::Agent;
use super::state::{SavedQuota, SavedWorkloadRef, State, StateRef, STATE_VERSION};
use super::workload::{ContainerRun, Workload};
use crate::cgroup::Quota;
use crate::config::Source;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::BTreeMap;

/// Sections of the state file that other layers own (the API's tokens and defaults), by key:
/// kept verbatim through a restore and every save, never read by the agent.
pub type Sections = BTreeMap<String, serde_json::Value>;
use tracing::info;

/// Counters of state saving, for logs and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct SaveStats {
    pub saves: u64,
    pub failures: u64,
    pub last_success_unix_s: u64,
}

/// Saves the agent's state to its state file now, streamed from the live workloads, on the
/// caller's thread, and counts how it went (a failure is logged, not returned). The daemon no
/// longer saves this way (`daemon::saver` writes off its loop); kept as the "before" of the
/// state benchmark in `agent::tests`.
#[cfg(test)]
pub fn save(agent: &Agent, wall_s: u64, sections: &Sections, stats: &mut SaveStats) {
    match super::state::save_ref(
        &agent.config.state_dir,
        &agent.saved_state(wall_s, sections),
    ) {
        Ok(()) => {
            stats.saves += 1;
            stats.last_success_unix_s = wall_s;
        }
        Err(e) => {
            stats.failures += 1;
            tracing::error!(error = %e, "state save failed; balances since the last save would be lost on a crash");
        }
    }
}

impl Workload {
    /// What the state file keeps of it, borrowed.
    fn saved(&self) -> SavedWorkloadRef<'_> {
        // Not yet seen since a restart: keep what was saved, unchanged.
        if let (false, Some(p)) = (self.seen, &self.pending) {
            return p.borrowed();
        }
        SavedWorkloadRef {
            profile: &self.profile.name,
            bucket: &self.bucket,
            cgroup: self.cgroup.as_deref(),
            cgroup_id: if self.is_running() { self.cgroup_id } else { 0 },
            usage_ns: self.last.usage_ns,
            accounted_at_boot_ns: self.last_at_ns,
            original_quota: self.original_quota.map(SavedQuota::from),
            container: self.container.as_ref().map(|c| c.name.as_str()),
        }
    }
}

/// The `workloads` map of the state file, borrowed from the agent: names in ascending byte
/// order, as the `BTreeMap` of [`State`] serializes them.
pub struct SavedWorkloads<'a>(Vec<&'a Workload>);

impl Serialize for SavedWorkloads<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for w in &self.0 {
            map.serialize_entry(&w.name, &w.saved())?;
        }
        map.end()
    }
}

impl Agent {
    /// Loads saved balances. Workloads are reconciled when their cgroups are first seen
    /// (same boot and same cgroup: the CPU used meanwhile is accounted; otherwise a stop at
    /// the save time and a start now). Saved workloads no longer configured are dropped.
    /// Returns the sections other layers own, for their owners (the daemon keeps them and
    /// hands them back at each save).
    pub fn restore(&mut self, mut state: State) -> Sections {
        let sections = std::mem::take(&mut state.extra);
        let same_boot = !state.boot_id.is_empty() && state.boot_id == self.boot_id;
        self.restored_at_s = state.saved_at_unix_s;
        // A launch limiter saved with another limit keeps its history under the new one.
        let mut limiter = state.launch_limiter;
        limiter.limit = self.config.launch_credit_limit;
        self.limiter = limiter;
        self.workloads.reserve(state.workloads.len());
        self.index.reserve(state.workloads.len());
        for (name, mut saved) in state.workloads {
            if self.spec_for_name(&name).is_none() {
                if let Some(spec) = self.saved_container_spec(&name, &saved) {
                    self.specs.push(spec);
                }
            }
            let Some(spec) = self.spec_for_name(&name) else {
                info!(workload = %name, "saved workload is no longer configured; its balance is dropped");
                continue;
            };
            let container = match &spec.source {
                Source::Container(c) => Some(Box::new(ContainerRun {
                    name: c.container.clone(),
                    cpu_limit: None,
                })),
                _ => None,
            };
            // `spec` borrows `self`: a transient copy to look up the shared one.
            let profile = spec.profile.clone();
            let profile = self.shared_profile(&profile);
            let mut bucket = saved.bucket.clone();
            if saved.profile != profile.name {
                info!(workload = %name, from = %saved.profile, to = %profile.name, "profile changed since the last run");
                bucket.earned = bucket.earned.min(profile.max_earned);
                bucket.surplus = bucket.surplus.min(profile.max_earned);
            }
            if !same_boot && bucket.is_running() {
                // Rebooted: it stopped (at the latest) when we last saved.
                bucket.stop(&profile, state.saved_at_unix_s);
                saved.cgroup_id = 0;
            }
            let i = self.insert(name, profile, bucket);
            let w = &mut self.workloads[i];
            w.original_quota = saved.original_quota.map(Quota::from);
            w.cgroup = saved.cgroup.clone();
            w.container = container;
            w.pending = Some(Box::new(saved));
        }
        sections
    }

    /// Everything worth saving, as of the last samples, borrowed: serializes exactly as
    /// [`Agent::snapshot`] does, without copying the workloads (the daemon's periodic save
    /// streams it to the file; see `state::save_ref`), with `sections` of the other layers.
    pub fn saved_state<'a>(
        &'a self,
        wall_s: u64,
        sections: &'a Sections,
    ) -> StateRef<'a, SavedWorkloads<'a>> {
        // The index holds every named workload once (released ones are out of it).
        let mut workloads: Vec<&Workload> = Vec::with_capacity(self.index.len());
        workloads.extend(self.index.values().filter_map(|&i| self.workloads.get(i)));
        workloads.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        StateRef {
            version: STATE_VERSION,
            boot_id: &self.boot_id,
            saved_at_unix_s: wall_s,
            launch_limiter: &self.limiter,
            workloads: SavedWorkloads(workloads),
            extra: sections,
        }
    }

    /// Everything worth saving, as of the last samples (an owned copy of [`Agent::saved_state`]).
    pub fn snapshot(&self, wall_s: u64, sections: &Sections) -> State {
        let v = self.saved_state(wall_s, sections);
        State {
            version: v.version,
            boot_id: v.boot_id.to_string(),
            saved_at_unix_s: v.saved_at_unix_s,
            launch_limiter: v.launch_limiter.clone(),
            workloads: v
                .workloads
                .0
                .iter()
                .map(|w| (w.name.clone(), w.saved().to_owned()))
                .collect(),
            extra: v.extra.clone(),
        }
    }
}
