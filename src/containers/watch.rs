//! The watcher: follows one Docker-API socket (Docker's or Podman's) for the life of the
//! daemon and tells the agent which containers to manage. It subscribes to `/events`, lists
//! the labelled running containers, inspects the ones that start, finds each one's cgroup from
//! its process, and feeds everything to the pure [`Tracker`]. A missing or unreachable socket
//! is reported once and retried with back-off; burstd keeps running meanwhile.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::cgroup::cgroup_of_pid;
use super::docker::{Client, DockerError, Summary};
use super::labels::{self, LabelError};
use super::tracker::{Action, Inspected, Managed, Tracker};
use crate::cgroup::layout::Layout;
use crate::credit::{Profile, Rate};

/// What the watcher tells the agent.
#[derive(Clone, PartialEq, Debug)]
pub enum Change {
    /// Manage this container's cgroup as instance `spec.instance_id` (a start).
    Manage(Managed),
    /// The container stopped or went: a stop of its instance.
    Unmanage { id: String, instance_id: String },
    /// Its own CPU limit changed.
    Limit {
        instance_id: String,
        cpu_limit: Option<Rate>,
    },
    /// A container's labels were refused (already logged; for the metric).
    LabelError(LabelError),
    /// Every running container of a (re)sync has been reported: restored instances not
    /// among them stopped while burstd was away.
    Synced,
    /// The socket cannot be reached or the stream broke; retrying.
    Unreachable(String),
}

pub struct Watcher {
    client: Client,
    layout: Layout,
    proc_root: PathBuf,
    tracker: Tracker,
    /// Synced since the last failure (for the log).
    following: bool,
}

type Listing = Pin<Box<dyn Future<Output = Result<Vec<Summary>, DockerError>> + Send>>;

impl Watcher {
    /// `custom`: config-defined profiles a label may name.
    pub fn new(client: Client, layout: Layout, custom: BTreeMap<String, Profile>) -> Watcher {
        Watcher {
            client,
            layout,
            proc_root: PathBuf::from("/proc"),
            tracker: Tracker::new(custom),
            following: false,
        }
    }

    /// Another `/proc` (tests).
    pub fn with_proc_root(mut self, proc_root: impl Into<PathBuf>) -> Watcher {
        self.proc_root = proc_root.into();
        self
    }

