//! Accept stage: the listener and the per-connection HTTP/1.1 and HTTP/2 (prior knowledge)
//! server. TLS, connection limits and graceful drain are not handled here yet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::gate::Gate;

/// Pause after a failed `accept`, such as when the process is out of file descriptors, so
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` and serves each on its own task, until the task running
/// this future is dropped.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, gate.clone()));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, gate: Arc<Gate>) {
    let service = service_fn(move |request| {
        let gate = gate.clone();
        async move { Ok::<_, std::convert::Infallible>(gate.handle(request, peer).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(client.address = %peer, %error, "connection ended with an error");
    }
}
