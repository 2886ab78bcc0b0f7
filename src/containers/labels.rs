//! The labels a container opts in with, validated: `burstd.profile` (required), `burstd.mode`,
//! `burstd.initial-credits` and `burstd.instance-id`. A container without `burstd.profile` is
//! not ours; one with a bad value is left alone and the error names the container, the label,
//! the value and what is allowed.

use std::collections::BTreeMap;

use crate::config::valid_workload_name;
use crate::credit::profile::{builtin_profile, builtin_profile_names};
use crate::credit::{Credits, Mode, Profile};

pub const PROFILE: &str = "burstd.profile";
pub const MODE: &str = "burstd.mode";
pub const INITIAL_CREDITS: &str = "burstd.initial-credits";
pub const INSTANCE_ID: &str = "burstd.instance-id";

/// Every label burstd reads; another `burstd.*` label is a typo we report.
pub const KNOWN: [&str; 4] = [PROFILE, MODE, INITIAL_CREDITS, INSTANCE_ID];

/// What a labelled container asks for.
#[derive(Clone, PartialEq, Debug)]
pub struct LabelSpec {
    /// The identity that keeps credits across stops, restarts and re-creations: the
    /// `burstd.instance-id` label, else the container's name. Also the workload's name.
    pub instance_id: String,
    pub profile: Profile,
    pub mode: Mode,
    /// False when `burstd.mode` is absent: the per-family default (the API's
    /// ModifyDefaultCreditSpecification) or the profile's default mode applies.
    pub mode_explicit: bool,
    pub initial_credits: Credits,
}

/// A label burstd cannot accept; the container is left alone.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("container {container}: label {label}={value:?}: {allowed}")]
pub struct LabelError {
    pub container: String,
    pub label: String,
    pub value: String,
    /// What is allowed instead, in words.
    pub allowed: String,
}

/// Whether a container asks to be managed at all.
pub fn opted_in(labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key(PROFILE)
}

