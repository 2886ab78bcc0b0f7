//! The `[[workload]]` entries: what to manage, where its cgroups come from, under which
//! profile and mode.

use super::profiles::{credits_value, parse_mode};
use super::raw::Ctx;
use super::ConfigError;
use crate::credit::{Credits, Mode, Profile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    pub(super) name: Spanned<String>,
    pub(super) cgroup: Option<Spanned<String>>,
    pub(super) unit: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub(super) pattern: Option<Spanned<String>>,
    pub(super) profile: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) initial_credits: Option<Spanned<f64>>,
    pub(super) record: Option<bool>,
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
    /// The daemon writes the workload's measured CPU usage as a `simulate`/`advise` trace
    /// into `[agent] record_dir` (`record = true`).
    pub record: bool,
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

/// A relative cgroup path: no leading '/', no '.' or '..' elements, no empty elements, no
/// NUL, newline or other control character.
fn valid_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !super::agent::has_control(p)
        && p.split('/').all(|e| !e.is_empty() && e != "." && e != "..")
}

/// A `cgroup` or `match` written as a filesystem path under the cgroup mount (the configured
/// `cgroup_root`, or `/sys/fs/cgroup`) rather than below it: a leading '/' is allowed (it is
/// how /proc/PID/cgroup shows paths), so "/sys/fs/cgroup/cpu/web" would be read as the cgroup
/// `sys/fs/cgroup/cpu/web` under the root. Returns the path it most likely means.
fn written_with_root(p: &str, root: Option<&Path>) -> Option<String> {
    let root = root
        .and_then(Path::to_str)
        .unwrap_or("/sys/fs/cgroup")
        .trim_end_matches('/');
    let rest = p.strip_prefix(root)?.strip_prefix('/')?;
    // A v1 controller's mount under the root is part of the filesystem path too.
    let rest = [
        "cpu,cpuacct/",
        "cpuacct,cpu/",
        "cpu/",
        "cpuacct/",
        "unified/",
    ]
    .iter()
    .find_map(|c| rest.strip_prefix(c))
    .unwrap_or(rest);
    Some(rest.to_string())
}

fn workload(
    cx: &Ctx,
    w: &RawWorkload,
    custom: &BTreeMap<String, Profile>,
    default_profile: &Spanned<String>,
    cgroup_root: Option<&Path>,
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
        [(key @ ("cgroup" | "match"), v)] if written_with_root(v.get_ref(), cgroup_root).is_some() => {
            let meant = written_with_root(v.get_ref(), cgroup_root).unwrap_or_default();
            return Err(cx.err(
                v.span(),
                format!(
                    "{} = {:?}: a path below the cgroup root is wanted, not the filesystem path \
                     (this would be read as a cgroup named {:?} under the root); write {meant:?}",
                    here(key),
                    v.get_ref(),
                    v.get_ref().trim_start_matches('/')
                ),
            ));
        }
        [("cgroup", v)] => {
            let p = v.get_ref().trim_start_matches('/').to_string();
            if !valid_relative_path(&p) {
                return Err(cx.err(
                    v.span(),
                    format!("{} = {:?}: must be a path below the cgroup root with no . or .. or empty elements and no control characters (NUL, newline), like \"system.slice/nginx.service\"", here("cgroup"), v.get_ref()),
                ));
            }
            Source::Cgroup(p)
        }
        [("unit", v)] => {
            let u = v.get_ref();
            if u.is_empty() || u.contains('/') || !u.contains('.') || super::agent::has_control(u) {
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
                    format!("{} = {:?}: must be a glob below the cgroup root with no . or .. or empty elements and no control characters (NUL, newline), like \"system.slice/docker-*.scope\"", here("match"), v.get_ref()),
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
    let profile = crate::credit::profile::lookup(pname, custom.values())
        .map_err(|e| cx.err(profile_ref.span(), format!("{}: {e}", here("profile"))))?;
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
        record: w.record.unwrap_or(false),
    })
}

/// Every `[[workload]]`, in file order; names must be unique.
pub(super) fn workloads(
    cx: &Ctx,
    raw: &[RawWorkload],
    custom: &BTreeMap<String, Profile>,
    default_profile: &Spanned<String>,
    cgroup_root: Option<&Path>,
) -> Result<Vec<WorkloadSpec>, ConfigError> {
    let mut workloads: Vec<WorkloadSpec> = Vec::new();
    for w in raw {
        let spec = workload(cx, w, custom, default_profile, cgroup_root)?;
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
    // A glob's matches are named `<name>/<last element>`: every name under a glob's own is
    // reserved for its matches, or the two would take turns at one workload (and its credits).
    for (w, spec) in raw.iter().zip(&workloads) {
        let owner = workloads.iter().find(|o| {
            o.name != spec.name
                && matches!(o.source, Source::Match(_))
                && spec
                    .name
                    .strip_prefix(o.name.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if let Some(o) = owner {
            return Err(cx.err(
                w.name.span(),
                format!(
                    "[[workload]] name {:?} is under {:?}, whose match = … names its matches \
                     {:?}/<last element>: the two would share a name; rename one",
                    spec.name, o.name, o.name
                ),
            ));
        }
    }
    Ok(workloads)
}
