//! The configuration file (TOML): parsing, validation and the resolved form the agent uses.
//!
//! Every error names the file, the line and column, the key, the bad value and what is
//! allowed. Unknown keys are errors (`deny_unknown_fields`), so a misspelt key is never
//! silently ignored.
//!
//! One file per section: `raw` (error positions, shared by all), `agent`,
//! `workloads`, `profiles`, `servers` (`[metrics]`, `[api]`), `containers`. A new section is a new file
//! with its raw and resolved forms, and one field in [`Config`] and in [`RawFile`].

mod agent;
mod containers;
mod ec2_api;
mod profiles;
mod raw;
mod servers;
pub mod validate;
mod workloads;

pub use agent::{AgentConfig, OnExit};
pub use containers::ContainersConfig;
pub use ec2_api::{read_secret_file, Ec2ApiConfig, Ec2Credential, Ec2Tls, Secret};
pub use servers::{ApiConfig, MetricsConfig, DEFAULT_API_SOCKET, DEFAULT_METRICS_LISTEN};
pub use workloads::{valid_workload_name, ContainerSource, Source, WorkloadSpec};

use crate::credit::Profile;
use agent::RawAgent;
use profiles::RawProfile;
use raw::Ctx;
use serde::Deserialize;
use servers::{RawApi, RawMetrics};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;
use workloads::RawWorkload;

/// The whole file, one field per section.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    workload: Vec<RawWorkload>,
    #[serde(default)]
    profiles: BTreeMap<String, Spanned<RawProfile>>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    containers: containers::RawContainers,
    #[serde(default)]
    ec2_api: ec2_api::RawEc2Api,
}

/// A whole validated configuration.
#[derive(Clone, PartialEq, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub agent: AgentConfig,
    pub workloads: Vec<WorkloadSpec>,
    pub custom_profiles: BTreeMap<String, Profile>,
    pub metrics: MetricsConfig,
    pub api: ApiConfig,
    pub containers: ContainersConfig,
    /// `[ec2_api]`: the EC2 Query endpoint (off by default).
    pub ec2_api: Ec2ApiConfig,
}

/// A configuration error with its place in the file.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(path, &text)
}

/// Validates configuration text; `path` is only used in messages and kept in the result.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let cx = Ctx { path: &shown, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => cx.at(span.start, message),
            None => cx.err(0..0, message),
        }
    })?;
    let agent = agent::agent_config(&cx, &raw.agent)?;
    let custom_profiles = profiles::custom_profiles(&cx, &raw.profiles)?;
    let workloads = workloads::workloads(
        &cx,
        &raw.workload,
        &custom_profiles,
        &raw.agent.default_profile,
        agent.cgroup_root.as_deref(),
    )?;
    let metrics = servers::metrics_config(&cx, &raw.metrics)?;
    let api = servers::api_config(&cx, &raw.api)?;
    let containers = containers::containers_config(&cx, &raw.containers)?;
    let ec2_api = ec2_api::ec2_api_config(&cx, &raw.ec2_api)?;
    Ok(Config {
        path: path.to_path_buf(),
        agent,
        workloads,
        custom_profiles,
        metrics,
        api,
        containers,
        ec2_api,
    })
}

#[cfg(test)]
mod tests;
