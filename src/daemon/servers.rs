//! The daemon's metrics endpoint and control API: started from the configuration, and moved
//! by a reload (SIGHUP) when their sections change. At start a server that cannot start stops
//! burstd; at a reload the old one keeps serving instead, and the error is logged.

use crate::api::auth::{GroupDb, GroupError};
use crate::api::{ApiQuery, SocketError};
use crate::ask::Asker;
use crate::config::{ApiConfig, Config, Ec2ApiConfig, MetricsConfig};
use crate::metrics::Probe;
use std::net::SocketAddr;
use std::path::Path;
use tokio::task::JoinHandle;
use tracing::{error, info};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("[metrics] listen = \"{addr}\": cannot listen: {source} (another process on the port? set listen = \"\" to turn the endpoint off)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// `[api] admin_group` names no group of this host.
    #[error(transparent)]
    AdminGroup(GroupError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(
        "[ec2_api] listen = \"{addr}\": cannot listen: {source} (another process on the port?)"
    )]
    Ec2Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("[ec2_api] TLS: {0}")]
    Ec2Tls(String),
}

/// The narrow handles the servers reach the control loop with.
#[derive(Clone)]
pub struct ServerHandles {
    pub probes: Asker<Probe>,
    pub api: Asker<ApiQuery>,
}

/// What serves now, as configured.
pub struct Servers {
    handles: ServerHandles,
    metrics: MetricsConfig,
    metrics_task: Option<JoinHandle<()>>,
    api: ApiConfig,
    api_task: Option<JoinHandle<()>>,
    ec2: Ec2ApiConfig,
    ec2_task: Option<JoinHandle<()>>,
}

impl Servers {
    /// Starts what `cfg` asks for.
    pub async fn start(cfg: &Config, handles: ServerHandles) -> Result<Servers, StartError> {
        let metrics_task = spawn_metrics(&cfg.metrics, &handles).await?;
        let api_task = spawn_api(&cfg.api, &handles)?;
        let ec2_task = spawn_ec2(&cfg.ec2_api, &handles).await?;
        Ok(Servers {
            handles,
            metrics: cfg.metrics.clone(),
            metrics_task,
            api: cfg.api.clone(),
            api_task,
            ec2: cfg.ec2_api.clone(),
            ec2_task,
        })
    }

    /// Applies a reloaded configuration's `[metrics]` and `[api]`: a section that changed is
    /// stopped and started anew. If the new one cannot start, the old one is started again.
    pub async fn reload(&mut self, cfg: &Config) {
        if cfg.metrics != self.metrics {
            stop(self.metrics_task.take()).await;
            match spawn_metrics(&cfg.metrics, &self.handles).await {
                Ok(task) => {
                    info!(listen = ?cfg.metrics.listen, "[metrics] changed by the reload");
                    self.metrics_task = task;
                    self.metrics = cfg.metrics.clone();
                }
                Err(e) => {
                    error!(error = %e, "[metrics] not changed by the reload; keeping the old endpoint");
                    self.metrics_task = restart(spawn_metrics(&self.metrics, &self.handles).await);
                }
            }
        }
        if cfg.api != self.api {
            stop(self.api_task.take()).await;
            remove_socket(self.api.socket.as_deref());
            match spawn_api(&cfg.api, &self.handles) {
                Ok(task) => {
                    info!(socket = ?cfg.api.socket, "[api] changed by the reload");
                    self.api_task = task;
                    self.api = cfg.api.clone();
                }
                Err(e) => {
                    error!(error = %e, "[api] not changed by the reload; keeping the old socket");
                    self.api_task = restart(spawn_api(&self.api, &self.handles));
                }
            }
        }
        self.reload_ec2(cfg).await;
    }

    /// Applies a reloaded `[ec2_api]` (called by [`Servers::reload`]).
    async fn reload_ec2(&mut self, cfg: &Config) {
        if cfg.ec2_api == self.ec2 {
            return;
        }
        stop(self.ec2_task.take()).await;
        match spawn_ec2(&cfg.ec2_api, &self.handles).await {
            Ok(task) => {
                info!(listen = ?cfg.ec2_api.listen, "[ec2_api] changed by the reload");
                self.ec2_task = task;
                self.ec2 = cfg.ec2_api.clone();
            }
            Err(e) => {
                error!(error = %e, "[ec2_api] not changed by the reload; keeping the old endpoint");
                self.ec2_task = restart(spawn_ec2(&self.ec2, &self.handles).await);
            }
        }
    }

