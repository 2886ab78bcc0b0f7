//! A small client of the Docker Engine API over its Unix socket, which Podman serves too
//! (`podman system service`): list the labelled running containers, inspect one, and follow
//! the `/events` stream. Every answer is hostile input: bodies and events are bounded in size,
//! requests in time, and ids are checked before they go into a path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use super::labels;
use crate::credit::Rate;

/// Time and size bounds for everything read from the socket.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    /// A whole list or inspect exchange; for `/events`, until the stream's headers.
    pub request: Duration,
    /// A list or inspect body.
    pub max_body: usize,
    /// One event of the stream.
    pub max_event: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(10),
            max_body: 16 << 20,
            max_event: 1 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no Docker API socket at {0} (is the Docker or Podman service running? [containers] docker = \"PATH\" names the socket)")]
    NoSocket(PathBuf),
    #[error(
        "nothing listens on {0} (a stale socket: the Docker or Podman service is not running)"
    )]
    Refused(PathBuf),
    #[error("permission denied on {0}: burstd must run as root or in the socket's group")]
    PermissionDenied(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no answer to {what} within {secs} s")]
    Timeout {
        path: PathBuf,
        what: String,
        secs: u64,
    },
    #[error("{path}: {what}: {reason}")]
    Http {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("{path}: {what}: HTTP {status}: {message}")]
    Status {
        path: PathBuf,
        what: String,
        status: u16,
        message: String,
    },
    #[error("{path}: {what}: the answer is larger than {limit} bytes")]
    TooLarge {
        path: PathBuf,
        what: String,
        limit: usize,
    },
    #[error("{path}: {what}: not the expected JSON: {reason}")]
    BadJson {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("{path}: the event stream ended")]
    Closed { path: PathBuf },
    #[error("container id {0:?} is not a plain id")]
    BadId(String),
}

/// A running container from the list.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Summary {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What inspecting a container tells.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Details {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// The container's main process (0 when it is not running).
    pub pid: u32,
    pub labels: BTreeMap<String, String>,
    /// The container's own CPU limit (`--cpus`, or `--cpu-quota`/`--cpu-period`).
    pub cpu_limit: Option<Rate>,
}

/// The container events burstd follows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventKind {
    Start,
    /// `die` (Docker), `cleanup` (Podman): its processes are gone.
    Died,
    /// `destroy` (Docker), `remove` (Podman).
    Removed,
    /// `update` (`docker update --cpus`): its own limit may have changed.
    Updated,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    pub kind: EventKind,
    pub id: String,
    /// The container's name when the runtime says it (without `/`); may be empty.
    pub name: String,
    /// Whether the event carries `burstd.profile` among its attributes (both runtimes put the
    /// container's labels there).
    pub opted_in: bool,
}

/// The actions asked of `/events`: Docker's and Podman's names for the same moments.
pub const EVENT_ACTIONS: [&str; 6] = ["start", "die", "cleanup", "destroy", "remove", "update"];

