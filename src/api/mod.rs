//! The control API: EC2-shaped JSON over HTTP/1.1 on a Unix socket (`POST /<Action>`).
//!
//! The server (here) authenticates the peer from its socket credentials, parses and bounds the
//! request, and hands it to the agent's task as an [`ApiQuery`] through a narrow handle
//! ([`Asker<ApiQuery>`]); the task answers through [`actions::Engine`] and saves the state
//! before the answer leaves. `client` is the CLI's side.

pub mod actions;
pub mod auth;
pub mod client;
pub mod errors;
pub mod query;
pub mod types;

use crate::ask::{AskError, Asker, Reply};
use crate::http::{self, Body};
use actions::Call;
use auth::GroupDb;
use errors::Answer;
use errors::ApiError;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixListener;
use tracing::{debug, warn};
use types::{Action, Request};

/// Larger request bodies are refused.
pub const MAX_BODY: usize = 1 << 20;
/// How long a request waits for the agent's task.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One request handed to the control loop, with where its answer goes.
#[derive(Debug)]
pub struct ApiQuery {
    pub call: Call,
    pub reply: Reply<Answer>,
}

/// Who may do what on this socket.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub admin_gid: Option<u32>,
    pub db: GroupDb,
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("[api] socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("[api] socket {path}: another burstd is already serving it (stop it first)")]
    InUse { path: PathBuf },
    #[error(transparent)]
    Group(#[from] auth::GroupError),
}

/// Creates the socket: parent directory, stale socket removed, mode 0660, group `group`.
pub fn bind(path: &Path, group: Option<&str>, db: &GroupDb) -> Result<UnixListener, SocketError> {
    let io = |what, source| SocketError::Io {
        path: path.to_path_buf(),
        what,
        source,
    };
    let gid = group.map(|g| db.gid_of(g, "group")).transpose()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create its directory", e))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io(
                "exists and is not a socket",
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse {
                path: path.to_path_buf(),
            });
        }
        // Left over from a burstd that did not exit cleanly.
        std::fs::remove_file(path).map_err(|e| io("cannot remove the stale socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| io("cannot bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io("cannot set mode 0660", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| io("cannot give it to the [api] group", e))?;
    }
    Ok(listener)
}

/// Parses a body for `action`. Syntax errors are `MalformedJSON`; unknown fields and wrong
/// types `InvalidParameterValue`; missing fields `MissingParameter`.
pub fn parse_request(action: Action, body: &[u8]) -> Result<Request, ApiError> {
    fn de<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
        // An empty body is an empty object (no parameters).
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            body
        };
        serde_json::from_slice(body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::MalformedJson(format!("the body is not valid JSON: {e}"))
                }
                Category::Data if e.to_string().starts_with("missing field") => {
                    ApiError::Missing(format!("a required parameter is missing: {e}"))
                }
                Category::Data => ApiError::InvalidValue(format!(
                    "a parameter is unknown or of the wrong type: {e}"
                )),
            }
        })
    }
    Ok(match action {
        Action::ModifyInstanceCreditSpecification => {
            Request::ModifyInstanceCreditSpecification(de(body)?)
        }
        Action::DescribeInstanceCreditSpecifications => {
            Request::DescribeInstanceCreditSpecifications(de(body)?)
        }
        Action::ModifyDefaultCreditSpecification => {
            Request::ModifyDefaultCreditSpecification(de(body)?)
        }
        Action::GetDefaultCreditSpecification => Request::GetDefaultCreditSpecification(de(body)?),
        Action::DescribeCreditBalances => Request::DescribeCreditBalances(de(body)?),
    })
}

async fn answer(req: hyper::Request<Incoming>, admin: bool, agent: Asker<ApiQuery>) -> Answer {
    match ask(req, admin, agent).await {
        Ok(a) => a,
        Err(e) => e.answer(),
    }
}

