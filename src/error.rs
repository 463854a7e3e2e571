//! Respond stage: the one error type of the request path and the one function that renders
//! it as an OCI error response. Errors are grouped by who is at fault: the client (4xx, a
//! [`Rejection`] carrying the rule that failed, or 408 for a stalled body), or the upstream
//! (502/504, or its own response relayed unchanged).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::body::{Body, full};

/// Header that registries send with every response, and that clients look for on errors.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// Error codes of the distribution specification, plus the `UNAVAILABLE` and `UNKNOWN`
/// codes that registries use outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    NameInvalid,
    TagInvalid,
    TooManyRequests,
    Unavailable,
    Unknown,
    Unsupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::NameInvalid => "NAME_INVALID",
            Self::TagInvalid => "TAG_INVALID",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Unavailable => "UNAVAILABLE",
            Self::Unknown => "UNKNOWN",
            Self::Unsupported => "UNSUPPORTED",
        }
    }
}

/// Every rule a manifest push can break. The kebab-case name appears as `detail.rule` in the
/// error body and in the rejection log line, so operators can search for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    RequestTarget,
    MethodUnsupported,
    ManifestPathEncoded,
    NameGrammar,
    TagGrammar,
    DigestGrammar,
    DigestAlgorithm,
    ReferenceDigestMismatch,
    ManifestTooLarge,
    ManifestReadTimeout,
    ValidationsBusy,
    BodyReadFailed,
    ContentTypeMissing,
    ContentTypeUnsupported,
    SchemaOne,
    Utf8,
    JsonSyntax,
    NotAnObject,
    DuplicateKey,
    CaseVariantKey,
    MediaTypeMismatch,
    AmbiguousManifest,
    AmbiguousIndex,
    SchemaVersion,
    MissingField,
    FieldType,
    MediaTypeGrammar,
    SizeNegative,
    AnnotationValue,
    DataMismatch,
    ArtifactTypeRequired,
    WasmManifestType,
    WasmConfigType,
    WasmLayerCount,
    WasmLayerType,
    ConfigTooLarge,
    ConfigBlobUnknown,
    ConfigSizeMismatch,
    ConfigDigestMismatch,
    ConfigCreated,
    ConfigArchitecture,
    ConfigOs,
    ConfigLayerDigests,
    ConfigComponent,
    ConfigOsMismatch,
    ConfigComponentMismatch,
    LayerBlobUnknown,
    LayerSizeMismatch,
    LayerDigestMismatch,
    LayerNotWasm,
    LayerInvalid,
    LegacyRewriteByDigest,
    LegacyRewriteTooLarge,
    ArtifactNotAdmitted,
    ReferrerNotAdmitted,
    LegacyRejected,
    WasmOsNotAllowed,
    ComponentRequired,
    WasmLayerTooLarge,
    InspectionRequired,
    CapabilitiesNeedComponent,
    ImportDenied,
    ImportNotAllowed,
    ImportRequired,
    ExportDenied,
    ExportNotAllowed,
    ExportRequired,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestTarget => "request-target",
            Self::MethodUnsupported => "method-unsupported",
            Self::ManifestPathEncoded => "manifest-path-encoded",
            Self::NameGrammar => "name-grammar",
            Self::TagGrammar => "tag-grammar",
            Self::DigestGrammar => "digest-grammar",
            Self::DigestAlgorithm => "digest-algorithm",
            Self::ReferenceDigestMismatch => "reference-digest-mismatch",
            Self::ManifestTooLarge => "manifest-too-large",
            Self::ManifestReadTimeout => "manifest-read-timeout",
            Self::ValidationsBusy => "validations-busy",
            Self::BodyReadFailed => "body-read-failed",
            Self::ContentTypeMissing => "content-type-missing",
            Self::ContentTypeUnsupported => "content-type-unsupported",
            Self::SchemaOne => "schema-1",
            Self::Utf8 => "utf-8",
            Self::JsonSyntax => "json-syntax",
            Self::NotAnObject => "not-an-object",
            Self::DuplicateKey => "duplicate-key",
            Self::CaseVariantKey => "case-variant-key",
            Self::MediaTypeMismatch => "media-type-mismatch",
            Self::AmbiguousManifest => "manifest-with-manifests",
            Self::AmbiguousIndex => "index-with-config-or-layers",
            Self::SchemaVersion => "schema-version",
            Self::MissingField => "missing-field",
            Self::FieldType => "field-type",
            Self::MediaTypeGrammar => "media-type-grammar",
            Self::SizeNegative => "size-negative",
            Self::AnnotationValue => "annotation-value",
            Self::DataMismatch => "data-mismatch",
            Self::ArtifactTypeRequired => "artifact-type-required",
            Self::WasmManifestType => "wasm-manifest-type",
            Self::WasmConfigType => "wasm-config-type",
            Self::WasmLayerCount => "wasm-layer-count",
            Self::WasmLayerType => "wasm-layer-type",
            Self::ConfigTooLarge => "config-too-large",
            Self::ConfigBlobUnknown => "config-blob-unknown",
            Self::ConfigSizeMismatch => "config-size-mismatch",
            Self::ConfigDigestMismatch => "config-digest-mismatch",
            Self::ConfigCreated => "config-created",
            Self::ConfigArchitecture => "config-architecture",
            Self::ConfigOs => "config-os",
            Self::ConfigLayerDigests => "config-layer-digests",
            Self::ConfigComponent => "config-component",
            Self::ConfigOsMismatch => "config-os-mismatch",
            Self::ConfigComponentMismatch => "config-component-mismatch",
            Self::LayerBlobUnknown => "layer-blob-unknown",
            Self::LayerSizeMismatch => "layer-size-mismatch",
            Self::LayerDigestMismatch => "layer-digest-mismatch",
            Self::LayerNotWasm => "layer-not-wasm",
            Self::LayerInvalid => "layer-invalid",
            Self::LegacyRewriteByDigest => "legacy-rewrite-by-digest",
            Self::LegacyRewriteTooLarge => "legacy-rewrite-too-large",
            Self::ArtifactNotAdmitted => "artifact-not-admitted",
            Self::ReferrerNotAdmitted => "referrer-not-admitted",
            Self::LegacyRejected => "legacy-rejected",
            Self::WasmOsNotAllowed => "wasm-os-not-allowed",
            Self::ComponentRequired => "component-required",
            Self::WasmLayerTooLarge => "wasm-layer-too-large",
            Self::InspectionRequired => "inspection-required",
            Self::CapabilitiesNeedComponent => "capabilities-need-component",
            Self::ImportDenied => "import-denied",
            Self::ImportNotAllowed => "import-not-allowed",
            Self::ImportRequired => "import-required",
            Self::ExportDenied => "export-denied",
            Self::ExportNotAllowed => "export-not-allowed",
            Self::ExportRequired => "export-required",
        }
    }
}