    /// Runs until the receiver of `tx` is dropped.
    pub async fn run(mut self, tx: mpsc::Sender<Change>) {
        let socket = self.client.socket().display().to_string();
        let mut last_error = String::new();
        loop {
            let error = match self.follow(&tx).await {
                Ok(()) => return,
                Err(e) => e.to_string(),
            };
            self.following = false;
            let actions = self.tracker.disconnected();
            // A new episode (it was following until now) or a different error: tell it.
            if self.tracker.failures() == 1 || error != last_error {
                warn!(socket = %socket, error = %error,
                    "cannot follow containers; burstd keeps managing its other workloads and retries with back-off");
                if tx.send(Change::Unreachable(error.clone())).await.is_err() {
                    return;
                }
            } else {
                debug!(socket = %socket, error = %error, "still cannot follow containers");
            }
            last_error = error;
            for a in actions {
                if let Action::Reconnect { after } = a {
                    tokio::select! {
                        _ = tokio::time::sleep(after) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        }
    }

    /// One connection: returns `Ok` when the agent is gone, `Err` when the runtime is.
    async fn follow(&mut self, tx: &mpsc::Sender<Change>) -> Result<(), DockerError> {
        let mut stream = self.client.events().await?;
        let mut queue: VecDeque<Action> = self.tracker.connected().into();
        let mut listing: Option<Listing> = None;
        loop {
            while let Some(action) = queue.pop_front() {
                let change = match action {
                    Action::List => {
                        let client = self.client.clone();
                        listing = Some(Box::pin(async move { client.list_labelled().await }));
                        continue;
                    }
                    Action::Inspect(id) => {
                        let answer = self.inspect(&id).await?;
                        // What it leads to goes before the rest, so `Synced` comes last.
                        for a in self.tracker.inspected(&id, answer).into_iter().rev() {
                            queue.push_front(a);
                        }
                        continue;
                    }
                    Action::Synced => {
                        if self.tracker.failures() == 0 && !self.following {
                            info!(socket = %self.client.socket().display(),
                                containers = self.tracker.managed().count(), "following containers");
                            self.following = true;
                        }
                        Change::Synced
                    }
                    Action::Reconnect { .. } => continue,
                    Action::Manage(m) => {
                        info!(container = %m.name, instance = %m.spec.instance_id, cgroup = %m.cgroup,
                            profile = %m.spec.profile.name, "container opted in");
                        Change::Manage(m)
                    }
                    Action::Unmanage { id, instance_id } => {
                        debug!(container = %id, instance = %instance_id, "container stopped");
                        Change::Unmanage { id, instance_id }
                    }
                    Action::Limit {
                        instance_id,
                        cpu_limit,
                    } => Change::Limit {
                        instance_id,
                        cpu_limit,
                    },
                    Action::LabelError(e) => {
                        warn!(error = %e, "container left alone");
                        Change::LabelError(e)
                    }
                    Action::Unusable { id, name, reason } => {
                        warn!(container = %name, id = %id, reason = %reason, "container left alone: its cgroup cannot be used");
                        continue;
                    }
                };
                if tx.send(change).await.is_err() {
                    return Ok(());
                }
            }
            tokio::select! {
                listed = async { listing.as_mut().expect("guarded").await }, if listing.is_some() => {
                    listing = None;
                    let list = listed?;
                    queue.extend(self.tracker.listed(list));
                }
                event = stream.next() => queue.extend(self.tracker.event(event?)),
                _ = tx.closed() => return Ok(()),
            }
        }
    }

    /// Inspects `id` and finds its cgroup. `Ok(Err)`: it is gone. `Err`: the runtime failed.
    async fn inspect(&self, id: &str) -> Result<Result<Inspected, String>, DockerError> {
        let details = match self.client.inspect(id).await {
            Ok(d) => d,
            Err(DockerError::Status {
                status: 404,
                message,
                ..
            }) => return Ok(Err(message)),
            Err(e) => return Err(e),
        };
        let cgroup = if details.running && details.pid != 0 {
            match cgroup_of_pid(&self.layout, &self.proc_root, details.pid) {
                Ok(c) => Some(Ok(c)),
                Err(e) if e.is_gone() => None,
                Err(e) => Some(Err(e.to_string())),
            }
        } else {
            None
        };
        Ok(Ok(Inspected { details, cgroup }))
    }
}

/// One labelled running container as `burstd check` shows it.
#[derive(Clone, PartialEq, Debug)]
pub struct CheckRow {
    pub container: String,
    /// The instance id, profile and mode it runs as, or why it is left alone.
    pub outcome: Result<String, String>,
}

/// What `burstd check` reports: every running container with `burstd.profile`, and what burstd
/// would make of it.
pub async fn check(
    client: &Client,
    custom: &BTreeMap<String, Profile>,
) -> Result<Vec<CheckRow>, DockerError> {
    let mut rows = Vec::new();
    for s in client.list_labelled().await? {
        let outcome = match labels::parse(&s.name, &s.labels, custom) {
            Ok(Some(spec)) => Ok(format!(
                "instance {} profile {} mode {}",
                spec.instance_id, spec.profile.name, spec.mode
            )),
            Ok(None) => continue,
            Err(e) => Err(format!("label {}={:?}: {}", e.label, e.value, e.allowed)),
        };
        rows.push(CheckRow {
            container: s.name,
            outcome,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::super::docker::Limits;
    use super::super::fake::FakeDocker;
    use super::*;
    use std::time::Duration;

    const T3: (&str, &str) = ("burstd.profile", "t3.micro");

    struct Setup {
        dir: tempfile::TempDir,
        rx: mpsc::Receiver<Change>,
        _tx_keep: Option<mpsc::Sender<Change>>,
    }

    fn proc_entry(dir: &std::path::Path, pid: u32, cgroup: &str) {
        let p = dir.join("proc").join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join("cgroup"),
            format!("2:cpuacct:/{cgroup}\n1:cpu:/{cgroup}\n0::/{cgroup}\n"),
        )
        .unwrap();
    }

    fn watch(dir: tempfile::TempDir, socket: &std::path::Path) -> Setup {
        let client = Client::new(socket, Limits::default());
        let w = Watcher::new(client, Layout::v1("/cpu", "/cpuacct"), BTreeMap::new())
            .with_proc_root(dir.path().join("proc"));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(w.run(tx));
        Setup {
            dir,
            rx,
            _tx_keep: None,
        }
    }

    /// The next change other than `Connected` (bounded wait: a hang is a failure, not a pass).
    async fn next(rx: &mut mpsc::Receiver<Change>) -> Change {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(Change::Synced)) => continue,
                Ok(Some(c)) => return c,
                Ok(None) => panic!("watcher ended"),
                Err(_) => panic!("no change within 20 s"),
            }
        }
    }

    async fn until_subscribed(fake: &FakeDocker, n: usize) {
        for _ in 0..2000 {
            if fake.subscribers() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the watcher never subscribed");
    }

    fn managed(c: Change) -> Managed {
        match c {
            Change::Manage(m) => m,
            other => panic!("expected Manage, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn lists_then_follows_events() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let fake = FakeDocker::serve(&socket);
        proc_entry(dir.path(), 100, "docker/aaaa");
        proc_entry(dir.path(), 200, "docker/bbbb");
        proc_entry(dir.path(), 300, "docker/cccc");
        fake.add_quietly("aaaa", "web", &[T3, ("burstd.mode", "standard")], 100);
        fake.add_quietly("cccc", "plain", &[("app", "x")], 300);
        let mut s = watch(dir, &socket);
        let m = managed(next(&mut s.rx).await);
        assert_eq!(
            (
                m.name.as_str(),
                m.spec.instance_id.as_str(),
                m.cgroup.as_str()
            ),
            ("web", "web", "docker/aaaa")
        );
        assert_eq!(m.spec.mode, crate::credit::Mode::Standard);
        until_subscribed(&fake, 1).await;
        // An unlabelled start is never inspected; a labelled one is managed.
        fake.announce("cccc", "start");
        fake.run("bbbb", "batch", &[("burstd.profile", "t2.small")], 200);
        let m = managed(next(&mut s.rx).await);
        assert_eq!(
            (m.name.as_str(), m.spec.profile.name.as_str()),
            ("batch", "t2.small")
        );
        fake.die("aaaa");
        assert_eq!(
            next(&mut s.rx).await,
            Change::Unmanage {
                id: "aaaa".into(),
                instance_id: "web".into()
            }
        );
        assert!(
            !fake.requests().iter().any(|r| r.contains("cccc")),
            "{:?}",
            fake.requests()
        );
        drop(s.dir);
    }

    #[tokio::test]
    async fn lost_events_are_made_up_by_a_resync() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let fake = FakeDocker::serve(&socket);
        proc_entry(dir.path(), 100, "docker/aaaa");
        proc_entry(dir.path(), 200, "docker/bbbb");
        fake.add_quietly("aaaa", "web", &[T3], 100);
        let mut s = watch(dir, &socket);
        assert_eq!(managed(next(&mut s.rx).await).name, "web");
        until_subscribed(&fake, 1).await;
        // The stream breaks; meanwhile web goes and batch comes, unannounced.
        fake.break_events();
        fake.remove_quietly("aaaa");
        fake.add_quietly("bbbb", "batch", &[T3], 200);
        match next(&mut s.rx).await {
            Change::Unreachable(e) => assert!(e.contains("event stream ended"), "{e}"),
            other => panic!("{other:?}"),
        }
        let mut got = vec![next(&mut s.rx).await, next(&mut s.rx).await];
        got.sort_by_key(|c| matches!(c, Change::Manage(_)));
        assert_eq!(
            got[0],
            Change::Unmanage {
                id: "aaaa".into(),
                instance_id: "web".into()
            }
        );
        assert_eq!(managed(got.remove(1)).name, "batch");
        drop(s.dir);
    }

    #[tokio::test]
    async fn a_missing_socket_is_reported_and_found_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        proc_entry(dir.path(), 100, "libpod_parent/libpod-aaaa");
        let mut s = watch(dir, &socket);
        match next(&mut s.rx).await {
            Change::Unreachable(e) => {
                assert!(e.contains("no Docker API socket at"), "{e}");
                assert!(e.contains("podman.sock"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let fake = FakeDocker::serve(&socket);
        fake.add_quietly("aaaa", "web", &[T3], 100);
        assert_eq!(
            managed(next(&mut s.rx).await).cgroup,
            "libpod_parent/libpod-aaaa"
        );
        drop(s.dir);
    }

    #[tokio::test]
    async fn label_errors_are_told_once_and_the_container_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let fake = FakeDocker::serve(&socket);
        proc_entry(dir.path(), 100, "docker/aaaa");
        proc_entry(dir.path(), 200, "docker/bbbb");
        fake.add_quietly("aaaa", "web", &[T3, ("burstd.mode", "turbo")], 100);
        let mut s = watch(dir, &socket);
        match next(&mut s.rx).await {
            Change::LabelError(e) => {
                assert_eq!(
                    (e.container.as_str(), e.label.as_str(), e.value.as_str()),
                    ("web", "burstd.mode", "turbo")
                );
            }
            other => panic!("{other:?}"),
        }
        // A resync sees it again, silently; the next change is the good container's.
        until_subscribed(&fake, 1).await;
        fake.break_events();
        fake.add_quietly("bbbb", "batch", &[T3], 200);
        assert!(matches!(next(&mut s.rx).await, Change::Unreachable(_)));
        assert_eq!(managed(next(&mut s.rx).await).name, "batch");
        drop(s.dir);
    }

    #[tokio::test]
    async fn update_of_the_cpu_limit_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let fake = FakeDocker::serve(&socket);
        proc_entry(dir.path(), 100, "docker/aaaa");
        fake.add_quietly("aaaa", "web", &[T3], 100);
        let mut s = watch(dir, &socket);
        assert_eq!(managed(next(&mut s.rx).await).cpu_limit, None);
        until_subscribed(&fake, 1).await;
        fake.update_cpus("aaaa", 500_000_000);
        assert_eq!(
            next(&mut s.rx).await,
            Change::Limit {
                instance_id: "web".into(),
                cpu_limit: Some(Rate::from_milli_credits_per_hour(30_000))
            }
        );
        drop(s.dir);
    }

    #[tokio::test]
    async fn event_stream_takes_split_and_joined_events_and_bounds_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let fake = FakeDocker::serve(&socket);
        let limits = Limits {
            max_event: 4096,
            ..Limits::default()
        };
        let client = Client::new(&socket, limits);
        let mut stream = client.events().await.unwrap();
        let start = |id: &str| {
            format!(
                r#"{{"Type":"container","Action":"start","Actor":{{"ID":"{id}","Attributes":{{"name":"n{id}","burstd.profile":"t3.micro"}}}}}}"#
            )
        };
        // One event split over two writes, then two in one write (no newline between),
        // an image event and an exec event skipped.
        let one = start("a1");
        let (head, tail) = one.split_at(20);
        fake.send_raw(head.as_bytes());
        fake.send_raw(format!("{tail}\n").as_bytes());
        fake.send_raw(
            format!(
                r#"{{"Type":"image","Action":"pull","Actor":{{"ID":"x"}}}}{}{{"Type":"container","Action":"exec_start: sh","Actor":{{"ID":"a2"}}}}{}"#,
                start("a3"),
                start("a4")
            )
            .as_bytes(),
        );
        let mut ids = Vec::new();
        for _ in 0..3 {
            let ev = stream.next().await.unwrap();
            assert!(ev.opted_in);
            ids.push(ev.id);
        }
        assert_eq!(ids, ["a1", "a3", "a4"]);
        // An event larger than the bound ends the stream with an error naming the bound.
        fake.send_raw(format!(r#"{{"Type":"container","x":"{}"#, "y".repeat(5000)).as_bytes());
        match stream.next().await {
            Err(DockerError::TooLarge { limit, .. }) => assert_eq!(limit, 4096),
            other => panic!("{other:?}"),
        }
        let mut stream = client.events().await.unwrap();
        fake.send_raw(b"{not json}\n");
        assert!(matches!(
            stream.next().await,
            Err(DockerError::BadJson { .. })
        ));
    }

    #[tokio::test]
    async fn check_lists_every_labelled_container() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let fake = FakeDocker::serve(&socket);
        fake.add_quietly("aaaa", "web", &[T3], 100);
        fake.add_quietly("bbbb", "batch", &[("burstd.profile", "t9.huge")], 200);
        fake.add_quietly("cccc", "plain", &[], 300);
        let client = Client::new(&socket, Limits::default());
        let rows = check(&client, &BTreeMap::new()).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            rows[0].outcome,
            Ok("instance web profile t3.micro mode unlimited".to_string())
        );
        let e = rows[1].outcome.as_ref().unwrap_err();
        assert!(
            e.starts_with("label burstd.profile=\"t9.huge\": unknown profile; known:"),
            "{e}"
        );
    }
}
