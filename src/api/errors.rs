//! Why a request failed, typed, and the one place that turns each kind into an HTTP status
//! and an EC2 error code (as linkerd's `errors/respond.rs` does for its proxy errors). Handlers
//! return `Result<_, ApiError>`; only [`ApiError::answer`] knows statuses and codes. An
//! [`Answer`] is what goes back: a status and a JSON body.

use super::types::{code, Action, ErrorBody, ErrorResponse};
use serde::Serialize;

/// HTTP status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn ok<T: Serialize>(body: &T) -> Answer {
        match serde_json::to_value(body) {
            Ok(body) => Answer { status: 200, body },
            Err(e) => ApiError::Internal(format!("cannot encode the answer: {e}")).answer(),
        }
    }

    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        let e = ErrorResponse {
            error: ErrorBody {
                code: code.to_string(),
                message: message.into(),
            },
        };
        Answer {
            status,
            body: serde_json::to_value(e).unwrap_or_default(),
        }
    }

    /// The error code when this answer is an error.
    pub fn code(&self) -> Option<&str> {
        self.body.get("Error")?.get("Code")?.as_str()
    }
}

/// A failed request (or, for a batch, a failed item), with the message for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A parameter is unknown, of the wrong type, or out of range.
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    Missing(String),
    /// A parameter the action does not have (EC2 Query front end).
    #[error("{0}")]
    UnknownParameter(String),
    #[error("{0}")]
    MalformedJson(String),
    /// The body is larger than the API takes (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The body did not arrive in time (HTTP 408).
    #[error("{0}")]
    BodyTimeout(String),
    #[error("{0}")]
    InvalidCombination(String),
    #[error("{0}")]
    InvalidPageToken(String),
    /// A client token reused with other parameters.
    #[error("{0}")]
    TokenMismatch(String),
    #[error("{0}")]
    MalformedId(String),
    #[error("{0}")]
    UnknownId(String),
    /// The workload's profile cannot do what is asked.
    #[error("{0}")]
    NotSupported(String),
    /// The workload cannot be changed in its present state.
    #[error("{0}")]
    IncorrectState(String),
    #[error("{0}")]
    UnknownAction(String),
    #[error("{0}")]
    WrongMethod(String),
    #[error("You are not authorized to perform {}: only root and members of [api] admin_group may change credit specifications", .0.name())]
    Unauthorized(Action),
    /// DryRun was set and the request would have succeeded (EC2 answers this as an error).
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRun,
    #[error("{0}")]
    RateLimited(String),
    /// The control loop is stopping or did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of a request that failed as a whole with this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized(_) => 403,
            ApiError::WrongMethod(_) => 405,
            ApiError::BodyTimeout(_) => 408,
            ApiError::TooLarge(_) => 413,
            ApiError::DryRun => 412,
            ApiError::RateLimited(_) => 429,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
            _ => 400,
        }
    }

    /// EC2's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidValue(_) => code::VALUE,
            ApiError::Missing(_) => code::MISSING,
            ApiError::UnknownParameter(_) => code::UNKNOWN_PARAMETER,
            ApiError::MalformedJson(_) => code::MALFORMED_JSON,
            ApiError::TooLarge(_) => code::TOO_LARGE,
            ApiError::BodyTimeout(_) => code::TIMEOUT,
            ApiError::InvalidCombination(_) => code::COMBINATION,
            ApiError::InvalidPageToken(_) => code::PAGINATION,
            ApiError::TokenMismatch(_) => code::TOKEN_MISMATCH,
            ApiError::MalformedId(_) => code::MALFORMED_ID,
            ApiError::UnknownId(_) => code::NOT_FOUND,
            ApiError::NotSupported(_) => code::NOT_SUPPORTED,
            ApiError::IncorrectState(_) => code::INCORRECT_STATE,
            ApiError::UnknownAction(_) | ApiError::WrongMethod(_) => code::ACTION,
            ApiError::Unauthorized(_) => code::UNAUTHORIZED,
            ApiError::DryRun => code::DRY_RUN,
            ApiError::RateLimited(_) => code::RATE_LIMIT,
            ApiError::Unavailable(_) | ApiError::Internal(_) => code::INTERNAL,
        }
    }

    /// The answer to a request that failed with this error.
    pub fn answer(&self) -> Answer {
        Answer::error(self.status(), self.code(), self.to_string())
    }
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Answer {
        e.answer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_status_and_code_ec2_gives_it() {
        let a = ApiError::DryRun.answer();
        assert_eq!((a.status, a.code()), (412, Some("DryRunOperation")));
        let a = ApiError::Unauthorized(Action::ModifyDefaultCreditSpecification).answer();
        assert_eq!((a.status, a.code()), (403, Some("UnauthorizedOperation")));
        assert!(a.body["Error"]["Message"]
            .as_str()
            .unwrap()
            .contains("ModifyDefaultCreditSpecification"));
        let a = ApiError::RateLimited("slow down".into()).answer();
        assert_eq!((a.status, a.code()), (429, Some("RateLimitExceeded")));
        let a = ApiError::WrongMethod("POST".into()).answer();
        assert_eq!((a.status, a.code()), (405, Some("InvalidAction")));
        let a = ApiError::UnknownId("x".into()).answer();
        assert_eq!(
            (a.status, a.code()),
            (400, Some("InvalidInstanceID.NotFound"))
        );
    }
}
