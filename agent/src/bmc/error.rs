//! The one error type of the BMC drivers, with the BMC's address in every variant.

use std::time::Duration;

use super::types::{PowerAction, PowerState};

/// A boxed cause, for the `#[source]` of errors whose cause is a library error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a BMC operation failed. Every variant names the BMC (`address`, as
/// [`super::BmcEndpoint::address`] spells it); causes are `#[source]`s, not
/// pasted into the message. Passwords never appear here.
#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    /// Nothing answers at the address (connection refused, ICMP port
    /// unreachable, no route, name does not resolve).
    #[error("BMC {address} is unreachable: {detail}")]
    Unreachable {
        address: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The BMC rejected the user name or password (or the privilege asked for).
    #[error("BMC {address} rejected the credentials of user {username:?}: {detail}")]
    AuthFailed {
        address: String,
        username: String,
        detail: String,
    },
    /// The cipher suite is missing here or not offered by the BMC.
    #[error("BMC {address}: IPMI cipher suite {suite} is not supported: {detail}")]
    UnsupportedCipherSuite {
        address: String,
        suite: u8,
        detail: String,
    },
    /// The BMC did not answer in time (after retransmissions, for IPMI).
    #[error("BMC {address} did not answer {operation} within {waited:?}")]
    Timeout {
        address: String,
        operation: &'static str,
        waited: Duration,
    },
    /// The BMC does not offer the operation.
    #[error("BMC {address} does not support {op}")]
    Unsupported { address: String, op: String },
    /// The BMC answered something this driver cannot use.
    #[error("BMC {address} protocol error: {detail}")]
    Protocol {
        address: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The BMC accepted the command but the machine did not reach the
    /// expected power state before the deadline.
    #[error(
        "BMC {address}: {action} did not complete within {waited:?} (power still {observed:?})"
    )]
    ActionDidNotComplete {
        address: String,
        action: PowerAction,
        waited: Duration,
        observed: PowerState,
    },
}

impl BmcError {
    /// Whether trying the same operation again later can help: true for
    /// transient trouble on the way to the BMC, false when the BMC said no
    /// or the machine did not comply (escalate instead, e.g. soft to hard off).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            BmcError::Unreachable { .. } | BmcError::Timeout { .. }
        )
    }

    /// The BMC's address this error is about.
    pub fn address(&self) -> &str {
        match self {
            BmcError::Unreachable { address, .. }
            | BmcError::AuthFailed { address, .. }
            | BmcError::UnsupportedCipherSuite { address, .. }
            | BmcError::Timeout { address, .. }
            | BmcError::Unsupported { address, .. }
            | BmcError::Protocol { address, .. }
            | BmcError::ActionDidNotComplete { address, .. } => address,
        }
    }

    /// A short, stable name for the kind of error (for events and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            BmcError::Unreachable { .. } => "unreachable",
            BmcError::AuthFailed { .. } => "auth_failed",
            BmcError::UnsupportedCipherSuite { .. } => "unsupported_cipher_suite",
            BmcError::Timeout { .. } => "timeout",
            BmcError::Unsupported { .. } => "unsupported",
            BmcError::Protocol { .. } => "protocol",
            BmcError::ActionDidNotComplete { .. } => "action_did_not_complete",
        }
    }

    pub(crate) fn protocol(address: &str, detail: impl Into<String>) -> Self {
        BmcError::Protocol {
            address: address.to_string(),
            detail: detail.into(),
            source: None,
        }
    }

    /// The error and its whole `source()` chain on one line, for logs and events.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_only_for_transient_failures() {
        let a = "ipmi://127.0.0.1:623".to_string();
        let timeout = BmcError::Timeout {
            address: a.clone(),
            operation: "chassis status",
            waited: Duration::from_secs(3),
        };
        assert!(timeout.retryable());
        let auth = BmcError::AuthFailed {
            address: a.clone(),
            username: "admin".into(),
            detail: "RAKP 2 integrity check failed".into(),
        };
        assert!(!auth.retryable());
        assert!(auth.to_string().contains("ipmi://127.0.0.1:623"));
        let soft = BmcError::ActionDidNotComplete {
            address: a,
            action: PowerAction::Soft,
            waited: Duration::from_secs(120),
            observed: PowerState::On,
        };
        assert!(!soft.retryable());
        assert_eq!(soft.kind(), "action_did_not_complete");
    }
}
