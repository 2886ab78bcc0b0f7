//! Profiles: what an instance type earns, banks and may do (SPEC §2).

use super::units::{Credits, Rate};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Credit mode (EC2 `CpuCredits`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Standard,
    Unlimited,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Standard => "standard",
            Mode::Unlimited => "unlimited",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "standard" => Some(Mode::Standard),
            "unlimited" => Some(Mode::Unlimited),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The instance family a profile belongs to (EC2's default credit specification is per family).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    T2,
    T3,
    T3a,
    T4g,
    /// Azure B-series (no unlimited mode).
    AzureB,
    /// Defined in the configuration.
    Custom,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::T2 => "t2",
            Family::T3 => "t3",
            Family::T3a => "t3a",
            Family::T4g => "t4g",
            Family::AzureB => "azure-b",
            Family::Custom => "custom",
        }
    }

    /// The mode an instance of the family launches in unless told otherwise (EC2's default
    /// credit specification): the one table of it.
    pub fn default_mode(self) -> Mode {
        match self {
            Family::T2 | Family::AzureB | Family::Custom => Mode::Standard,
            Family::T3 | Family::T3a | Family::T4g => Mode::Unlimited,
        }
    }

    /// The families EC2's `ModifyDefaultCreditSpecification` knows.
    pub fn parse_ec2(s: &str) -> Option<Family> {
        match s {
            "t2" => Some(Family::T2),
            "t3" => Some(Family::T3),
            "t3a" => Some(Family::T3a),
            "t4g" => Some(Family::T4g),
            _ => None,
        }
    }
}

/// What happens to a balance while the workload is stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Persistence {
    /// Everything is lost at stop (T2).
    Lost,
    /// Earned credits are kept for this many seconds after the stop, then lost (T3: 7 days).
    KeptFor { seconds: u64 },
    /// Kept indefinitely (Azure B on the same host).
    Kept,
}

/// Seven days, T3/T3a/T4g's persistence after a stop.
pub const SEVEN_DAYS_S: u64 = 7 * 24 * 3600;

/// Everything the model needs to know about an instance type.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub family: Family,
    pub vcpus: u32,
    /// Credits earned per hour (also the baseline: `earn_rate` cores-worth / 60).
    pub earn_rate: Rate,
    /// Accrual limit of earned credits (and of free surplus).
    pub max_earned: Credits,
    /// Launch credits granted at a start in standard mode (0 for none).
    pub launch_credits: Credits,
    /// True: granted at every start (T2). False: only at the first launch (Azure B's
    /// initial credits, which our reading of SPEC §2 grants once per fresh deployment).
    pub launch_credits_every_start: bool,
    /// True: launch credits join the earned balance and count toward `max_earned` (Azure B's
    /// initial credits: Microsoft's "Max Banked Credits" is the upper limit of all credits,
    /// docs/semantics.md). False: kept apart, spent first, outside the limit (AWS T2).
    #[serde(default)]
    pub launch_credits_within_limit: bool,
    pub default_mode: Mode,
    pub unlimited_allowed: bool,
    pub persistence: Persistence,
    /// Price of surplus credits, in nano-dollars per vCPU-hour ($0.05 = 50_000_000).
    pub surplus_price_nano_usd: u64,
}

/// $0.05 per vCPU-hour (Linux, T2/T3/T3a).
pub const PRICE_LINUX_NANO: u64 = 50_000_000;
/// $0.04 per vCPU-hour (T4g as reported).
pub const PRICE_T4G_NANO: u64 = 40_000_000;

impl Profile {
    /// Whether a workload of this profile may run in `mode`.
    pub fn allows(&self, mode: Mode) -> bool {
        mode == Mode::Standard || self.unlimited_allowed
    }

    /// The whole workload's baseline, in cores: `credits_per_hour / 60`.
    pub fn baseline(&self) -> Rate {
        self.earn_rate
    }

    /// Every vCPU busy.
    pub fn full(&self) -> Rate {
        Rate::cores(self.vcpus)
    }

    /// Baseline per vCPU in percent (the number AWS tables print).
    pub fn baseline_percent_per_vcpu(&self) -> f64 {
        self.earn_rate.as_cores() * 100.0 / self.vcpus as f64
    }

    /// Surplus price in dollars per credit (`price per vCPU-hour / 60`).
    pub fn surplus_price_per_credit_usd(&self) -> f64 {
        self.surplus_price_nano_usd as f64 / 1e9 / 60.0
    }

