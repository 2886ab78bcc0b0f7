//! The CLI's side of the API: one request per connection over the Unix socket.

use super::types::Action;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no socket at {0}: burstd is not running, or [api] socket points elsewhere (use --socket PATH)")]
    NotFound(PathBuf),
    #[error("burstd is not running: nothing listens on {0} (a stale socket)")]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: run as root or as a member of the [api] group")]
    PermissionDenied(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the exchange with burstd failed: {0}")]
    Http(String),
    #[error("burstd answered something that is not JSON: {0}")]
    BadAnswer(String),
}

/// Sends `body` (one of the request types of [`super::types`], or any JSON) to
/// `POST /<action>`; returns the HTTP status and the JSON answer.
pub async fn call(
    socket: &Path,
    action: Action,
    body: &impl serde::Serialize,
) -> Result<(u16, serde_json::Value), ClientError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ClientError::NotFound(socket.to_path_buf()),
            std::io::ErrorKind::ConnectionRefused => ClientError::NotRunning(socket.to_path_buf()),
            std::io::ErrorKind::PermissionDenied => {
                ClientError::PermissionDenied(socket.to_path_buf())
            }
            _ => ClientError::Io {
                path: socket.to_path_buf(),
                source: e,
            },
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let payload = serde_json::to_vec(body).map_err(|e| ClientError::Http(e.to_string()))?;
    let req = hyper::Request::post(format!("/{}", action.name()))
        .header(hyper::header::HOST, "burstd")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes();
    driver.abort();
    let value = serde_json::from_slice(&bytes)
        .map_err(|_| ClientError::BadAnswer(String::from_utf8_lossy(&bytes).into_owned()))?;
    Ok((status, value))
}
