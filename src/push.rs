//! The manifest push path: the one place the gate buffers a body. A manifest is read up to
//! `--max-manifest-bytes`, validated, and only then forwarded as the identical bytes with the
//! original headers and query.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::error::{ErrorCode, GateError, Rejection, Rule};
use crate::forward::{self, ClientSide};
use crate::gate::Gate;
use crate::manifest::{self, Digest, digest::Algorithm};
use crate::route::ManifestPush;
use crate::upstream::UpstreamBlobs;
use crate::wasm;

/// Validates a manifest push and forwards it when every rule passes.
pub async fn handle(
    gate: &Gate,
    target: ManifestPush,
    request: Request<Incoming>,
    client: &ClientSide,
) -> Result<Response<Body>, GateError> {
    let (parts, incoming) = request.into_parts();

    let bytes =
        match read_manifest(&parts.headers, incoming, gate.settings.max_manifest_bytes).await {
            Ok(bytes) => bytes,
            Err(rejection) => {
                let error = GateError::from(rejection);
                log_rejection(&target, None, &error);
                return Err(error);
            }
        };

    let digest = Digest::of(Algorithm::Sha256, &bytes);
    if let Err(error) = validate(gate, &target, &parts.headers, &bytes).await {
        log_rejection(&target, Some(&digest), &error);
        return Err(error);
    }
    tracing::debug!(
        oci.repository = %target.repository,
        oci.reference = %target.reference,
        oci.digest = %digest,
        "manifest push accepted"
    );
    forward::forward(
        &gate.upstream,
        Request::from_parts(parts, body::full(bytes)),
        client,
    )
    .await
}

async fn validate(
    gate: &Gate,
    target: &ManifestPush,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<(), GateError> {
    let manifest = manifest::validate(bytes, headers.get(header::CONTENT_TYPE), &target.reference)?;

    if wasm::is_wasm(&manifest) {
        let blobs = UpstreamBlobs {
            upstream: &gate.upstream,
            repository: &target.repository,
            authorization: headers.get(header::AUTHORIZATION),
        };
        wasm::check(&manifest, &blobs).await?;
    }
    Ok(())
}

/// Reads the manifest body, stopping at `max_bytes`. A `Content-Length` above the cap is
/// rejected before any byte is read.
async fn read_manifest(
    headers: &HeaderMap,
    body: Incoming,
    max_bytes: u64,
) -> Result<Bytes, Rejection> {
    let too_large = || {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ManifestInvalid,
            Rule::ManifestTooLarge,
            format!(
                "the manifest is larger than {max_bytes} bytes, the most this gate accepts; move content into blobs, or ask the operator to raise --max-manifest-bytes"
            ),
        )
        .expected(max_bytes)
    };

    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if let Some(length) = announced
        && length > max_bytes
    {
        return Err(too_large().found(length));
    }

    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(Rejection::manifest_invalid(
            Rule::BodyReadFailed,
            format!("the manifest body could not be read ({error}); retry the push"),
        )),
    }
}

fn log_rejection(target: &ManifestPush, digest: Option<&Digest>, error: &GateError) {
    let digest = digest.map(ToString::to_string).unwrap_or_default();
    match error.rejection() {
        Some(rejection) => tracing::info!(
            oci.repository = %target.repository,
            oci.reference = %target.reference,
            oci.digest = %digest,
            rule = rejection.rule.as_str(),
            path = rejection.path.as_deref().unwrap_or(""),
            error.message = %rejection.message,
            "manifest push rejected"
        ),
        None => tracing::warn!(
            oci.repository = %target.repository,
            oci.reference = %target.reference,
            oci.digest = %digest,
            %error,
            "manifest push not forwarded"
        ),
    }
}
