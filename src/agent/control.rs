//! The control core: one credit bucket per workload, fed from the kernel's counters, and the
//! quota that follows from it. Time comes in as arguments (`now_ns` on a monotonic clock that
//! runs through restarts within one boot, `wall_s` for the model's stop/start rules), so the
//! same code runs in the daemon, in `burstd exec` and in tests on a fake clock.

use super::discover::{self, Discoverer, Found, Lookup};
use super::state::{SavedQuota, SavedWorkload, SavedWorkloadRef, State, StateRef, STATE_VERSION};
use crate::cgroup::{is_self_or_ancestor, Cgroup, Fit, Hierarchy, Quota, Sample, WriteOutcome};
use crate::config::{AgentConfig, ContainerSource, Source, WorkloadSpec};
use crate::credit::{
    time_to_exhaustion, Bucket, Credits, Family, LaunchLimiter, Mode, Policy, Profile, Rate,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use tracing::{debug, info, warn};

const MS: u64 = 1_000_000;
/// Never wake a workload sooner than this after its last sample.
const MIN_INTERVAL_NS: u64 = MS;

/// Counters of the agent's own health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub cgroup_write_errors: u64,
    pub cgroup_read_errors: u64,
    pub external_quota_changes: u64,
    /// Control files the cgroup handles keep open now (a gauge; set when scraped).
    pub cgroup_files_open: u64,
    /// Containers left alone because of their `burstd.*` labels.
    pub container_label_errors: u64,
}

/// Scales a cumulative raw quantity by `k/1000` without drift: the scaled total is computed
/// from the raw total each time, and only its growth is handed on.
#[derive(Clone, Copy, Debug, Default)]
struct Scaled {
    raw: u128,
    done: u128,
}

impl Scaled {
    fn add(&mut self, raw: u64, k_milli: u64) -> u64 {
        self.raw += raw as u128;
        let total = self.raw * k_milli as u128 / 1000;
        let delta = total - self.done;
        self.done = total;
        u64::try_from(delta).unwrap_or(u64::MAX)
    }
}

/// A managed workload at run time. There can be 10,000 of them in one `Vec`: keep it small
/// (shared profile, rarely used parts boxed); `size_of` is checked by a test.
pub struct Workload {
    pub name: String,
    /// Shared by every workload with the same profile (see `Agent::shared_profile`).
    pub profile: Arc<Profile>,
    pub bucket: Bucket,
    /// The cgroup path it was last seen at.
    pub cgroup: Option<String>,
    pub cgroup_id: u64,
    handle: Option<Box<dyn Cgroup>>,
    /// Last sample and when it was taken.
    pub last: Sample,
    pub last_at_ns: u64,
    usage_scale: Scaled,
    time_scale: Scaled,
    /// The quota this agent wrote last (None: nothing written yet).
    pub written: Option<Quota>,
    pub original_quota: Option<Quota>,
    /// Observed CPU rate over the last interval.
    pub usage_rate: Rate,
    /// How the last hold at baseline landed.
    pub last_landing: Option<Landing>,
    /// The throttling counters may have moved since they were last read: a quota was in force
    /// (ours or another writer's). While the quota is unlimited they cannot move, so a full
    /// sample skips reading them (v1: a second file, formatted by the kernel on each read).
    throttle_stale: bool,
    next_wake_ns: u64,
    last_drift_check_ns: u64,
    drift_logged: bool,
    refused_logged: bool,
    /// Saved position to reconcile with when the cgroup is first seen after a restart (boxed:
    /// only restored workloads have one, and only until their first rescan).
    pending: Option<Box<SavedWorkload>>,
    /// Its cgroup has been looked for since the agent started (until then a restored
    /// workload's saved state is kept as it was).
    pub seen: bool,
    /// A container instance's name and own CPU limit (boxed: most workloads are not one).
    pub container: Option<Box<ContainerRun>>,
}

/// What a container instance adds to a workload.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ContainerRun {
    pub name: String,
    /// The container's own CPU limit: the quota written is never above it.
    pub cpu_limit: Option<Rate>,
}

impl Workload {
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    /// Restored from the state file but its cgroup not yet seen since: its saved position is
    /// still to be reconciled, so its bucket must not change before that.
    pub fn awaiting_reconcile(&self) -> bool {
        !self.seen && self.pending.is_some()
    }

    pub fn ceiling(&self, policy: &Policy) -> Rate {
        self.bucket.ceiling(&self.profile, policy)
    }

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

