//! The control core: one credit bucket per workload, fed from the kernel's counters, and the
//! quota that follows from it. Time comes in as arguments (`now_ns` on a monotonic clock that
//! runs through restarts within one boot, `wall_s` for the model's stop/start rules), so the
//! same code runs in the daemon, in `burstd exec` and in tests on a fake clock.
//!
//! The [`Agent`] and its small face live here; its work is split by concern: `lifecycle`
//! (rescan, start, stop, release, reconfigure, exit), `sampling` (looks, model steps, quota
//! writes, drift), `persist` (restore and save), and the pure `decide` functions they use.

use super::decide::Scaled;
use super::discover::{self, Discoverer};
use super::workload::{Health, Recorded, Workload, WorkloadEvent};
use crate::cgroup::{Hierarchy, Sample};
use crate::config::{AgentConfig, WorkloadSpec};
use crate::credit::{Bucket, Family, LaunchLimiter, Mode, Profile, Rate};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// What an agent is built from.
pub struct AgentParts {
    pub config: AgentConfig,
    pub specs: Vec<WorkloadSpec>,
    /// The cgroup tree (a real layout's, or an in-memory one in tests).
    pub hierarchy: Box<dyn Hierarchy>,
    /// How specs become cgroups.
    pub discover: Discoverer,
    pub host_cpus: u32,
    /// Cgroup paths of burstd itself: never managed.
    pub own_cgroups: Vec<String>,
    /// This boot's id: a saved state from the same boot is resumed exactly.
    pub boot_id: String,
}

/// The whole agent's model of the host.
pub struct Agent {
    pub(super) config: AgentConfig,
    pub(super) specs: Vec<WorkloadSpec>,
    pub(super) hierarchy: Box<dyn Hierarchy>,
    pub(super) discover: Discoverer,
    pub(super) workloads: Vec<Workload>,
    pub(super) index: HashMap<String, usize>,
    /// Slots of released or forgotten workloads, reused by the next new one: the table
    /// never grows past the most workloads known at once (reload cycles, glob churn).
    pub(super) free: Vec<usize>,
    pub(super) wakes: BinaryHeap<Reverse<(u64, usize)>>,
    pub(super) limiter: LaunchLimiter,
    pub(super) health: Health,
    /// (name, cgroup) refused at the last rescan: the name was another cgroup's.
    pub(super) refused_names: std::collections::BTreeSet<(String, String)>,
    pub(super) host_cpus: u32,
    /// Cgroup paths of burstd itself: never managed.
    pub(super) own_cgroups: Vec<String>,
    pub(super) boot_id: String,
    pub(super) events: Vec<WorkloadEvent>,
    /// Intervals of recorded workloads since the last [`Agent::take_recorded`].
    pub(super) recorded: Vec<Recorded>,
    pub(super) above_host_noted: bool,
    /// Save time of the state restored at start.
    pub(super) restored_at_s: u64,
    /// The mode a new workload of a family starts in when its config gives no `mode`: an
    /// input, set by whoever owns the defaults (the API's ModifyDefaultCreditSpecification).
    pub(super) family_defaults: HashMap<Family, Mode>,
    /// One shared copy of each profile workloads use (all of a spec's have the same).
    pub(super) profiles: Vec<Arc<Profile>>,
    /// The handle count the descriptor budget was last planned for.
    pub(super) fd_planned: usize,
    /// The config-defined profiles, for container instances restored from the state file;
    /// `Some` when the `[containers]` source is on (see `agent::containers`).
    pub(super) containers: Option<std::collections::BTreeMap<String, Profile>>,
    /// The container source has listed what runs since the start.
    pub(super) containers_synced: bool,
}

impl Agent {
    pub fn new(parts: AgentParts) -> Agent {
        let AgentParts {
            config,
            specs,
            hierarchy,
            discover,
            host_cpus,
            own_cgroups,
            boot_id,
        } = parts;
        let limiter = LaunchLimiter::new(config.launch_credit_limit, crate::credit::limiter::DAY_S);
        Agent {
            config,
            specs,
            hierarchy,
            discover,
            workloads: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
            wakes: BinaryHeap::new(),
            limiter,
            health: Health::default(),
            refused_names: Default::default(),
            host_cpus: host_cpus.max(1),
            own_cgroups,
            boot_id,
            events: Vec::new(),
            recorded: Vec::new(),
            above_host_noted: false,
            restored_at_s: 0,
            family_defaults: HashMap::new(),
            profiles: Vec::new(),
            fd_planned: 0,
            containers: None,
            containers_synced: false,
        }
    }

