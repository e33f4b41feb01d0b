//! `ironrack-agent`: the per-rack agent binary.

use clap::Parser;

/// The ironrack rack agent. It runs on a rack's management host next to the
/// BMCs and keeps a tunnel open to the controller.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory for the agent's certificate, key and local store.
    #[arg(long, default_value = "/var/lib/ironrack-agent")]
    data_dir: std::path::PathBuf,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    tracing::info!(
        data_dir = %args.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "ironrack-agent starting: enrollment, the tunnel and BMC drivers are not built yet; exiting"
    );
}