    /// The ceiling in force: the model's, or the container's own limit when that is lower.
    pub fn ceiling_in_force(&self, policy: &Policy) -> Rate {
        let ceiling = self.ceiling(policy);
        match self.container.as_ref().and_then(|c| c.cpu_limit) {
            Some(limit) => ceiling.min(limit),
            None => ceiling,
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

/// How a hold landed: how far the balance went below zero before the cap was written, and how
/// long after the balance reached zero (estimated from the last interval's average rate, the
/// only thing known about when inside the interval it crossed zero). Real (unscaled) units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Landing {
    /// CPU time used beyond the balance (net of earnings) before the cap, in nanoseconds.
    pub overshoot_cpu_ns: u64,
    /// From the balance reaching zero to the sample that wrote the cap, in nanoseconds.
    pub late_ns: u64,
}

/// Events the caller may want to act on (save state at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Started(String),
    Stopped(String),
    Held(String),
    Released(String),
    Switched(String, Mode),
}

/// The landing of a hold decided by one step: the balance went from `before` to `overdrawn`
/// below zero over `dt_raw` real ns at time scale `k_milli`/1000.
fn landing(before: Credits, overdrawn: Credits, dt_raw: u64, k_milli: u64) -> Landing {
    let over = overdrawn.units().max(0) as u128;
    let above = before.units().max(0) as u128;
    let late_ns = if over == 0 {
        0
    } else {
        // Constant rate over the step: the part after zero is over / (above + over) of it.
        dt_raw as u128 * over / (above + over)
    };
    // Units are milli-credits/h × ns; one CPU-ns is 60,000 of them (on the scaled clock).
    let scaled_cpu_ns = over / 60_000;
    Landing {
        overshoot_cpu_ns: u64::try_from(scaled_cpu_ns * 1000 / k_milli.max(1) as u128)
            .unwrap_or(u64::MAX),
        late_ns: u64::try_from(late_ns).unwrap_or(u64::MAX),
    }
}

/// The whole agent's model of the host.
pub struct Agent {
    pub config: AgentConfig,
    specs: Vec<WorkloadSpec>,
    hierarchy: Box<dyn Hierarchy>,
    discover: Discoverer,
    pub workloads: Vec<Workload>,
    index: HashMap<String, usize>,
    wakes: BinaryHeap<Reverse<(u64, usize)>>,
    pub limiter: LaunchLimiter,
    pub health: Health,
    host_cpus: u32,
    /// Cgroup paths of burstd itself: never managed.
    own_cgroups: Vec<String>,
    boot_id: String,
    events: Vec<Event>,
    above_host_noted: bool,
    /// Save time of the state restored at start.
    restored_at_s: u64,
    /// Sections of the state file other layers own (the API's tokens and defaults), kept
    /// verbatim through restore and snapshot.
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The mode a new workload of a family starts in when its config gives no `mode`
    /// (set by the API's ModifyDefaultCreditSpecification).
    pub family_defaults: HashMap<Family, Mode>,
    /// One shared copy of each profile workloads use (all of a spec's have the same).
    profiles: Vec<Arc<Profile>>,
    /// The handle count the descriptor budget was last planned for.
    fd_planned: usize,
    /// The config-defined profiles, for container instances restored from the state file;
    /// `Some` when the `[containers]` source is on.
    containers: Option<BTreeMap<String, Profile>>,
    /// The container source has listed what runs since the start: restored instances it did
    /// not report stopped while burstd was away.
    containers_synced: bool,
}

/// Converts a ceiling to the quota that enforces it. At or above the host's CPU count the
/// kernel could not use more anyway, so it is written as no limit.
pub fn quota_for(ceiling: Rate, period_us: u64, host_cpus: u32) -> Quota {
    if ceiling >= Rate::cores(host_cpus) {
        return Quota::unlimited(period_us);
    }
    // The kernel's minimum quota is 1 ms. A baseline below 1 ms per period (under 1% of a
    // core at the default 100 ms period) gets a longer period instead — up to the kernel's
    // 1 s — so the cap is the baseline and not the 1 ms floor.
    let mut period = period_us;
    if ceiling.quota_us(period) < 1000 && ceiling > Rate::ZERO {
        let needed = (1000u128 * 60_000).div_ceil(ceiling.milli_credits_per_hour() as u128);
        period = (needed as u64).clamp(period_us, 1_000_000);
    }
    Quota::limited(ceiling.quota_us(period).max(1000), period)
}

impl Agent {
    pub fn new(
        config: AgentConfig,
        specs: Vec<WorkloadSpec>,
        hierarchy: Box<dyn Hierarchy>,
        discover: Discoverer,
        host_cpus: u32,
        own_cgroups: Vec<String>,
        boot_id: String,
    ) -> Agent {
        let limiter = LaunchLimiter::new(config.launch_credit_limit, crate::credit::limiter::DAY_S);
        Agent {
            config,
            specs,
            hierarchy,
            discover,
            workloads: Vec::new(),
            index: HashMap::new(),
            wakes: BinaryHeap::new(),
            limiter,
            health: Health::default(),
            host_cpus: host_cpus.max(1),
            own_cgroups,
            boot_id,
            events: Vec::new(),
            above_host_noted: false,
            restored_at_s: 0,
            extra: BTreeMap::new(),
            family_defaults: HashMap::new(),
            profiles: Vec::new(),
            fd_planned: 0,
            containers: None,
            containers_synced: false,
        }
    }