    pub fn specs(&self) -> &[WorkloadSpec] {
        &self.specs
    }

    pub fn host_cpus(&self) -> u32 {
        self.host_cpus
    }

    /// Whether workload `name` is recorded (`record = true`).
    pub fn records(&self, name: &str) -> bool {
        self.get(name).is_some_and(|w| w.record)
    }

    /// Recorded workloads' intervals since the last call (`record = true`).
    pub fn take_recorded(&mut self) -> Vec<Recorded> {
        std::mem::take(&mut self.recorded)
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<WorkloadEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn get(&self, name: &str) -> Option<&Workload> {
        self.index.get(name).map(|&i| &self.workloads[i])
    }

    /// The modes new workloads of these families start in when their config gives no `mode`
    /// (the others: their profile's default).
    pub fn set_family_defaults(&mut self, defaults: HashMap<Family, Mode>) {
        self.family_defaults = defaults;
    }

    /// Its settings (the `[agent]` section in force).
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Its own health counters (errors, drift).
    pub fn health(&self) -> Health {
        self.health
    }

    /// Every managed workload, running or not; released ones are not among them.
    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.workloads.iter().filter(|w| !w.name.is_empty())
    }

    /// Number of workloads running and of those held at baseline.
    pub fn counts(&self) -> (usize, usize) {
        let running = self.workloads.iter().filter(|w| w.is_running());
        let (mut n, mut held) = (0, 0);
        for w in running {
            n += 1;
            held += usize::from(w.bucket.held);
        }
        (n, held)
    }

    /// The shared copy of `profile` (one per distinct profile in use, not one per workload).
    pub(super) fn shared_profile(&mut self, profile: &Profile) -> Arc<Profile> {
        if let Some(p) = self.profiles.iter().find(|p| ***p == *profile) {
            return p.clone();
        }
        // Profiles no workload uses any more (replaced by a reload) go.
        self.profiles.retain(|p| Arc::strong_count(p) > 1);
        let p = Arc::new(profile.clone());
        self.profiles.push(p.clone());
        p
    }

    pub(super) fn spec_for_name(&self, name: &str) -> Option<&WorkloadSpec> {
        discover::spec_for(&self.specs, name)
    }

    pub(super) fn insert(&mut self, name: String, profile: Arc<Profile>, bucket: Bucket) -> usize {
        let w = Workload {
            name: name.clone(),
            profile,
            bucket,
            cgroup: None,
            cgroup_id: 0,
            handle: None,
            last: Sample::default(),
            last_at_ns: 0,
            usage_scale: Scaled::default(),
            time_scale: Scaled::default(),
            written: None,
            original_quota: None,
            usage_rate: Rate::ZERO,
            last_landing: None,
            usage_counter_resets: 0,
            throttle_stale: true,
            next_wake_ns: u64::MAX,
            last_drift_check_ns: 0,
            drift_logged: false,
            refused_logged: false,
            usage_distrusted: false,
            record: false,
            pending: None,
            seen: false,
            container: None,
        };
        let i = match self.free.pop() {
            Some(i) => {
                // A stale wake left in the heap for the old tenant does not match: the new
                // one's `next_wake_ns` starts unset.
                self.workloads[i] = w;
                i
            }
            None => {
                self.workloads.push(w);
                self.workloads.len() - 1
            }
        };
        self.index.insert(name, i);
        i
    }

    pub(super) fn ensure(&mut self, name: &str, spec: &WorkloadSpec) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let mode = match self.family_defaults.get(&spec.profile.family) {
            Some(&m) if !spec.mode_explicit && spec.profile.allows(m) => m,
            _ => spec.mode,
        };
        let bucket = Bucket::new_or_standard(&spec.profile, mode, spec.initial_credits);
        let profile = self.shared_profile(&spec.profile);
        let i = self.insert(name.to_string(), profile, bucket);
        self.workloads[i].record = spec.record;
        i
    }
}
