//! The EC2 Query front end (`[ec2_api]`): `POST /` (or `GET /?…`) with EC2 Query parameters,
//! signed with SigV4, answered in EC2's XML, so aws-cli, boto3 and the SDKs work unmodified.
//!
//! It only decodes, authenticates and encodes: the request reaches the same action layer as the
//! JSON socket ([`super::actions::Engine`] in the agent's task), through the same
//! [`Asker<ApiQuery>`]. Order per request: method and path; the body, bounded
//! ([`super::MAX_BODY`] within [`crate::http::BODY_TIMEOUT`]); the signature
//! ([`sigv4::verify`]); only then the parameters; a `read` key may not call Modify*.

pub mod form;
pub mod sigv4;
pub mod xml;

use super::actions::Call;
use super::errors::ApiError;
use super::types::Action;
use super::{read_body, ApiQuery, MAX_BODY};
use crate::ask::{AskError, Asker};
use crate::config::{Ec2Credential, Ec2Tls};
use crate::http::{self, Body};
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::debug;

pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// A fresh request id, shaped like EC2's (a UUID): a hash of a counter, the time and the pid.
pub fn request_id() -> String {
    use sha2::{Digest, Sha256};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = Sha256::digest(format!("{n}/{t}/{}", std::process::id()).as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn xml_response(status: u16, body: String) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    http::response(status, CONTENT_TYPE, body)
}

fn error_response(status: u16, code: &str, message: &str, rid: &str) -> Response<Body> {
    xml_response(status, xml::error(code, message, rid))
}

fn api_error(e: &ApiError, rid: &str) -> Response<Body> {
    error_response(e.status(), e.code(), &e.to_string(), rid)
}

fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Answers one request.
pub async fn handle(
    req: hyper::Request<Incoming>,
    keys: Arc<Vec<Ec2Credential>>,
    agent: Asker<ApiQuery>,
    now_unix_s: i64,
) -> Response<Body> {
    let rid = request_id();
    let method = req.method().clone();
    if method != Method::POST && method != Method::GET {
        let mut r = error_response(
            405,
            "InvalidAction",
            "use POST / with an EC2 Query form body (or GET /?Action=…)",
            &rid,
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, POST"),
        );
        return r;
    }
    let path = req.uri().path().to_string();
    if path != "/" {
        return error_response(
            400,
            "InvalidAction",
            &format!("{path} is not served: EC2 Query requests go to /"),
            &rid,
        );
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match read_body(req.into_body(), MAX_BODY, http::BODY_TIMEOUT).await {
        Ok(b) => b,
        Err(e) => return api_error(&e, &rid),
    };
    let received = sigv4::Received {
        method: method.as_str(),
        path: &path,
        query: &query,
        headers: &headers,
        body: &body,
    };
    let secret_of = |k: &str| {
        keys.iter()
            .find(|c| c.access_key == k)
            .map(|c| c.secret.expose().to_string())
    };
    let key = match sigv4::verify(&received, now_unix_s, secret_of) {
        Ok(k) => k,
        Err(e) => {
            debug!(code = e.code, message = %e.message, "EC2 Query request not authenticated");
            return error_response(e.status, e.code, &e.message, &rid);
        }
    };
    let admin = keys.iter().any(|c| c.access_key == key && c.admin);
    // Authenticated: now the parameters.
    let mut params = if method == Method::POST {
        match form::decode_pairs(&body) {
            Ok(p) => p,
            Err(e) => return api_error(&e, &rid),
        }
    } else {
        Default::default()
    };
    match form::decode_pairs(query.as_bytes()) {
        Ok(q) => {
            for (k, v) in q {
                if params.contains_key(&k) {
                    let e = ApiError::InvalidValue(format!(
                        "parameter {k} is given both in the query string and the body"
                    ));
                    return api_error(&e, &rid);
                }
                params.insert(k, v);
            }
        }
        Err(e) => return api_error(&e, &rid),
    }
    let (action, request) = match form::decode(params) {
        Ok(x) => x,
        Err(e) => return api_error(&e, &rid),
    };
    let modifies = matches!(
        action,
        Action::ModifyInstanceCreditSpecification | Action::ModifyDefaultCreditSpecification
    );
    if modifies && !admin {
        return error_response(
            403,
            "UnauthorizedOperation",
            &format!(
                "You are not authorized to perform {}: access key {key} has role \"read\"",
                action.name()
            ),
            &rid,
        );
    }
    let call = Call { admin, request };
    let answer = match agent.ask(|reply| ApiQuery { call, reply }).await {
        Ok(a) => a,
        Err(AskError::Stopped) => {
            return api_error(
                &ApiError::Unavailable("burstd is shutting down".into()),
                &rid,
            )
        }
        Err(AskError::NoAnswer(_)) => {
            return api_error(
                &ApiError::Unavailable("the agent's control loop did not answer".into()),
                &rid,
            )
        }
    };
    let (status, text) = xml::encode(action, &answer, &rid);
    xml_response(status, text)
}

/// A TLS acceptor for the configured certificate chain and key (TLS 1.2 and 1.3, rustls'
/// safe defaults with the ring provider, no client certificates).
pub fn tls_acceptor(tls: &Ec2Tls) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose().as_bytes())
        .map_err(|e| format!("tls_key: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("tls_cert and tls_key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves the EC2 Query endpoint on `listener`, at most `max_connections` at once (see
/// [`crate::http`] for every limit), over TLS when `tls` is given (the handshake must finish
/// within [`http::HEADER_TIMEOUT`], holding its connection's permit).
pub async fn serve(
    listener: TcpListener,
    keys: Vec<Ec2Credential>,
    agent: Asker<ApiQuery>,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let busy = xml::error(
        "Unavailable",
        "too many connections; try again later",
        "none",
    );
    let gate = http::Gate::new("ec2_api", max_connections, CONTENT_TYPE, &busy);
    let keys = Arc::new(keys);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                http::accept_failed("ec2_api", e).await;
                continue;
            }
        };
        let Some(permit) = gate.admit(&stream) else {
            continue;
        };
        let agent = agent.clone();
        let keys = keys.clone();
        let handler = move |req| {
            let agent = agent.clone();
            let keys = keys.clone();
            async move { handle(req, keys, agent, now_unix_s()).await }
        };
        match &tls {
            None => {
                tokio::spawn(http::serve_connection(stream, permit, handler));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(http::HEADER_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(s)) => http::serve_connection(s, permit, handler).await,
                        Ok(Err(e)) => debug!(error = %e, "EC2 Query TLS handshake failed"),
                        Err(_) => debug!("EC2 Query TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
