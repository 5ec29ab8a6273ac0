//! The `sim` binary: parses the command line, sets up logging, runs the
//! command and exits with its code.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    // Colour only for a person at a terminal (and not with NO_COLOR set):
    // logs piped to a file or CI stay plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let cli = sim::cli::Cli::parse();
    let code = sim::cli::dispatch(cli).await;
    std::process::exit(code);
}
