//! EC2 Query parameters (`application/x-www-form-urlencoded`) into the JSON API's requests:
//! `Action=…&Version=…`, lists flattened 1-based (`InstanceId.1`), structures as
//! `Prefix.N.Member`, booleans `true`/`false`, integers in decimal (EC2-QUERY.md §2).

use super::super::errors::ApiError;
use super::super::types::*;
use super::sigv4::percent_decode;
use std::collections::BTreeMap;

/// Most entries of one list (EC2's own batch and page limit).
pub const MAX_LIST: u32 = 1000;

/// The actions the Query endpoint serves (DescribeCreditBalances is burstd's own: JSON API only).
pub const QUERY_ACTIONS: [Action; 4] = [
    Action::ModifyInstanceCreditSpecification,
    Action::DescribeInstanceCreditSpecifications,
    Action::ModifyDefaultCreditSpecification,
    Action::GetDefaultCreditSpecification,
];

/// Decodes `k=v&k=v` (form encoding: `+` is a space). A repeated name is an error.
pub fn decode_pairs(text: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let text = std::str::from_utf8(text)
        .map_err(|_| ApiError::InvalidValue("the parameters are not UTF-8".into()))?;
    let mut out = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = String::from_utf8(percent_decode(k, true))
            .map_err(|_| ApiError::InvalidValue("a parameter name is not UTF-8".into()))?;
        let v = String::from_utf8(percent_decode(v, true))
            .map_err(|_| ApiError::InvalidValue(format!("parameter {k} is not UTF-8")))?;
        if out.contains_key(&k) {
            return Err(ApiError::InvalidValue(format!(
                "parameter {k} is given twice"
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// The parameters of one request, taken one by one; what is left at the end is unknown.
struct Params(BTreeMap<String, String>);

impl Params {
    fn take(&mut self, k: &str) -> Option<String> {
        self.0.remove(k)
    }

    fn bool(&mut self, k: &str) -> Result<bool, ApiError> {
        match self.take(k).as_deref() {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::InvalidValue(format!(
                "{k} = {v:?}: must be true or false"
            ))),
        }
    }

    fn required(&mut self, k: &str) -> Result<String, ApiError> {
        self.take(k)
            .ok_or_else(|| ApiError::Missing(format!("The request must contain the parameter {k}")))
    }

    /// Every `Prefix.N[.rest]` parameter, by N (1..=MAX_LIST) and rest ("" for `Prefix.N`).
    fn list(&mut self, prefix: &str) -> Result<BTreeMap<u32, BTreeMap<String, String>>, ApiError> {
        let dotted = format!("{prefix}.");
        let keys: Vec<String> = self
            .0
            .keys()
            .filter(|k| k.starts_with(&dotted))
            .cloned()
            .collect();
        let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for k in keys {
            let rest = &k[dotted.len()..];
            let (idx, member) = rest.split_once('.').unwrap_or((rest, ""));
            // The index as written: `InstanceId.01` is refused, not read as 1.
            let n: u32 = match idx.parse() {
                Ok(n) if (1..=MAX_LIST).contains(&n) && n.to_string() == idx => n,
                _ => {
                    return Err(ApiError::InvalidValue(format!(
                        "{k}: the list index must be 1 to {MAX_LIST}"
                    )))
                }
            };
            let v = self.0.remove(&k).unwrap_or_default();
            out.entry(n).or_default().insert(member.to_string(), v);
        }
        Ok(out)
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(k) => Err(ApiError::UnknownParameter(format!(
                "The parameter {k} is not recognized"
            ))),
        }
    }
}

/// One member list `Prefix.N` of plain values, in index order.
fn values(p: &mut Params, prefix: &str) -> Result<Option<Vec<String>>, ApiError> {
    let l = p.list(prefix)?;
    if l.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(l.len());
    for (n, mut m) in l {
        let v = m.remove("").ok_or_else(|| {
            ApiError::UnknownParameter(format!("The parameter {prefix}.{n}.… is not recognized"))
        })?;
        if let Some(extra) = m.keys().next() {
            return Err(ApiError::UnknownParameter(format!(
                "The parameter {prefix}.{n}.{extra} is not recognized"
            )));
        }
        out.push(v);
    }
    Ok(Some(out))
}

/// Decodes all parameters of a request into its action and the JSON API's request.
pub fn decode(params: BTreeMap<String, String>) -> Result<(Action, Request), ApiError> {
    let mut p = Params(params);
    let name = p.required("Action")?;
    let Some(action) = QUERY_ACTIONS.into_iter().find(|a| a.name() == name) else {
        let known: Vec<&str> = QUERY_ACTIONS.iter().map(|a| a.name()).collect();
        return Err(ApiError::UnknownAction(format!(
            "The action {name} is not valid for this web service; known: {}",
            known.join(", ")
        )));
    };
    // Any API version is taken: these actions have not changed since 2016-11-15.
    p.take("Version");
    let request = match action {
        Action::ModifyInstanceCreditSpecification => {
            let dry_run = p.bool("DryRun")?;
            let client_token = p.take("ClientToken");
            let mut specs = Vec::new();
            for (n, mut m) in p.list("InstanceCreditSpecification")? {
                let prefix = format!("InstanceCreditSpecification.{n}");
                let instance_id = m.remove("InstanceId").ok_or_else(|| {
                    ApiError::Missing(format!(
                        "The request must contain the parameter {prefix}.InstanceId"
                    ))
                })?;
                let cpu_credits = m.remove("CpuCredits").ok_or_else(|| {
                    ApiError::Missing(format!(
                        "The request must contain the parameter {prefix}.CpuCredits"
                    ))
                })?;
                if let Some(extra) = m.keys().next() {
                    return Err(ApiError::UnknownParameter(format!(
                        "The parameter {prefix}.{extra} is not recognized"
                    )));
                }
                specs.push(InstanceCreditSpecificationRequest {
                    instance_id,
                    cpu_credits,
                });
            }
            if specs.is_empty() {
                return Err(ApiError::Missing(
                    "The request must contain the parameter InstanceCreditSpecification.1.InstanceId"
                        .into(),
                ));
            }
            Request::ModifyInstanceCreditSpecification(ModifyInstanceCreditSpecificationRequest {
                dry_run,
                client_token,
                instance_credit_specifications: specs,
            })
        }
        Action::DescribeInstanceCreditSpecifications => {
            let dry_run = p.bool("DryRun")?;
            let mut instance_ids = values(&mut p, "InstanceId")?;
            let max_results = match p.take("MaxResults") {
                None => None,
                Some(v) => Some(v.parse::<i64>().map_err(|_| {
                    ApiError::InvalidValue(format!("MaxResults = {v:?}: must be an integer"))
                })?),
            };
            let next_token = p.take("NextToken");
            let mut filtered: Option<Vec<String>> = None;
            for (n, mut f) in p.list("Filter")? {
                let fname = f.remove("Name").ok_or_else(|| {
                    ApiError::Missing(format!(
                        "The request must contain the parameter Filter.{n}.Name"
                    ))
                })?;
                if fname != "instance-id" {
                    return Err(ApiError::InvalidValue(format!(
                        "Filter.{n}.Name = {fname:?}: the only filter supported is instance-id"
                    )));
                }
                let mut vals: Vec<(u32, String)> = Vec::new();
                for (k, v) in f {
                    let idx = k
                        .strip_prefix("Value.")
                        .and_then(|i| i.parse::<u32>().ok())
                        .filter(|i| (1..=MAX_LIST).contains(i) && k == format!("Value.{i}"))
                        .ok_or_else(|| {
                            ApiError::UnknownParameter(format!(
                                "The parameter Filter.{n}.{k} is not recognized"
                            ))
                        })?;
                    vals.push((idx, v));
                }
                vals.sort();
                let vals: Vec<String> = vals.into_iter().map(|(_, v)| v).collect();
                // Several instance-id filters: an instance must match each.
                filtered = Some(match filtered {
                    None => vals,
                    Some(prev) => prev.into_iter().filter(|x| vals.contains(x)).collect(),
                });
            }
            if let Some(f) = filtered {
                instance_ids = Some(match instance_ids {
                    None => f,
                    Some(ids) => ids.into_iter().filter(|x| f.contains(x)).collect(),
                });
            }
            Request::DescribeInstanceCreditSpecifications(
                DescribeInstanceCreditSpecificationsRequest {
                    dry_run,
                    instance_ids,
                    max_results,
                    next_token,
                },
            )
        }
        Action::ModifyDefaultCreditSpecification => {
            Request::ModifyDefaultCreditSpecification(ModifyDefaultCreditSpecificationRequest {
                dry_run: p.bool("DryRun")?,
                instance_family: p.required("InstanceFamily")?,
                cpu_credits: p.required("CpuCredits")?,
            })
        }
        Action::GetDefaultCreditSpecification => {
            Request::GetDefaultCreditSpecification(GetDefaultCreditSpecificationRequest {
                dry_run: p.bool("DryRun")?,
                instance_family: p.required("InstanceFamily")?,
            })
        }
        Action::DescribeCreditBalances => {
            return Err(ApiError::UnknownAction(format!(
                "The action {name} is not valid for this web service"
            )))
        }
    };
    p.finish()?;
    Ok((action, request))
}
