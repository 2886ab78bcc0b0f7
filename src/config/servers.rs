//! The `[metrics]` and `[api]` sections: where the two servers listen.

use super::raw::{spanned, Ctx};
use super::ConfigError;
use crate::http::DEFAULT_MAX_CONNECTIONS;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// Where the metrics endpoint listens unless the file says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9749";
/// Where the control API's socket is unless the file says otherwise.
pub const DEFAULT_API_SOCKET: &str = "/run/burstd/api.sock";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    pub(super) enabled: bool,
    pub(super) listen: Spanned<String>,
    pub(super) max_connections: Spanned<i64>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            listen: spanned(DEFAULT_METRICS_LISTEN.to_string()),
            max_connections: spanned(DEFAULT_MAX_CONNECTIONS as i64),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApi {
    pub(super) enabled: bool,
    pub(super) socket: Spanned<String>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) admin_group: Option<Spanned<String>>,
    pub(super) max_connections: Spanned<i64>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            enabled: true,
            socket: spanned(DEFAULT_API_SOCKET.to_string()),
            group: None,
            admin_group: None,
            max_connections: spanned(DEFAULT_MAX_CONNECTIONS as i64),
        }
    }
}

/// The `[metrics]` section, resolved.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MetricsConfig {
    /// `None`: no metrics endpoint (`enabled = false` or `listen = ""`).
    pub listen: Option<std::net::SocketAddr>,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

/// The `[api]` section, resolved.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiConfig {
    /// `None`: no control API (`enabled = false` or `socket = ""`).
    pub socket: Option<PathBuf>,
    /// Group that owns the socket (mode 0660): its members may read.
    pub group: Option<String>,
    /// Members of this group (and root) may change things.
    pub admin_group: Option<String>,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

/// Most connections a server may be allowed at once.
pub const MAX_MAX_CONNECTIONS: i64 = 65_536;

pub(super) fn max_connections(
    cx: &Ctx,
    section: &str,
    v: &Spanned<i64>,
) -> Result<usize, ConfigError> {
    let n = *v.get_ref();
    if !(1..=MAX_MAX_CONNECTIONS).contains(&n) {
        return Err(cx.err(
            v.span(),
            format!("[{section}] max_connections = {n}: must be 1 to {MAX_MAX_CONNECTIONS} (default {DEFAULT_MAX_CONNECTIONS})"),
        ));
    }
    // In range: fits.
    Ok(usize::try_from(n).unwrap_or(DEFAULT_MAX_CONNECTIONS))
}

pub(super) fn metrics_config(cx: &Ctx, m: &RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let text = m.listen.get_ref().trim();
    let max_connections = max_connections(cx, "metrics", &m.max_connections)?;
    if !m.enabled || text.is_empty() {
        return Ok(MetricsConfig {
            listen: None,
            max_connections,
        });
    }
    let listen = text.parse().map_err(|_| {
        cx.err(
            m.listen.span(),
            format!(
                "[metrics] listen = {text:?}: must be an IP address and port like \"127.0.0.1:9749\" \
                 or \"[::1]:9749\" (\"\" turns the endpoint off)"
            ),
        )
    })?;
    Ok(MetricsConfig {
        listen: Some(listen),
        max_connections,
    })
}

/// A group name as /etc/group allows it (the POSIX portable set, plus the usual extras).
fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(super) fn api_config(cx: &Ctx, a: &RawApi) -> Result<ApiConfig, ConfigError> {
    let socket = a.socket.get_ref().trim();
    let max_connections = max_connections(cx, "api", &a.max_connections)?;
    if !a.enabled || socket.is_empty() {
        return Ok(ApiConfig {
            socket: None,
            group: None,
            admin_group: None,
            max_connections,
        });
    }
    if !socket.starts_with('/') || socket.ends_with('/') {
        return Err(cx.err(
            a.socket.span(),
            format!("[api] socket = {socket:?}: must be an absolute file path like \"/run/burstd/api.sock\" (\"\" turns the API off)"),
        ));
    }
    // sun_path holds 108 bytes including the terminating NUL.
    if socket.len() > 107 {
        return Err(cx.err(
            a.socket.span(),
            format!(
                "[api] socket = {socket:?}: {} bytes; a Unix socket path may have at most 107",
                socket.len()
            ),
        ));
    }
    let group = |g: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
        match g {
            None => Ok(None),
            Some(v) if valid_group_name(v.get_ref()) => Ok(Some(v.get_ref().clone())),
            Some(v) => Err(cx.err(
                v.span(),
                format!(
                    "[api] {key} = {:?}: must be a group name (letters, digits, . _ -, at most 32)",
                    v.get_ref()
                ),
            )),
        }
    };
    Ok(ApiConfig {
        socket: Some(PathBuf::from(socket)),
        group: group(&a.group, "group")?,
        admin_group: group(&a.admin_group, "admin_group")?,
        max_connections,
    })
}
