//! The `[agent]` section: the control loop's settings.

use super::raw::{spanned, Ctx};
use super::{validate, ConfigError};
use crate::credit::{Landing, Policy, DEFAULT_LAUNCH_LIMIT};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// What to do with a managed cgroup's quota when the agent exits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExit {
    /// Write back the quota the cgroup had before burstd first managed it.
    Restore,
    /// Leave the last quota burstd wrote.
    Keep,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAgent {
    pub(super) cgroup_root: Option<Spanned<String>>,
    pub(super) state_dir: Spanned<String>,
    pub(super) record_dir: Option<Spanned<String>>,
    pub(super) time_scale: Spanned<f64>,
    pub(super) period_us: Spanned<i64>,
    pub(super) on_exit: OnExit,
    pub(super) launch_credit_limit: Spanned<i64>,
    pub(super) default_profile: Spanned<String>,
    pub(super) max_interval_ms: Spanned<i64>,
    pub(super) full_interval_ms: Spanned<i64>,
    pub(super) rescan_interval_s: Spanned<f64>,
    pub(super) save_interval_s: Spanned<f64>,
    pub(super) drift_check_s: Spanned<f64>,
    pub(super) forget_stopped_after_s: Spanned<f64>,
    pub(super) release_above_credits: Spanned<f64>,
    pub(super) ramp_credits: Spanned<f64>,
}

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            cgroup_root: None,
            state_dir: spanned("/var/lib/burstd".to_string()),
            record_dir: None,
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
            forget_stopped_after_s: spanned(DEFAULT_FORGET_STOPPED_AFTER_S as f64),
            release_above_credits: spanned(0.1),
            ramp_credits: spanned(0.0),
        }
    }
}

/// The `[agent]` section, resolved.
#[derive(Clone, PartialEq, Debug)]
pub struct AgentConfig {
    pub cgroup_root: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Where workloads with `record = true` get their traces (default `<state_dir>/traces`).
    pub record_dir: PathBuf,
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
    /// How long a stopped workload of a `match` or a container instance is remembered when
    /// its profile keeps its credits (Azure B, custom `kept`): then it is forgotten, as a
    /// T3's credits are after 7 days. A T2's is forgotten at its stop (it keeps nothing).
    pub forget_stopped_after_s: u64,
    pub policy: Policy,
}

/// 7 days, EC2's T3 rule: `[agent] forget_stopped_after_s`'s default.
pub const DEFAULT_FORGET_STOPPED_AFTER_S: u64 = 7 * 24 * 3600;

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

fn forget_after(cx: &Ctx, v: &Spanned<f64>) -> Result<u64, ConfigError> {
    let s = *v.get_ref();
    // Up to 10 years: past that it is a typo, and a u64 of seconds stays far from overflow.
    if !s.is_finite() || !(0.0..=315_360_000.0).contains(&s) {
        return Err(cx.err(
            v.span(),
            format!(
                "[agent] forget_stopped_after_s = {s}: must be from 0 to 315360000 seconds (10 years); \
                 the default is {DEFAULT_FORGET_STOPPED_AFTER_S} (7 days)"
            ),
        ));
    }
    Ok(s.round() as u64)
}

/// Whether a path has a character that cannot be in one, or that would split a line of
/// output or of a file burstd reads (NUL, newline, any control character).
pub(super) fn has_control(p: &str) -> bool {
    p.chars().any(char::is_control)
}

/// `cgroup_root`: an absolute path with no `.`, `..` or empty elements, so that it names one
/// directory however it is joined (a relative one was resolved against the working
/// directory).
fn cgroup_root(cx: &Ctx, v: &Spanned<String>) -> Result<PathBuf, ConfigError> {
    let p = v.get_ref();
    let body = p.strip_prefix('/').unwrap_or("");
    let body = body.strip_suffix('/').unwrap_or(body);
    let ok = !has_control(p)
        && p.starts_with('/')
        && (body.is_empty()
            || body
                .split('/')
                .all(|e| !e.is_empty() && e != "." && e != ".."));
    if !ok {
        return Err(cx.err(
            v.span(),
            format!(
                "[agent] cgroup_root = {p:?}: must be an absolute path with no . or .. or empty \
                 elements and no control characters, like \"/sys/fs/cgroup\" (or leave it out to \
                 detect the hierarchy)"
            ),
        ));
    }
    Ok(PathBuf::from(p))
}

/// `state_dir`: an absolute path (a relative one would follow the working directory).
fn state_dir(cx: &Ctx, v: &Spanned<String>) -> Result<PathBuf, ConfigError> {
    absolute_dir(cx, v, "state_dir", "/var/lib/burstd")
}

/// An absolute directory path with no control characters, for `[agent] key`.
fn absolute_dir(
    cx: &Ctx,
    v: &Spanned<String>,
    key: &str,
    example: &str,
) -> Result<PathBuf, ConfigError> {
    let p = v.get_ref();
    if !p.starts_with('/') || has_control(p) {
        return Err(cx.err(
            v.span(),
            format!(
                "[agent] {key} = {p:?}: must be an absolute path with no control characters, \
                 like \"{example}\""
            ),
        ));
    }
    Ok(PathBuf::from(p))
}

pub(super) fn agent_config(cx: &Ctx, a: &RawAgent) -> Result<AgentConfig, ConfigError> {
    let root = a
        .cgroup_root
        .as_ref()
        .map(|v| cgroup_root(cx, v))
        .transpose()?;
    let state_dir = state_dir(cx, &a.state_dir)?;
    let record_dir = match &a.record_dir {
        Some(v) => absolute_dir(cx, v, "record_dir", "/var/lib/burstd/traces")?,
        None => state_dir.join("traces"),
    };
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
        cgroup_root: root,
        state_dir,
        record_dir,
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
        forget_stopped_after_s: forget_after(cx, &a.forget_stopped_after_s)?,
        policy: Policy {
            landing,
            release_above,
        },
    })
}