/// Checks and parses the request, and asks the control loop for its answer.
async fn ask(
    req: hyper::Request<Incoming>,
    admin: bool,
    agent: Asker<ApiQuery>,
) -> Result<Answer, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::WrongMethod(
            "use POST /<Action> with a JSON body".into(),
        ));
    }
    let Some(action) = Action::from_path(req.uri().path()) else {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        return Err(ApiError::UnknownAction(format!(
            "{} is not an action; known: {}",
            req.uri().path(),
            known.join(", ")
        )));
    };
    let body = read_body(req.into_body(), MAX_BODY, http::BODY_TIMEOUT).await?;
    let call = Call {
        admin,
        request: parse_request(action, &body)?,
    };
    agent
        .ask(|reply| ApiQuery { call, reply })
        .await
        .map_err(|e| match e {
            AskError::Stopped => ApiError::Unavailable("burstd is shutting down".into()),
            AskError::NoAnswer(_) => {
                ApiError::Unavailable("the agent's control loop did not answer".into())
            }
        })
}

/// Reads a request body into one buffer, frame by frame, within `timeout`: each frame's bytes
/// are copied and the frame dropped, so what a body holds is its bytes (at most `limit`, and at
/// most its declared length), however finely it was cut. A declared length over `limit` is
/// refused before anything is read.
pub async fn read_body<B>(mut body: B, limit: usize, timeout: Duration) -> Result<Vec<u8>, ApiError>
where
    B: hyper::body::Body<Data = hyper::body::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let too_large = || ApiError::TooLarge(format!("the request body is larger than {limit} bytes"));
    let hint = body.size_hint();
    if hint.lower() > limit as u64 {
        return Err(too_large());
    }
    // What this body may ever hold: its declared length, if any, and the limit.
    let most = hint
        .upper()
        .map_or(limit, |u| usize::try_from(u).unwrap_or(limit).min(limit));
    let mut buf: Vec<u8> = Vec::with_capacity(most.min(64 * 1024));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::MalformedJson(format!("cannot read the body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > most {
                return Err(too_large());
            }
            if len > buf.capacity() {
                // Grow by doubling, never past what the body may hold.
                let want = len.max(buf.capacity().saturating_mul(2)).min(most);
                buf.reserve_exact(want - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::BodyTimeout(format!(
            "the request body did not arrive within {} s",
            timeout.as_secs()
        ))),
    }
}

fn json_body(a: &Answer) -> Vec<u8> {
    let mut body = serde_json::to_vec_pretty(&a.body).unwrap_or_default();
    body.push(b'\n');
    body
}

fn to_response(a: Answer) -> Response<Body> {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    http::response(status, "application/json", json_body(&a))
}

/// Serves the API on `listener` until the task is dropped, at most `max_connections`
/// connections at once (see [`crate::http`] for every limit).
pub async fn serve(
    listener: UnixListener,
    access: Access,
    agent: Asker<ApiQuery>,
    max_connections: usize,
) {
    let busy =
        json_body(&ApiError::Unavailable("too many connections; try again later".into()).answer());
    let busy = String::from_utf8_lossy(&busy).into_owned();
    let gate = http::Gate::new("api", max_connections, "application/json", &busy);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                http::accept_failed("api", e).await;
                continue;
            }
        };
        let Some(permit) = gate.admit(&stream) else {
            continue;
        };
        let admin = match stream.peer_cred() {
            Ok(c) => auth::peer_may_modify(
                std::os::fd::AsFd::as_fd(&stream),
                c.uid(),
                c.gid(),
                access.admin_gid,
                &access.db,
            ),
            Err(e) => {
                warn!(error = %e, "cannot read the API peer's credentials; treated as read-only");
                false
            }
        };
        debug!(admin, "API connection");
        let agent = agent.clone();
        tokio::spawn(http::serve_connection(stream, permit, move |req| {
            let agent = agent.clone();
            async move { to_response(answer(req, admin, agent).await) }
        }));
    }
}

#[cfg(test)]
mod tests;
