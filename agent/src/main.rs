//! `ironrack-agent`: the per-rack agent binary — enroll once, then keep the tunnel to the controller and serve it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ironrack_agent::config::{Cidr, Config, FileConfig, Overrides};
use ironrack_agent::service::{self, AgentSettings};
use ironrack_agent::telemetry;
use ironrack_common::tunnel::SecretString;

/// The ironrack rack agent. It runs on a rack's management host next to the
/// BMCs and keeps a tunnel open to the controller.
///
/// First start: pass --token to enroll; the identity is kept in --data-dir
/// and later starts only need the same flags without the token.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML config file (see deploy/agent.example.toml). Flags override it.
    #[arg(long, env = "IRONRACK_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the agent's key, certificate and CA certificate.
    /// Default /var/lib/ironrack-agent.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The controller's tunnel address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    controller: Option<String>,
    /// One-time enrollment token (irt1.…), needed only until the agent is
    /// enrolled. Prefer the environment variable: command lines are visible
    /// to every user of the host.
    #[arg(long, env = "IRONRACK_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Region this rack is in (must match the token's).
    #[arg(long, value_name = "R")]
    region: Option<String>,
    /// This rack's name.
    #[arg(long, value_name = "NAME")]
    rack: Option<String>,
    /// A BMC network this agent reaches, as a CIDR; repeat for several.
    /// Replaces the config file's list.
    #[arg(long = "bmc-network", value_name = "CIDR")]
    bmc_networks: Vec<Cidr>,
    /// Serve Prometheus metrics on ADDR (GET /metrics), e.g.
    /// 127.0.0.1:9641; overrides the config file's `[metrics]`.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` puts the whole cause chain on this one line.
            tracing::error!(error = format!("{e:#}"), "ironrack-agent stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let config = Config::finish(
        file,
        Overrides {
            data_dir: args.data_dir,
            controller: args.controller,
            region: args.region,
            rack: args.rack,
            bmc_networks: args.bmc_networks,
            metrics_listen: args.metrics_listen,
        },
    )?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        controller = %config.controller,
        region = %config.region,
        rack = %config.rack,
        version = env!("CARGO_PKG_VERSION"),
        "ironrack-agent starting"
    );
    let metrics_listen = config.metrics_listen;
    let settings = AgentSettings::new(config, args.token.map(SecretString::new));
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        if let Some(addr) = metrics_listen {
            let local = telemetry::serve(addr).await?;
            tracing::info!(listen = %local, "serving metrics on /metrics");
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        };
        service::run(settings, shutdown).await?;
        tracing::info!("ironrack-agent stopped");
        Ok(())
    })
}