    /// Turns the `[containers]` source on (before [`Agent::restore`], so that saved container
    /// instances are kept). `custom`: the config-defined profiles a label may name.
    pub fn enable_containers(&mut self, custom: BTreeMap<String, Profile>) {
        self.containers = Some(custom);
    }

    pub fn specs(&self) -> &[WorkloadSpec] {
        &self.specs
    }

    pub fn host_cpus(&self) -> u32 {
        self.host_cpus
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn get(&self, name: &str) -> Option<&Workload> {
        self.index.get(name).map(|&i| &self.workloads[i])
    }

    /// Loads saved balances. Workloads are reconciled when their cgroups are first seen
    /// (same boot and same cgroup: the CPU used meanwhile is accounted; otherwise a stop at
    /// the save time and a start now). Saved workloads no longer configured are dropped.
    pub fn restore(&mut self, mut state: State) {
        self.extra = std::mem::take(&mut state.extra);
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
    }

    /// The spec of a saved container instance (stopped until the runtime reports it running),
    /// when the container source is on and its profile still exists.
    fn saved_container_spec(&self, name: &str, saved: &SavedWorkload) -> Option<WorkloadSpec> {
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
            profile,
        })
    }

    /// The shared copy of `profile` (one per distinct profile in use, not one per workload).
    fn shared_profile(&mut self, profile: &Profile) -> Arc<Profile> {
        if let Some(p) = self.profiles.iter().find(|p| ***p == *profile) {
            return p.clone();
        }
        // Profiles no workload uses any more (replaced by a reload) go.
        self.profiles.retain(|p| Arc::strong_count(p) > 1);
        let p = Arc::new(profile.clone());
        self.profiles.push(p.clone());
        p
    }

    fn spec_for_name(&self, name: &str) -> Option<&WorkloadSpec> {
        discover::spec_for(&self.specs, name)
    }

