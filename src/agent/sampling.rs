//! Sampling and enforcement: when each workload is looked at, the look itself (counters in,
//! model step), the quota written when the ceiling changes, and drift from other writers.

use super::control::Agent;
use super::decide::{
    charge_for_backwards_counter, full_and_idle, hold_landing, next_look_ns, quota_for,
};
use super::workload::WorkloadEvent;
use crate::cgroup::{Sample, WriteOutcome};
use crate::credit::{exact_horizon_ns, time_to_exhaustion, time_to_release, Mode, Rate};
use std::cmp::Reverse;
use tracing::{debug, info, warn};

const MS: u64 = 1_000_000;

impl Agent {
    /// Control files the cgroup handles keep open now (see `cgroup::budget`).
    pub fn cgroup_files_open(&self) -> u64 {
        self.hierarchy.open_files() as u64
    }

    pub(super) fn schedule(&mut self, i: usize, at_ns: u64) {
        let w = &mut self.workloads[i];
        if at_ns < w.next_wake_ns {
            w.next_wake_ns = at_ns;
            self.wakes.push(Reverse((at_ns, i)));
        }
    }

    /// When this workload next needs a look. Between two looks the model sees only the CPU
    /// used in total, and one linear step is exact as long as the balance could not reach zero
    /// (flat out at its ceiling) nor its maximum (using nothing) inside it: that is the
    /// workload's horizon (`credit::exact_horizon_ns`). A workload whose horizon is at least
    /// `max_interval` is looked at at its horizon, but at least every `drift_check` (liveness,
    /// and other writers of its quota); a t3.micro half full then needs a look every 5 s, not
    /// every second. A workload held at its baseline cannot lose credits (the kernel keeps it at
    /// what it earns): it is looked at when it could first be released
    /// (`credit::time_to_release`, at most every `drift_check`). Nearer a clamp the rule is as
    /// before: every `max_interval`, sooner at the predicted zero. A full bucket that is not spending waits `full_interval`
    /// (see docs/semantics.md for the bound this puts on a burst's first look).
    pub(super) fn schedule_next(&mut self, i: usize, now_ns: u64) {
        let k = self.config.time_scale_milli.max(1);
        let policy = self.config.policy;
        let w = &self.workloads[i];
        let real = |scaled: u64| (scaled as u128 * 1000 / k as u128).min(u64::MAX as u128) as u64;
        let max_interval = self.config.max_interval_ms * MS;
        let ceiling = w.ceiling(&policy);
        // A standard workload with credits may reach zero at its full ceiling before that.
        let to_zero = (w.bucket.mode == Mode::Standard && !w.bucket.held)
            .then(|| time_to_exhaustion(&w.bucket, &w.profile, ceiling))
            .flatten()
            .map(real);
        let horizon = if w.bucket.held {
            time_to_release(&w.bucket, &w.profile, policy.release_above)
        } else {
            exact_horizon_ns(&w.bucket, &w.profile, ceiling)
        }
        .map(real)
        .filter(|&h| h >= max_interval);
        let (max, soonest) = if full_and_idle(&w.bucket, &w.profile, w.usage_rate) {
            (self.config.full_interval_ms * MS, to_zero)
        } else if let Some(h) = horizon {
            let cap = (self.config.drift_check_ms * MS).max(max_interval);
            (cap, Some(h))
        } else {
            (max_interval, to_zero)
        };
        let at = next_look_ns(now_ns, max, soonest);
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
    pub(super) fn sample(&mut self, i: usize, now_ns: u64, wall_s: u64, full: bool) {
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
                self.reopen(i, now_ns, wall_s);
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
        // A counter never goes backwards in one open cgroup (a recreated one is a new handle):
        // someone zeroed it. That is not free CPU, and a counter zeroed once can be zeroed
        // between any two looks: from then on, for the rest of this cgroup's life, every
        // interval is charged at the ceiling in force (docs/semantics.md, "A usage counter
        // that goes backwards").
        if s.usage_ns < w.last.usage_ns {
            if w.usage_counter_resets == 0 {
                warn!(workload = %w.name, before_ns = w.last.usage_ns, now_ns = s.usage_ns,
                    "the cgroup's CPU usage counter went backwards (zeroed by its owner?): \
                     from now on its CPU is charged at the ceiling in force; logged once per workload");
            }
            w.usage_counter_resets = w.usage_counter_resets.saturating_add(1);
            w.usage_distrusted = true;
            self.health.usage_counter_resets += 1;
        }
        let counted = s.usage_ns.saturating_sub(w.last.usage_ns);
        let du_raw = if w.usage_distrusted {
            counted.max(charge_for_backwards_counter(
                w.written,
                self.host_cpus,
                dt_raw,
            ))
        } else {
            counted
        };
        if dt_raw > 0 {
            w.usage_rate = Rate::ONE_CORE.scale(du_raw, dt_raw);
            if w.record {
                // What the kernel counted, not a conservative charge: the trace is a measurement.
                self.recorded.push(super::workload::Recorded {
                    name: w.name.clone(),
                    end_ns: now_ns,
                    wall_ns: dt_raw,
                    cpu_ns: counted,
                    vcpus: w.profile.vcpus,
                });
            }
        }
        let du = w.usage_scale.add(du_raw, k);
        let dt = w.time_scale.add(dt_raw, k);
        let was_held = w.bucket.held;
        let before = w.bucket.balance();
        let step = w.bucket.step_cpu(&w.profile, &policy, du, dt);
        if w.bucket.held && !was_held {
            w.last_landing = Some(hold_landing(before, step.overdrawn, dt_raw, k));
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
                self.events.push(WorkloadEvent::Held(name));
            } else {
                info!(workload = %name, balance = %w.bucket.balance(), "credits available: released from baseline");
                self.events.push(WorkloadEvent::Released(name));
            }
        }
        if now_ns.saturating_sub(self.workloads[i].last_drift_check_ns)
            >= self.config.drift_check_ms * MS
            && !self.check_drift(i, now_ns)
        {
            // A kept file answered "gone": the cgroup was reopened (or stopped) instead.
            self.reopen(i, now_ns, wall_s);
            return;
        }
        self.apply(i);
        self.schedule_next(i, now_ns);
    }

    /// Another writer (systemd on daemon-reload, a container runtime) may have changed the
    /// quota: read it back now and then, and put ours back. Returns false if a kept file
    /// answered ENODEV/ENOENT: the directory it was in was removed (on v1 the cpu directory
    /// alone can be removed and made again under running tasks), so the handle is stale and
    /// the caller reopens the cgroup ([`Agent::reopen`]).
    pub(super) fn check_drift(&mut self, i: usize, now_ns: u64) -> bool {
        let w = &mut self.workloads[i];
        w.last_drift_check_ns = now_ns;
        let (Some(handle), Some(ours)) = (w.handle.as_mut(), w.written) else {
            return true;
        };
        if ours.quota_us.is_none() && matches!(handle.quota_is_unlimited(), Ok(true)) {
            return true;
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
            Err(e) if e.is_gone() => return false,
            Err(e) => {
                self.health.cgroup_read_errors += 1;
                debug!(workload = %w.name, error = %e, "cannot read quota");
            }
        }
        true
    }

    /// Writes the workload's quota if it changed.
    pub(super) fn apply(&mut self, i: usize) {
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
}
