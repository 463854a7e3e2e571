//! The request handler: gives each request an id, meters it, classifies it and sends it
//! down the forwarding path or the manifest push path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::body::{self, Body, MeteredBody};
use crate::config::{Scheme, Settings};
use crate::error::{GateError, error_response};
use crate::forward::{self, ClientSide};
use crate::metrics::{Metrics, RequestLabels};
use crate::policy::{Policy, PolicyStore};
use crate::push;
use crate::route::{self, Route};
use crate::upstream::Upstream;
use crate::wasm::InspectionCache;

/// Header carrying the request id: kept when the client sends one, generated otherwise,
/// forwarded upstream and echoed in the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Maximum length of an incoming request id that is kept. Longer ones are replaced.
const MAX_REQUEST_ID_BYTES: usize = 128;
/// Maximum age of an upstream response that `/readyz` trusts without a new probe.
const READY_ANSWER_AGE: Duration = Duration::from_secs(10);

/// Shared state of a running gate.
pub struct Gate {
    pub settings: Settings,
    pub upstream: Upstream,
    /// Layer inspection results by digest, shared by all requests.
    pub inspections: InspectionCache,
    pub metrics: Arc<Metrics>,
    /// Permits for manifest pushes buffered at once (`--max-manifest-validations`).
    pub validations: Semaphore,
    /// The policy in force, reloadable.
    pub policy: Arc<PolicyStore>,
    draining: AtomicBool,
    /// Prefix of generated request ids: the start time, so ids differ across restarts.
    id_prefix: String,
    next_id: AtomicU64,
}

impl Gate {
    /// Builds the gate; fails when the upstream TLS files cannot be loaded.
    pub fn new(settings: Settings) -> Result<Arc<Self>, String> {
        let metrics = Arc::new(Metrics::new());
        let tls = crate::tls::client_config(&settings.upstream_tls)?;
        let mut upstream = Upstream::new(
            settings.upstream.clone(),
            &settings.limits,
            metrics.clone(),
            tls,
            settings.upstream_http2,
        );
        upstream.realm_rewrites = settings.realm_rewrites.clone();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let policy = match &settings.policy {
            Some((path, policy)) => PolicyStore::new(policy.clone(), Some(path.clone())),
            None => PolicyStore::new(Policy::builtin(settings.rewrite_legacy), None),
        };
        Ok(Arc::new(Self {
            validations: Semaphore::new(settings.limits.max_manifest_validations),
            policy: Arc::new(policy),
            settings,
            upstream,
            inspections: InspectionCache::default(),
            metrics,
            draining: AtomicBool::new(false),
            id_prefix: format!("{:x}", started.as_micros()),
            next_id: AtomicU64::new(1),
        }))
    }

