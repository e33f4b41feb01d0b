//! `ironrack-controller`: loads its config, opens the store and serves the action API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ironrack_controller::api::{self, server};
use ironrack_controller::app::App;
use ironrack_controller::config::Config;
use ironrack_controller::hub::{Hub, HubConfig};
use ironrack_controller::rack::Rack;
use ironrack_controller::store::RedbHubStore;
use ironrack_controller::telemetry;

/// The ironrack controller: the action API operators and consoles call.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML config file (see deploy/controller.example.toml). Optional.
    #[arg(long, env = "IRONRACK_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `data_dir` from the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `api.listen` from the config, e.g. 127.0.0.1:8640.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Overrides `tunnel.listen`: the UDP address agents dial, e.g. 0.0.0.0:8641.
    #[arg(long)]
    tunnel_listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Write N synthetic machines straight into the store, for benchmarks.
    /// Run it while the controller is stopped.
    BenchSeed {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long, default_value = "bench")]
        region: String,
    },
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
            tracing::error!(error = format!("{e:#}"), "ironrack-controller stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.api.listen = l;
    }
    if let Some(l) = args.tunnel_listen {
        config.tunnel.listen = l;
    }
    let app = App::open(config).context("cannot open the controller's data directory")?;
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(Arc::new(app)),
        Command::BenchSeed { count, region } => {
            ironrack_controller::bench::seed(&app, count, &region)?;
            Ok(())
        }
    }
}

fn serve(app: Arc<App>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let cfg = app.config.api.clone();
        telemetry::install();
        telemetry::spawn_upkeep();
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let local = listener.local_addr()?;
        let tls = cfg.tls_cert.clone().zip(cfg.tls_key.clone());
        let tunnel = app.config.tunnel.clone();
        let hub = Hub::start(
            HubConfig {
                listen: tunnel.listen,
                server_names: tunnel.names(),
                data_dir: app.config.data_dir.clone(),
            },
            Arc::new(RedbHubStore(app.redb.clone())),
        )
        .await
        .with_context(|| format!("cannot start the agent tunnel on {}", tunnel.listen))?;
        let tunnel_addr = hub.local_addr();
        let rack = Rack::new(hub, app.store.clone(), app.sealer.clone());
        rack.spawn_workers();
        let _ = app.rack.set(rack.clone());
        tracing::info!(
            listen = %local,
            tunnel = %tunnel_addr,
            tls = tls.is_some(),
            data_dir = %app.config.data_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            "ironrack-controller serving the action API"
        );
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutting down");
        };
        server::serve(listener, api::router(app), tls, shutdown).await?;
        rack.hub().shutdown().await;
        Ok(())
    })
}
