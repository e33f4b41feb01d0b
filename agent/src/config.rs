//! The agent's TOML configuration (see `deploy/agent.example.toml`); command-line flags override it.
//!
//! Every field is optional in the file, so flags alone can run an agent; the
//! controller address, region and rack must come from one or the other
//! ([`Config::finish`]). Unknown fields are refused so that a typo is an
//! error, not a silent default.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::bmc::sync::PowerSyncConfig;

/// Where the agent keeps its identity unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/ironrack-agent";

/// The config file as written; see `deploy/agent.example.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Holds `agent.key`, `agent.crt` and `ca.crt`. Default
    /// [`DEFAULT_DATA_DIR`].
    pub data_dir: Option<PathBuf>,
    /// The controller's tunnel address, `HOST:PORT`. No default.
    pub controller: Option<String>,
    /// The region this rack is in; must match the enrollment token's. No default.
    pub region: Option<String>,
    /// This rack's name, unique in its region. No default.
    pub rack: Option<String>,
    /// CIDRs of the BMC networks this agent reaches. Default: none.
    pub bmc_networks: Option<Vec<Cidr>>,
    #[serde(default)]
    pub power_sync: PowerSyncSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// `[metrics]`: the Prometheus scrape endpoint, `GET /metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Whether to serve it at all. Default `false`.
    #[serde(default)]
    pub enabled: bool,
    /// Where it listens. Default `127.0.0.1:9641`.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

fn default_metrics_listen() -> SocketAddr {
    crate::telemetry::DEFAULT_LISTEN
        .parse()
        .expect("DEFAULT_LISTEN is an address")
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: false,
            listen: default_metrics_listen(),
        }
    }
}

/// `[power_sync]`: periodic reads of every owned machine's power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSyncSection {
    /// Whether to poll at all. Default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between two sweeps over all machines. Default 30.
    #[serde(default = "default_interval_s")]
    pub interval_s: u64,
    /// BMC reads in flight at once. Default 64.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_true() -> bool {
    true
}

fn default_interval_s() -> u64 {
    30
}

fn default_concurrency() -> usize {
    64
}

impl Default for PowerSyncSection {
    fn default() -> Self {
        PowerSyncSection {
            enabled: true,
            interval_s: default_interval_s(),
            concurrency: default_concurrency(),
        }
    }
}

impl PowerSyncSection {
    /// The power sync's settings; fields not in the file keep their defaults.
    pub fn sync_config(&self) -> PowerSyncConfig {
        PowerSyncConfig {
            interval: Duration::from_secs(self.interval_s),
            concurrency: self.concurrency,
            ..PowerSyncConfig::default()
        }
    }
}

/// A network in CIDR notation, e.g. `10.1.0.0/16` or `2001:db8::/32`, with
/// no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{input:?} is not ADDRESS/PREFIX (e.g. 10.1.0.0/16)")]
    Shape { input: String },
    #[error("{input:?}: {addr:?} is not an IP address")]
    Address { input: String, addr: String },
    #[error("{input:?}: prefix must be 0 to {max}")]
    Prefix { input: String, max: u8 },
    /// Host bits set usually means a typo in the prefix; the controller
    /// routes machines by these networks, so guessing would misroute.
    #[error("{input:?} has host bits set; did you mean {network}?")]
    HostBits { input: String, network: Cidr },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (addr_s, prefix_s) = input.split_once('/').ok_or_else(|| CidrError::Shape {
            input: input.to_owned(),
        })?;
        let addr: IpAddr = addr_s.parse().map_err(|_| CidrError::Address {
            input: input.to_owned(),
            addr: addr_s.to_owned(),
        })?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 =
            prefix_s
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::Prefix {
                    input: input.to_owned(),
                    max,
                })?;
        let network = Cidr {
            addr: mask(addr, prefix),
            prefix,
        };
        if network.addr != addr {
            return Err(CidrError::HostBits {
                input: input.to_owned(),
                network,
            });
        }
        Ok(network)
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why the config could not be loaded or is incomplete.
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
        source: Box<toml::de::Error>,
    },
    #[error("config file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    /// A required setting is in neither the file nor the flags.
    #[error("{field} is not set: pass {flag} or set `{field}` in the config file")]
    Missing {
        field: &'static str,
        flag: &'static str,
    },
    #[error("{flag}: {problem}")]
    Flag { flag: &'static str, problem: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        let cfg: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let invalid = |problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            problem: problem.to_owned(),
        };
        if cfg.power_sync.interval_s == 0 {
            return Err(invalid("power_sync.interval_s must be at least 1"));
        }
        if cfg.power_sync.concurrency == 0 {
            return Err(invalid("power_sync.concurrency must be at least 1"));
        }
        if let Some(c) = &cfg.controller {
            check_controller(c).map_err(|p| invalid(&format!("controller: {p}")))?;
        }
        for (field, value) in [("region", &cfg.region), ("rack", &cfg.rack)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid(&format!("{field} must not be empty")));
            }
        }
        Ok(cfg)
    }
}

