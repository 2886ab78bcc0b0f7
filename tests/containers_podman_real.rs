//! The container source against real Podman on this host (cgroup v1, runc, cgroupfs): the
//! watcher finds labelled containers from Podman's Docker-compatible API and their cgroups
//! from their processes, and leaves unlabelled ones alone.

#[path = "common/podman.rs"]
mod podman;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burstd::cgroup::layout::Layout;
use burstd::containers::docker::{Client, Limits};
use burstd::containers::watch::{Change, Watcher};
use burstd::credit::Rate;
use tokio::sync::mpsc;

async fn next(rx: &mut mpsc::Receiver<Change>) -> Change {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(Change::Synced)) => continue,
            Ok(Some(c)) => return c,
            Ok(None) => panic!("watcher ended"),
            Err(_) => panic!("no change from the watcher within 60 s"),
        }
    }
}

#[tokio::test]
async fn watcher_follows_real_podman() {
    if !podman::available("watcher_follows_real_podman") {
        return;
    }
    let mut pm = podman::Podman::new();
    let tag = std::process::id();
    let (early, web, plain, gone) = (
        format!("early-{tag}"),
        format!("web-{tag}"),
        format!("plain-{tag}"),
        format!("gone-{tag}"),
    );
    // Created before the watcher (and before the API service) runs: found by the list.
    let early_id = pm.run_busy(
        &early,
        &["--label", "burstd.profile=t2.small", "--cpus", "0.5"],
    );
    pm.start_service();
    let client = Client::new(&pm.socket, Limits::default());
    let layout = Layout::v1("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct");
    let (tx, mut rx) = mpsc::channel(64);
    let task = tokio::spawn(Watcher::new(client, layout, BTreeMap::new()).run(tx));

    let m = match next(&mut rx).await {
        Change::Manage(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (m.id.as_str(), m.name.as_str()),
        (early_id.as_str(), early.as_str())
    );
    assert_eq!(m.cgroup, pm.cgroup(&early));
    assert_eq!(m.cgroup, format!("libpod_parent/libpod-{early_id}"));
    assert_eq!(m.spec.profile.name, "t2.small");
    // --cpus 0.5 is half a core: 30 credits an hour.
    assert_eq!(m.cpu_limit, Some(Rate::from_milli_credits_per_hour(30_000)));

    // An unlabelled container, then a labelled one: only the labelled one is told.
    pm.run_busy(&plain, &[]);
    let started = Instant::now();
    let web_id = pm.run_busy(
        &web,
        &[
            "--label",
            "burstd.profile=t3.micro",
            "--label",
            "burstd.mode=standard",
        ],
    );
    let after_run = started.elapsed();
    let m = match next(&mut rx).await {
        Change::Manage(m) => m,
        other => panic!("{other:?}"),
    };
    let managed_after = started.elapsed();
    eprintln!(
        "podman run returned after {} ms; the watcher managed the container {} ms after the run began ({} ms after it returned)",
        after_run.as_millis(),
        managed_after.as_millis(),
        managed_after.saturating_sub(after_run).as_millis()
    );
    assert_eq!(
        (m.id.as_str(), m.name.as_str()),
        (web_id.as_str(), web.as_str())
    );
    assert_eq!(m.cgroup, pm.cgroup(&web));
    assert_eq!(m.cpu_limit, None);

    // A label error is told, with the value.
    pm.run_busy(
        &gone,
        &[
            "--label",
            "burstd.profile=t3.micro",
            "--label",
            "burstd.mode=fast",
        ],
    );
    match next(&mut rx).await {
        Change::LabelError(e) => {
            assert_eq!(
                (e.container.as_str(), e.label.as_str(), e.value.as_str()),
                (gone.as_str(), "burstd.mode", "fast")
            )
        }
        other => panic!("{other:?}"),
    }

    // A stop is an Unmanage of its instance.
    pm.stop(&web);
    assert_eq!(
        next(&mut rx).await,
        Change::Unmanage {
            id: web_id.clone(),
            instance_id: web.clone()
        }
    );
    task.abort();
}
