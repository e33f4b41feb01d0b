//! A standalone run of ironrack's TFTP server, for benchmarks and manual tests (`deploy/bench/tftp.sh`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ironrack_agent::tftp::{TftpConfig, TftpServer};

/// Serves ROOT over TFTP until interrupted.
#[derive(Parser, Debug)]
struct Args {
    /// Directory to serve.
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6969")]
    listen: SocketAddr,
    /// Transfers at once, all clients.
    #[arg(long, default_value_t = 64)]
    max_transfers: usize,
    /// Transfers at once per client IP.
    #[arg(long, default_value_t = 4)]
    max_per_client: usize,
    /// Largest window granted.
    #[arg(long, default_value_t = 64)]
    max_windowsize: u16,
    /// Worker threads (0 = tokio's default, one per core; 1 = a current-thread runtime).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.threads > 1 {
        runtime.worker_threads(args.threads);
    }
    runtime.enable_all().build()?.block_on(async {
        let config = TftpConfig {
            listen: args.listen,
            root: args.root,
            max_transfers: args.max_transfers,
            max_per_client: args.max_per_client,
            max_windowsize: args.max_windowsize,
            ..TftpConfig::default()
        };
        let server = TftpServer::spawn(&config)?;
        eprintln!("listening on {}", server.local_addr());
        tokio::signal::ctrl_c().await?;
        server.shutdown().await;
        Ok(())
    })
}