    /// Marks the gate as draining: `/readyz` fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Returns whether the gate should receive traffic: it is not draining, and the upstream
    /// responded recently with any HTTP status or responds to a probe now.
    pub async fn readiness(&self) -> Result<(), &'static str> {
        if self.is_draining() {
            return Err("draining");
        }
        if self.upstream.answered_within(READY_ANSWER_AGE) || self.upstream.probe().await {
            Ok(())
        } else {
            Err("the upstream registry is not answering")
        }
    }

    /// Handles one request that came over a connection with `scheme`. Never fails: every
    /// error becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> Response<Body> {
        let request_id = self.request_id(&request);
        let route_class = route::route_class(request.uri().path());
        let method = method_label(request.method());
        let span = tracing::info_span!(
            "request",
            request.id = %request_id.to_str().unwrap_or_default(),
            http.method = %request.method(),
            http.path = %request.uri().path(),
            client.address = %peer,
        );

        let mut in_flight = InFlight::start(&self.metrics, route_class, method);
        let idle = self.settings.limits.body_idle_timeout;
        let received = self.metrics.received_bytes.clone();
        let (mut parts, incoming) = request.into_parts();
        parts.headers.insert(REQUEST_ID_HEADER, request_id.clone());
        let request = Request::from_parts(parts, meter_incoming(incoming, received, idle));

        let response = self.route(request, peer, scheme).instrument(span).await;

        in_flight.finish(response.status().as_u16());
        let (mut parts, body) = response.into_parts();
        parts.headers.insert(REQUEST_ID_HEADER, request_id);
        let sent = self.metrics.sent_bytes.clone();
        Response::from_parts(parts, meter_outgoing(body, sent, idle))
    }

    async fn route(
        &self,
        request: Request<Body>,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> Response<Body> {
        let client = ClientSide::new(&request, peer, scheme, &self.settings);
        let result = match route::classify(request.method(), request.uri()) {
            Route::Forward => forward::forward(&self.upstream, request, &client).await,
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

    /// Returns the client's `X-Request-Id` when it is short printable ASCII, else a new id.
    fn request_id<B>(&self, request: &Request<B>) -> HeaderValue {
        let incoming = request.headers().get(REQUEST_ID_HEADER).filter(|value| {
            let bytes = value.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_BYTES
                && bytes.iter().all(|b| b.is_ascii_graphic())
        });
        match incoming {
            Some(value) => value.clone(),
            None => {
                let number = self.next_id.fetch_add(1, Ordering::Relaxed);
                let id = format!("{}-{number:x}", self.id_prefix);
                HeaderValue::from_str(&id).expect("hex digits and a dash are a valid header value")
            }
        }
    }
}

/// Counts and watches a client's request body. A plain function, so the body types are
/// fixed outside the request future.
fn meter_incoming(incoming: Incoming, counter: Counter, idle: Duration) -> Body {
    body::stream(MeteredBody::new(incoming, counter, idle))
}

/// Counts and watches a response body on its way to the client.
fn meter_outgoing(outgoing: Body, counter: Counter, idle: Duration) -> Body {
    body::stream(MeteredBody::new(outgoing, counter, idle))
}

/// The method as a metric label. Clients may send any token as a method, so only the
/// methods of the registry API get their own label, which keeps label values bounded.
fn method_label(method: &http::Method) -> String {
    const KNOWN: &[&str] = &["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"];
    let name = method.as_str();
    if KNOWN.contains(&name) {
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// Status recorded for a request whose client went away before the response was ready, as
/// nginx logs it.
const CLIENT_CLOSED: u16 = 499;

/// Keeps `wasmgate_in_flight_requests` right even when hyper drops the request future
/// because the client disconnected: the drop lowers the gauge and counts the request with
/// status 499 unless [`InFlight::finish`] recorded its real status.
struct InFlight<'a> {
    metrics: &'a Metrics,
    route: &'static str,
    method: Option<String>,
}

impl<'a> InFlight<'a> {
    fn start(metrics: &'a Metrics, route: &'static str, method: String) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            route,
            method: Some(method),
        }
    }

    /// Counts the request with `status`, once; later calls, and the drop, count nothing more.
    fn finish(&mut self, status: u16) {
        if let Some(method) = self.method.take() {
            let labels = RequestLabels {
                route: self.route,
                method,
                status,
            };
            self.metrics.requests.get_or_create(&labels).inc();
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.finish(CLIENT_CLOSED);
        self.metrics.in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(metrics: &Metrics, status: u16) -> u64 {
        let labels = RequestLabels {
            route: "blob",
            method: "GET".into(),
            status,
        };
        metrics.requests.get_or_create(&labels).get()
    }

    #[test]
    fn dropped_request_counts_as_client_closed() {
        let metrics = Metrics::new();

        let guard = InFlight::start(&metrics, "blob", "GET".into());
        assert_eq!(metrics.in_flight.get(), 1);
        drop(guard);

        assert_eq!(metrics.in_flight.get(), 0);
        assert_eq!(requests(&metrics, CLIENT_CLOSED), 1);
    }

    #[test]
    fn finished_request_counts_its_status() {
        let metrics = Metrics::new();

        let mut guard = InFlight::start(&metrics, "blob", "GET".into());
        guard.finish(200);
        drop(guard);

        assert_eq!(metrics.in_flight.get(), 0);
        assert_eq!(requests(&metrics, 200), 1);
        assert_eq!(requests(&metrics, CLIENT_CLOSED), 0);
    }
}
