//! The one domain error of the action API and its mapping to UCloud-style RetCodes.
//!
//! Codes below 2000 are permanent: the same request will fail the same way.
//! Codes of 2000 and above are transient: UCloud clients retry them, so only
//! failures that a retry can cure belong there.

use std::fmt;

/// A numeric RetCode as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RetCode(pub u32);

impl RetCode {
    pub const OK: RetCode = RetCode(0);
    pub const MISSING_ACTION: RetCode = RetCode(160);
    pub const UNKNOWN_ACTION: RetCode = RetCode(161);
    pub const MISSING_SIGNATURE: RetCode = RetCode(170);
    pub const BAD_SIGNATURE: RetCode = RetCode(171);
    pub const UNKNOWN_PUBLIC_KEY: RetCode = RetCode(172);
    pub const MISSING_PARAMS: RetCode = RetCode(220);
    pub const PARAMS_NOT_AVAILABLE: RetCode = RetCode(230);
    pub const BODY_TOO_LARGE: RetCode = RetCode(1001);
    pub const MALFORMED_BODY: RetCode = RetCode(1002);
    pub const NOT_FOUND: RetCode = RetCode(1010);
    pub const ALREADY_EXISTS: RetCode = RetCode(1011);
    pub const STATE_CONFLICT: RetCode = RetCode(1020);
    pub const FORBIDDEN: RetCode = RetCode(1030);
    pub const IN_USE: RetCode = RetCode(1031);
    pub const RACK_UNASSIGNED: RetCode = RetCode(1040);
    pub const NO_BMC_ADDRESS: RetCode = RetCode(1041);
    pub const BMC_AUTH_FAILED: RetCode = RetCode(1050);
    pub const BMC_UNSUPPORTED: RetCode = RetCode(1051);
    pub const POWER_NOT_COMPLETED: RetCode = RetCode(1052);
    pub const BMC_PROTOCOL: RetCode = RetCode(1053);
    pub const PARTIAL_FAILURE: RetCode = RetCode(1060);
    pub const AGENT_OFFLINE: RetCode = RetCode(2000);
    pub const BMC_UNREACHABLE: RetCode = RetCode(2001);
    pub const BMC_TIMEOUT: RetCode = RetCode(2002);
    pub const AGENT_TIMEOUT: RetCode = RetCode(2003);
    pub const TUNNEL_FAILED: RetCode = RetCode(2004);
    pub const INTERNAL: RetCode = RetCode(2100);

    /// Whether a client may retry the same request and hope for another answer.
    pub fn retryable(self) -> bool {
        self.0 >= 2000
    }
}

