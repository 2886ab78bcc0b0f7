//! The `[profiles.NAME]` sections: custom instance types.

use super::raw::Ctx;
use super::{validate, ConfigError};
use crate::credit::{builtin_profile, Credits, CustomProfile, Mode, Persistence, Profile};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) vcpus: Spanned<i64>,
    pub(super) credits_per_hour: Spanned<f64>,
    pub(super) max_earned: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) launch_credits: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) default_mode: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) unlimited_allowed: Option<bool>,
    /// "lost", "kept", or a number of days the earned balance is kept after a stop.
    #[serde(default)]
    pub(super) persistence: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) surplus_price_per_vcpu_hour: Option<Spanned<f64>>,
}

pub(super) fn credits_value(
    cx: &Ctx,
    v: &Spanned<f64>,
    what: &str,
) -> Result<Credits, ConfigError> {
    validate::credits(*v.get_ref()).ok_or_else(|| {
        cx.err(
            v.span(),
            format!("{what} = {}: must be a number ≥ 0", v.get_ref()),
        )
    })
}

pub(super) fn custom_profile(cx: &Ctx, name: &str, p: &RawProfile) -> Result<Profile, ConfigError> {
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

pub(super) fn parse_mode(cx: &Ctx, m: &Spanned<String>, key: &str) -> Result<Mode, ConfigError> {
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

/// Every `[profiles.NAME]`, by name; a built-in name is refused.
pub(super) fn custom_profiles(
    cx: &Ctx,
    raw: &BTreeMap<String, Spanned<RawProfile>>,
) -> Result<BTreeMap<String, Profile>, ConfigError> {
    let mut custom_profiles = BTreeMap::new();
    for (name, rp) in raw {
        if builtin_profile(name).is_some() {
            return Err(cx.err(
                rp.span(),
                format!("[profiles.{name}]: {name:?} is a built-in profile; choose another name"),
            ));
        }
        custom_profiles.insert(name.clone(), custom_profile(cx, name, rp.get_ref())?);
    }
    Ok(custom_profiles)
}
