//! The request handler: classifies each request and sends it down the forwarding path or
//! the manifest push path.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::body::{self, Body};
use crate::config::Settings;
use crate::error::{GateError, error_response};
use crate::forward::{self, ClientSide};
use crate::push;
use crate::route::{self, Route};
use crate::upstream::Upstream;
use crate::wasm::InspectionCache;

/// Shared state of a running gate.
pub struct Gate {
    pub settings: Settings,
    pub upstream: Upstream,
    /// Layer inspection results by digest, shared by all requests.
    pub inspections: InspectionCache,
}

impl Gate {
    pub fn new(settings: Settings) -> Arc<Self> {
        let upstream = Upstream::new(settings.upstream.clone(), settings.blob_read_timeout);
        Arc::new(Self {
            settings,
            upstream,
            inspections: InspectionCache::default(),
        })
    }

    /// Handles one request. Never fails: every error becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let span = tracing::info_span!(
            "request",
            http.method = %request.method(),
            http.path = %request.uri().path(),
            client.address = %peer,
        );
        self.route(request, peer).instrument(span).await
    }

    async fn route(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let client = ClientSide::new(&request, peer, &self.settings);
        let result = match route::classify(request.method(), request.uri()) {
            Route::Forward => {
                forward::forward(&self.upstream, request.map(body::stream), &client).await
            }
            Route::ManifestPush(target) => push::handle(self, target, request, &client).await,
            Route::Invalid(rejection) => {
                tracing::info!(
                    rule = rejection.rule.as_str(),
                    error.message = %rejection.message,
                    "request rejected"
                );
                Err(GateError::Rejected(rejection))
            }
        };
        result.unwrap_or_else(error_response)
    }
}
