//! Observe stage: the admin listener. `/metrics` serves the Prometheus metrics, `/healthz`
//! says the process is alive, `/readyz` says whether it should receive traffic. It keeps
//! answering while the gate drains, so orchestrators see readiness turn false.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::body::{Body, full};
use crate::gate::Gate;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an admin connection failed");
                tokio::time::sleep(crate::server::ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gate = gate.clone();
                async move { Ok::<_, Infallible>(answer(&gate, request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(client.address = %peer, %error, "admin connection ended with an error");
            }
        });
    }
}

async fn answer(gate: &Gate, request: Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(full(Bytes::from(gate.metrics.encode())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(OPENMETRICS),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match gate.readiness().await {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
