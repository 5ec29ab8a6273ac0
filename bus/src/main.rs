//! The `bus` binary: parses the configuration, binds the listener, serves
//! until ctrl-c or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use bus::config::BusConfig;

#[tokio::main]
async fn main() -> ExitCode {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let config = BusConfig::parse();
    if let Err(err) = config.validate() {
        eprintln!("bus: {err}");
        return ExitCode::from(2);
    }
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bus: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: BusConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Parents that start the bus (the simulator, tests) wait for this line.
    println!("bus listening on {addr}");
    tracing::info!(%addr, broker = ?config.broker, "bus listening");
    // Said by the binary, not the library: a program embedding a node in
    // development mode on purpose (the simulator) need not hear it.
    if config.jwt_secret.is_none() {
        tracing::warn!(
            "no JWT secret configured: development mode, agents are identified by query parameters without checks"
        );
    }
    bus::server::run(listener, config, shutdown_signal())
        .await
        .context("the bus stopped with an error")
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
