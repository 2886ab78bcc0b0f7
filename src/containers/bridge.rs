//! Applies what the watcher reports to the agent: the one place where a container becomes a
//! workload (named after its instance id, with the `Container` source) and where its stop,
//! its own CPU limit and its label errors reach the control core.

use super::tracker::Managed;
use super::watch::Change;
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
        record: false,
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
        Change::Synced => agent.containers_synced(now_ns, wall_s),
        Change::Unreachable(_) => {}
    }
}

/// Starts following the Docker-API socket `socket`; the watcher's changes go to `tx` (the
/// control loop's container inbox). Ends when the loop is gone.
pub fn spawn(
    socket: std::path::PathBuf,
    layout: crate::cgroup::Layout,
    custom: std::collections::BTreeMap<String, crate::credit::Profile>,
    tx: tokio::sync::mpsc::Sender<Change>,
) {
    let client = super::docker::Client::new(socket, super::docker::Limits::default());
    tokio::spawn(super::watch::Watcher::new(client, layout, custom).run(tx));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::discover::{Discoverer, UnitResolver};
    use crate::agent::fake::Fake;
    use crate::agent::{state, AgentParts};
    use crate::cgroup::Quota;
    use crate::config::{self, Config};
    use crate::containers::labels::LabelSpec;
    use crate::credit::{builtin_profile, Credits, Mode, Rate};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    const S: u64 = 1_000_000_000;

    struct NoUnits;
    impl UnitResolver for NoUnits {
        fn cgroup_of(&mut self, _: &str) -> Option<String> {
            None
        }
    }

    struct Host {
        now: Arc<AtomicU64>,
        fake: Fake,
        dir: tempfile::TempDir,
        cfg: Config,
    }

    impl Host {
        fn new(extra: &str) -> Host {
            let dir = tempfile::tempdir().unwrap();
            let text = format!(
                "[agent]\nstate_dir = {:?}\ntime_scale = 60.0\n[containers]\ndocker = \"/run/docker.sock\"\n{extra}",
                dir.path().display().to_string()
            );
            let cfg = config::parse(Path::new("t.toml"), &text).unwrap();
            let now = Arc::new(AtomicU64::new(1_000 * S));
            let t = now.clone();
            Host {
                fake: Fake::new(Arc::new(move || t.load(Ordering::SeqCst)), 4),
                now,
                dir,
                cfg,
            }
        }
        fn t(&self) -> u64 {
            self.now.load(Ordering::SeqCst)
        }
        fn agent(&self) -> Agent {
            let mut a = Agent::new(AgentParts {
                config: self.cfg.agent.clone(),
                specs: self.cfg.workloads.clone(),
                hierarchy: Box::new(self.fake.clone()),
                discover: Discoverer::with_units(Box::new(NoUnits)),
                host_cpus: 4,
                own_cgroups: vec![],
                boot_id: "boot-1".into(),
            });
            a.enable_containers(BTreeMap::new());
            a
        }
        /// Advances time, running the agent's due looks.
        fn run(&self, a: &mut Agent, ns: u64) {
            let end = self.t() + ns;
            loop {
                let next = a.next_wake().unwrap_or(u64::MAX).min(end);
                self.now.store(next.max(self.t()), Ordering::SeqCst);
                a.tick(self.t(), self.t() / S);
                if self.t() >= end {
                    return;
                }
            }
        }
        fn apply(&self, a: &mut Agent, c: Change) {
            apply(a, c, self.t(), self.t() / S);
        }
    }

    fn managed(
        name: &str,
        profile: &str,
        mode: Mode,
        credits: i64,
        cpu_limit: Option<Rate>,
    ) -> Change {
        Change::Manage(Managed {
            id: format!("id-{name}"),
            name: name.into(),
            spec: LabelSpec {
                instance_id: name.into(),
                profile: builtin_profile(profile).unwrap(),
                mode,
                mode_explicit: true,
                initial_credits: Credits::whole(credits),
            },
            cgroup: format!("docker/{name}"),
            pid: 1,
            cpu_limit,
        })
    }

    fn stopped(name: &str) -> Change {
        Change::Unmanage {
            id: format!("id-{name}"),
            instance_id: name.into(),
        }
    }

    #[test]
    fn ceiling_never_above_the_containers_own_limit() {
        let h = Host::new("");
        h.fake.add("docker/web", 2000);
        let mut a = h.agent();
        // t3.micro unlimited: a ceiling of 2 cores; the container's --cpus 0.5 is lower.
        let half = Some(Rate::from_milli_credits_per_hour(30_000));
        h.apply(&mut a, managed("web", "t3.micro", Mode::Unlimited, 0, half));
        let w = a.get("web").unwrap();
        assert!(w.is_running());
        assert_eq!(w.container.as_ref().unwrap().name, "web");
        assert_eq!(
            h.fake.group("docker/web").unwrap().quota,
            Quota::limited(50_000, 100_000)
        );
        // `docker update --cpus 3`: the runtime writes its quota, then reports the new limit;
        // burstd's 2 cores are now the lower.
        h.fake
            .external_write("docker/web", Quota::limited(300_000, 100_000));
        let three = Some(Rate::cores(3));
        h.apply(
            &mut a,
            Change::Limit {
                instance_id: "web".into(),
                cpu_limit: three,
            },
        );
        assert_eq!(
            h.fake.group("docker/web").unwrap().quota,
            Quota::limited(200_000, 100_000)
        );
        // A rewrite without an event (the runtime restoring its own --cpus): the drift
        // check puts the lower of the two back.
        h.fake
            .external_write("docker/web", Quota::limited(300_000, 100_000));
        h.run(&mut a, 6 * S);
        assert_eq!(
            h.fake.group("docker/web").unwrap().quota,
            Quota::limited(200_000, 100_000)
        );
        assert_eq!(a.health().external_quota_changes, 1);
        // Held at baseline with a limit above it: the baseline (0.2 core) is in force.
        let h2 = Host::new("");
        h2.fake.add("docker/std", 2000);
        let mut a2 = h2.agent();
        h2.apply(&mut a2, managed("std", "t3.micro", Mode::Standard, 0, half));
        assert!(a2.get("std").unwrap().bucket.held);
        assert_eq!(
            h2.fake.group("docker/std").unwrap().quota,
            Quota::limited(20_000, 100_000)
        );
    }

    #[test]
    fn stop_and_start_keyed_by_the_instance_follow_ec2() {
        let h = Host::new("");
        h.fake.add("docker/t2", 0);
        h.fake.add("docker/t3", 0);
        let mut a = h.agent();
        h.apply(&mut a, managed("t2", "t2.micro", Mode::Standard, 10, None));
        h.apply(&mut a, managed("t3", "t3.micro", Mode::Standard, 50, None));
        assert_eq!(a.get("t2").unwrap().bucket.launch, Credits::whole(30));
        h.run(&mut a, 2 * S);
        h.apply(&mut a, stopped("t2"));
        h.apply(&mut a, stopped("t3"));
        assert!(!a.get("t2").unwrap().is_running());
        assert_eq!(a.get("t2").unwrap().bucket.balance(), Credits::ZERO);
        let t3_kept = a.get("t3").unwrap().bucket.balance();
        assert!(t3_kept >= Credits::whole(50));
        // A re-created container (new id, same name) is the same instance starting again.
        h.fake.add("docker/t2", 0);
        h.fake.add("docker/t3", 0);
        h.apply(&mut a, managed("t2", "t2.micro", Mode::Standard, 10, None));
        h.apply(&mut a, managed("t3", "t3.micro", Mode::Standard, 50, None));
        let t2 = &a.get("t2").unwrap().bucket;
        assert_eq!((t2.launch, t2.earned), (Credits::whole(30), Credits::ZERO));
        assert_eq!(a.get("t3").unwrap().bucket.balance(), t3_kept);
    }

    #[test]
    fn a_restart_waits_for_the_runtimes_list() {
        let h = Host::new("");
        h.fake.add("docker/web", 2000);
        h.fake.add("docker/gone", 0);
        let mut a = h.agent();
        h.apply(&mut a, managed("web", "t3.micro", Mode::Unlimited, 0, None));
        h.apply(&mut a, managed("gone", "t2.micro", Mode::Standard, 0, None));
        h.run(&mut a, 5 * S);
        let surplus_before = a.get("web").unwrap().bucket.surplus;
        state::save(h.dir.path(), &a.snapshot(h.t() / S, &Default::default())).unwrap();
        drop(a);
        // Down 5 s; web keeps running, gone is removed.
        h.fake.remove_group("docker/gone");
        h.now.fetch_add(5 * S, Ordering::SeqCst);
        let mut b = h.agent();
        b.restore(state::load(h.dir.path()).unwrap().unwrap());
        b.rescan(h.t(), h.t() / S);
        // Before the runtime has listed: nothing is stopped, nothing charged.
        assert!(b.get("gone").unwrap().awaiting_reconcile());
        assert!(b.get("web").unwrap().awaiting_reconcile());
        h.apply(&mut b, managed("web", "t3.micro", Mode::Unlimited, 0, None));
        h.apply(&mut b, Change::Synced);
        let web = &b.get("web").unwrap().bucket;
        assert_eq!(web.totals.charged, Credits::ZERO, "a restart is not a stop");
        // 5 s more at 2 cores on a 60× clock, net of the 0.2-core baseline: 9 credits.
        assert_eq!(web.surplus, surplus_before + Credits::whole(9));
        // A stopped T2 loses its credits, so there is nothing to remember it by.
        assert!(
            b.get("gone").is_none(),
            "a stopped T2 instance is forgotten"
        );
        assert!(b
            .take_events()
            .contains(&crate::agent::WorkloadEvent::Forgotten("gone".into())));
    }

    #[test]
    fn a_configured_name_and_bad_labels_are_counted() {
        let h = Host::new("[[workload]]\nname = \"web\"\ncgroup = \"system.slice/web.service\"\nprofile = \"t3.micro\"\n");
        h.fake.add("docker/web", 0);
        let mut a = h.agent();
        h.apply(&mut a, managed("web", "t3.micro", Mode::Standard, 0, None));
        assert!(!a.get("web").is_some_and(|w| w.container.is_some()));
        h.apply(
            &mut a,
            Change::LabelError(crate::containers::labels::LabelError {
                container: "x".into(),
                label: "burstd.mode".into(),
                value: "fast".into(),
                allowed: "standard, unlimited".into(),
            }),
        );
        assert_eq!(a.health().container_label_errors, 2);
        assert_eq!(
            h.fake.group("docker/web").unwrap().quota,
            Quota::unlimited(100_000)
        );
    }

    /// The real loop with `[containers]` pointing at a socket that does not exist: the loop
    /// keeps managing its configured workload, a container reported later is managed, and a
    /// reload keeps it.
    #[tokio::test(start_paused = true)]
    async fn the_loop_runs_without_the_socket_and_keeps_containers_across_a_reload() {
        use crate::agent::clock::TokioClock;
        use crate::daemon::event_loop::{channels, run_loop, Control, LoopOptions};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let origin = tokio::time::Instant::now();
        let fake = Fake::new(Arc::new(move || origin.elapsed().as_nanos() as u64), 4);
        fake.add("burn", 1000);
        fake.add("docker/web", 1000);
        let path = dir.path().join("burstd.toml");
        let text = format!(
            "[agent]\nstate_dir = {:?}\ntime_scale = 60.0\n[containers]\ndocker = {:?}\n[[workload]]\nname = \"burn\"\ncgroup = \"burn\"\nprofile = \"t3.micro\"\nmode = \"standard\"\n",
            dir.path().display().to_string(),
            dir.path().join("missing.sock").display().to_string()
        );
        std::fs::write(&path, &text).unwrap();
        let c = config::load(&path).unwrap();
        let mut agent = Agent::new(AgentParts {
            config: c.agent,
            specs: c.workloads,
            hierarchy: Box::new(fake.clone()),
            discover: Discoverer::with_units(Box::new(NoUnits)),
            host_cpus: 4,
            own_cgroups: vec![],
            boot_id: "b".into(),
        });
        agent.enable_containers(BTreeMap::new());
        let (handles, inbox) = channels();
        spawn(
            c.containers.docker.clone().unwrap(),
            crate::cgroup::Layout::v1("/nonexistent/cpu", "/nonexistent/cpuacct"),
            BTreeMap::new(),
            handles.containers.clone(),
        );
        let opts = LoopOptions {
            config_path: Some(path.clone()),
            notify: false,
        };
        let clock = TokioClock::new(0, 1_000);
        let driver = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // No credits, standard: the configured workload is held at its baseline.
            assert_eq!(
                fake.group("burn").unwrap().quota,
                Quota::limited(20_000, 100_000)
            );
            handles
                .containers
                .send(managed("web", "t3.micro", Mode::Standard, 0, None))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                fake.group("docker/web").unwrap().quota,
                Quota::limited(20_000, 100_000)
            );
            handles.control.send(Control::Reload).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(
                fake.group("docker/web").unwrap().quota,
                Quota::limited(20_000, 100_000)
            );
            handles.control.send(Control::Shutdown).await.unwrap();
        };
        let (stats, ()) = tokio::join!(
            run_loop(agent, Default::default(), opts, &clock, inbox),
            driver
        );
        assert_eq!(stats.failures, 0);
        let saved = state::load(dir.path()).unwrap().unwrap();
        assert_eq!(saved.workloads["web"].container.as_deref(), Some("web"));
        assert!(saved.workloads["burn"].bucket.held);
    }
}
