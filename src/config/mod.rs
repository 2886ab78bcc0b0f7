//! The configuration file (TOML): parsing, validation and the resolved form the agent uses.
//!
//! Every error names the file, the line and column, the key, the bad value and what is
//! allowed. Unknown keys are errors (`deny_unknown_fields`), so a misspelt key is never
//! silently ignored.

use crate::credit::{
    builtin_profile, builtin_profile_names, Credits, CustomProfile, Landing, Mode, Persistence,
    Policy, Profile, DEFAULT_LAUNCH_LIMIT,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub mod validate;

/// What to do with a managed cgroup's quota when the agent exits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExit {
    /// Write back the quota the cgroup had before burstd first managed it.
    Restore,
    /// Leave the last quota burstd wrote.
    Keep,
}

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
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    enabled: bool,
    listen: Spanned<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            listen: spanned(DEFAULT_METRICS_LISTEN.to_string()),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    enabled: bool,
    socket: Spanned<String>,
    group: Option<Spanned<String>>,
    admin_group: Option<Spanned<String>>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            enabled: true,
            socket: spanned(DEFAULT_API_SOCKET.to_string()),
            group: None,
            admin_group: None,
        }
    }
}

/// Where the metrics endpoint listens unless the file says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9749";
/// Where the control API's socket is unless the file says otherwise.
pub const DEFAULT_API_SOCKET: &str = "/run/burstd/api.sock";

/// The `[metrics]` section, resolved.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MetricsConfig {
    /// `None`: no metrics endpoint (`enabled = false` or `listen = ""`).
    pub listen: Option<std::net::SocketAddr>,
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
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawAgent {
    cgroup_root: Option<PathBuf>,
    state_dir: PathBuf,
    time_scale: Spanned<f64>,
    period_us: Spanned<i64>,
    on_exit: OnExit,
    launch_credit_limit: Spanned<i64>,
    default_profile: Spanned<String>,
    max_interval_ms: Spanned<i64>,
    full_interval_ms: Spanned<i64>,
    rescan_interval_s: Spanned<f64>,
    save_interval_s: Spanned<f64>,
    drift_check_s: Spanned<f64>,
    release_above_credits: Spanned<f64>,
    ramp_credits: Spanned<f64>,
}

fn spanned<T>(v: T) -> Spanned<T> {
    // Defaults have no place in the file; an empty span marks them.
    Spanned::new(0..0, v)
}

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            cgroup_root: None,
            state_dir: PathBuf::from("/var/lib/burstd"),
            time_scale: spanned(1.0),
            period_us: spanned(100_000),
            on_exit: OnExit::Restore,
            launch_credit_limit: spanned(DEFAULT_LAUNCH_LIMIT as i64),
            default_profile: spanned("t3.micro".to_string()),
            max_interval_ms: spanned(1000),
            full_interval_ms: spanned(5000),
            rescan_interval_s: spanned(5.0),
            save_interval_s: spanned(5.0),
            drift_check_s: spanned(5.0),
            release_above_credits: spanned(0.1),
            ramp_credits: spanned(0.0),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: Spanned<String>,
    cgroup: Option<Spanned<String>>,
    unit: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pattern: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    initial_credits: Option<Spanned<f64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    vcpus: Spanned<i64>,
    credits_per_hour: Spanned<f64>,
    max_earned: Option<Spanned<f64>>,
    #[serde(default)]
    launch_credits: Option<Spanned<f64>>,
    #[serde(default)]
    default_mode: Option<Spanned<String>>,
    #[serde(default)]
    unlimited_allowed: Option<bool>,
    /// "lost", "kept", or a number of days the earned balance is kept after a stop.
    #[serde(default)]
    persistence: Option<Spanned<toml::Value>>,
    #[serde(default)]
    surplus_price_per_vcpu_hour: Option<Spanned<f64>>,
}

