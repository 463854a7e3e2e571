//! Accept stage: the client listener, the TLS handshake when TLS is on, per-connection
//! HTTP/1.1 and HTTP/2 serving (ALPN over TLS, prior knowledge without), the connection
//! limit, and the graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::body::FirstByteDeadline;
use crate::config::Scheme;
use crate::gate::Gate;

/// Pause after a failed `accept`, such as when the process is out of file descriptors, so
/// the loop does not spin while the condition lasts.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves clients on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish within the shutdown grace period, and returns. Connections
/// still open after the grace period are cut when the runtime stops.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<Gate>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(gate.settings.limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let open = open.clone();
        let gate = gate.clone();
        let tls = tls.clone();
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, Scheme::Http, gate, watcher).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(gate.settings.limits.header_read_timeout, handshake)
                        .await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, Scheme::Https, gate, watcher).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(client.address = %peer, %error, "TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(client.address = %peer, "TLS handshake timed out")
                        }
                    }
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
    }

    drop(listener);
    let grace = gate.settings.limits.shutdown_grace;
    tracing::info!(
        connections = open.load(Ordering::SeqCst),
        grace_seconds = grace.as_secs(),
        "stopped accepting; draining open connections"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(grace) => tracing::warn!(
            connections = open.load(Ordering::SeqCst),
            "shutdown grace period over; cutting the connections still open"
        ),
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    scheme: Scheme,
    gate: Arc<Gate>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = gate.settings.limits.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let service = service_fn(move |request| {
        let gate = gate.clone();
        async move { Ok::<_, Infallible>(gate.handle(request, peer, scheme).await) }
    });
    // hyper's header timer starts with the first byte, so a peer that never sends one is
    // bounded here.
    let io = FirstByteDeadline::new(io, header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(client.address = %peer, %error, "connection ended with an error");
    }
}