/// `HOST:PORT` with a non-zero port; the host may be a name, an IPv4
/// address or a bracketed IPv6 address.
pub fn check_controller(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    if host.is_empty() || (host.contains(':') && !(host.starts_with('[') && host.ends_with(']'))) {
        return Err(format!(
            "{s:?} is not HOST:PORT (write an IPv6 address as [addr]:port)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{s:?}: port {port:?} is not 1 to 65535")),
    }
}

/// Settings given on the command line; each overrides the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub controller: Option<String>,
    pub region: Option<String>,
    pub rack: Option<String>,
    /// Replaces the file's list when not empty.
    pub bmc_networks: Vec<Cidr>,
    /// Serves metrics on this address, whatever `[metrics] enabled` says.
    pub metrics_listen: Option<SocketAddr>,
}

/// The settings the agent runs with, after flags are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub controller: String,
    pub region: String,
    pub rack: String,
    pub bmc_networks: Vec<Cidr>,
    pub power_sync: PowerSyncSection,
    /// Where to serve `/metrics`, or `None` to serve none.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Applies `flags` over `file` and checks that nothing required is missing.
    pub fn finish(file: FileConfig, flags: Overrides) -> Result<Config, ConfigError> {
        let controller = flags
            .controller
            .or(file.controller)
            .ok_or(ConfigError::Missing {
                field: "controller",
                flag: "--controller HOST:PORT",
            })?;
        check_controller(&controller).map_err(|problem| ConfigError::Flag {
            flag: "--controller",
            problem,
        })?;
        let region = flags.region.or(file.region).ok_or(ConfigError::Missing {
            field: "region",
            flag: "--region R",
        })?;
        let rack = flags.rack.or(file.rack).ok_or(ConfigError::Missing {
            field: "rack",
            flag: "--rack NAME",
        })?;
        for (flag, value) in [("--region", &region), ("--rack", &rack)] {
            if value.trim().is_empty() {
                return Err(ConfigError::Flag {
                    flag,
                    problem: "must not be empty".into(),
                });
            }
        }
        let bmc_networks = if flags.bmc_networks.is_empty() {
            file.bmc_networks.unwrap_or_default()
        } else {
            flags.bmc_networks
        };
        Ok(Config {
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            controller,
            region,
            rack,
            bmc_networks,
            power_sync: file.power_sync,
            metrics_listen: flags
                .metrics_listen
                .or(file.metrics.enabled.then_some(file.metrics.listen)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(text, Path::new("/etc/ironrack/agent.toml"))
    }

    /// The error and its causes on one line, as the binary logs it.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    #[test]
    fn cidrs_parse_and_refuse_typos() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert_eq!(
            "2001:db8::/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().prefix, 0);
        assert_eq!("192.0.2.7/32".parse::<Cidr>().unwrap().prefix, 32);
        assert!(matches!(
            "10.1.0.0".parse::<Cidr>(),
            Err(CidrError::Shape { .. })
        ));
        assert!(matches!(
            "10.1.0/16".parse::<Cidr>(),
            Err(CidrError::Address { .. })
        ));
        assert!(matches!(
            "10.1.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix { max: 32, .. })
        ));
        let err = "10.1.2.3/16".parse::<Cidr>().unwrap_err();
        assert!(
            err.to_string().contains("did you mean 10.1.0.0/16"),
            "{err}"
        );
    }

    #[test]
    fn empty_file_takes_defaults_and_flags_fill_the_rest() {
        let file = parse("").unwrap();
        assert_eq!(file.power_sync, PowerSyncSection::default());
        let err = Config::finish(file.clone(), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("--controller"), "{err}");
        let cfg = Config::finish(
            file,
            Overrides {
                controller: Some("ctl.example.net:8641".into()),
                region: Some("cn-1".into()),
                rack: Some("r1".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.data_dir, Path::new(DEFAULT_DATA_DIR));
        assert!(cfg.bmc_networks.is_empty());
        assert_eq!(
            cfg.power_sync.sync_config().interval,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn metrics_are_off_unless_enabled_or_flagged() {
        let base = "controller = \"a:1\"\nregion = \"r\"\nrack = \"k\"\n";
        let finish = |text: &str, flag: Option<SocketAddr>| {
            let flags = Overrides {
                metrics_listen: flag,
                ..Overrides::default()
            };
            Config::finish(parse(text).unwrap(), flags)
                .unwrap()
                .metrics_listen
        };
        assert_eq!(finish(base, None), None);
        let on = format!("{base}[metrics]\nenabled = true\n");
        assert_eq!(finish(&on, None), Some("127.0.0.1:9641".parse().unwrap()));
        let moved = format!("{base}[metrics]\nenabled = true\nlisten = \"0.0.0.0:9\"\n");
        assert_eq!(finish(&moved, None), Some("0.0.0.0:9".parse().unwrap()));
        let flag: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(finish(base, Some(flag)), Some(flag));
        assert!(parse("[metrics]\nport = 1\n").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse(
            "controller = \"a:1\"\nregion = \"r\"\nrack = \"k\"\n\
             bmc_networks = [\"10.0.0.0/8\"]\ndata_dir = \"/d\"\n",
        )
        .unwrap();
        let same = Config::finish(file.clone(), Overrides::default()).unwrap();
        assert_eq!(same.bmc_networks, vec!["10.0.0.0/8".parse().unwrap()]);
        let cfg = Config::finish(
            file,
            Overrides {
                controller: Some("[::1]:9".into()),
                rack: Some("k2".into()),
                bmc_networks: vec!["192.0.2.0/24".parse().unwrap()],
                data_dir: Some("/e".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.controller, "[::1]:9");
        assert_eq!((cfg.region.as_str(), cfg.rack.as_str()), ("r", "k2"));
        assert_eq!(cfg.bmc_networks, vec!["192.0.2.0/24".parse().unwrap()]);
        assert_eq!(cfg.data_dir, Path::new("/e"));
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let err = parse("[power_sync]\nintervl_s = 5\n").unwrap_err();
        let text = chain(&err);
        assert!(text.contains("/etc/ironrack/agent.toml"), "{text}");
        assert!(text.contains("intervl_s"), "{text}");

        let err = parse("bmc_networks = [\"10.1.2.3/16\"]\n").unwrap_err();
        let text = chain(&err);
        assert!(text.contains("/etc/ironrack/agent.toml"), "{text}");
        assert!(text.contains("bmc_networks"), "{text}");
        assert!(text.contains("10.1.0.0/16"), "{text}");

        let err = parse("[power_sync]\ninterval_s = 0\n").unwrap_err();
        let text = chain(&err);
        assert!(text.contains("agent.toml: power_sync.interval_s"), "{text}");

        let err = parse("controller = \"ctl.example.net\"\n").unwrap_err();
        let text = chain(&err);
        assert!(text.contains("agent.toml: controller"), "{text}");
    }

    #[test]
    fn controller_addresses() {
        assert!(check_controller("ctl:8641").is_ok());
        assert!(check_controller("192.0.2.1:8641").is_ok());
        assert!(check_controller("[2001:db8::1]:8641").is_ok());
        assert!(check_controller("2001:db8::1").is_err());
        assert!(check_controller("ctl").is_err());
        assert!(check_controller("ctl:0").is_err());
        assert!(check_controller(":8641").is_err());
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every agent config shipped in deploy/ must load.
    #[test]
    fn deploy_examples_parse() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut seen = 0;
        for entry in std::fs::read_dir(&deploy).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("agent") && name.ends_with(".toml") {
                let file = FileConfig::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
                Config::finish(file, Overrides::default())
                    .unwrap_or_else(|e| panic!("{name} is incomplete: {e}"));
                seen += 1;
            }
        }
        assert!(seen > 0, "no agent example config in deploy/");
    }
}
