//! The `wasmgate` command: parse flags, set up logging, validate the configuration, bind,
//! serve until interrupted.

use std::io::IsTerminal;

use clap::Parser;
use clap::error::ErrorKind;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use wasmgate::cli::{Cli, Command, EXIT_USAGE, ServeArgs};
use wasmgate::gate::Gate;
use wasmgate::server;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => EXIT_USAGE,
            };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    init_tracing();

    let Command::Serve(args) = cli.command;
    std::process::exit(serve(args));
}

/// Logs to stderr, filtered by `WASMGATE_LOG` in `RUST_LOG` syntax (default `info`).
fn init_tracing() {
    let filter = EnvFilter::try_from_env("WASMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn serve(args: ServeArgs) -> i32 {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("wasmgate: invalid configuration: {message}");
            return EXIT_USAGE;
        }
    };

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wasmgate: cannot start the async runtime: {error}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(settings.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(listen = %settings.listen, %error, "cannot bind the listen address");
                return 1;
            }
        };
        let listen = listener.local_addr().unwrap_or(settings.listen);
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            %listen,
            upstream = %settings.upstream,
            public_url = settings.public_url.as_ref().map(ToString::to_string).unwrap_or_else(|| "from each request's Host".into()),
            max_manifest_bytes = settings.max_manifest_bytes,
            "wasmgate started"
        );

        let gate = Gate::new(settings);
        tokio::select! {
            () = server::serve(listener, gate) => {}
            () = shutdown_signal() => tracing::info!("shutdown signal received; stopping"),
        }
        0
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
