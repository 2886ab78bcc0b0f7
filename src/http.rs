//! The small HTTP/1.1 layer the metrics endpoint (TCP) and the control API (Unix socket) share:
//! an accept loop that serves each connection on its own task, and response helpers.

use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

pub type Body = http_body_util::Full<Bytes>;

/// A complete response with a content type.
pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves HTTP/1.1 on one accepted connection until the peer closes it. A client that does
/// not finish its request headers within 10 s is dropped, so idle peers hold nothing.
pub async fn serve_connection<IO, F, Fut>(io: IO, handler: F)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let svc = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Pauses briefly after a failed accept (e.g. out of file descriptors) instead of spinning.
pub async fn accept_failed(what: &str, e: std::io::Error) {
    warn!(endpoint = what, error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