/// Reads the labels of container `container` (its name, without the leading `/`).
/// `Ok(None)`: no `burstd.profile`, not ours. `custom` holds the config-defined profiles.
pub fn parse(
    container: &str,
    labels: &BTreeMap<String, String>,
    custom: &BTreeMap<String, Profile>,
) -> Result<Option<LabelSpec>, LabelError> {
    let Some(profile_name) = labels.get(PROFILE) else {
        return Ok(None);
    };
    let err = |label: &str, value: &str, allowed: String| LabelError {
        container: container.to_string(),
        label: label.to_string(),
        value: value.to_string(),
        allowed,
    };
    if let Some((label, value)) = labels
        .iter()
        .find(|(k, _)| k.starts_with("burstd.") && !KNOWN.contains(&k.as_str()))
    {
        return Err(err(
            label,
            value,
            format!("unknown burstd label; known: {}", KNOWN.join(", ")),
        ));
    }
    let profile = custom
        .get(profile_name)
        .cloned()
        .or_else(|| builtin_profile(profile_name))
        .ok_or_else(|| {
            let mut known = builtin_profile_names();
            known.extend(custom.keys().cloned());
            err(
                PROFILE,
                profile_name,
                format!("unknown profile; known: {}", known.join(", ")),
            )
        })?;
    let mode = match labels.get(MODE) {
        None => profile.default_mode,
        Some(m) => {
            let mode = Mode::parse(m).ok_or_else(|| {
                err(
                    MODE,
                    m,
                    "allowed are \"standard\" and \"unlimited\"".to_string(),
                )
            })?;
            if !profile.allows(mode) {
                return Err(err(
                    MODE,
                    m,
                    format!(
                        "profile {} does not allow unlimited mode; use \"standard\"",
                        profile.name
                    ),
                ));
            }
            mode
        }
    };
    let initial_credits = match labels.get(INITIAL_CREDITS) {
        None => Credits::ZERO,
        Some(v) => {
            let allowed = || {
                format!(
                    "a number of credits from 0 to {} (profile {}'s accrual limit)",
                    profile.max_earned.as_f64(),
                    profile.name
                )
            };
            let c = v
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Credits::from_f64)
                .filter(|c| *c >= Credits::ZERO && *c <= profile.max_earned)
                .ok_or_else(|| err(INITIAL_CREDITS, v, allowed()))?;
            c
        }
    };
    let instance_id = match labels.get(INSTANCE_ID) {
        None => container.to_string(),
        Some(id) if valid_workload_name(id) => id.clone(),
        Some(id) => return Err(err(
            INSTANCE_ID,
            id,
            "1–128 characters of letters, digits and . _ - @ : / (not starting or ending with /)"
                .to_string(),
        )),
    };
    if !valid_workload_name(&instance_id) {
        return Err(err(
            "name",
            container,
            format!("the container's name is not a usable instance id; set {INSTANCE_ID}"),
        ));
    }
    Ok(Some(LabelSpec {
        instance_id,
        profile,
        mode,
        mode_explicit: labels.contains_key(MODE),
        initial_credits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_one(pairs: &[(&str, &str)]) -> Result<Option<LabelSpec>, LabelError> {
        parse("web", &labels(pairs), &BTreeMap::new())
    }

    fn error(pairs: &[(&str, &str)]) -> LabelError {
        match parse_one(pairs) {
            Err(e) => e,
            Ok(s) => panic!("expected a label error for {pairs:?}, got {s:?}"),
        }
    }

    #[test]
    fn without_profile_the_container_is_not_ours() {
        assert_eq!(parse_one(&[]), Ok(None));
        // Other burstd labels without the profile do not opt in either.
        assert_eq!(parse_one(&[(MODE, "unlimited")]), Ok(None));
        assert!(!opted_in(&labels(&[("app", "web")])));
    }

    #[test]
    fn profile_alone_gives_the_defaults_and_the_container_name() {
        let s = parse_one(&[(PROFILE, "t3.micro"), ("com.example", "x")])
            .unwrap()
            .unwrap();
        assert_eq!(s.instance_id, "web");
        assert_eq!(s.profile.name, "t3.micro");
        // T3 defaults to unlimited, as on EC2.
        assert_eq!(s.mode, Mode::Unlimited);
        assert!(!s.mode_explicit);
        assert_eq!(s.initial_credits, Credits::ZERO);
    }

    #[test]
    fn every_label_read() {
        let s = parse_one(&[
            (PROFILE, "t2.small"),
            (MODE, "standard"),
            (INITIAL_CREDITS, "12.5"),
            (INSTANCE_ID, "web-prod"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.instance_id, "web-prod");
        assert_eq!(s.mode, Mode::Standard);
        assert!(s.mode_explicit);
        assert_eq!(s.initial_credits, Credits::milli(12_500));
    }

    #[test]
    fn config_defined_profile() {
        let custom: BTreeMap<String, Profile> =
            [("tiny".to_string(), builtin_profile("t3.nano").unwrap())].into();
        let s = parse("web", &labels(&[(PROFILE, "tiny")]), &custom)
            .unwrap()
            .unwrap();
        assert_eq!(s.profile.name, "t3.nano");
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let e = error(&[(PROFILE, "t9.huge")]);
        assert_eq!((e.label.as_str(), e.value.as_str()), (PROFILE, "t9.huge"));
        assert!(e.allowed.contains("t3.micro"), "{}", e.allowed);
        let text = e.to_string();
        assert!(
            text.starts_with("container web: label burstd.profile=\"t9.huge\": unknown profile"),
            "{text}"
        );
    }

    #[test]
    fn bad_mode() {
        let e = error(&[(PROFILE, "t3.micro"), (MODE, "fast")]);
        assert_eq!((e.label.as_str(), e.value.as_str()), (MODE, "fast"));
        assert_eq!(e.allowed, "allowed are \"standard\" and \"unlimited\"");
    }

    #[test]
    fn unlimited_refused_by_a_profile_that_does_not_allow_it() {
        let mut p = builtin_profile("t3.micro").unwrap();
        p.unlimited_allowed = false;
        let custom: BTreeMap<String, Profile> = [("strict".to_string(), p)].into();
        let e = parse(
            "web",
            &labels(&[(PROFILE, "strict"), (MODE, "unlimited")]),
            &custom,
        )
        .unwrap_err();
        assert_eq!(e.label, MODE);
        assert!(
            e.allowed.contains("does not allow unlimited"),
            "{}",
            e.allowed
        );
    }

    #[test]
    fn bad_initial_credits() {
        // t3.micro's accrual limit is 288 credits.
        for v in ["-1", "abc", "", "NaN", "289", "1e9"] {
            let e = error(&[(PROFILE, "t3.micro"), (INITIAL_CREDITS, v)]);
            assert_eq!((e.label.as_str(), e.value.as_str()), (INITIAL_CREDITS, v));
            assert_eq!(
                e.allowed,
                "a number of credits from 0 to 288 (profile t3.micro's accrual limit)"
            );
        }
        let ok = parse_one(&[(PROFILE, "t3.micro"), (INITIAL_CREDITS, "288")]).unwrap();
        assert_eq!(ok.unwrap().initial_credits, Credits::whole(288));
    }

    #[test]
    fn bad_instance_id() {
        for v in ["", "/web", "web/", "a b", &"x".repeat(129)] {
            let e = error(&[(PROFILE, "t3.micro"), (INSTANCE_ID, v)]);
            assert_eq!((e.label.as_str(), e.value.as_str()), (INSTANCE_ID, v));
        }
    }

    #[test]
    fn misspelt_burstd_label_is_reported() {
        let e = error(&[(PROFILE, "t3.micro"), ("burstd.mdoe", "standard")]);
        assert_eq!(e.label, "burstd.mdoe");
        assert!(e.allowed.contains("burstd.mode"), "{}", e.allowed);
    }
}