/// Where a workload's cgroup comes from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Source {
    /// A path relative to the cgroup root (v1: the same path in the cpu and cpuacct trees).
    Cgroup(String),
    /// A systemd unit; its cgroup is asked of systemd.
    Unit(String),
    /// A glob over cgroup paths; each match is its own workload named `<name>/<last element>`.
    Match(String),
    /// A container that opted in with its labels (the `[containers]` source); not from the
    /// file: the agent learns these as the runtime reports them.
    Container(ContainerSource),
}

/// Where a container instance is now.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ContainerSource {
    /// The container's name (the `container` label of its metrics).
    pub container: String,
    /// Its cgroup while it runs, relative to the hierarchy root; `None` while it is stopped.
    pub cgroup: Option<String>,
    /// Its own CPU limit (`--cpus`): burstd's ceiling never goes above it.
    pub cpu_limit: Option<crate::credit::Rate>,
}

/// One `[[workload]]` entry, resolved.
#[derive(Clone, PartialEq, Debug)]
pub struct WorkloadSpec {
    pub name: String,
    pub source: Source,
    pub profile: Profile,
    pub mode: Mode,
    /// False when `mode` came from the profile's default: then the API's per-family default
    /// (ModifyDefaultCreditSpecification) decides the mode of a new workload.
    pub mode_explicit: bool,
    pub initial_credits: Credits,
}

/// The `[agent]` section, resolved.
#[derive(Clone, PartialEq, Debug)]
pub struct AgentConfig {
    pub cgroup_root: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Credit-clock speed as a ratio `time_scale_milli / 1000`.
    pub time_scale_milli: u64,
    pub period_us: u64,
    pub on_exit: OnExit,
    pub launch_credit_limit: u32,
    pub max_interval_ms: u64,
    /// How often a workload whose earned credits are at the accrual limit, and that spent
    /// no more than it earned over its last interval, is looked at (≥ `max_interval_ms`).
    pub full_interval_ms: u64,
    pub rescan_interval_ms: u64,
    pub save_interval_ms: u64,
    pub drift_check_ms: u64,
    pub policy: Policy,
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

struct Ctx<'a> {
    path: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        if span.is_empty() && span.start == 0 {
            return ConfigError::File {
                path: self.path.to_string(),
                message: message.into(),
            };
        }
        self.at(span.start, message)
    }

    fn at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError::At {
            path: self.path.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
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
    let agent = agent_config(&cx, &raw.agent)?;
    let mut custom_profiles = BTreeMap::new();
    for (name, rp) in &raw.profiles {
        if builtin_profile(name).is_some() {
            return Err(cx.err(
                rp.span(),
                format!("[profiles.{name}]: {name:?} is a built-in profile; choose another name"),
            ));
        }
        custom_profiles.insert(name.clone(), custom_profile(&cx, name, rp.get_ref())?);
    }
    let mut workloads: Vec<WorkloadSpec> = Vec::new();
    for w in &raw.workload {
        let spec = workload(&cx, w, &custom_profiles, &raw.agent.default_profile)?;
        if workloads.iter().any(|o| o.name == spec.name) {
            return Err(cx.err(
                w.name.span(),
                format!(
                    "[[workload]] name {:?} is used twice; names must be unique",
                    spec.name
                ),
            ));
        }
        workloads.push(spec);
    }
    let metrics = metrics_config(&cx, &raw.metrics)?;
    let api = api_config(&cx, &raw.api)?;
    let containers = containers::containers_config(&cx, &raw.containers)?;
    Ok(Config {
        path: path.to_path_buf(),
        agent,
        workloads,
        custom_profiles,
        metrics,
        api,
        containers,
    })
}

