//! The agent's workload lifecycle: finding cgroups (rescan), starting and resuming a
//! workload on its cgroup, stopping it, switching its mode, applying a new configuration,
//! releasing what is no longer configured, and what is left behind at exit.

use super::control::Agent;
use super::decide::{self, Scaled};
use super::discover::{Found, Lookup};
use super::workload::WorkloadEvent;
use crate::cgroup::{is_self_or_ancestor, Fit, Quota};
use crate::config::{AgentConfig, Source, WorkloadSpec};
use crate::credit::{Credits, Mode, Rate};
use std::collections::{BTreeSet, HashMap};
use tracing::{debug, info, warn};

impl Agent {
    /// Looks for every configured workload's cgroup: opens the ones that appeared (a start),
    /// leaves the ones that are gone to be noticed by their next sample (a stop).
    pub fn rescan(&mut self, now_ns: u64, wall_s: u64) {
        let specs = self.specs.clone();
        let mut to_open = Vec::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        let mut refused: BTreeSet<(String, String)> = BTreeSet::new();
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
            // A name is one workload on one cgroup. The cgroup a running workload is on keeps
            // its name; any other cgroup that derives the same name is refused, not started
            // in turn (which would flap between the two and grant launch credits each time).
            let mut found = found;
            found.sort_by_key(|f| !self.runs_on(&f.name, &f.cgroup));
            for Found { name, cgroup: path } in found {
                match claimed.get(&name) {
                    Some(first) if *first != path => {
                        if refused.insert((name.clone(), path.clone()))
                            && !self.refused_names.contains(&(name.clone(), path.clone()))
                        {
                            self.health.name_collisions += 1;
                            warn!(workload = %name, cgroup = %path, managed = %first,
                                "refusing a cgroup whose workload name another cgroup already has; \
                                 rename the cgroup or narrow the match");
                        }
                        continue;
                    }
                    Some(_) => continue,
                    None => {
                        claimed.insert(name.clone(), path.clone());
                    }
                }
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
        // Refusals still in force; one that ended (a cgroup gone) is logged again if it comes back.
        self.refused_names = refused;
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
        self.forget_stopped(wall_s);
    }

    /// Whether the workload called `name` runs on `cgroup` now.
    fn runs_on(&self, name: &str, cgroup: &str) -> bool {
        self.index.get(name).is_some_and(|&i| {
            let w = &self.workloads[i];
            w.is_running() && w.cgroup.as_deref() == Some(cgroup)
        })
    }

    /// The cgroups refused at the last rescan because their workload name was taken, as
    /// (name, refused cgroup), for `burstd check` and the logs.
    pub fn refused_names(&self) -> &BTreeSet<(String, String)> {
        &self.refused_names
    }

    /// Plans the descriptor budget for the running handles plus `opening` new ones, and fits
    /// every running handle to it: all give back what the plan no longer allows before any
    /// claims room (see `cgroup::budget`). No syscalls unless a handle's files change.
    /// Skipped when nothing is to be opened and no handle went since the last plan.
    pub(super) fn fit_fd_budget(&mut self, opening: usize) {
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

    pub(super) fn open(&mut self, i: usize, path: &str, now_ns: u64, wall_s: u64) {
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
        let (profile, policy) = (self.workloads[i].profile.clone(), self.config.policy);
        let original = current
            .filter(|_| self.workloads[i].original_quota.is_none())
            .map(|q| {
                if decide::is_own_hold(q, &profile, self.config.period_us, self.host_cpus) {
                    warn!(workload = %self.workloads[i].name, cgroup = %path, quota = ?q,
                        "the cgroup's quota is burstd's own baseline hold (an earlier burstd's, whose state is gone): \
                         its original is taken as no limit, restored at exit");
                    Quota::unlimited(q.period_us)
                } else {
                    q
                }
            });
        let k = self.config.time_scale_milli;
        let w = &mut self.workloads[i];
        if let Some(q) = original {
            w.original_quota = Some(q);
        }
        let pending = w.pending.take();
        let mut zeroed_while_away = false;
        let resumed = match &pending {
            Some(saved)
                if saved.cgroup_id == id
                    && id != 0
                    && saved.cgroup.as_deref() == Some(path)
                    && w.bucket.is_running() =>
            {
                // Same boot, same cgroup: account what it used while we were away, exactly;
                // unless its counter went backwards meanwhile (zeroed by its owner): then at
                // the ceiling burstd enforces, as at a look (docs/semantics.md).
                let dt_raw = now_ns.saturating_sub(saved.accounted_at_boot_ns);
                let du_raw = match sample.usage_ns.checked_sub(saved.usage_ns) {
                    Some(du) => du,
                    None => {
                        zeroed_while_away = true;
                        let q = decide::quota_for(
                            w.ceiling_in_force(&policy),
                            self.config.period_us,
                            self.host_cpus,
                        );
                        decide::charge_for_backwards_counter(Some(q), self.host_cpus, dt_raw)
                    }
                };
                let du = w.usage_scale.add(du_raw, k);
                let dt = w.time_scale.add(dt_raw, k);
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
        w.usage_distrusted = zeroed_while_away;
        if zeroed_while_away {
            warn!(workload = %w.name, cgroup = %path,
                "the cgroup's CPU usage counter went backwards while burstd was not running (zeroed by its owner?): \
                 the time away and from now on its CPU are charged at the ceiling in force");
            w.usage_counter_resets = w.usage_counter_resets.saturating_add(1);
            self.health.usage_counter_resets += 1;
        }
        w.last_drift_check_ns = now_ns;
        w.seen = true;
        info!(
            workload = %w.name, cgroup = %path, profile = %w.profile.name, mode = %w.bucket.mode,
            balance = %w.bucket.balance(), surplus = %w.bucket.surplus,
            "{}", if resumed { "workload resumed after agent restart" } else { "workload started" }
        );
        self.events
            .push(WorkloadEvent::Started(self.workloads[i].name.clone()));
        self.apply(i);
        self.schedule_next(i, now_ns);
    }

    /// A file the workload's handle keeps open answered ENODEV/ENOENT/ESTALE: a directory of
    /// its cgroup was removed. That is a stop and, at once, a start on whatever is at the path
    /// now — never an error to ignore: on v1 a task can be moved out of the cpu hierarchy, its
    /// cpu directory removed and made again, and the task moved back, escaping the quota the
    /// old directory had while the kept descriptors only answer ENODEV (issue 13 item 7).
    ///
    /// If the path opens on the same cgroup as before (its id, the cpuacct directory's inode
    /// on v1, is unchanged: only the cpu directory was made again), the usage counter and so
    /// the accounting go on: the bucket is kept (no stop charge, no launch credits) and only
    /// the handle is new, with the quota in force written to it at once. Otherwise the old
    /// cgroup is stopped and the new one started. If nothing is there, it is a stop.
    pub(super) fn reopen(&mut self, i: usize, now_ns: u64, wall_s: u64) {
        let w = &self.workloads[i];
        let (Some(path), true) = (w.cgroup.clone(), w.is_running()) else {
            return;
        };
        let old_id = w.cgroup_id;
        match self.hierarchy.open(&path) {
            Ok(handle) if handle.id() == old_id && old_id != 0 => {
                self.health.cgroup_reopens += 1;
                let w = &mut self.workloads[i];
                warn!(workload = %w.name, cgroup = %path,
                    "a control file of the cgroup is gone but the cgroup is there again (directory recreated?): \
                     reopened it and writing the quota in force again");
                w.handle = Some(handle);
                w.written = None;
                w.throttle_stale = true;
                w.last_drift_check_ns = now_ns;
                self.apply(i);
                self.schedule_next(i, now_ns);
            }
            Ok(handle) => {
                drop(handle);
                self.health.cgroup_reopens += 1;
                info!(workload = %self.workloads[i].name, cgroup = %path,
                    "the cgroup was recreated: a stop, then a start");
                self.stop(i, wall_s);
                self.fit_fd_budget(1);
                self.open(i, &path, now_ns, wall_s);
            }
            Err(e) => {
                if !e.is_gone() {
                    self.health.cgroup_read_errors += 1;
                    warn!(workload = %self.workloads[i].name, cgroup = %path, error = %e,
                        "cannot reopen the cgroup; stopped until a rescan finds it");
                }
                self.stop(i, wall_s);
            }
        }
    }

    pub(super) fn stop(&mut self, i: usize, wall_s: u64) {
        let w = &mut self.workloads[i];
        if w.handle.take().is_none() {
            return;
        }
        let charged = w.bucket.stop(&w.profile, wall_s);
        w.written = None;
        w.usage_rate = Rate::ZERO;
        info!(workload = %w.name, balance = %w.bucket.balance(), charged = %charged, "workload stopped");
        self.events.push(WorkloadEvent::Stopped(w.name.clone()));
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
        self.events
            .push(WorkloadEvent::Switched(name.to_string(), mode));
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
        let kept: Vec<WorkloadSpec> = self
            .specs
            .iter()
            .filter(|c| matches!(c.source, Source::Container(_)))
            .filter(|c| !specs.iter().any(|s| s.name == c.name))
            .cloned()
            .collect();
        specs.extend(kept);
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
            w.record = spec.record;
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
    pub(super) fn release(&mut self, i: usize) {
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
        self.vacate(i);
    }

    /// Empties slot `i` for reuse: its name, cgroup and container go, it is no longer indexed.
    fn vacate(&mut self, i: usize) {
        let w = &mut self.workloads[i];
        self.index.remove(&w.name);
        w.name = String::new();
        w.cgroup = None;
        w.container = None;
        w.handle = None;
        w.pending = None;
        w.next_wake_ns = u64::MAX;
        self.free.push(i);
    }

    /// Forgets the stopped workloads that a source found many of (a `match`'s, container
    /// instances) once they have nothing left to keep, as EC2 forgets a stopped instance's
    /// credits: a T2's at its stop, a T3's after its 7 days, any other's after
    /// `[agent] forget_stopped_after_s`. If the cgroup comes back later it starts anew (with
    /// launch credits, within the launch limit). Workloads named one by one in the config
    /// are never forgotten: there are only as many as the file names. Returns how many went.
    pub(super) fn forget_stopped(&mut self, wall_s: u64) -> usize {
        let after = self.config.forget_stopped_after_s;
        let mut gone = Vec::new();
        for (i, w) in self.workloads.iter().enumerate() {
            if w.name.is_empty() || w.is_running() || w.pending.is_some() {
                continue;
            }
            let crate::credit::RunState::Stopped { since_s } = w.bucket.run else {
                continue;
            };
            let one_of_many = match self.spec_for_name(&w.name) {
                Some(spec) => match &spec.source {
                    Source::Match(_) => true,
                    Source::Container(c) => c.cgroup.is_none(),
                    _ => false,
                },
                // Not configured any more: released by the reload that removed it.
                None => false,
            };
            if !one_of_many {
                continue;
            }
            let stopped_for = wall_s.saturating_sub(since_s);
            let nothing_kept = match w.profile.persistence {
                crate::credit::Persistence::Lost => true,
                crate::credit::Persistence::KeptFor { seconds } => stopped_for > seconds,
                crate::credit::Persistence::Kept => stopped_for > after,
            };
            if nothing_kept {
                gone.push(i);
            }
        }
        for &i in &gone {
            let name = self.workloads[i].name.clone();
            debug!(workload = %name, "stopped and nothing kept: forgotten");
            if self.workloads[i].container.is_some() {
                self.specs.retain(|s| s.name != name);
            }
            self.vacate(i);
            self.events.push(WorkloadEvent::Forgotten(name));
        }
        gone.len()
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
}
