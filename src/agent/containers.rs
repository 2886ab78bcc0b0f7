//! The agent's side of the `[containers]` source: a container instance is a workload with the
//! `Container` source, named after its instance id, started and stopped as the runtime
//! reports, kept (with its balance) while its container is stopped, and capped at the lower
//! of its ceiling and the container's own CPU limit.

use super::control::Agent;
use super::state::SavedWorkload;
use super::workload::ContainerRun;
use crate::config::{ContainerSource, Source, WorkloadSpec};
use crate::credit::{Credits, Profile, Rate};
use std::collections::BTreeMap;
use tracing::{info, warn};

impl Agent {
    /// Turns the `[containers]` source on (before [`Agent::restore`], so that saved container
    /// instances are kept). `custom`: the config-defined profiles a label may name.
    pub fn enable_containers(&mut self, custom: BTreeMap<String, Profile>) {
        self.containers = Some(custom);
    }

    /// The spec of a saved container instance (stopped until the runtime reports it running),
    /// when the container source is on and its profile still exists.
    pub(super) fn saved_container_spec(
        &self,
        name: &str,
        saved: &SavedWorkload,
    ) -> Option<WorkloadSpec> {
        let custom = self.containers.as_ref()?;
        let container = saved.container.clone()?;
        let profile = custom
            .get(&saved.profile)
            .cloned()
            .or_else(|| crate::credit::builtin_profile(&saved.profile))?;
        Some(WorkloadSpec {
            name: name.to_string(),
            source: Source::Container(ContainerSource {
                container,
                cgroup: None,
                cpu_limit: None,
            }),
            mode: saved.bucket.mode,
            mode_explicit: true,
            initial_credits: Credits::ZERO,
            record: false,
            profile,
        })
    }

    /// A container of the `[containers]` source (re)started, or was found running at a
    /// resync: its instance `spec.name` starts in its cgroup, keeping the instance's balance.
    /// Returns false when the name belongs to a configured workload.
    pub fn container_started(&mut self, spec: WorkloadSpec, now_ns: u64, wall_s: u64) -> bool {
        let Source::Container(c) = &spec.source else {
            return false;
        };
        let Some(path) = c.cgroup.clone() else {
            return false;
        };
        let run = ContainerRun {
            name: c.container.clone(),
            cpu_limit: c.cpu_limit,
        };
        match self.specs.iter().position(|s| s.name == spec.name) {
            Some(k) if !matches!(self.specs[k].source, Source::Container(_)) => {
                warn!(instance = %spec.name, container = %run.name,
                    "a configured workload has this name; the container is left alone (set burstd.instance-id)");
                return false;
            }
            Some(k) => self.specs[k] = spec.clone(),
            None => self.specs.push(spec.clone()),
        }
        let i = self.ensure(&spec.name, &spec);
        if *self.workloads[i].profile != spec.profile {
            // A re-created container may name another profile: as a config reload would.
            let profile = self.shared_profile(&spec.profile);
            let w = &mut self.workloads[i];
            info!(workload = %w.name, from = %w.profile.name, to = %profile.name, "profile changed");
            w.profile = profile;
            w.bucket.earned = w.bucket.earned.min(w.profile.max_earned);
            w.bucket.surplus = w.bucket.surplus.min(w.profile.max_earned);
        }
        self.workloads[i].container = Some(Box::new(run));
        // The source reports a container only when it (re)starts: if the instance runs, this is
        // a restart (`docker restart` keeps the cgroup path, in a new cgroup): stop, then start.
        if self.workloads[i].is_running() {
            self.sample(i, now_ns, wall_s, true);
            self.stop(i, wall_s);
        }
        self.fit_fd_budget(1);
        self.open(i, &path, now_ns, wall_s);
        true
    }

    /// A container instance stopped (or its container went): a last sample, then a stop with
    /// its profile's rules. The instance and its balance stay (T3 keeps its credits).
    pub fn container_stopped(&mut self, instance: &str, now_ns: u64, wall_s: u64) {
        if let Some(spec) = self.specs.iter_mut().find(|s| s.name == instance) {
            if let Source::Container(c) = &mut spec.source {
                c.cgroup = None;
            }
        }
        let Some(&i) = self.index.get(instance) else {
            return;
        };
        if self.workloads[i].is_running() {
            self.sample(i, now_ns, wall_s, true);
            self.stop(i, wall_s);
        }
    }

    /// A container's own CPU limit changed (`docker update --cpus`).
    pub fn container_limit(&mut self, instance: &str, cpu_limit: Option<Rate>) {
        if let Some(spec) = self.specs.iter_mut().find(|s| s.name == instance) {
            if let Source::Container(c) = &mut spec.source {
                c.cpu_limit = cpu_limit;
            }
        }
        let Some(&i) = self.index.get(instance) else {
            return;
        };
        if let Some(c) = self.workloads[i].container.as_mut() {
            c.cpu_limit = cpu_limit;
        }
        self.apply(i);
    }

    /// The container source has listed what runs: restored instances it did not report are
    /// stopped since the last save (surplus charged, T2 credits lost), as for any workload
    /// whose cgroup is gone after a restart.
    pub fn containers_synced(&mut self, now_ns: u64, wall_s: u64) {
        if !self.containers_synced {
            self.containers_synced = true;
            self.rescan(now_ns, wall_s);
        }
    }

    /// Counts a container left alone because of its labels.
    pub fn container_label_error(&mut self) {
        self.health.container_label_errors += 1;
    }
}