fn metrics_config(cx: &Ctx, m: &RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let text = m.listen.get_ref().trim();
    if !m.enabled || text.is_empty() {
        return Ok(MetricsConfig { listen: None });
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

fn api_config(cx: &Ctx, a: &RawApi) -> Result<ApiConfig, ConfigError> {
    let socket = a.socket.get_ref().trim();
    if !a.enabled || socket.is_empty() {
        return Ok(ApiConfig {
            socket: None,
            group: None,
            admin_group: None,
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
    })
}

fn positive_ms(
    cx: &Ctx,
    v: &Spanned<f64>,
    key: &str,
    min_ms: f64,
    max_ms: f64,
) -> Result<u64, ConfigError> {
    let ms = *v.get_ref() * 1000.0;
    if !ms.is_finite() || ms < min_ms || ms > max_ms {
        return Err(cx.err(
            v.span(),
            format!(
                "[agent] {key} = {}: must be between {} and {} seconds",
                v.get_ref(),
                min_ms / 1000.0,
                max_ms / 1000.0
            ),
        ));
    }
    Ok(ms.round() as u64)
}

fn agent_config(cx: &Ctx, a: &RawAgent) -> Result<AgentConfig, ConfigError> {
    let ts = *a.time_scale.get_ref();
    let time_scale_milli = validate::time_scale_milli(ts).ok_or_else(|| {
        cx.err(
            a.time_scale.span(),
            format!("[agent] time_scale = {ts}: must be a number from 0.001 to 1000000 (1.0 = real time)"),
        )
    })?;
    let period = *a.period_us.get_ref();
    if !(1000..=1_000_000).contains(&period) {
        return Err(cx.err(
            a.period_us.span(),
            format!(
                "[agent] period_us = {period}: the kernel allows 1000 to 1000000 (1 ms to 1 s)"
            ),
        ));
    }
    let limit = *a.launch_credit_limit.get_ref();
    if !(0..=1_000_000).contains(&limit) {
        return Err(cx.err(
            a.launch_credit_limit.span(),
            format!(
                "[agent] launch_credit_limit = {limit}: must be from 0 to 1000000 grants per 24 h"
            ),
        ));
    }
    let max_interval = *a.max_interval_ms.get_ref();
    if !(10..=60_000).contains(&max_interval) {
        return Err(cx.err(
            a.max_interval_ms.span(),
            format!("[agent] max_interval_ms = {max_interval}: must be from 10 to 60000"),
        ));
    }
    let full_interval = *a.full_interval_ms.get_ref();
    if !(max_interval..=600_000).contains(&full_interval) {
        return Err(cx.err(
            a.full_interval_ms.span(),
            format!(
                "[agent] full_interval_ms = {full_interval}: must be from max_interval_ms ({max_interval}) to 600000"
            ),
        ));
    }
    let release = *a.release_above_credits.get_ref();
    let release_above = validate::credits(release).ok_or_else(|| {
        cx.err(
            a.release_above_credits.span(),
            format!("[agent] release_above_credits = {release}: must be a number ≥ 0"),
        )
    })?;
    let ramp = *a.ramp_credits.get_ref();
    let ramp_credits = validate::credits(ramp).ok_or_else(|| {
        cx.err(
            a.ramp_credits.span(),
            format!("[agent] ramp_credits = {ramp}: must be a number ≥ 0 (0 = exact landing)"),
        )
    })?;
    let landing = if ramp_credits.is_positive() {
        Landing::Ramp {
            credits: ramp_credits,
            steps: 20,
        }
    } else {
        Landing::Exact
    };
    Ok(AgentConfig {
        cgroup_root: a.cgroup_root.clone(),
        state_dir: a.state_dir.clone(),
        time_scale_milli,
        period_us: period as u64,
        on_exit: a.on_exit,
        launch_credit_limit: limit as u32,
        max_interval_ms: max_interval as u64,
        full_interval_ms: full_interval as u64,
        rescan_interval_ms: positive_ms(
            cx,
            &a.rescan_interval_s,
            "rescan_interval_s",
            100.0,
            3_600_000.0,
        )?,
        save_interval_ms: positive_ms(
            cx,
            &a.save_interval_s,
            "save_interval_s",
            100.0,
            3_600_000.0,
        )?,
        drift_check_ms: positive_ms(cx, &a.drift_check_s, "drift_check_s", 100.0, 10_000.0)?,
        policy: Policy {
            landing,
            release_above,
        },
    })
}

fn credits_value(cx: &Ctx, v: &Spanned<f64>, what: &str) -> Result<Credits, ConfigError> {
    validate::credits(*v.get_ref()).ok_or_else(|| {
        cx.err(
            v.span(),
            format!("{what} = {}: must be a number ≥ 0", v.get_ref()),
        )
    })
}

fn custom_profile(cx: &Ctx, name: &str, p: &RawProfile) -> Result<Profile, ConfigError> {
    let key = |k: &str| format!("[profiles.{name}] {k}");
    let vcpus = *p.vcpus.get_ref();
    if !(1..=4096).contains(&vcpus) {
        return Err(cx.err(
            p.vcpus.span(),
            format!("{} = {vcpus}: must be from 1 to 4096", key("vcpus")),
        ));
    }
    let cph = *p.credits_per_hour.get_ref();
    let milli = cph * 1000.0;
    if !milli.is_finite() || milli < 1.0 || (milli - milli.round()).abs() > 1e-6 {
        return Err(cx.err(
            p.credits_per_hour.span(),
            format!(
                "{} = {cph}: must be a positive number with at most 3 decimals",
                key("credits_per_hour")
            ),
        ));
    }
    let max_earned = match &p.max_earned {
        Some(v) => Some(credits_value(cx, v, &key("max_earned"))?),
        None => None,
    };
    let launch_credits = match &p.launch_credits {
        Some(v) => credits_value(cx, v, &key("launch_credits"))?,
        None => Credits::ZERO,
    };
    let default_mode = match &p.default_mode {
        Some(m) => parse_mode(cx, m, &key("default_mode"))?,
        None => Mode::Standard,
    };
    let persistence = match &p.persistence {
        None => Persistence::Kept,
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if s == "lost" => Persistence::Lost,
            toml::Value::String(s) if s == "kept" => Persistence::Kept,
            toml::Value::Integer(d) if *d >= 0 => Persistence::KeptFor {
                seconds: *d as u64 * 86_400,
            },
            toml::Value::Float(d) if d.is_finite() && *d >= 0.0 => Persistence::KeptFor {
                seconds: (d * 86_400.0).round() as u64,
            },
            other => {
                return Err(cx.err(
                    v.span(),
                    format!(
                        "{} = {other}: allowed are \"lost\", \"kept\", or a number of days ≥ 0",
                        key("persistence")
                    ),
                ))
            }
        },
    };
    let price = match &p.surplus_price_per_vcpu_hour {
        Some(v) => {
            let usd = *v.get_ref();
            if !usd.is_finite() || !(0.0..=1000.0).contains(&usd) {
                return Err(cx.err(
                    v.span(),
                    format!(
                        "{} = {usd}: must be dollars from 0 to 1000",
                        key("surplus_price_per_vcpu_hour")
                    ),
                ));
            }
            (usd * 1e9).round() as u64
        }
        None => crate::credit::profile::PRICE_LINUX_NANO,
    };
    Profile::custom(CustomProfile {
        name: name.to_string(),
        vcpus: vcpus as u32,
        credits_per_hour_milli: milli.round() as u64,
        max_earned,
        launch_credits,
        default_mode,
        unlimited_allowed: p.unlimited_allowed.unwrap_or(true),
        persistence,
        surplus_price_nano_usd: price,
    })
    .map_err(|e| cx.err(p.vcpus.span(), format!("[profiles.{name}]: {}", e.message)))
}

fn parse_mode(cx: &Ctx, m: &Spanned<String>, key: &str) -> Result<Mode, ConfigError> {
    Mode::parse(m.get_ref()).ok_or_else(|| {
        cx.err(
            m.span(),
            format!(
                "{key} = {:?}: allowed are \"standard\" and \"unlimited\"",
                m.get_ref()
            ),
        )
    })
}

/// Names a user can give a workload: also the EC2 InstanceId of the control API.
pub fn valid_workload_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '/'))
        && !name.starts_with('/')
        && !name.ends_with('/')
}

