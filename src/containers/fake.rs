//! A fake Docker Engine API on a Unix socket for tests: containers the test adds, starts and
//! removes, and an `/events` stream it writes to (or breaks, to lose events).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Bytes, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub pid: u32,
    pub running: bool,
    pub nano_cpus: i64,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
    requests: Vec<String>,
}

pub struct FakeDocker {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDocker {
    /// Serves on `socket` (which must not exist yet).
    pub fn serve(socket: &Path) -> FakeDocker {
        let listener = UnixListener::bind(socket).expect("bind the fake Docker socket");
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeDocker { state, task }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Adds a running container without an event (as if the event were lost).
    pub fn add_quietly(&self, id: &str, name: &str, labels: &[(&str, &str)], pid: u32) {
        let c = FakeContainer {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pid,
            running: true,
            nano_cpus: 0,
        };
        self.with(|s| s.containers.insert(id.to_string(), c));
    }

    /// Adds a running container and announces its start.
    pub fn run(&self, id: &str, name: &str, labels: &[(&str, &str)], pid: u32) {
        self.add_quietly(id, name, labels, pid);
        self.announce(id, "start");
    }

    /// Its process exits (Podman's `cleanup`, as a real Podman 4.3 sends it).
    pub fn die(&self, id: &str) {
        self.with(|s| {
            if let Some(c) = s.containers.get_mut(id) {
                c.running = false;
                c.pid = 0;
            }
        });
        self.announce(id, "cleanup");
    }

    /// Removes it without an event.
    pub fn remove_quietly(&self, id: &str) {
        self.with(|s| s.containers.remove(id));
    }

    /// Sets its `--cpus` and announces an `update`.
    pub fn update_cpus(&self, id: &str, nano_cpus: i64) {
        self.with(|s| {
            if let Some(c) = s.containers.get_mut(id) {
                c.nano_cpus = nano_cpus;
            }
        });
        self.announce(id, "update");
    }

    /// Sends an event for `id` in the runtime's form.
    pub fn announce(&self, id: &str, action: &str) {
        let (name, labels) = self.with(|s| {
            s.containers
                .get(id)
                .map(|c| (c.name.clone(), c.labels.clone()))
                .unwrap_or_default()
        });
        let mut attributes: BTreeMap<String, String> = labels;
        attributes.insert("name".into(), name);
        attributes.insert("image".into(), "localhost/bb:1".into());
        let ev = json!({
            "status": action, "id": id, "Type": "container", "Action": action,
            "Actor": {"ID": id, "Attributes": attributes}, "scope": "local", "time": 1
        });
        self.send_raw(format!("{ev}\n").as_bytes());
    }

    /// Writes raw bytes to every open event stream.
    pub fn send_raw(&self, bytes: &[u8]) {
        let bytes = Bytes::copy_from_slice(bytes);
        self.with(|s| s.subscribers.retain(|tx| tx.send(bytes.clone()).is_ok()));
    }

    /// Ends every open event stream: events from now on are lost to those subscribers.
    pub fn break_events(&self) {
        self.with(|s| s.subscribers.clear());
    }

    pub fn subscribers(&self) -> usize {
        self.with(|s| s.subscribers.iter().filter(|tx| !tx.is_closed()).count())
    }

    /// The request paths served so far.
    pub fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }
}

fn answer(st: &Mutex<State>, req: Request<Incoming>) -> Response<FakeBody> {
    let Ok(mut s) = st.lock() else {
        return reply(500, json!({"message": "poisoned"}));
    };
    let uri = req.uri().to_string();
    s.requests.push(uri.clone());
    let path = req.uri().path();
    if path == "/events" {
        let (tx, rx) = mpsc::unbounded_channel();
        s.subscribers.push(tx);
        return Response::new(FakeBody::Stream(rx));
    }
    if path == "/containers/json" {
        let wants_label = uri.contains("burstd.profile");
        let list: Vec<_> = s
            .containers
            .iter()
            .filter(|(_, c)| c.running && (!wants_label || c.labels.contains_key("burstd.profile")))
            .map(|(id, c)| {
                json!({"Id": id, "Names": [format!("/{}", c.name)], "Labels": c.labels, "State": "running"})
            })
            .collect();
        return reply(200, json!(list));
    }
    if let Some(id) = path
        .strip_prefix("/containers/")
        .and_then(|r| r.strip_suffix("/json"))
    {
        return match s.containers.get(id) {
            Some(c) => reply(
                200,
                json!({
                    "Id": id, "Name": format!("/{}", c.name),
                    "State": {"Running": c.running, "Pid": c.pid, "Status": if c.running {"running"} else {"exited"}},
                    "Config": {"Labels": c.labels},
                    "HostConfig": {"NanoCpus": c.nano_cpus, "CpuQuota": 0, "CpuPeriod": 0}
                }),
            ),
            None => reply(404, json!({"message": format!("no such container: {id}")})),
        };
    }
    reply(404, json!({"message": "page not found"}))
}

fn reply(status: u16, v: serde_json::Value) -> Response<FakeBody> {
    let mut r = Response::new(FakeBody::Full(Some(Bytes::from(v.to_string()))));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    r
}

/// A whole body, or one fed by the test as the events come.
pub enum FakeBody {
    Full(Option<Bytes>),
    Stream(mpsc::UnboundedReceiver<Bytes>),
}

impl hyper::body::Body for FakeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            FakeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            FakeBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }
}
