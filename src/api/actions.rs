//! What each API action does to the agent. Runs inside the agent's task (the loop hands it
//! each request with the `Agent`), so nothing here needs a lock. Its own memory (client tokens,
//! per-family defaults and their change history) lives in the state file's `extra["api"]`, so
//! it survives restarts with the balances.

use super::errors::{Answer, ApiError};
use super::types::*;
use crate::agent::persist::Sections;
use crate::agent::view::workload_views;
use crate::agent::Agent;
use crate::config::valid_workload_name;
use crate::credit::{Family, Mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tracing::{info, warn};

/// A client token is remembered this long (EC2: at least 24 h).
pub const TOKEN_TTL_S: u64 = 24 * 3600;
/// At most this many tokens are kept; the oldest go first beyond it.
pub const MAX_TOKENS: usize = 10_000;
/// And at most this many bytes of them (an entry is ~150 bytes unless items failed).
pub const MAX_TOKEN_BYTES: usize = 4 << 20;
/// Default changes: at most one per rolling 5 minutes and four per rolling 24 h, per family.
pub const DEFAULT_CHANGE_WINDOW_S: u64 = 300;
pub const DEFAULT_CHANGES_PER_DAY: usize = 4;
const DAY_S: u64 = 24 * 3600;
/// Key of the engine's section in the state file's `extra`.
pub const STATE_KEY: &str = "api";
/// Most items in one describe page or one modify batch.
pub const MAX_ITEMS: usize = 1000;

/// One request with what the caller may do.
#[derive(Clone, Debug)]
pub struct Call {
    /// Root or a member of `[api] admin_group`: may change things.
    pub admin: bool,
    pub request: Request,
}

/// What a client token remembers: a digest of the request, not the request, and of the answer
/// only its failures (its successes are the request's other ids, in order), so an entry is a
/// few dozen bytes for a request of 1,000 ids that all succeeded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct TokenEntry {
    /// SHA-256 (hex) of the request's parameters (without DryRun and the token) as canonical JSON.
    #[serde(default)]
    digest: String,
    /// The items that failed: their position in the request, and their error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failed: Vec<FailedItem>,
    at_unix_s: u64,
    /// Before 0.2 the whole request was kept: read, turned into `digest`, not written back.
    #[serde(default, skip_serializing)]
    params: Option<String>,
    #[serde(default, skip_serializing)]
    answer: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct FailedItem {
    /// Its position in the request.
    at: usize,
    /// Upgraded entries only: its id (old answers did not keep positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    code: String,
    message: String,
}

impl TokenEntry {
    /// Bytes it takes, near enough to bound the store by.
    fn size(&self, token: &str) -> usize {
        let failed: usize = self
            .failed
            .iter()
            .map(|f| std::mem::size_of::<FailedItem>() + f.code.len() + f.message.len())
            .sum();
        std::mem::size_of::<TokenEntry>() + token.len() + self.digest.len() + failed + 64
    }

    /// An entry read from a state file written before the digest: its digest from the kept
    /// parameters, its failures from the kept answer.
    fn upgrade(&mut self) {
        if let Some(params) = self.params.take() {
            self.digest = digest(&params);
        }
        if let Some(answer) = self.answer.take() {
            let old: Option<ModifyInstanceCreditSpecificationResponse> =
                serde_json::from_value(answer).ok();
            if let Some(old) = old {
                self.failed = old
                    .unsuccessful_instance_credit_specifications
                    .into_iter()
                    .map(|u| FailedItem {
                        at: usize::MAX,
                        id: Some(u.instance_id),
                        code: u.error.code,
                        message: u.error.message,
                    })
                    .collect();
            }
        }
    }
}

/// SHA-256 of `s`, in hex.
fn digest(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The answer a token stands for, rebuilt from the request it was given with.
fn replay(specs: &[InstanceCreditSpecificationRequest], failed: &[FailedItem]) -> Answer {
    let mut out = ModifyInstanceCreditSpecificationResponse::default();
    for (k, s) in specs.iter().enumerate() {
        let failure = failed
            .iter()
            .find(|x| x.at == k || x.id.as_deref() == Some(s.instance_id.as_str()));
        match failure {
            Some(x) => out
                .unsuccessful_instance_credit_specifications
                .push(UnsuccessfulItem {
                    instance_id: s.instance_id.clone(),
                    error: ErrorBody {
                        code: x.code.clone(),
                        message: x.message.clone(),
                    },
                }),
            None => out
                .successful_instance_credit_specifications
                .push(SuccessfulItem {
                    instance_id: s.instance_id.clone(),
                }),
        }
    }
    Answer::ok(&out)
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    #[serde(default)]
    tokens: BTreeMap<String, TokenEntry>,
    /// Family name → mode, only for families changed from the built-in default.
    #[serde(default)]
    defaults: BTreeMap<String, Mode>,
    /// Family name → times (unix s) of the changes of the last 24 h.
    #[serde(default)]
    default_changes: BTreeMap<String, Vec<u64>>,
}

/// The API's memory.
#[derive(Debug, Default)]
pub struct Engine {
    saved: Saved,
}

fn parse_family(s: &str) -> Result<Family, ApiError> {
    Family::parse_ec2(s).ok_or_else(|| {
        ApiError::InvalidValue(format!(
            "InstanceFamily {s:?} is not valid; allowed are t2, t3, t3a, t4g"
        ))
    })
}

fn parse_mode(s: &str) -> Result<Mode, ApiError> {
    Mode::parse(s).ok_or_else(|| {
        ApiError::InvalidValue(format!(
            "CpuCredits {s:?} is not valid; allowed are standard and unlimited"
        ))
    })
}

/// What a handler gives back: the answer, and whether something changed (to be stored and
/// saved before the answer leaves).
type Handled = Result<(Answer, bool), ApiError>;

/// Page tokens are the hex of the last name of the previous page: opaque enough, stable
/// across restarts and workloads coming and going.
fn page_token(after: &str) -> String {
    after.bytes().map(|b| format!("{b:02x}")).collect()
}

fn parse_page_token(t: &str) -> Option<String> {
    if t.len() % 2 != 0 || t.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl Engine {
    /// Loads the engine's section from the agent's state and applies the saved defaults.
    /// A section this build cannot read is kept aside in the log, not silently trusted.
    pub fn load(sections: &Sections, agent: &mut Agent) -> Engine {
        let saved = match sections.get(STATE_KEY) {
            None => Saved::default(),
            Some(v) => match serde_json::from_value(v.clone()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "the state file's API section is unreadable; client tokens and family defaults start empty");
                    Saved::default()
                }
            },
        };
        let mut saved = saved;
        for t in saved.tokens.values_mut() {
            t.upgrade();
        }
        let engine = Engine { saved };
        engine.apply_defaults(agent);
        engine
    }

    fn apply_defaults(&self, agent: &mut Agent) {
        agent.set_family_defaults(
            self.saved
                .defaults
                .iter()
                .filter_map(|(f, m)| Some((Family::parse_ec2(f)?, *m)))
                .collect(),
        );
    }

    /// Puts the engine's memory into its section of the state file, before a save (after an
    /// answer that changed something).
    pub fn store(&self, sections: &mut Sections) {
        match serde_json::to_value(&self.saved) {
            Ok(v) => {
                sections.insert(STATE_KEY.to_string(), v);
            }
            Err(e) => warn!(error = %e, "cannot encode the API's state"),
        }
    }

    /// How many client tokens are remembered, and the bytes they take (for tests and limits).
    pub fn tokens_held(&self) -> (usize, usize) {
        let bytes = self.saved.tokens.iter().map(|(k, t)| t.size(k)).sum();
        (self.saved.tokens.len(), bytes)
    }

    /// The mode new workloads of `family` start in.
    pub fn default_for(&self, family: Family) -> Mode {
        self.saved
            .defaults
            .get(family.as_str())
            .copied()
            .unwrap_or_else(|| family.default_mode())
    }

    /// Answers one request. `true` with the answer: something changed; [`Engine::store`] and
    /// save before replying.
    pub fn handle(
        &mut self,
        agent: &mut Agent,
        now_ns: u64,
        wall_s: u64,
        call: Call,
    ) -> (Answer, bool) {
        self.expire(wall_s);
        let unchanged = |answer: Result<Answer, ApiError>| answer.map(|a| (a, false));
        let handled = match call.request {
            Request::ModifyInstanceCreditSpecification(r) => {
                self.modify_instances(agent, now_ns, wall_s, call.admin, r)
            }
            Request::ModifyDefaultCreditSpecification(r) => {
                self.modify_default(agent, wall_s, call.admin, r)
            }
            Request::DescribeInstanceCreditSpecifications(r) => unchanged(describe(agent, r)),
            Request::GetDefaultCreditSpecification(r) => unchanged(self.get_default(r)),
            Request::DescribeCreditBalances(r) => {
                agent.sample_all(now_ns, wall_s);
                unchanged(balances(agent, r))
            }
        };
        handled.unwrap_or_else(|e| (e.answer(), false))
    }

    fn get_default(&self, r: GetDefaultCreditSpecificationRequest) -> Result<Answer, ApiError> {
        let f = parse_family(&r.instance_family)?;
        if r.dry_run {
            return Err(ApiError::DryRun);
        }
        Ok(Answer::ok(&DefaultCreditSpecificationResponse {
            instance_family_credit_specification: InstanceFamilyCreditSpecification {
                instance_family: f.as_str().to_string(),
                cpu_credits: self.default_for(f).as_str().to_string(),
            },
        }))
    }

    fn expire(&mut self, wall_s: u64) {
        self.saved
            .tokens
            .retain(|_, t| wall_s.saturating_sub(t.at_unix_s) <= TOKEN_TTL_S);
        for times in self.saved.default_changes.values_mut() {
            times.retain(|&t| wall_s.saturating_sub(t) < DAY_S);
        }
        self.saved.default_changes.retain(|_, t| !t.is_empty());
        let mut bytes: usize = self.saved.tokens.iter().map(|(k, t)| t.size(k)).sum();
        if self.saved.tokens.len() > MAX_TOKENS || bytes > MAX_TOKEN_BYTES {
            // The oldest go first, in one pass.
            let mut by_age: Vec<(u64, String)> = self
                .saved
                .tokens
                .iter()
                .map(|(k, t)| (t.at_unix_s, k.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, k) in by_age {
                if self.saved.tokens.len() <= MAX_TOKENS && bytes <= MAX_TOKEN_BYTES {
                    break;
                }
                if let Some(t) = self.saved.tokens.remove(&k) {
                    bytes = bytes.saturating_sub(t.size(&k));
                }
            }
        }
    }

    fn modify_instances(
        &mut self,
        agent: &mut Agent,
        now_ns: u64,
        wall_s: u64,
        admin: bool,
        r: ModifyInstanceCreditSpecificationRequest,
    ) -> Handled {
        if !admin {
            return Err(ApiError::Unauthorized(
                Action::ModifyInstanceCreditSpecification,
            ));
        }
        if r.dry_run {
            return Err(ApiError::DryRun);
        }
        if let Some(t) = &r.client_token {
            if t.is_empty() || t.len() > 64 || !t.is_ascii() {
                return Err(ApiError::InvalidValue(
                    "ClientToken must be 1 to 64 ASCII characters".into(),
                ));
            }
        }
        if r.instance_credit_specifications.is_empty() {
            return Err(ApiError::Missing(
                "InstanceCreditSpecifications is empty: give at least one {InstanceId, CpuCredits}"
                    .into(),
            ));
        }
        if r.instance_credit_specifications.len() > MAX_ITEMS {
            return Err(ApiError::InvalidValue(format!(
                "at most {MAX_ITEMS} InstanceCreditSpecifications per request"
            )));
        }
        let params =
            digest(&serde_json::to_string(&r.instance_credit_specifications).unwrap_or_default());
        if let Some(t) = &r.client_token {
            if let Some(e) = self.saved.tokens.get(t) {
                if e.digest == params {
                    // Same token, same parameters: the same answer, nothing done again.
                    return Ok((replay(&r.instance_credit_specifications, &e.failed), false));
                }
                return Err(ApiError::TokenMismatch(format!(
                    "ClientToken {t:?} was already used with other parameters"
                )));
            }
        }
        let modes = r
            .instance_credit_specifications
            .iter()
            .map(|s| parse_mode(&s.cpu_credits))
            .collect::<Result<Vec<Mode>, ApiError>>()?;
        let mut failed = Vec::new();
        for (k, (s, mode)) in r
            .instance_credit_specifications
            .iter()
            .zip(modes)
            .enumerate()
        {
            if let Err(e) = switch_one(agent, &s.instance_id, mode, now_ns, wall_s) {
                failed.push(FailedItem {
                    at: k,
                    id: None,
                    code: e.code().to_string(),
                    message: e.to_string(),
                });
            }
        }
        let answer = replay(&r.instance_credit_specifications, &failed);
        if let Some(t) = r.client_token {
            self.saved.tokens.insert(
                t,
                TokenEntry {
                    digest: params,
                    failed,
                    at_unix_s: wall_s,
                    params: None,
                    answer: None,
                },
            );
            self.expire(wall_s);
        }
        Ok((answer, true))
    }

    fn modify_default(
        &mut self,
        agent: &mut Agent,
        wall_s: u64,
        admin: bool,
        r: ModifyDefaultCreditSpecificationRequest,
    ) -> Handled {
        if !admin {
            return Err(ApiError::Unauthorized(
                Action::ModifyDefaultCreditSpecification,
            ));
        }
        let family = parse_family(&r.instance_family)?;
        let mode = parse_mode(&r.cpu_credits)?;
        if r.dry_run {
            return Err(ApiError::DryRun);
        }
        let answer = Answer::ok(&DefaultCreditSpecificationResponse {
            instance_family_credit_specification: InstanceFamilyCreditSpecification {
                instance_family: family.as_str().to_string(),
                cpu_credits: mode.as_str().to_string(),
            },
        });
        if self.default_for(family) == mode {
            // Nothing changes: answered, and not counted against the rate limit.
            return Ok((answer, false));
        }
        let key = family.as_str().to_string();
        let times = self.saved.default_changes.entry(key.clone()).or_default();
        if let Some(last) = times.iter().max() {
            let since = wall_s.saturating_sub(*last);
            if since < DEFAULT_CHANGE_WINDOW_S {
                return Err(ApiError::RateLimited(format!(
                    "The default of {key} was changed {since} s ago; it may change once per rolling 5 minutes (retry in {} s)",
                    DEFAULT_CHANGE_WINDOW_S - since
                )));
            }
        }
        if times.len() >= DEFAULT_CHANGES_PER_DAY {
            let oldest = times.iter().min().copied().unwrap_or(wall_s);
            return Err(ApiError::RateLimited(format!(
                "The default of {key} was changed {DEFAULT_CHANGES_PER_DAY} times in the last 24 h, the most allowed (retry in {} s)",
                (oldest + DAY_S).saturating_sub(wall_s)
            )));
        }
        times.push(wall_s);
        if mode == family.default_mode() {
            self.saved.defaults.remove(&key);
        } else {
            self.saved.defaults.insert(key, mode);
        }
        info!(family = family.as_str(), mode = %mode, "default credit specification changed through the API");
        self.apply_defaults(agent);
        Ok((answer, true))
    }
}

/// Switches one workload of a batch; an error fails this item only.
fn switch_one(
    agent: &mut Agent,
    id: &str,
    mode: Mode,
    now_ns: u64,
    wall_s: u64,
) -> Result<(), ApiError> {
    if !valid_workload_name(id) {
        return Err(ApiError::MalformedId(format!(
            "Invalid id: {id:?} (a workload name has 1–128 letters, digits and . _ - @ : /)"
        )));
    }
    let Some(w) = agent.get(id) else {
        return Err(ApiError::UnknownId(format!(
            "The workload {id:?} does not exist (not configured, or no cgroup matched yet)"
        )));
    };
    if !w.profile.allows(mode) {
        return Err(ApiError::NotSupported(format!(
            "Profile {} of {id:?} has no unlimited mode",
            w.profile.name
        )));
    }
    if w.awaiting_reconcile() {
        return Err(ApiError::IncorrectState(format!(
            "The workload {id:?} was restored from the state file and its cgroup has not been seen since; its balance is not reconciled yet, try again once it runs"
        )));
    }
    let charged = agent
        .switch_mode(id, mode, now_ns, wall_s)
        .map_err(|e| ApiError::NotSupported(e.to_string()))?;
    info!(workload = %id, mode = %mode, charged = %charged, "credit mode set through the API");
    Ok(())
}

fn known_names(agent: &Agent) -> Vec<&str> {
    let mut names: Vec<&str> = agent.workloads().map(|w| w.name.as_str()).collect();
    names.sort_unstable();
    names
}

/// Checks `InstanceIds`: all well formed, all known. EC2 fails the whole describe otherwise.
fn check_ids(agent: &Agent, ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > MAX_ITEMS {
        return Err(ApiError::InvalidValue(format!(
            "at most {MAX_ITEMS} InstanceIds per request"
        )));
    }
    if let Some(bad) = ids.iter().find(|id| !valid_workload_name(id)) {
        return Err(ApiError::MalformedId(format!("Invalid id: {bad:?}")));
    }
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| agent.get(id).is_none())
        .map(|s| s.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::UnknownId(format!(
            "The workload IDs '{}' do not exist",
            missing.join(", ")
        )));
    }
    Ok(())
}

