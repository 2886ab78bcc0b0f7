//! `burstd daemon` with `[containers]` on Docker's own engine (`docker.io`, isolated dockerd,
//! cgroupfs driver, cgroup v1): the labelled standard container is held at its baseline
//! (measured from its cgroup's counters), the unlabelled one is never touched, a container's
//! own `--cpus` is never exceeded and `docker update --cpus` is followed, and `docker restart`
//! keeps it managed.

mod common;
#[path = "common/docker.rs"]
mod docker;
#[path = "common/podman.rs"]
mod podman;

use burstd::agent::state;
use common::{wait_for, Reaped};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn quota(rel: &str) -> i64 {
    fs::read_to_string(
        Path::new("/sys/fs/cgroup/cpu")
            .join(rel)
            .join("cpu.cfs_quota_us"),
    )
    .map(|s| s.trim().parse().unwrap_or(0))
    .unwrap_or(0)
}

fn usage(rel: &str) -> u64 {
    podman::cgroup_u64("cpuacct", rel, "cpuacct.usage")
}

#[test]
fn daemon_manages_labelled_docker_containers() {
    if !docker::available("daemon_manages_labelled_docker_containers") {
        return;
    }
    let dk = docker::Docker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("burstd.toml");
    fs::write(
        &cfg,
        format!(
            "[agent]\nstate_dir = {:?}\ntime_scale = 60.0\nsave_interval_s = 0.2\nmax_interval_ms = 100\ndrift_check_s = 1.0\n\
             [metrics]\nlisten = \"\"\n[api]\nsocket = \"\"\n[containers]\ndocker = {:?}\n\
             [profiles.tiny]\nvcpus = 1\ncredits_per_hour = 6\n",
            dir.path().display().to_string(),
            dk.socket.display().to_string()
        ),
    )
    .unwrap();
    let tag = std::process::id();
    let (std_c, lim_c, plain_c) = (
        format!("std-{tag}"),
        format!("lim-{tag}"),
        format!("plain-{tag}"),
    );
    dk.run_busy(
        &std_c,
        &[
            "--label",
            "burstd.profile=tiny",
            "--label",
            "burstd.mode=standard",
            "--label",
            "burstd.initial-credits=1",
        ],
    );
    dk.run_busy(&plain_c, &[]);
    let (std_g, plain_g) = (dk.cgroup(&std_c), dk.cgroup(&plain_c));
    let _daemon = Reaped(
        Command::new(env!("CARGO_BIN_EXE_burstd"))
            .args(["daemon", "--config"])
            .arg(&cfg)
            .env("BURSTD_LOG", "info")
            .stdin(Stdio::null())
            .spawn()
            .expect("start burstd"),
    );
    wait_for(Duration::from_secs(30), || {
        (quota(&std_g) == 10_000).then_some(())
    })
    .expect("the labelled standard container was never held at baseline");
    let (u0, t0) = (usage(&std_g), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let share = (usage(&std_g) - u0) as f64 / t0.elapsed().as_nanos() as f64;
    eprintln!("docker: held container used {share:.4} cores (baseline 0.1)");
    assert!(
        (0.09..=0.11).contains(&share),
        "held usage {share:.4} cores"
    );
    assert_eq!(
        quota(&plain_g),
        -1,
        "an unlabelled container is never touched"
    );

    // Its own --cpus 0.5, unlimited tiny (1 vCPU): the lower, half a core, is in force.
    let run_at = Instant::now();
    dk.run_busy(
        &lim_c,
        &[
            "--cpus",
            "0.5",
            "--label",
            "burstd.profile=tiny",
            "--label",
            "burstd.mode=unlimited",
        ],
    );
    let returned = run_at.elapsed();
    let lim_g = dk.cgroup(&lim_c);
    wait_for(Duration::from_secs(10), || {
        state::load(dir.path()).ok().flatten().filter(|s| {
            s.workloads
                .get(&lim_c)
                .is_some_and(|w| w.bucket.is_running())
        })
    })
    .expect("the --cpus container was never managed");
    eprintln!(
        "docker run took {} ms; managed {} ms after it returned",
        returned.as_millis(),
        run_at.elapsed().saturating_sub(returned).as_millis()
    );
    assert_eq!(quota(&lim_g), 50_000);
    // docker update --cpus 0.3: the runtime rewrites the quota; burstd follows the new limit.
    dk.ok(&["update", "--cpus", "0.3", &lim_c]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(quota(&lim_g), 30_000);
    // docker update --cpus 2 (above the profile's 1 vCPU): burstd's ceiling is the lower.
    dk.ok(&["update", "--cpus", "2", &lim_c]);
    wait_for(Duration::from_secs(5), || {
        (quota(&lim_g) == 100_000).then_some(())
    })
    .expect("burstd's 1 vCPU ceiling was not put back under --cpus 2");

    // docker restart: a stop and a start of the same instance, managed again.
    dk.ok(&["restart", "-t", "0", &std_c]);
    let std_g2 = dk.cgroup(&std_c);
    wait_for(Duration::from_secs(10), || {
        (quota(&std_g2) == 10_000).then_some(())
    })
    .expect("the restarted container was not held again");
    let st = state::load(dir.path()).unwrap().unwrap();
    assert_eq!(
        st.workloads[&std_c].container.as_deref(),
        Some(std_c.as_str())
    );
}