/// A push rejected because the client's input broke a rule. Nothing was forwarded.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub rule: Rule,
    /// A sentence saying what is wrong and how to fix it.
    pub message: String,
    /// JSON path of the offending value (`$.layers[0].digest`), when there is one.
    pub path: Option<String>,
    pub expected: Option<Box<Value>>,
    pub found: Option<Box<Value>>,
    /// Policy context of the rejection, when a policy rule judged the push. Boxed to keep
    /// `Result<_, Rejection>` small on the hot validation path.
    pub policy: Option<Box<PolicyContext>>,
}

/// The policy side of a rejection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyContext {
    /// Name of the policy rule that judged the push.
    pub rule: String,
    /// Further violations of the same push, rendered as further entries of the `errors` array.
    pub additional: Vec<Rejection>,
}

impl Rejection {
    /// Creates a `400 MANIFEST_INVALID` rejection, the most common kind.
    pub fn manifest_invalid(rule: Rule, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestInvalid,
            rule,
            message,
        )
    }

    pub fn new(
        status: StatusCode,
        code: ErrorCode,
        rule: Rule,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            rule,
            message: message.into(),
            path: None,
            expected: None,
            found: None,
            policy: None,
        }
    }

    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn expected(mut self, value: impl Into<Value>) -> Self {
        self.expected = Some(Box::new(value.into()));
        self
    }

    pub fn found(mut self, value: impl Into<Value>) -> Self {
        self.found = Some(Box::new(value.into()));
        self
    }

    fn detail(&self) -> Value {
        let mut detail = json!({ "rule": self.rule.as_str() });
        if let Some(path) = &self.path {
            detail["path"] = json!(path);
        }
        if let Some(expected) = &self.expected {
            detail["expected"] = (**expected).clone();
        }
        if let Some(found) = &self.found {
            detail["found"] = (**found).clone();
        }
        if let Some(policy) = &self.policy {
            detail["policy"] = json!(policy.rule);
        }
        detail
    }

    /// Renders this rejection and the additional ones as entries of an OCI `errors` array.
    fn entries(&self) -> Vec<Value> {
        let additional = self
            .policy
            .as_ref()
            .map_or(&[][..], |policy| &policy.additional);
        std::iter::once(self)
            .chain(additional)
            .map(|rejection| {
                json!({
                    "code": rejection.code.as_str(),
                    "message": rejection.message,
                    "detail": rejection.detail(),
                })
            })
            .collect()
    }
}