/// A relative cgroup path: no leading '/', no '.' or '..' elements, no empty elements.
fn valid_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|e| !e.is_empty() && e != "." && e != "..")
}

fn workload(
    cx: &Ctx,
    w: &RawWorkload,
    custom: &BTreeMap<String, Profile>,
    default_profile: &Spanned<String>,
) -> Result<WorkloadSpec, ConfigError> {
    let name = w.name.get_ref().clone();
    if !valid_workload_name(&name) {
        return Err(cx.err(
            w.name.span(),
            format!(
                "[[workload]] name = {name:?}: use 1–128 characters of letters, digits and . _ - @ : / \
                 (not starting or ending with /)"
            ),
        ));
    }
    let here = |k: &str| format!("[[workload]] {name:?}: {k}");
    let sources: Vec<(&str, &Spanned<String>)> = [
        ("cgroup", &w.cgroup),
        ("unit", &w.unit),
        ("match", &w.pattern),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    let source = match sources.as_slice() {
        [("cgroup", v)] => {
            let p = v.get_ref().trim_start_matches('/').to_string();
            if !valid_relative_path(&p) {
                return Err(cx.err(
                    v.span(),
                    format!("{} = {:?}: must be a path below the cgroup root, like \"system.slice/nginx.service\"", here("cgroup"), v.get_ref()),
                ));
            }
            Source::Cgroup(p)
        }
        [("unit", v)] => {
            let u = v.get_ref();
            if u.is_empty() || u.contains('/') || !u.contains('.') {
                return Err(cx.err(
                    v.span(),
                    format!("{} = {u:?}: must be a systemd unit name such as \"postgresql.service\"", here("unit")),
                ));
            }
            Source::Unit(u.clone())
        }
        [("match", v)] => {
            let p = v.get_ref().trim_start_matches('/').to_string();
            if !valid_relative_path(&p) {
                return Err(cx.err(
                    v.span(),
                    format!("{} = {:?}: must be a glob below the cgroup root, like \"system.slice/docker-*.scope\"", here("match"), v.get_ref()),
                ));
            }
            Source::Match(p)
        }
        [] => {
            return Err(cx.err(
                w.name.span(),
                format!("[[workload]] {name:?}: needs one of cgroup = \"…\", unit = \"…\" or match = \"…\""),
            ))
        }
        [_, (k, v), ..] => {
            return Err(cx.err(
                v.span(),
                format!("[[workload]] {name:?}: {k} given together with {}; give exactly one of cgroup, unit, match", sources[0].0),
            ))
        }
        [(_, _)] => unreachable!("filter_map only yields the three keys"),
    };
    let profile_ref = w.profile.as_ref().unwrap_or(default_profile);
    let pname = profile_ref.get_ref();
    let profile = custom
        .get(pname)
        .cloned()
        .or_else(|| builtin_profile(pname))
        .ok_or_else(|| {
            let mut known = builtin_profile_names();
            known.extend(custom.keys().cloned());
            cx.err(
                profile_ref.span(),
                format!(
                    "{} = {pname:?}: unknown profile; known: {}",
                    here("profile"),
                    known.join(", ")
                ),
            )
        })?;
    let mode = match &w.mode {
        Some(m) => parse_mode(cx, m, &here("mode"))?,
        None => profile.default_mode,
    };
    if mode == Mode::Unlimited && !profile.unlimited_allowed {
        let span = w.mode.as_ref().map_or(w.name.span(), |m| m.span());
        return Err(cx.err(
            span,
            format!(
                "{}: profile {} does not allow unlimited mode; use mode = \"standard\"",
                here("mode"),
                profile.name
            ),
        ));
    }
    let initial_credits = match &w.initial_credits {
        Some(v) => {
            let c = credits_value(cx, v, &here("initial_credits"))?;
            if c > profile.max_earned {
                return Err(cx.err(
                    v.span(),
                    format!(
                        "{} = {}: more than profile {}'s accrual limit of {}",
                        here("initial_credits"),
                        v.get_ref(),
                        profile.name,
                        profile.max_earned
                    ),
                ));
            }
            c
        }
        None => Credits::ZERO,
    };
    Ok(WorkloadSpec {
        name,
        source,
        profile,
        mode,
        mode_explicit: w.mode.is_some(),
        initial_credits,
    })
}

mod containers;
pub use containers::ContainersConfig;

#[cfg(test)]
mod tests;