#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    limits: Limits,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>, limits: Limits) -> Client {
        Client {
            socket: socket.into(),
            limits,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The running containers with a `burstd.profile` label.
    pub async fn list_labelled(&self) -> Result<Vec<Summary>, DockerError> {
        let filters = format!(r#"{{"label":["{}"]}}"#, labels::PROFILE);
        let uri = format!("/containers/json?filters={}", percent_encode(&filters));
        let body = self.get(&uri, "listing containers").await?;
        let raw: Vec<RawSummary> = self.json(&body, "listing containers")?;
        Ok(raw
            .into_iter()
            .filter(|c| c.state.as_deref().map_or(true, |s| s == "running"))
            .map(|c| Summary {
                name: c
                    .names
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                id: c.id,
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    /// Inspects container `id`.
    pub async fn inspect(&self, id: &str) -> Result<Details, DockerError> {
        check_id(id)?;
        let what = format!("inspecting container {id}");
        let body = self.get(&format!("/containers/{id}/json"), &what).await?;
        let raw: RawInspect = self.json(&body, &what)?;
        let state = raw.state.unwrap_or_default();
        let host = raw.host_config.unwrap_or_default();
        Ok(Details {
            id: raw.id,
            name: raw.name.trim_start_matches('/').to_string(),
            running: state.running,
            pid: u32::try_from(state.pid).unwrap_or(0),
            labels: raw.config.and_then(|c| c.labels).unwrap_or_default(),
            cpu_limit: cpu_limit(host.nano_cpus, host.cpu_quota, host.cpu_period),
        })
    }

    /// Subscribes to the container events burstd follows. Returns once the runtime has
    /// answered, so every event after this moment is in the stream.
    pub async fn events(&self) -> Result<EventStream, DockerError> {
        let filters = format!(
            r#"{{"type":["container"],"event":[{}]}}"#,
            EVENT_ACTIONS.map(|a| format!("\"{a}\"")).join(",")
        );
        let uri = format!("/events?filters={}", percent_encode(&filters));
        let what = "subscribing to events";
        let (resp, driver) = self
            .timed(what, async {
                let (mut sender, driver) = self.connect(what).await?;
                let resp = sender
                    .send_request(request(&uri)?)
                    .await
                    .map_err(|e| self.http(what, e))?;
                Ok((resp, driver))
            })
            .await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = self
                .read_body(resp.into_body(), what)
                .await
                .unwrap_or_default();
            driver.abort();
            return Err(self.status(what, status, &body));
        }
        Ok(EventStream {
            socket: self.socket.clone(),
            body: resp.into_body(),
            buf: Vec::new(),
            max_event: self.limits.max_event,
            _driver: AbortOnDrop(driver),
        })
    }

    async fn get(&self, uri: &str, what: &str) -> Result<Bytes, DockerError> {
        self.timed(what, async {
            let (mut sender, driver) = self.connect(what).await?;
            let _driver = AbortOnDrop(driver);
            let resp = sender
                .send_request(request(uri)?)
                .await
                .map_err(|e| self.http(what, e))?;
            let status = resp.status().as_u16();
            let body = self.read_body(resp.into_body(), what).await?;
            if !(200..300).contains(&status) {
                return Err(self.status(what, status, &body));
            }
            Ok(body)
        })
        .await
    }

    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, DockerError>>,
    ) -> Result<T, DockerError> {
        match tokio::time::timeout(self.limits.request, f).await {
            Ok(r) => r,
            Err(_) => Err(DockerError::Timeout {
                path: self.socket.clone(),
                what: what.to_string(),
                secs: self.limits.request.as_secs(),
            }),
        }
    }

    async fn connect(
        &self,
        what: &str,
    ) -> Result<
        (
            hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
            JoinHandle<()>,
        ),
        DockerError,
    > {
        let stream = match tokio::time::timeout(
            self.limits.connect,
            UnixStream::connect(&self.socket),
        )
        .await
        {
            Err(_) => {
                return Err(DockerError::Timeout {
                    path: self.socket.clone(),
                    what: "connecting".to_string(),
                    secs: self.limits.connect.as_secs(),
                })
            }
            Ok(Err(e)) => return Err(self.connect_error(e)),
            Ok(Ok(s)) => s,
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.http(what, e))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, driver))
    }

    fn connect_error(&self, e: std::io::Error) -> DockerError {
        let path = self.socket.clone();
        match e.kind() {
            std::io::ErrorKind::NotFound => DockerError::NoSocket(path),
            std::io::ErrorKind::ConnectionRefused => DockerError::Refused(path),
            std::io::ErrorKind::PermissionDenied => DockerError::PermissionDenied(path),
            _ => DockerError::Io { path, source: e },
        }
    }

    async fn read_body(&self, body: Incoming, what: &str) -> Result<Bytes, DockerError> {
        match Limited::new(body, self.limits.max_body).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(DockerError::TooLarge {
                    path: self.socket.clone(),
                    what: what.to_string(),
                    limit: self.limits.max_body,
                })
            }
            Err(e) => Err(DockerError::Http {
                path: self.socket.clone(),
                what: what.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    fn json<'a, T: Deserialize<'a>>(&self, body: &'a [u8], what: &str) -> Result<T, DockerError> {
        serde_json::from_slice(body).map_err(|e| DockerError::BadJson {
            path: self.socket.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    fn http(&self, what: &str, e: hyper::Error) -> DockerError {
        DockerError::Http {
            path: self.socket.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        }
    }

    fn status(&self, what: &str, status: u16, body: &[u8]) -> DockerError {
        // The API's errors are `{"message": "..."}`; keep a bounded excerpt of anything else.
        let message = serde_json::from_slice::<RawError>(body)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        DockerError::Status {
            path: self.socket.clone(),
            what: what.to_string(),
            status,
            message,
        }
    }
}

/// The `/events` stream. Dropping it closes the connection.
pub struct EventStream {
    socket: PathBuf,
    body: Incoming,
    buf: Vec<u8>,
    max_event: usize,
    _driver: AbortOnDrop,
}

impl EventStream {
    /// The next event burstd follows; other events are skipped. An error (the stream ended,
    /// an oversized or malformed event) ends the stream: resubscribe and resync.
    pub async fn next(&mut self) -> Result<Event, DockerError> {
        loop {
            while let Some(raw) = self.take_one()? {
                if let Some(ev) = raw.event() {
                    return Ok(ev);
                }
            }
            if self.buf.len() > self.max_event {
                return Err(DockerError::TooLarge {
                    path: self.socket.clone(),
                    what: "an event".to_string(),
                    limit: self.max_event,
                });
            }
            match self.body.frame().await {
                None => {
                    return Err(DockerError::Closed {
                        path: self.socket.clone(),
                    })
                }
                Some(Err(e)) => {
                    return Err(DockerError::Http {
                        path: self.socket.clone(),
                        what: "reading events".to_string(),
                        reason: e.to_string(),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// One complete JSON value from the buffer, if there is one. Docker ends each with a
    /// newline, but a value split across chunks or several in one chunk are both fine.
    fn take_one(&mut self) -> Result<Option<RawEvent>, DockerError> {
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<RawEvent>();
        match values.next() {
            None => {
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(raw)) => {
                let used = values.byte_offset();
                self.buf.drain(..used);
                Ok(Some(raw))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(DockerError::BadJson {
                path: self.socket.clone(),
                what: "an event".to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn request(uri: &str) -> Result<hyper::Request<Empty<Bytes>>, DockerError> {
    hyper::Request::get(uri)
        .header(hyper::header::HOST, "docker")
        .body(Empty::new())
        .map_err(|e| DockerError::Http {
            path: PathBuf::new(),
            what: uri.to_string(),
            reason: e.to_string(),
        })
}

/// Container ids go into request paths: only what an id can be.
fn check_id(id: &str) -> Result<(), DockerError> {
    if !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(())
    } else {
        Err(DockerError::BadId(id.chars().take(140).collect()))
    }
}

/// Percent-encodes a query value (everything but the unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The container's own limit as a rate: `NanoCpus` (`--cpus`) or `CpuQuota`/`CpuPeriod`
/// (period 0 means the kernel's default, 100 ms). No positive value: no limit.
pub fn cpu_limit(nano_cpus: i64, quota_us: i64, period_us: i64) -> Option<Rate> {
    const ONE_CORE: u128 = Rate::ONE_CORE.milli_credits_per_hour() as u128;
    let milli = if nano_cpus > 0 {
        nano_cpus as u128 * ONE_CORE / 1_000_000_000
    } else if quota_us > 0 {
        let period = if period_us > 0 { period_us } else { 100_000 } as u128;
        quota_us as u128 * ONE_CORE / period
    } else {
        return None;
    };
    Some(Rate::from_milli_credits_per_hour(
        u64::try_from(milli).unwrap_or(u64::MAX),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSummary {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInspect {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    state: Option<RawState>,
    #[serde(default)]
    config: Option<RawConfig>,
    #[serde(default)]
    host_config: Option<RawHostConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    #[serde(default)]
    running: bool,
    #[serde(default)]
    pid: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawHostConfig {
    #[serde(default)]
    nano_cpus: i64,
    #[serde(default)]
    cpu_quota: i64,
    #[serde(default)]
    cpu_period: i64,
}

#[derive(Deserialize)]
struct RawError {
    message: String,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Option<RawActor>,
}

#[derive(Deserialize)]
struct RawActor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
}

impl RawEvent {
    fn event(self) -> Option<Event> {
        if self.kind != "container" {
            return None;
        }
        let kind = match self.action.as_str() {
            "start" => EventKind::Start,
            "die" | "cleanup" => EventKind::Died,
            "destroy" | "remove" => EventKind::Removed,
            "update" => EventKind::Updated,
            _ => return None,
        };
        let actor = self.actor?;
        check_id(&actor.id).ok()?;
        let attributes = actor.attributes.unwrap_or_default();
        Some(Event {
            kind,
            id: actor.id,
            name: attributes.get("name").cloned().unwrap_or_default(),
            opted_in: labels::opted_in(&attributes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_limit_from_either_form() {
        // --cpus 0.5
        assert_eq!(
            cpu_limit(500_000_000, 0, 0),
            Some(Rate::from_milli_credits_per_hour(30_000))
        );
        // --cpu-quota 25000 --cpu-period 50000
        assert_eq!(
            cpu_limit(0, 25_000, 50_000),
            Some(Rate::from_milli_credits_per_hour(30_000))
        );
        // --cpu-quota 20000 with the default period
        assert_eq!(
            cpu_limit(0, 20_000, 0),
            Some(Rate::from_milli_credits_per_hour(12_000))
        );
        assert_eq!(cpu_limit(0, 0, 100_000), None);
        assert_eq!(cpu_limit(0, -1, 100_000), None);
    }

    #[test]
    fn ids_that_could_leave_the_path_are_refused() {
        assert!(check_id("8a11ee3f7a7a").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b", &"a".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            percent_encode(r#"{"label":["burstd.profile"]}"#),
            "%7B%22label%22%3A%5B%22burstd.profile%22%5D%7D"
        );
    }

    #[test]
    fn podman_and_docker_event_names() {
        let ev = |action: &str| {
            let raw: RawEvent = serde_json::from_str(&format!(
                r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"abc","Attributes":{{"name":"web","burstd.profile":"t3.micro"}}}}}}"#
            ))
            .unwrap();
            raw.event().map(|e| e.kind)
        };
        assert_eq!(ev("start"), Some(EventKind::Start));
        assert_eq!(ev("die"), Some(EventKind::Died));
        assert_eq!(ev("cleanup"), Some(EventKind::Died));
        assert_eq!(ev("destroy"), Some(EventKind::Removed));
        assert_eq!(ev("remove"), Some(EventKind::Removed));
        assert_eq!(ev("update"), Some(EventKind::Updated));
        assert_eq!(ev("exec_start: sh"), None);
        assert_eq!(ev("attach"), None);
    }
}