    /// Dollars for an amount of charged surplus credits.
    pub fn surplus_cost_usd(&self, charged: Credits) -> f64 {
        charged.as_f64() * self.surplus_price_per_credit_usd()
    }

    /// A custom profile from config values, checked. `credits_per_hour_milli` is credits/h × 1000.
    pub fn custom(spec: CustomProfile) -> Result<Profile, ProfileError> {
        let CustomProfile {
            name,
            vcpus,
            credits_per_hour_milli,
            max_earned,
            launch_credits,
            default_mode,
            unlimited_allowed,
            persistence,
            surplus_price_nano_usd,
        } = spec;
        if vcpus == 0 {
            return Err(ProfileError::new(&name, "vcpus must be at least 1"));
        }
        if credits_per_hour_milli == 0 {
            return Err(ProfileError::new(
                &name,
                "credits_per_hour must be greater than 0",
            ));
        }
        if credits_per_hour_milli > vcpus as u64 * 60_000 {
            return Err(ProfileError::new(
                &name,
                format!(
                    "credits_per_hour {} exceeds what {} vCPU can spend (at most {} per hour)",
                    credits_per_hour_milli as f64 / 1000.0,
                    vcpus,
                    vcpus * 60
                ),
            ));
        }
        let default_max = Credits::milli(credits_per_hour_milli as i64 * 24);
        let max_earned = max_earned.unwrap_or(default_max);
        if !max_earned.is_positive() {
            return Err(ProfileError::new(
                &name,
                "max_earned must be greater than 0",
            ));
        }
        if launch_credits < Credits::ZERO {
            return Err(ProfileError::new(
                &name,
                "launch_credits must not be negative",
            ));
        }
        if default_mode == Mode::Unlimited && !unlimited_allowed {
            return Err(ProfileError::new(
                &name,
                "default_mode = \"unlimited\" needs unlimited_allowed = true",
            ));
        }
        Ok(Profile {
            name,
            family: Family::Custom,
            vcpus,
            earn_rate: Rate::from_milli_credits_per_hour(credits_per_hour_milli),
            max_earned,
            launch_credits,
            launch_credits_every_start: true,
            launch_credits_within_limit: false,
            default_mode,
            unlimited_allowed,
            persistence,
            surplus_price_nano_usd,
        })
    }
}

/// The values a configuration gives for a custom profile.
#[derive(Clone, Debug)]
pub struct CustomProfile {
    pub name: String,
    pub vcpus: u32,
    pub credits_per_hour_milli: u64,
    pub max_earned: Option<Credits>,
    pub launch_credits: Credits,
    pub default_mode: Mode,
    pub unlimited_allowed: bool,
    pub persistence: Persistence,
    pub surplus_price_nano_usd: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("profile {profile:?}: {message}")]
pub struct ProfileError {
    pub profile: String,
    pub message: String,
}

impl ProfileError {
    fn new(profile: &str, message: impl Into<String>) -> Self {
        ProfileError {
            profile: profile.to_string(),
            message: message.into(),
        }
    }
}

/// (size, vCPU, credits/h × 1000) of T2, from SPEC §2.
const T2_SIZES: &[(&str, u32, u64)] = &[
    ("nano", 1, 3_000),
    ("micro", 1, 6_000),
    ("small", 1, 12_000),
    ("medium", 2, 24_000),
    ("large", 2, 36_000),
    ("xlarge", 4, 54_000),
    ("2xlarge", 8, 81_600),
];

/// (size, vCPU, credits/h × 1000) shared by T3, T3a and T4g.
const T3_SIZES: &[(&str, u32, u64)] = &[
    ("nano", 2, 6_000),
    ("micro", 2, 12_000),
    ("small", 2, 24_000),
    ("medium", 2, 24_000),
    ("large", 2, 36_000),
    ("xlarge", 4, 96_000),
    ("2xlarge", 8, 192_000),
];

/// (size, vCPU, credits/h × 1000) of Azure B-series.
const AZURE_B_SIZES: &[(&str, u32, u64)] = &[
    ("B1ls", 1, 3_000),
    ("B1s", 1, 6_000),
    ("B1ms", 1, 12_000),
    ("B2s", 2, 24_000),
    ("B2ms", 2, 36_000),
    ("B4ms", 4, 54_000),
    ("B2ts_v2", 2, 24_000),
    ("B2ls_v2", 2, 36_000),
    ("B2s_v2", 2, 48_000),
    ("B4s_v2", 4, 96_000),
];