fn describe(
    agent: &Agent,
    r: DescribeInstanceCreditSpecificationsRequest,
) -> Result<Answer, ApiError> {
    if r.instance_ids.is_some() && (r.max_results.is_some() || r.next_token.is_some()) {
        return Err(ApiError::InvalidCombination(
            "InstanceIds cannot be combined with MaxResults or NextToken".into(),
        ));
    }
    if let Some(m) = r.max_results {
        if !(5..=MAX_ITEMS as i64).contains(&m) {
            return Err(ApiError::InvalidValue(format!(
                "MaxResults = {m}: must be from 5 to {MAX_ITEMS}"
            )));
        }
    }
    if r.dry_run {
        return Err(ApiError::DryRun);
    }
    let item = |name: &str| {
        agent.get(name).map(|w| InstanceCreditSpecification {
            instance_id: w.name.clone(),
            cpu_credits: w.bucket.mode.as_str().to_string(),
        })
    };
    if let Some(ids) = &r.instance_ids {
        check_ids(agent, ids)?;
        return Ok(Answer::ok(&DescribeInstanceCreditSpecificationsResponse {
            instance_credit_specifications: ids.iter().filter_map(|id| item(id)).collect(),
            next_token: None,
        }));
    }
    let names = known_names(agent);
    let start = match &r.next_token {
        None => 0,
        Some(t) => {
            let after = parse_page_token(t).ok_or_else(|| {
                ApiError::InvalidPageToken(format!("NextToken {t:?} is not valid"))
            })?;
            names.partition_point(|n| *n <= after.as_str())
        }
    };
    let page = r.max_results.map_or(MAX_ITEMS, |m| m as usize);
    let end = (start + page).min(names.len());
    let items: Vec<_> = names[start..end].iter().filter_map(|n| item(n)).collect();
    let next_token = (end < names.len()).then(|| page_token(names[end - 1]));
    Ok(Answer::ok(&DescribeInstanceCreditSpecificationsResponse {
        instance_credit_specifications: items,
        next_token,
    }))
}

fn balances(agent: &Agent, r: DescribeCreditBalancesRequest) -> Result<Answer, ApiError> {
    let mut views = workload_views(agent);
    if let Some(ids) = &r.instance_ids {
        check_ids(agent, ids)?;
        views.retain(|v| ids.contains(&v.instance_id));
    }
    Ok(Answer::ok(&DescribeCreditBalancesResponse {
        credit_balances: views,
    }))
}