/// An upstream response that the gate passes to the client as it came, such as a 401 with its
/// `WWW-Authenticate` challenge when the gate read a config blob with the client's
/// credentials.
#[derive(Debug)]
pub struct UpstreamAnswer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Errors of the request path.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{}", .0.message)]
    Rejected(Box<Rejection>),

    #[error("upstream answered {} to a validation read", .0.status)]
    UpstreamAnswer(Box<UpstreamAnswer>),

    #[error("upstream registry unreachable: {0}")]
    UpstreamUnreachable(String),

    #[error("upstream registry timed out: {0}")]
    UpstreamTimeout(String),

    #[error("upstream registry sent an invalid answer: {0}")]
    UpstreamInvalid(String),

    #[error("the client sent no body data for {0:?}")]
    ClientStalled(std::time::Duration),
}

impl From<Rejection> for GateError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(Box::new(rejection))
    }
}

impl GateError {
    /// Returns the rejection inside, if the client is at fault.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }
}

/// Renders an error as the response the client receives. Rejections become the OCI error
/// envelope. Upstream failures become 502 or 504 with a generic message, because the log line
/// carries the detail. Relayed upstream responses keep their status, headers and body.
pub fn error_response(error: GateError) -> Response<Body> {
    match error {
        GateError::Rejected(rejection) => {
            let mut response = oci_errors(rejection.status, rejection.entries());
            if rejection.status == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
        GateError::UpstreamAnswer(answer) => {
            let mut response = Response::new(full(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        GateError::UpstreamUnreachable(_) | GateError::UpstreamInvalid(_) => oci_error(
            StatusCode::BAD_GATEWAY,
            ErrorCode::Unavailable,
            "the upstream registry could not be reached or sent an invalid answer; retry later, and check the gate's log if this persists",
            Value::Null,
        ),
        GateError::ClientStalled(idle) => oci_error(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Unknown,
            &format!(
                "the request body stalled: no data arrived for {} s, so the transfer was cut; retry the upload",
                idle.as_secs()
            ),
            Value::Null,
        ),
        GateError::UpstreamTimeout(_) => oci_error(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Unavailable,
            "the upstream registry did not answer in time; retry later",
            Value::Null,
        ),
    }
}

/// Builds an OCI error response: `{"errors":[{"code","message","detail"}]}`.
pub fn oci_error(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    detail: Value,
) -> Response<Body> {
    oci_errors(
        status,
        vec![json!({ "code": code.as_str(), "message": message, "detail": detail })],
    )
}

/// Builds an OCI error response with several entries in its `errors` array.
fn oci_errors(status: StatusCode, entries: Vec<Value>) -> Response<Body> {
    let body = json!({ "errors": entries });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    response
}