    fn insert(&mut self, name: String, profile: Arc<Profile>, bucket: Bucket) -> usize {
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
            throttle_stale: true,
            next_wake_ns: u64::MAX,
            last_drift_check_ns: 0,
            drift_logged: false,
            refused_logged: false,
            pending: None,
            seen: false,
            container: None,
        };
        let i = self.workloads.len();
        self.workloads.push(w);
        self.index.insert(name, i);
        i
    }

    fn ensure(&mut self, name: &str, spec: &WorkloadSpec) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let mode = match self.family_defaults.get(&spec.profile.family) {
            Some(&m) if !spec.mode_explicit && spec.profile.allows(m) => m,
            _ => spec.mode,
        };
        let bucket = Bucket::new_or_standard(&spec.profile, mode, spec.initial_credits);
        let profile = self.shared_profile(&spec.profile);
        self.insert(name.to_string(), profile, bucket)
    }

    /// Looks for every configured workload's cgroup: opens the ones that appeared (a start),
    /// leaves the ones that are gone to be noticed by their next sample (a stop).
    pub fn rescan(&mut self, now_ns: u64, wall_s: u64) {
        let specs = self.specs.clone();
        let mut to_open = Vec::new();
        for spec in &specs {
            let found = match self.discover.lookup(spec, &*self.hierarchy) {
                Ok(Lookup::Cgroups(found)) => found,
                Ok(Lookup::NotRunning) => {
                    let i = self.ensure(&spec.name, spec);
                    if self.workloads[i].is_running() {
                        // The source says it is gone; its sample will tell.
                        self.schedule(i, now_ns);
                    }
                    continue;
                }
                Err(e) => {
                    warn!(workload = %spec.name, error = %e, "cannot list cgroups");
                    continue;
                }
            };
            // Room for the new workloads at once: the first scan of 10,000 cgroups then sizes the
            // table exactly instead of doubling it 14 times (old and new buffers side by side).
            let new = found
                .iter()
                .filter(|f| !self.index.contains_key(&f.name))
                .count();
            if new > self.workloads.len() {
                self.workloads.reserve_exact(new);
            } else {
                self.workloads.reserve(new);
            }
            self.index.reserve(new);
            for Found { name, cgroup: path } in found {
                let i = self.ensure(&name, spec);
                let w = &self.workloads[i];
                if w.is_running() && w.cgroup.as_deref() == Some(path.as_str()) {
                    continue;
                }
                if w.is_running() {
                    // Moved to another cgroup (a unit restarted into a new one): stop, then start.
                    self.stop(i, wall_s);
                }
                to_open.push((i, path));
            }
        }
        self.fit_fd_budget(to_open.len());
        for (i, path) in to_open {
            self.open(i, &path, now_ns, wall_s);
        }
        // A workload that ran when the state was saved but whose cgroup is not there now
        // stopped while burstd was away: apply the stop (surplus charged, T2 credits lost).
        // Either way its saved state is now the live one (it can be switched, and is saved).
        let saved_at = self.restored_at_s;
        let wait_for_runtime = self.containers.is_some() && !self.containers_synced;
        for w in &mut self.workloads {
            if wait_for_runtime && w.container.is_some() {
                // The runtime has not listed its containers yet: this one may still run.
                continue;
            }
            if !w.seen && w.pending.is_some() {
                if w.bucket.is_running() {
                    let charged = w.bucket.stop(&w.profile, saved_at);
                    info!(workload = %w.name, charged = %charged, "workload stopped while burstd was not running");
                }
                w.pending = None;
                w.seen = true;
            }
        }
    }

    /// Control files the cgroup handles keep open now (see `cgroup::budget`).
    pub fn cgroup_files_open(&self) -> u64 {
        self.hierarchy.open_files() as u64
    }

    /// Plans the descriptor budget for the running handles plus `opening` new ones, and fits
    /// every running handle to it: all give back what the plan no longer allows before any
    /// claims room (see `cgroup::budget`). No syscalls unless a handle's files change.
    /// Skipped when nothing is to be opened and no handle went since the last plan.
    fn fit_fd_budget(&mut self, opening: usize) {
        let running = self.workloads.iter().filter(|w| w.is_running()).count();
        let planned = running + opening;
        if opening == 0 && planned == self.fd_planned {
            return;
        }
        self.fd_planned = planned;
        self.hierarchy.plan_handles(planned);
        for pass in [Fit::Release, Fit::Claim] {
            for handle in self.workloads.iter_mut().filter_map(|w| w.handle.as_mut()) {
                handle.fit_fds(pass);
            }
        }
    }

    fn open(&mut self, i: usize, path: &str, now_ns: u64, wall_s: u64) {
        if let Some(own) = self
            .own_cgroups
            .iter()
            .find(|own| is_self_or_ancestor(own, path))
        {
            let w = &mut self.workloads[i];
            if !w.refused_logged {
                warn!(workload = %w.name, cgroup = %path, own = %own,
                    "refusing to manage burstd's own cgroup or an ancestor of it");
                w.refused_logged = true;
            }
            return;
        }
        let mut handle = match self.hierarchy.open(path) {
            Ok(h) => h,
            Err(e) if e.is_gone() => return,
            Err(e) => {
                self.health.cgroup_read_errors += 1;
                warn!(workload = %self.workloads[i].name, cgroup = %path, error = %e, "cannot open cgroup");
                return;
            }
        };
        let sample = match handle.sample() {
            Ok(s) => s,
            Err(e) => {
                if !e.is_gone() {
                    self.health.cgroup_read_errors += 1;
                    warn!(workload = %self.workloads[i].name, cgroup = %path, error = %e, "cannot read cgroup");
                }
                return;
            }
        };
        let id = handle.id();
        let current = handle.read_quota().ok();
        let original = current.filter(|_| self.workloads[i].original_quota.is_none());
        let (profile, policy) = (self.workloads[i].profile.clone(), self.config.policy);
        let k = self.config.time_scale_milli;
        let w = &mut self.workloads[i];
        if let Some(q) = original {
            w.original_quota = Some(q);
        }
        let pending = w.pending.take();
        let resumed = match &pending {
            Some(saved)
                if saved.cgroup_id == id
                    && id != 0
                    && saved.cgroup.as_deref() == Some(path)
                    && w.bucket.is_running()
                    && sample.usage_ns >= saved.usage_ns =>
            {
                // Same boot, same cgroup: account what it used while we were away, exactly.
                let du = w.usage_scale.add(sample.usage_ns - saved.usage_ns, k);
                let dt = w
                    .time_scale
                    .add(now_ns.saturating_sub(saved.accounted_at_boot_ns), k);
                w.bucket.step_cpu(&profile, &policy, du, dt);
                true
            }
            _ => false,
        };
        if !resumed {
            if w.bucket.is_running() {
                // It ran in another cgroup (or another boot) when we last saw it.
                // It ran in another cgroup when we last saw it: that one stopped meanwhile.
                w.bucket.stop(&profile, wall_s);
            }
            w.bucket.start(&profile, &policy, wall_s, &mut self.limiter);
        }
        w.handle = Some(handle);
        w.cgroup = Some(path.to_string());
        w.cgroup_id = id;
        w.last = sample;
        w.last_at_ns = now_ns;
        w.written = None;
        // The throttling counters were just read; with no limit in force they cannot move (a
        // limit burstd writes marks them stale again). A scrape then need not open `cpu.stat`
        // of every workload at once (the first scrape at 10,000 took 160 ms).
        w.throttle_stale = !current.is_some_and(|q| q.quota_us.is_none());
        w.drift_logged = false;
        w.last_drift_check_ns = now_ns;
        w.seen = true;
        info!(
            workload = %w.name, cgroup = %path, profile = %w.profile.name, mode = %w.bucket.mode,
            balance = %w.bucket.balance(), surplus = %w.bucket.surplus,
            "{}", if resumed { "workload resumed after agent restart" } else { "workload started" }
        );
        self.events
            .push(Event::Started(self.workloads[i].name.clone()));
        self.apply(i);
        self.schedule_next(i, now_ns);
    }

    fn stop(&mut self, i: usize, wall_s: u64) {
        let w = &mut self.workloads[i];
        if w.handle.take().is_none() {
            return;
        }
        let charged = w.bucket.stop(&w.profile, wall_s);
        w.written = None;
        w.usage_rate = Rate::ZERO;
        info!(workload = %w.name, balance = %w.bucket.balance(), charged = %charged, "workload stopped");
        self.events.push(Event::Stopped(w.name.clone()));
    }

    fn schedule(&mut self, i: usize, at_ns: u64) {
        let w = &mut self.workloads[i];
        if at_ns < w.next_wake_ns {
            w.next_wake_ns = at_ns;
            self.wakes.push(Reverse((at_ns, i)));
        }
    }

    /// When this workload next needs a look: at the latest after `max_interval`, sooner when
    /// its balance can reach zero before that at its full ceiling. A workload with a full
    /// bucket that is not spending waits `full_interval`: its looks only confirm that earnings
    /// are discarded (see docs/semantics.md for the bound this puts on a burst's first look).
    fn schedule_next(&mut self, i: usize, now_ns: u64) {
        let k = self.config.time_scale_milli.max(1);
        let policy = self.config.policy;
        let w = &self.workloads[i];
        let full = w.bucket.earned >= w.profile.max_earned
            && !w.bucket.surplus.is_positive()
            && w.usage_rate <= w.profile.earn_rate;
        let max = if full {
            self.config.full_interval_ms
        } else {
            self.config.max_interval_ms
        } * MS;
        let mut interval = max;
        if w.bucket.mode == Mode::Standard && !w.bucket.held {
            let ceiling = w.ceiling(&policy);
            if let Some(scaled) = time_to_exhaustion(&w.bucket, &w.profile, ceiling) {
                let real = (scaled as u128 * 1000 / k as u128) as u64;
                interval = interval.min(real.max(MIN_INTERVAL_NS));
            }
        }
        let at = if interval == max {
            // Routine looks are coalesced on a grid of max_interval/10 (rounded down, so the
            // interval never exceeds max_interval): 1,000 idle workloads then cost ten loop
            // turns a second, not a thousand. Predicted exhaustions keep their exact time.
            let grid = (max / 10).max(MS);
            let at = (now_ns.saturating_add(max) / grid) * grid;
            if at > now_ns {
                at
            } else {
                now_ns.saturating_add(max)
            }
        } else {
            now_ns.saturating_add(interval)
        };
        let w = &mut self.workloads[i];
        w.next_wake_ns = at;
        self.wakes.push(Reverse((at, i)));
    }

    /// The earliest time any workload needs a look, if any.
    pub fn next_wake(&mut self) -> Option<u64> {
        while let Some(&Reverse((at, i))) = self.wakes.peek() {
            if self
                .workloads
                .get(i)
                .is_some_and(|w| w.next_wake_ns == at && w.is_running())
            {
                return Some(at);
            }
            self.wakes.pop();
        }
        None
    }

    /// Samples every workload that is due at `now_ns`. Returns how many were sampled.
    pub fn tick(&mut self, now_ns: u64, wall_s: u64) -> usize {
        let mut n = 0;
        while let Some(&Reverse((at, i))) = self.wakes.peek() {
            if at > now_ns {
                break;
            }
            self.wakes.pop();
            let w = &self.workloads[i];
            if w.next_wake_ns != at || !w.is_running() {
                continue;
            }
            // Routine looks read only the usage counter; throttling counters are read when
            // someone looks at them (sample_all: scrapes, status, saves at exit).
            self.sample(i, now_ns, wall_s, false);
            n += 1;
        }
        n
    }

    /// Samples every running workload now (before a save, at exit).
    pub fn sample_all(&mut self, now_ns: u64, wall_s: u64) {
        for i in 0..self.workloads.len() {
            if self.workloads[i].is_running() {
                self.sample(i, now_ns, wall_s, true);
            }
        }
    }

    /// Samples workload `i` and steps its bucket; `full` also reads the throttling counters
    /// (on cgroup v1 a second file: half the cost of a routine look).
    fn sample(&mut self, i: usize, now_ns: u64, wall_s: u64, full: bool) {
        let k = self.config.time_scale_milli;
        let policy = self.config.policy;
        let w = &mut self.workloads[i];
        let Some(handle) = w.handle.as_mut() else {
            return;
        };
        let unlimited = matches!(w.written, Some(q) if q.quota_us.is_none());
        let read_throttling = full && (w.throttle_stale || !unlimited);
        let read = if read_throttling {
            handle.sample().inspect(|_| w.throttle_stale = !unlimited)
        } else {
            handle
                .sample_usage()
                .map(|usage_ns| Sample { usage_ns, ..w.last })
        };
        let s = match read {
            Ok(s) => s,
            Err(e) if e.is_gone() => {
                self.stop(i, wall_s);
                return;
            }
            Err(e) => {
                self.health.cgroup_read_errors += 1;
                warn!(workload = %w.name, error = %e, "cannot sample cgroup");
                self.schedule_next(i, now_ns);
                return;
            }
        };
        let dt_raw = now_ns.saturating_sub(w.last_at_ns);
        // A counter never goes backwards in one cgroup; if it does, rebase without spending.
        let du_raw = s.usage_ns.saturating_sub(w.last.usage_ns);
        if dt_raw > 0 {
            w.usage_rate = Rate::ONE_CORE.scale(du_raw, dt_raw);
        }
        let du = w.usage_scale.add(du_raw, k);
        let dt = w.time_scale.add(dt_raw, k);
        let was_held = w.bucket.held;
        let before = w.bucket.balance();
        let step = w.bucket.step_cpu(&w.profile, &policy, du, dt);
        if w.bucket.held && !was_held {
            w.last_landing = Some(landing(before, step.overdrawn, dt_raw, k));
        }
        w.last = s;
        w.last_at_ns = now_ns;
        if w.bucket.held != was_held {
            let name = w.name.clone();
            if w.bucket.held {
                let l = w.last_landing.unwrap_or_default();
                info!(workload = %name, balance = %w.bucket.balance(), baseline_cores = w.profile.baseline().as_cores(),
                    overshoot_cpu_ms = l.overshoot_cpu_ns as f64 / 1e6, late_ms = l.late_ns as f64 / 1e6,
                    "credits exhausted: held at baseline");
                self.events.push(Event::Held(name));
            } else {
                info!(workload = %name, balance = %w.bucket.balance(), "credits available: released from baseline");
                self.events.push(Event::Released(name));
            }
        }
        if now_ns.saturating_sub(self.workloads[i].last_drift_check_ns)
            >= self.config.drift_check_ms * MS
        {
            self.check_drift(i, now_ns);
        }
        self.apply(i);
        self.schedule_next(i, now_ns);
    }

    /// Another writer (systemd on daemon-reload, a container runtime) may have changed the
    /// quota: read it back now and then, and put ours back.
    fn check_drift(&mut self, i: usize, now_ns: u64) {
        let w = &mut self.workloads[i];
        w.last_drift_check_ns = now_ns;
        let (Some(handle), Some(ours)) = (w.handle.as_mut(), w.written) else {
            return;
        };
        if ours.quota_us.is_none() && matches!(handle.quota_is_unlimited(), Ok(true)) {
            return;
        }
        match handle.read_quota() {
            Ok(q) if q != ours => {
                self.health.external_quota_changes += 1;
                if !w.drift_logged {
                    warn!(workload = %w.name, ours = ?ours, found = ?q,
                        "another writer changed the CPU quota; re-applying burstd's value");
                    w.drift_logged = true;
                } else {
                    debug!(workload = %w.name, found = ?q, "quota changed again by another writer");
                }
                handle.forget_written();
                w.written = None;
                w.throttle_stale = true;
            }
            Ok(_) => {}
            Err(e) if e.is_gone() => {}
            Err(e) => {
                self.health.cgroup_read_errors += 1;
                debug!(workload = %w.name, error = %e, "cannot read quota");
            }
        }
    }

    /// Writes the workload's quota if it changed.
    fn apply(&mut self, i: usize) {
        let policy = self.config.policy;
        let period = self.config.period_us;
        let host = self.host_cpus;
        let w = &mut self.workloads[i];
        let ceiling = w.ceiling_in_force(&policy);
        if ceiling > Rate::cores(host) && !self.above_host_noted {
            info!(workload = %w.name, vcpus = w.profile.vcpus, host_cpus = host,
                "profile has more vCPUs than this host has CPUs; it can use at most the host");
            self.above_host_noted = true;
        }
        let q = quota_for(ceiling, period, host);
        if w.written == Some(q) {
            return;
        }
        let Some(handle) = w.handle.as_mut() else {
            return;
        };
        if q.quota_us.is_some() {
            w.throttle_stale = true;
        }
        match handle.write_quota(q) {
            Ok(WriteOutcome::Written) | Ok(WriteOutcome::Unchanged) => w.written = Some(q),
            Err(e) if e.is_gone() => {}
            Err(e) => {
                self.health.cgroup_write_errors += 1;
                warn!(workload = %w.name, quota = ?q, error = %e, "cannot write CPU quota");
            }
        }
    }

    /// A container of the `[containers]` source runs (it started, was found at a resync, or
    /// moved to a new process): its instance `spec.name` starts in its cgroup, keeping the
    /// instance's balance. Returns false when the name belongs to a configured workload.
    pub fn container_started(&mut self, spec: WorkloadSpec, now_ns: u64, wall_s: u64) -> bool {
        let Source::Container(c) = &spec.source else {
            return false;
        };
        let (container, path) = match &c.cgroup {
            Some(p) => (c.container.clone(), p.clone()),
            None => return false,
        };
        let run = ContainerRun {
            name: container,
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

    /// Stops workload `name` now (its cgroup is about to be removed, as at the end of
    /// `burstd exec`): surplus is charged and the profile's stop rules apply, exactly as when
    /// its cgroup disappears. Take a last sample first. Returns whether it was running.
    pub fn stop_workload(&mut self, name: &str, wall_s: u64) -> bool {
        let Some(&i) = self.index.get(name) else {
            return false;
        };
        let running = self.workloads[i].is_running();
        self.stop(i, wall_s);
        running
    }

    /// Switches a workload's mode (config reload or the API). Returns the credits charged.
    pub fn switch_mode(
        &mut self,
        name: &str,
        mode: Mode,
        now_ns: u64,
        wall_s: u64,
    ) -> Result<Credits, crate::credit::BucketError> {
        let Some(&i) = self.index.get(name) else {
            return Ok(Credits::ZERO);
        };
        if self.workloads[i].is_running() {
            // Account up to now under the old mode first.
            self.sample(i, now_ns, wall_s, true);
        }
        let policy = self.config.policy;
        let w = &mut self.workloads[i];
        let charged = w.bucket.switch(&w.profile, &policy, mode)?;
        info!(workload = %w.name, mode = %mode, charged = %charged, balance = %w.bucket.balance(), "credit mode switched");
        self.events.push(Event::Switched(name.to_string(), mode));
        self.apply(i);
        self.schedule_next(i, now_ns);
        Ok(charged)
    }

    /// Applies a new configuration without losing any balance: changed modes are switched,
    /// changed profiles replace the old ones (balances clamped to the new limits), removed
    /// workloads are released (their quota restored or kept as `on_exit` says).
    pub fn reconfigure(
        &mut self,
        config: AgentConfig,
        specs: Vec<WorkloadSpec>,
        now_ns: u64,
        wall_s: u64,
    ) {
        self.sample_all(now_ns, wall_s);
        // Container instances come from the runtime, not the file: they stay.
        let mut specs = specs;
        specs.extend(
            self.specs
                .iter()
                .filter(|s| matches!(s.source, Source::Container(_)))
                .filter(|c| !specs.iter().any(|s| s.name == c.name))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let old_specs = std::mem::replace(&mut self.specs, specs);
        self.limiter.limit = config.launch_credit_limit;
        let rescale = self.config.time_scale_milli != config.time_scale_milli;
        self.config = config;
        let names: Vec<String> = self.workloads.iter().map(|w| w.name.clone()).collect();
        for name in names {
            let Some(&i) = self.index.get(&name) else {
                continue;
            };
            let Some(spec) = self.spec_for_name(&name).cloned() else {
                self.release(i);
                continue;
            };
            let profile = if *self.workloads[i].profile != spec.profile {
                Some(self.shared_profile(&spec.profile))
            } else {
                None
            };
            let w = &mut self.workloads[i];
            if rescale {
                w.usage_scale = Scaled::default();
                w.time_scale = Scaled::default();
            }
            if let Some(profile) = profile {
                w.profile = profile;
                w.bucket.earned = w.bucket.earned.min(w.profile.max_earned);
                w.bucket.surplus = w.bucket.surplus.min(w.profile.max_earned);
            }
            let old_mode = old_specs
                .iter()
                .find(|s| s.name == spec.name)
                .map(|s| s.mode);
            if old_mode != Some(spec.mode) && w.bucket.mode != spec.mode {
                if let Err(e) = self.switch_mode(&name, spec.mode, now_ns, wall_s) {
                    warn!(workload = %name, error = %e, "cannot switch mode");
                }
            }
            if self.workloads[i].is_running() {
                self.apply(i);
                self.schedule_next(i, now_ns);
            }
        }
        self.rescan(now_ns, wall_s);
    }

    /// Stops managing workload `i`: applies `on_exit` to its cgroup and forgets it.
    fn release(&mut self, i: usize) {
        let restore = self.config.on_exit == crate::config::OnExit::Restore;
        let w = &mut self.workloads[i];
        info!(workload = %w.name, "no longer configured; released");
        if let (true, Some(h), Some(q)) = (restore, w.handle.as_mut(), w.original_quota) {
            h.forget_written();
            if let Err(e) = h.write_quota(q) {
                warn!(workload = %w.name, error = %e, "cannot restore the original quota");
            }
        }
        w.handle = None;
        self.index.remove(&w.name);
        w.name = String::new();
    }

    /// At exit: restores every cgroup's original quota if `on_exit = "restore"`.
    pub fn on_exit(&mut self) {
        if self.config.on_exit != crate::config::OnExit::Restore {
            return;
        }
        for w in &mut self.workloads {
            if let (Some(h), Some(q)) = (w.handle.as_mut(), w.original_quota) {
                h.forget_written();
                match h.write_quota(q) {
                    Ok(_) => debug!(workload = %w.name, quota = ?q, "original quota restored"),
                    Err(e) if e.is_gone() => {}
                    Err(e) => {
                        warn!(workload = %w.name, error = %e, "cannot restore the original quota")
                    }
                }
            }
        }
    }

    /// Everything worth saving, as of the last samples, borrowed: serializes exactly as
    /// [`Agent::snapshot`] does, without copying the workloads (the daemon's periodic save
    /// streams it to the file; see `state::save_ref`).
    pub fn saved_state(&self, wall_s: u64) -> StateRef<'_, SavedWorkloads<'_>> {
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
            extra: &self.extra,
        }
    }

    /// Everything worth saving, as of the last samples (an owned copy of [`Agent::saved_state`]).
    pub fn snapshot(&self, wall_s: u64) -> State {
        let v = self.saved_state(wall_s);
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
}