fn builtin(name: String, family: Family, vcpus: u32, milli: u64, launch_per_vcpu: i64) -> Profile {
    let (unlimited_allowed, persistence, price, every_start) = match family {
        Family::T2 => (true, Persistence::Lost, PRICE_LINUX_NANO, true),
        Family::T3 | Family::T3a => (
            true,
            Persistence::KeptFor {
                seconds: SEVEN_DAYS_S,
            },
            PRICE_LINUX_NANO,
            true,
        ),
        Family::T4g => (
            true,
            Persistence::KeptFor {
                seconds: SEVEN_DAYS_S,
            },
            PRICE_T4G_NANO,
            true,
        ),
        Family::AzureB | Family::Custom => (false, Persistence::Kept, 0, false),
    };
    Profile {
        name,
        family,
        vcpus,
        earn_rate: Rate::from_milli_credits_per_hour(milli),
        max_earned: Credits::milli(milli as i64 * 24),
        launch_credits: Credits::whole(launch_per_vcpu * vcpus as i64),
        launch_credits_every_start: every_start,
        launch_credits_within_limit: family == Family::AzureB,
        default_mode: family.default_mode(),
        unlimited_allowed,
        persistence,
        surplus_price_nano_usd: price,
    }
}

/// Every built-in profile, in table order.
pub fn builtin_profiles() -> Vec<Profile> {
    let mut out = Vec::new();
    for &(size, vcpus, milli) in T2_SIZES {
        out.push(builtin(format!("t2.{size}"), Family::T2, vcpus, milli, 30));
    }
    for (prefix, family) in [
        ("t3", Family::T3),
        ("t3a", Family::T3a),
        ("t4g", Family::T4g),
    ] {
        for &(size, vcpus, milli) in T3_SIZES {
            out.push(builtin(format!("{prefix}.{size}"), family, vcpus, milli, 0));
        }
    }
    for &(size, vcpus, milli) in AZURE_B_SIZES {
        out.push(builtin(size.to_string(), Family::AzureB, vcpus, milli, 30));
    }
    out
}

impl Profile {
    /// The other names this profile is accepted under (matched in any case, like its own):
    /// Azure sizes also by their full name, `Standard_B1s` for `B1s`.
    pub fn aliases(&self) -> Vec<String> {
        match self.family {
            Family::AzureB => vec![format!("Standard_{}", self.name)],
            _ => Vec::new(),
        }
    }

