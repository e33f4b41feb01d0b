//! The controller's TOML configuration; command-line flags override it.
//!
//! Every field has a default, so an empty file (or none) is a valid config.
//! Unknown fields are refused so that a typo is an error, not a silent default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the store, the seal key and the admin credentials live.
    /// Default `/var/lib/ironrack`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub tunnel: TunnelConfig,
}

/// The QUIC endpoint rack agents dial.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// UDP address and port agents connect to. Default `127.0.0.1:8641`.
    #[serde(default = "default_tunnel_listen")]
    pub listen: SocketAddr,
    /// DNS names and IP addresses agents use to reach the controller; they
    /// go into the tunnel's server certificate. Default: `localhost` and
    /// the listen address (or 127.0.0.1 when listening on all addresses).
    #[serde(default)]
    pub server_names: Vec<String>,
}

fn default_tunnel_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8641))
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            listen: default_tunnel_listen(),
            server_names: Vec::new(),
        }
    }
}

impl TunnelConfig {
    /// The names for the server certificate, defaults filled in.
    pub fn names(&self) -> Vec<String> {
        if !self.server_names.is_empty() {
            return self.server_names.clone();
        }
        let ip = self.listen.ip();
        let ip = if ip.is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            ip.to_string()
        };
        vec!["localhost".to_owned(), ip]
    }
}

/// The action API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port to listen on. Default `127.0.0.1:8640`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the API serves HTTPS.
    /// Without both, plain HTTP: for loopback or behind a TLS proxy.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The URL clients use to reach this API, written into
    /// `admin-credentials.json`. Default: derived from `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/ironrack")
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8640))
}

fn default_max_body() -> usize {
    1 << 20
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: default_max_body(),
            public_url: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            api: ApiConfig::default(),
            tunnel: TunnelConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("config file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if cfg.api.tls_cert.is_some() != cfg.api.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problem: "api.tls_cert and api.tls_key must be given together".into(),
            });
        }
        if cfg.api.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problem: "api.max_body_bytes must be at least 1024".into(),
            });
        }
        Ok(cfg)
    }

    /// The URL written into the admin credentials file.
    pub fn endpoint(&self) -> String {
        if let Some(url) = &self.api.public_url {
            return url.clone();
        }
        let scheme = if self.api.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.api.listen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_takes_defaults_and_typos_are_refused() {
        let cfg = Config::parse("", Path::new("x.toml")).unwrap();
        assert_eq!(cfg.api.listen.port(), 8640);
        assert_eq!(cfg.endpoint(), "http://127.0.0.1:8640");
        let err = Config::parse("[api]\nlisen = \"1.2.3.4:1\"\n", Path::new("x.toml")).unwrap_err();
        assert!(format!("{:?}", err).contains("lisen"));
        assert!(Config::parse("[api]\ntls_cert = \"a.pem\"\n", Path::new("x.toml")).is_err());
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every example config shipped in deploy/ must load.
    #[test]
    fn deploy_examples_parse() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut seen = 0;
        for entry in std::fs::read_dir(&deploy).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("controller") && name.ends_with(".toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
                seen += 1;
            }
        }
        assert!(seen > 0, "no controller example config in deploy/");
    }
}