    /// Removes the control API's socket (at exit).
    pub fn remove_api_socket(&self) {
        remove_socket(self.api.socket.as_deref());
    }
}

async fn stop(task: Option<JoinHandle<()>>) {
    if let Some(task) = task {
        task.abort();
        // Cancelled: the task and its listener are dropped once this returns.
        let _ = task.await;
    }
}

fn restart(again: Result<Option<JoinHandle<()>>, StartError>) -> Option<JoinHandle<()>> {
    again.unwrap_or_else(|e| {
        error!(error = %e, "cannot start it again either; it stays off until a reload or restart");
        None
    })
}

fn remove_socket(path: Option<&Path>) {
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}

async fn spawn_metrics(
    cfg: &MetricsConfig,
    handles: &ServerHandles,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let Some(addr) = cfg.listen else {
        return Ok(None);
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            info!(listen = %addr, "metrics endpoint: GET /metrics, GET /healthz");
            Ok(Some(tokio::spawn(crate::metrics::serve(
                l,
                handles.probes.clone(),
                cfg.max_connections,
            ))))
        }
        Err(source) => Err(StartError::Listen { addr, source }),
    }
}

fn spawn_api(
    cfg: &ApiConfig,
    handles: &ServerHandles,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let Some(path) = &cfg.socket else {
        return Ok(None);
    };
    let db = GroupDb::default();
    let admin_gid = match cfg.admin_group.as_deref() {
        None => None,
        Some(g) => Some(
            db.gid_of(g, "admin_group")
                .map_err(StartError::AdminGroup)?,
        ),
    };
    let listener = crate::api::bind(path, cfg.group.as_deref(), &db)?;
    info!(socket = %path.display(), "control API listening");
    let access = crate::api::Access { admin_gid, db };
    Ok(Some(tokio::spawn(crate::api::serve(
        listener,
        access,
        handles.api.clone(),
        cfg.max_connections,
    ))))
}

async fn spawn_ec2(
    cfg: &Ec2ApiConfig,
    handles: &ServerHandles,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let Some(addr) = cfg.listen else {
        return Ok(None);
    };
    let tls = cfg
        .tls
        .as_ref()
        .map(crate::api::query::tls_acceptor)
        .transpose()
        .map_err(StartError::Ec2Tls)?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            info!(listen = %addr, keys = cfg.credentials.len(), tls = tls.is_some(), "EC2 Query endpoint: POST / (aws-cli, boto3), SigV4");
            Ok(Some(tokio::spawn(crate::api::query::serve(
                l,
                cfg.credentials.clone(),
                handles.api.clone(),
                cfg.max_connections,
                tls,
            ))))
        }
        Err(source) => Err(StartError::Ec2Listen { addr, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::event_loop::channels;

    fn cfg(dir: &Path, listen: Option<u16>) -> Config {
        let ec2 = listen.map_or(String::new(), |p| {
            format!("[ec2_api]\nlisten = \"127.0.0.1:{p}\"\n[[ec2_api.credentials]]\naccess_key = \"AK\"\nsecret = \"x\"\nrole = \"read\"\n")
        });
        crate::testkit::cfg(
            &format!("[metrics]\nlisten = \"\"\n[api]\nsocket = \"\"\n{ec2}"),
            dir,
        )
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    }

    async fn answers(port: u16) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        let _ = s
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).contains("MissingAuthenticationToken")
    }

    /// `[ec2_api]` starts with the daemon, moves with a reload, and a reload that cannot
    /// bind keeps the old endpoint.
    #[tokio::test]
    async fn ec2_api_starts_moves_on_reload_and_keeps_the_old_one_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (free_port(), free_port());
        let (handles, _inbox) = channels();
        let h = ServerHandles {
            probes: handles.probes.clone(),
            api: handles.api.clone(),
        };
        let mut s = Servers::start(&cfg(dir.path(), Some(a)), h).await.unwrap();
        assert!(answers(a).await);
        s.reload(&cfg(dir.path(), Some(b))).await;
        assert!(answers(b).await);
        assert!(!answers(a).await, "the old port is closed");
        // Port a taken by someone else: the reload fails and b keeps serving.
        let _squatter = std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
        s.reload(&cfg(dir.path(), Some(a))).await;
        assert!(answers(b).await);
        s.reload(&cfg(dir.path(), None)).await;
        assert!(!answers(b).await, "off after a reload without [ec2_api]");
    }
}
