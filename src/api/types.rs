//! Requests and answers of the control API, with EC2's field names (SPEC §6). Unknown fields
//! are errors, as in the configuration file.

use crate::agent::view::WorkloadView;
use serde::{Deserialize, Serialize};

/// The actions, by URL path (`POST /<Action>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ModifyInstanceCreditSpecification,
    DescribeInstanceCreditSpecifications,
    ModifyDefaultCreditSpecification,
    GetDefaultCreditSpecification,
    DescribeCreditBalances,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::ModifyInstanceCreditSpecification,
        Action::DescribeInstanceCreditSpecifications,
        Action::ModifyDefaultCreditSpecification,
        Action::GetDefaultCreditSpecification,
        Action::DescribeCreditBalances,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::ModifyInstanceCreditSpecification => "ModifyInstanceCreditSpecification",
            Action::DescribeInstanceCreditSpecifications => "DescribeInstanceCreditSpecifications",
            Action::ModifyDefaultCreditSpecification => "ModifyDefaultCreditSpecification",
            Action::GetDefaultCreditSpecification => "GetDefaultCreditSpecification",
            Action::DescribeCreditBalances => "DescribeCreditBalances",
        }
    }

    pub fn from_path(path: &str) -> Option<Action> {
        let name = path.strip_prefix('/')?;
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct InstanceCreditSpecificationRequest {
    pub instance_id: String,
    pub cpu_credits: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ModifyInstanceCreditSpecificationRequest {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    pub instance_credit_specifications: Vec<InstanceCreditSpecificationRequest>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DescribeInstanceCreditSpecificationsRequest {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ModifyDefaultCreditSpecificationRequest {
    #[serde(default)]
    pub dry_run: bool,
    pub instance_family: String,
    pub cpu_credits: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct GetDefaultCreditSpecificationRequest {
    #[serde(default)]
    pub dry_run: bool,
    pub instance_family: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DescribeCreditBalancesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ids: Option<Vec<String>>,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    ModifyInstanceCreditSpecification(ModifyInstanceCreditSpecificationRequest),
    DescribeInstanceCreditSpecifications(DescribeInstanceCreditSpecificationsRequest),
    ModifyDefaultCreditSpecification(ModifyDefaultCreditSpecificationRequest),
    GetDefaultCreditSpecification(GetDefaultCreditSpecificationRequest),
    DescribeCreditBalances(DescribeCreditBalancesRequest),
}

/// `{"Code": …, "Message": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// The answer to a request that failed as a whole: `{"Error": {"Code", "Message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SuccessfulItem {
    pub instance_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnsuccessfulItem {
    pub instance_id: String,
    pub error: ErrorBody,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyInstanceCreditSpecificationResponse {
    pub successful_instance_credit_specifications: Vec<SuccessfulItem>,
    pub unsuccessful_instance_credit_specifications: Vec<UnsuccessfulItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceCreditSpecification {
    pub instance_id: String,
    pub cpu_credits: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstanceCreditSpecificationsResponse {
    pub instance_credit_specifications: Vec<InstanceCreditSpecification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceFamilyCreditSpecification {
    pub instance_family: String,
    pub cpu_credits: String,
}

/// The answer of both Modify- and GetDefaultCreditSpecification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DefaultCreditSpecificationResponse {
    pub instance_family_credit_specification: InstanceFamilyCreditSpecification,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCreditBalancesResponse {
    #[serde(with = "renamed_balance_fields")]
    pub credit_balances: Vec<WorkloadView>,
}

/// DescribeCreditBalances fields renamed so a balance and a running total cannot be confused
/// (issue 17 item 5), as (old name, new name). For one release the answer carries both and a
/// reader (`burstd status`) accepts either, so an older CLI reads a newer daemon and back.
pub const RENAMED_BALANCE_FIELDS: [(&str, &str); 2] = [
    ("EarnedCredits", "EarnedCreditBalance"),
    ("CreditsEarned", "CreditsEarnedTotal"),
];

mod renamed_balance_fields {
    use super::{WorkloadView, RENAMED_BALANCE_FIELDS};
    use serde::de::Error as _;
    use serde::ser::{Error as _, SerializeSeq};
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(views: &[WorkloadView], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(views.len()))?;
        for w in views {
            let mut v = serde_json::to_value(w).map_err(S::Error::custom)?;
            if let Some(o) = v.as_object_mut() {
                for (old, new) in RENAMED_BALANCE_FIELDS {
                    if let Some(x) = o.get(new).cloned() {
                        o.insert(old.to_string(), x);
                    }
                }
            }
            seq.serialize_element(&v)?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WorkloadView>, D::Error> {
        Vec::<Value>::deserialize(d)?
            .into_iter()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    for (old, new) in RENAMED_BALANCE_FIELDS {
                        if let Some(x) = o.remove(old) {
                            o.entry(new).or_insert(x);
                        }
                    }
                }
                serde_json::from_value(v).map_err(D::Error::custom)
            })
            .collect()
    }
}

/// Error codes, as EC2 spells them.
pub mod code {
    pub const MALFORMED_ID: &str = "InvalidInstanceID.Malformed";
    pub const NOT_FOUND: &str = "InvalidInstanceID.NotFound";
    pub const INCORRECT_STATE: &str = "IncorrectInstanceState";
    pub const NOT_SUPPORTED: &str = "InstanceCreditSpecification.NotSupported";
    pub const DRY_RUN: &str = "DryRunOperation";
    pub const UNAUTHORIZED: &str = "UnauthorizedOperation";
    pub const TOKEN_MISMATCH: &str = "IdempotentParameterMismatch";
    pub const COMBINATION: &str = "InvalidParameterCombination";
    pub const VALUE: &str = "InvalidParameterValue";
    pub const MISSING: &str = "MissingParameter";
    pub const UNKNOWN_PARAMETER: &str = "UnknownParameter";
    pub const MALFORMED_JSON: &str = "MalformedJSON";
    pub const TOO_LARGE: &str = "RequestTooLarge";
    pub const TIMEOUT: &str = "RequestTimeout";
    pub const PAGINATION: &str = "InvalidPaginationToken";
    pub const RATE_LIMIT: &str = "RateLimitExceeded";
    pub const ACTION: &str = "InvalidAction";
    pub const INTERNAL: &str = "InternalError";
}
