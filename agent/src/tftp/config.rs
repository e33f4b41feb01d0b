//! The `[tftp]` section of the agent's configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::options::Limits;
use super::packet::{MAX_BLKSIZE, MIN_BLKSIZE};

/// TFTP server settings. Every field may be left out and takes the default
/// named in its doc; unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TftpConfig {
    /// Whether the agent starts the server. Default `true`. The agent's
    /// wiring checks this; [`super::TftpServer::spawn`] does not.
    pub enabled: bool,
    /// Address and UDP port the server listens on. Default `0.0.0.0:69`.
    /// With an unspecified address, each reply still leaves from the
    /// address its request reached (IP_PKTINFO, see the module docs).
    pub listen: SocketAddr,
    /// Directory served as the boot root. Default `/var/lib/ironrack-agent/tftp`.
    pub root: PathBuf,
    /// Transfers in progress at once, all clients together; requests past
    /// it get an ERROR. Default 64.
    pub max_transfers: usize,
    /// Transfers in progress at once from one client IP address. Default 4.
    pub max_per_client: usize,
    /// Retransmission timeout in milliseconds, used unless the client
    /// negotiates `timeout` (RFC 2349). Default 1000.
    pub timeout_ms: u64,
    /// Retransmissions of the same window (or OACK) without progress before
    /// the transfer is abandoned. Default 5.
    pub retries: u32,
    /// Largest block size granted, in bytes, 8..=65464 (RFC 2348). Default 65464.
    pub max_blksize: u16,
    /// Largest window granted, in blocks, 1..=65535 (RFC 7440). Default 64.
    pub max_windowsize: u16,
}

impl Default for TftpConfig {
    fn default() -> Self {
        TftpConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 69)),
            root: PathBuf::from("/var/lib/ironrack-agent/tftp"),
            max_transfers: 64,
            max_per_client: 4,
            timeout_ms: 1000,
            retries: 5,
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
        }
    }
}

/// A setting outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tftp.{field}: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TftpConfig {
    /// Checks ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason| Err(ConfigError { field, reason });
        if !(MIN_BLKSIZE..=MAX_BLKSIZE).contains(&self.max_blksize) {
            return bad("max_blksize", "must be within 8..=65464");
        }
        if self.max_windowsize == 0 {
            return bad("max_windowsize", "must be at least 1");
        }
        if self.max_transfers == 0 {
            return bad("max_transfers", "must be at least 1");
        }
        if self.max_per_client == 0 {
            return bad("max_per_client", "must be at least 1");
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms", "must be at least 1");
        }
        Ok(())
    }

    /// Negotiation bounds derived from this config.
    pub fn limits(&self) -> Limits {
        Limits {
            max_blksize: self.max_blksize,
            max_windowsize: self.max_windowsize,
            default_timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_the_default() {
        let c: TftpConfig = toml::from_str("").unwrap();
        assert_eq!(c, TftpConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn parses_every_field() {
        let c: TftpConfig = toml::from_str(
            r#"
            enabled = false
            listen = "127.0.0.1:6969"
            root = "/srv/tftp"
            max_transfers = 10
            max_per_client = 2
            timeout_ms = 250
            retries = 3
            max_blksize = 1468
            max_windowsize = 16
            "#,
        )
        .unwrap();
        assert!(!c.enabled);
        assert_eq!(c.listen.port(), 6969);
        assert_eq!(c.limits().default_timeout, Duration::from_millis(250));
        c.validate().unwrap();
    }

    #[test]
    fn rejects_unknown_fields_and_bad_ranges() {
        let err = toml::from_str::<TftpConfig>("blocksize = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        for (text, field) in [
            ("max_blksize = 7", "max_blksize"),
            ("max_blksize = 65465", "max_blksize"),
            ("max_windowsize = 0", "max_windowsize"),
            ("max_transfers = 0", "max_transfers"),
            ("max_per_client = 0", "max_per_client"),
            ("timeout_ms = 0", "timeout_ms"),
        ] {
            let c: TftpConfig = toml::from_str(text).unwrap();
            assert_eq!(c.validate().unwrap_err().field, field);
        }
    }
}
