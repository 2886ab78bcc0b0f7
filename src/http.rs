//! The small HTTP/1.1 layer the metrics endpoint (TCP) and the control API (Unix socket) share:
//! a cap on connections ([`Gate`]), one task per admitted connection with its time limits
//! ([`serve_connection`]), and response helpers.
//!
//! Both servers take hostile input (any local uid reaches the metrics port; any member of the
//! socket's group the API), so what one connection can hold is bounded:
//! - at most `max_connections` at once per server; one more is answered 503 and closed at once,
//!   as node_exporter's `--web.max-requests` answers;
//! - request headers within [`HEADER_TIMEOUT`], which is also how long a kept-alive connection
//!   may sit idle between requests;
//! - a response write that makes no progress for [`WRITE_STALL_TIMEOUT`] closes the connection
//!   (a client that never reads);
//! - a connection lives at most [`CONNECTION_LIFETIME`]: then it finishes the request in hand
//!   (at most [`CLOSE_GRACE`] more) and is closed;
//! - hyper's read buffer is at most [`MAX_READ_BUFFER`] per connection;
//! - a request followed by a half-close (`shutdown(SHUT_WR)`) is answered.
//!
//! Request bodies are each server's business (the API reads them under [`BODY_TIMEOUT`]).

use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tracing::{debug, warn};

pub type Body = http_body_util::Full<Bytes>;

/// Connections each server serves at once unless `max_connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// A request's headers must arrive within this; a kept-alive connection idle this long closes.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive whole within this (the API's bodies).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A response write blocked this long (the client does not read) closes the connection.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is told to close after this (keep-alive off: the request in hand finishes).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long a connection past its lifetime may take to finish its request before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// hyper's read buffer per connection (request line, headers, body frames in flight).
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// A complete response with a content type.
pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// The cap on one server's connections: a permit per connection, held until it closes.
pub struct Gate {
    what: &'static str,
    permits: Arc<Semaphore>,
    max: usize,
    /// The whole 503 answer to a connection over the cap, written raw.
    busy: Bytes,
    refused: AtomicU64,
}

impl Gate {
    /// A cap of `max` connections (at least 1); over it a connection gets a 503 whose body is
    /// `body` (of type `content_type`).
    pub fn new(what: &'static str, max: usize, content_type: &str, body: &str) -> Gate {
        let max = max.max(1);
        let busy = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        Gate {
            what,
            permits: Arc::new(Semaphore::new(max)),
            max,
            busy: Bytes::from(busy),
            refused: AtomicU64::new(0),
        }
    }

    /// A permit for one more connection, or `None` when the server is full: then the
    /// connection was answered 503 (without waiting: what is already received is read and
    /// dropped, the answer written if the socket takes it) and is to be dropped (closed).
    pub fn admit<S: TryIo>(&self, stream: &S) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(p);
        }
        // Reading what already arrived lets the close be a FIN, not a reset that could
        // discard the answer at the client.
        let mut scratch = [0u8; 2048];
        let _ = stream.try_read_now(&mut scratch);
        let _ = stream.try_write_now(&self.busy);
        let n = self.refused.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            warn!(
                endpoint = self.what,
                max_connections = self.max,
                refused = n + 1,
                "connection refused (503): the server is at its max_connections"
            );
        }
        None
    }
}

/// The non-blocking reads and writes [`Gate::admit`] needs (TCP and Unix streams).
pub trait TryIo {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write_now(&self, buf: &[u8]) -> io::Result<usize>;
}

impl TryIo for tokio::net::TcpStream {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
    fn try_write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

impl TryIo for tokio::net::UnixStream {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
    fn try_write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

/// Serves HTTP/1.1 on one admitted connection (holding its `permit`) until the peer closes
/// it or a limit of this module's header is reached.
pub async fn serve_connection<IO, F, Fut>(io: IO, permit: OwnedSemaphorePermit, handler: F)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let _permit = permit;
    let svc = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .half_close(true)
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(WriteStall::new(io)), svc);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, conn).await {
                Ok(r) => r,
                Err(_) => {
                    debug!("HTTP connection dropped: still busy past its lifetime");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// A stream whose writes fail with `TimedOut` once one has been blocked for
/// [`WRITE_STALL_TIMEOUT`] (the peer stopped reading); reads pass through.
struct WriteStall<IO> {
    io: IO,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> WriteStall<IO> {
    fn new(io: IO) -> Self {
        WriteStall { io, stalled: None }
    }

    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                Poll::Ready(v)
            }
            Poll::Pending => {
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer has not read the response for too long",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteStall<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteStall<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        // Vectored writes let hyper send a shared body without copying it.
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// Pauses briefly after a failed accept (e.g. out of file descriptors) instead of spinning.
pub async fn accept_failed(what: &str, e: std::io::Error) {
    warn!(endpoint = what, error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