    /// Whether `name` names this profile: its own name or an alias, in any case.
    fn answers_to(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases().iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// A profile name that is neither built in nor defined; lists every name that is accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown profile {name:?}; accepted names (in any case): {}", .accepted.join(", "))]
pub struct UnknownProfile {
    pub name: String,
    /// Each profile with its aliases (`B1s or Standard_B1s`), built-in ones first.
    pub accepted: Vec<String>,
}

/// The one way to find a profile by name, for every caller (config, `simulate`, `exec`):
/// custom profiles (from the config) first, then the built-in ones. Names and aliases match
/// in any case (`T3.NANO`, `standard_b1s`); an exact custom name wins over a case-folded one.
pub fn lookup<'a>(
    name: &str,
    custom: impl IntoIterator<Item = &'a Profile>,
) -> Result<Profile, UnknownProfile> {
    let wanted = name.trim();
    let custom: Vec<&Profile> = custom.into_iter().collect();
    if let Some(p) = custom.iter().find(|p| p.name == wanted) {
        return Ok((*p).clone());
    }
    let builtin = builtin_profiles();
    if let Some(p) = builtin.iter().find(|p| p.answers_to(wanted)) {
        return Ok(p.clone());
    }
    if let Some(p) = custom.iter().find(|p| p.answers_to(wanted)) {
        return Ok((*p).clone());
    }
    let accepted = builtin
        .iter()
        .chain(custom.iter().copied())
        .map(|p| {
            std::iter::once(p.name.clone())
                .chain(p.aliases())
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .collect();
    Err(UnknownProfile {
        name: name.to_string(),
        accepted,
    })
}

/// A built-in profile by name or alias, in any case ([`lookup`] without custom profiles).
pub fn builtin_profile(name: &str) -> Option<Profile> {
    lookup(name, []).ok()
}

/// The names of all built-in profiles.
pub fn builtin_profile_names() -> Vec<String> {
    builtin_profiles().into_iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_spec() {
        let p = builtin_profile("t2.2xlarge").unwrap();
        assert_eq!(p.vcpus, 8);
        assert_eq!(p.max_earned, Credits::milli(1_958_400));
        assert_eq!(p.launch_credits, Credits::whole(240));
        assert!((p.baseline_percent_per_vcpu() - 17.0).abs() < 1e-9);

        let p = builtin_profile("t3.nano").unwrap();
        assert_eq!((p.vcpus, p.max_earned), (2, Credits::whole(144)));
        assert_eq!(p.default_mode, Mode::Unlimited);
        assert_eq!(p.launch_credits, Credits::ZERO);
        assert!((p.baseline_percent_per_vcpu() - 5.0).abs() < 1e-9);

        let p = builtin_profile("t2.xlarge").unwrap();
        assert!((p.baseline_percent_per_vcpu() - 22.5).abs() < 1e-9);
        assert_eq!(p.default_mode, Mode::Standard);

        let p = builtin_profile("Standard_B4ms").unwrap();
        assert!((p.baseline().as_cores() - 0.9).abs() < 1e-9);
        assert!(!p.unlimited_allowed);
        assert_eq!(p.max_earned, Credits::whole(1296));

        assert_eq!(
            builtin_profile("t4g.large").unwrap().surplus_price_nano_usd,
            PRICE_T4G_NANO
        );
        assert!(builtin_profile("m5.large").is_none());
        assert_eq!(builtin_profiles().len(), 7 + 3 * 7 + 10);
    }

    /// Issue 16 item 4: EC2 instance types are case-insensitive in AWS's own tools and events
    /// in a trace already were; Azure sizes are printed by Microsoft as `Standard_B1s`.
    #[test]
    fn lookup_is_case_insensitive_and_knows_the_aliases() {
        for name in ["t3.nano", "T3.NANO", " T3.Nano "] {
            assert_eq!(lookup(name, []).unwrap().name, "t3.nano");
        }
        for name in ["B1s", "b1s", "Standard_B1s", "STANDARD_B1S", "standard_b1s"] {
            assert_eq!(lookup(name, []).unwrap().name, "B1s", "{name}");
        }
        assert_eq!(
            builtin_profile("t2.micro").unwrap().aliases(),
            Vec::<String>::new()
        );
        assert_eq!(
            builtin_profile("B2ts_v2").unwrap().aliases(),
            ["Standard_B2ts_v2"]
        );
        // An alias of one family is no name of another.
        assert!(lookup("Standard_t3.nano", []).is_err());
    }

    #[test]
    fn unknown_profile_lists_every_accepted_name_and_alias() {
        let custom = Profile {
            name: "Tiny".into(),
            family: Family::Custom,
            ..builtin_profile("t2.nano").unwrap()
        };
        let err = lookup("t9.huge", [&custom]).unwrap_err();
        assert_eq!(err.name, "t9.huge");
        assert_eq!(err.accepted.len(), builtin_profiles().len() + 1);
        assert_eq!(err.accepted[0], "t2.nano");
        assert!(err.accepted.contains(&"B1s or Standard_B1s".to_string()));
        assert_eq!(err.accepted.last().unwrap(), "Tiny");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "unknown profile \"t9.huge\"; accepted names (in any case): t2.nano, t2.micro,"
            ),
            "{text}"
        );
        assert!(text.contains("B4s_v2 or Standard_B4s_v2, Tiny"), "{text}");
        // Custom names are found exactly and in any case; built-in ones still resolve.
        assert_eq!(lookup("Tiny", [&custom]).unwrap().name, "Tiny");
        assert_eq!(lookup("tiny", [&custom]).unwrap().name, "Tiny");
        assert_eq!(lookup("t2.NANO", [&custom]).unwrap().name, "t2.nano");
    }

    #[test]
    fn custom_profile_checks_values() {
        let spec = CustomProfile {
            name: "tiny".into(),
            vcpus: 1,
            credits_per_hour_milli: 6_000,
            max_earned: None,
            launch_credits: Credits::ZERO,
            default_mode: Mode::Standard,
            unlimited_allowed: true,
            persistence: Persistence::Kept,
            surplus_price_nano_usd: PRICE_LINUX_NANO,
        };
        let p = Profile::custom(spec.clone()).unwrap();
        assert_eq!(p.max_earned, Credits::whole(144));
        let err = Profile::custom(CustomProfile {
            credits_per_hour_milli: 61_000,
            ..spec.clone()
        })
        .unwrap_err();
        assert!(err.message.contains("exceeds"), "{err}");
        let err = Profile::custom(CustomProfile { vcpus: 0, ..spec }).unwrap_err();
        assert!(err.message.contains("vcpus"), "{err}");
    }
}