impl fmt::Display for RetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Everything an action can answer other than success.
///
/// Each variant carries the context a caller needs to act on it; the message
/// is built once, here, from those fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("Missing Action")]
    MissingAction,
    #[error("Action [{0}] not found")]
    UnknownAction(String),
    /// An action of the API that this version does not serve yet.
    #[error("Action [{0}] is part of the API but not available in this version")]
    NotAvailableYet(String),
    #[error("Missing Signature")]
    MissingSignature,
    #[error("Signature VerifyAC Error")]
    BadSignature,
    #[error("PublicKey [{0}] not found")]
    UnknownPublicKey(String),
    #[error("Missing params [{0}]")]
    MissingParams(String),
    #[error("Params [{param}] not available: {reason}")]
    ParamsNotAvailable { param: String, reason: String },
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body could not be read: {0}")]
    MalformedBody(String),
    #[error("{kind} [{id}] not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{kind} [{id}] is {state}; {action} needs {needs}")]
    StateConflict {
        kind: &'static str,
        id: String,
        state: String,
        action: String,
        needs: String,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    InUse(String),
    /// A batch where some items failed: each with its id, RetCode and reason.
    #[error("{summary}")]
    PartialFailure {
        summary: String,
        failed: Vec<(String, u32, String)>,
    },
    /// No rack agent owns the machine (none of its region reaches the BMC).
    #[error("{0}")]
    RackUnassigned(String),
    #[error("{0}")]
    NoBmcAddress(String),
    /// The owning agent is enrolled but not connected right now.
    #[error("{0}")]
    AgentOffline(String),
    /// The agent did not answer within the request's deadline.
    #[error("{0}")]
    AgentTimeout(String),
    /// The tunnel broke during the request.
    #[error("{0}")]
    TunnelFailed(String),
    /// The BMC operation failed on the rack; the message says how.
    #[error("{message}")]
    Bmc {
        kind: crate::rack::BmcFailureKind,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn ret_code(&self) -> RetCode {
        match self {
            ApiError::MissingAction => RetCode::MISSING_ACTION,
            ApiError::UnknownAction(_) | ApiError::NotAvailableYet(_) => RetCode::UNKNOWN_ACTION,
            ApiError::MissingSignature => RetCode::MISSING_SIGNATURE,
            ApiError::BadSignature => RetCode::BAD_SIGNATURE,
            ApiError::UnknownPublicKey(_) => RetCode::UNKNOWN_PUBLIC_KEY,
            ApiError::MissingParams(_) => RetCode::MISSING_PARAMS,
            ApiError::ParamsNotAvailable { .. } => RetCode::PARAMS_NOT_AVAILABLE,
            ApiError::BodyTooLarge { .. } => RetCode::BODY_TOO_LARGE,
            ApiError::MalformedBody(_) => RetCode::MALFORMED_BODY,
            ApiError::NotFound { .. } => RetCode::NOT_FOUND,
            ApiError::AlreadyExists(_) => RetCode::ALREADY_EXISTS,
            ApiError::StateConflict { .. } => RetCode::STATE_CONFLICT,
            ApiError::Forbidden(_) => RetCode::FORBIDDEN,
            ApiError::InUse(_) => RetCode::IN_USE,
            ApiError::PartialFailure { .. } => RetCode::PARTIAL_FAILURE,
            ApiError::RackUnassigned(_) => RetCode::RACK_UNASSIGNED,
            ApiError::NoBmcAddress(_) => RetCode::NO_BMC_ADDRESS,
            ApiError::AgentOffline(_) => RetCode::AGENT_OFFLINE,
            ApiError::AgentTimeout(_) => RetCode::AGENT_TIMEOUT,
            ApiError::TunnelFailed(_) => RetCode::TUNNEL_FAILED,
            ApiError::Bmc { kind, .. } => {
                use crate::rack::BmcFailureKind as K;
                match kind {
                    K::AuthFailed => RetCode::BMC_AUTH_FAILED,
                    K::UnsupportedCipherSuite | K::Unsupported => RetCode::BMC_UNSUPPORTED,
                    K::ActionDidNotComplete => RetCode::POWER_NOT_COMPLETED,
                    K::Protocol => RetCode::BMC_PROTOCOL,
                    K::Unreachable => RetCode::BMC_UNREACHABLE,
                    K::Timeout => RetCode::BMC_TIMEOUT,
                }
            }
            ApiError::Internal(_) => RetCode::INTERNAL,
        }
    }

    /// A parameter that is present but unusable.
    pub fn invalid(param: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::ParamsNotAvailable {
            param: param.into(),
            reason: reason.into(),
        }
    }

    pub fn missing(param: impl Into<String>) -> Self {
        ApiError::MissingParams(param.into())
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        ApiError::NotFound {
            kind,
            id: id.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_messages_match_ucloud_wording() {
        assert_eq!(
            ApiError::missing("PMID").to_string(),
            "Missing params [PMID]"
        );
        assert_eq!(ApiError::missing("PMID").ret_code(), RetCode(220));
        let e = ApiError::invalid("Limit", "must be between 1 and 1000");
        assert_eq!(e.ret_code(), RetCode(230));
        assert!(e.to_string().starts_with("Params [Limit] not available"));
    }

    #[test]
    fn only_transient_codes_are_retryable() {
        assert!(!RetCode::STATE_CONFLICT.retryable());
        assert!(!RetCode::PARAMS_NOT_AVAILABLE.retryable());
        assert!(RetCode::INTERNAL.retryable());
    }
}
