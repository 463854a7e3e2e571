//! The `wasmgate` command: parse flags, set up logging, validate the configuration, bind,
//! serve until SIGTERM or SIGINT, drain.

use std::io::IsTerminal;

use clap::Parser;
use clap::error::ErrorKind;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use tokio_rustls::TlsAcceptor;
use wasmgate::cli::{Cli, Command, EXIT_USAGE, PolicyCommand, ServeArgs};
use wasmgate::config::Settings;
use wasmgate::gate::Gate;
use wasmgate::policy::{Policy, store};
use wasmgate::{admin, check, server, tls};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `check` promises CI pipelines 2 for every usage error; the gate's own
            // commands use 64 (EX_USAGE), as service managers expect.
            let checking = std::env::args().nth(1).as_deref() == Some("check");
            let code = match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ if checking => check::EXIT_INPUT,
                _ => EXIT_USAGE,
            };
            let _ = error.print();
            std::process::exit(code);
        }
    };

    let code = match cli.command {
        Command::Serve(args) => {
            init_tracing(&args.log_format);
            serve(*args)
        }
        Command::Policy(PolicyCommand::Default) => {
            print!("{}", wasmgate::policy::DEFAULT_POLICY);
            0
        }
        Command::Policy(PolicyCommand::Check { file }) => match Policy::load(&file) {
            Ok(policy) => {
                let catalogs = policy
                    .catalogs
                    .iter()
                    .filter(|catalog| !catalog.builtin)
                    .count();
                println!(
                    "{}: valid policy with {} and {} of its own",
                    file.display(),
                    counted(policy.rules.len(), "rule"),
                    counted(catalogs, "catalog"),
                );
                0
            }
            Err(error) => {
                eprintln!("wasmgate: invalid policy: {error}");
                EXIT_USAGE
            }
        },
        Command::Check(args) => check::run(&args),
    };
    std::process::exit(code);
}

/// Logs to stderr as text or JSON, filtered by `WASMGATE_LOG` in `RUST_LOG` syntax
/// (default `info`). No header values are logged, so credentials never reach the log.
fn init_tracing(format: &str) {
    let filter = EnvFilter::try_from_env("WASMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn serve(args: ServeArgs) -> i32 {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("wasmgate: invalid configuration: {message}");
            return EXIT_USAGE;
        }
    };
    if args.check_config {
        let policy = match &settings.policy {
            Some((path, policy)) => {
                format!(
                    "{} ({})",
                    path.display(),
                    counted(policy.rules.len(), "rule")
                )
            }
            None => "built-in default".to_owned(),
        };
        println!(
            "configuration is valid: listen {}, upstream {}, policy {policy}, tls {}, legacy rewrite {}",
            settings.listen,
            settings.upstream,
            if settings.tls.is_some() { "on" } else { "off" },
            if settings.rewrite_legacy { "on" } else { "off" },
        );
        return 0;
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wasmgate: cannot start the async runtime: {error}");
            return 1;
        }
    };
    let code = runtime.block_on(run(settings));
    // Connections still open after the grace period are cut here, when the runtime stops.
    runtime.shutdown_background();
    code
}

async fn run(settings: Settings) -> i32 {
    // Registered before any port is bound, so a SIGHUP sent as soon as the process exists
    // reloads or is logged instead of ending it.
    #[cfg(unix)]
    let hangups = store::listen_for_hangups();
    let listener = match TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(listen = %settings.listen, %error, "cannot bind the listen address");
            return 1;
        }
    };
    let admin_listener = match settings.admin_listen {
        None => None,
        Some(address) => match TcpListener::bind(address).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::error!(admin_listen = %address, %error, "cannot bind the admin address");
                return 1;
            }
        },
    };
    // Logged once the gate is set up, so that a supervisor or test that waits for
    // "wasmgate started" finds the policy reload tasks running.
    let listen = listener.local_addr().unwrap_or(settings.listen);
    let admin = admin_listener
        .as_ref()
        .and_then(|listener| listener.local_addr().ok())
        .map_or_else(|| "off".to_owned(), |address| address.to_string());

    if settings.upstream_tls.insecure_skip_verify {
        tracing::warn!(
            "--upstream-insecure-skip-verify is set: upstream certificates are NOT verified, so anyone on the path can impersonate the registry"
        );
    }
    let tls = match &settings.tls {
        None => None,
        Some(files) => match tls::server_config(files) {
            Ok((config, resolver)) => {
                tokio::spawn(tls::watch_files(files.clone(), resolver));
                Some(TlsAcceptor::from(config))
            }
            Err(error) => {
                tracing::error!(%error, "cannot set up TLS");
                return 1;
            }
        },
    };
    let gate = match Gate::new(settings) {
        Ok(gate) => gate,
        Err(error) => {
            tracing::error!(%error, "cannot set up the upstream client");
            return 1;
        }
    };
    if let Some(admin_listener) = admin_listener {
        tokio::spawn(admin::serve(admin_listener, gate.clone()));
    }
    if gate.policy.path().is_some() {
        tokio::spawn(store::watch_file(
            gate.policy.clone(),
            store::DEFAULT_POLL_INTERVAL,
        ));
    }
    #[cfg(unix)]
    match hangups {
        Ok(hangups) => {
            tokio::spawn(store::reload_on_hangup(gate.policy.clone(), hangups));
        }
        Err(error) => tracing::error!(
            %error,
            "cannot listen for SIGHUP; the policy reloads only when its file changes"
        ),
    }
    log_start(&gate.settings, listen, admin);
    let draining = gate.clone();
    let shutdown = async move {
        shutdown_signal().await;
        draining.start_draining();
        tracing::info!("shutdown signal received; readiness is now false");
    };
    server::serve(listener, gate, tls, shutdown).await;
    tracing::info!("wasmgate stopped");
    0
}

fn log_start(settings: &Settings, listen: std::net::SocketAddr, admin: String) {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        %listen,
        %admin,
        upstream = %settings.upstream,
        public_url = settings.public_url.as_ref().map_or_else(|| "from each request's Host".to_owned(), ToString::to_string),
        max_manifest_bytes = settings.max_manifest_bytes,
        inspect_max_bytes = settings.inspect_max_bytes,
        tls = settings.tls.is_some(),
        client_certificates = settings.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some()),
        trusted_proxies = settings.trusted_proxies.len(),
        strict_os = settings.strict_os,
        rewrite_legacy = settings.rewrite_legacy,
        policy = settings.policy.as_ref().map_or_else(|| "built-in default".to_owned(), |(path, _)| path.display().to_string()),
        "wasmgate started"
    );
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

/// "1 rule", "2 rules".
fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
