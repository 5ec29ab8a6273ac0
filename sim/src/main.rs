//! The `sim` binary: parses the command line, sets up logging, runs the
//! command and exits with its code.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = sim::cli::Cli::parse();
    let code = sim::cli::dispatch(cli).await;
    std::process::exit(code);
}
