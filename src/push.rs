//! The manifest push path: the one place the gate buffers a body. A manifest is read up to
//! `--max-manifest-bytes`, validated, and only then forwarded as the identical bytes with the
//! original headers and query.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use std::future::Future;

use http_body_util::{BodyExt, Collected, LengthLimitError, Limited};

use crate::body::{self, Body, BodyIdleTimeout, BoxError};
use crate::error::{ErrorCode, GateError, Rejection, Rule};
use crate::forward::{self, ClientSide};
use crate::gate::Gate;
use crate::manifest::{self, Digest, digest::Algorithm};
use crate::policy::{self, audit};
use crate::route::ManifestPush;
use crate::upstream::UpstreamBlobs;
use crate::wasm;

/// What validation decided for a push.
enum Decision {
    /// Forward the client's bytes, adding these warnings to the answer.
    Forward {
        warnings: Vec<String>,
        audited: bool,
    },
    /// Forward a rewritten CNCF artifact in place of the client's legacy one.
    Rewrite {
        rewrite: Box<wasm::rewrite::Rewrite>,
        warnings: Vec<String>,
    },
}

/// Fields of a push's audit event, filled in as the push proceeds.
#[derive(Default)]
struct AuditRecord {
    digest: Option<Digest>,
    /// Name of the policy rule that judged the push; `None` when the push failed before.
    rule: Option<String>,
    /// Violations, as `<rule>: <message>`.
    reasons: Vec<String>,
    decision: Option<policy::Decision>,
}

/// Validates a manifest push and forwards it when every rule passes.
pub async fn handle(
    gate: &Gate,
    target: ManifestPush,
    request: Request<Body>,
    client: &ClientSide,
) -> Result<Response<Body>, GateError> {
    let user = audit::user_of(request.headers().get(header::AUTHORIZATION));
    let client_address = client_address(request.headers(), client);
    let mut record = AuditRecord::default();
    let result = handle_push(gate, &target, request, client, &mut record).await;
    let (outcome, rule) = match &result {
        Ok((outcome, _)) => (*outcome, ""),
        Err(GateError::Rejected(rejection)) => ("rejected", rejection.rule.as_str()),
        Err(_) => ("failed", ""),
    };
    gate.metrics.decision(outcome, rule);

    let decision = match (&result, record.decision) {
        (Err(GateError::Rejected(rejection)), _) => {
            if record.reasons.is_empty() {
                record.reasons.push(format!(
                    "{}: {}",
                    rejection.rule.as_str(),
                    rejection.message
                ));
            }
            policy::Decision::Deny.as_str()
        }
        (Err(_), _) => "error",
        (Ok(_), Some(decision)) => decision.as_str(),
        (Ok(_), None) => policy::Decision::Allow.as_str(),
    };
    tracing::info!(
        target: audit::TARGET,
        repository = %target.repository,
        reference = %target.reference,
        digest = %record.digest.as_ref().map(ToString::to_string).unwrap_or_default(),
        rule = record.rule.as_deref().unwrap_or(""),
        decision,
        reasons = %serde_json::Value::from(record.reasons),
        client_address = %client_address,
        user = user.as_deref().unwrap_or(""),
        "manifest push"
    );
    result.map(|(_, response)| response)
}

/// Returns the address of the client: the last `X-Forwarded-For` entry when the peer is a
/// trusted proxy (the one that proxy appended), else the peer.
fn client_address(headers: &HeaderMap, client: &ClientSide) -> String {
    if client.trusted
        && let Some(last) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rfind(|entry| !entry.is_empty())
    {
        return last.to_owned();
    }
    client.peer.ip().to_string()
}

/// Runs the push and returns the decision's name for metrics with the answer.
async fn handle_push(
    gate: &Gate,
    target: &ManifestPush,
    request: Request<Body>,
    client: &ClientSide,
    record: &mut AuditRecord,
) -> Result<(&'static str, Response<Body>), GateError> {
    let limits = &gate.settings.limits;
    // Bounds the memory that buffered manifests and inspected layers use. The permit is held
    // until the answer is on its way.
    let _permit = match tokio::time::timeout(
        limits.manifest_read_timeout,
        gate.validations.acquire(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        _ => {
            let error = GateError::from(validations_busy());
            log_rejection(target, None, &error);
            return Err(error);
        }
    };
    let (parts, incoming) = request.into_parts();

    let read = read_manifest(&parts.headers, incoming, gate.settings.max_manifest_bytes);
    let read = match tokio::time::timeout(limits.manifest_read_timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(manifest_read_timeout(limits.manifest_read_timeout)),
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(rejection) => {
            let error = GateError::from(rejection);
            log_rejection(target, None, &error);
            return Err(error);
        }
    };

    let digest = Digest::of(Algorithm::Sha256, &bytes);
    record.digest = Some(digest.clone());
    let decision = match validate(gate, target, &parts.headers, &bytes, record).await {
        Ok(decision) => decision,
        Err(error) => {
            log_rejection(target, Some(&digest), &error);
            return Err(error);
        }
    };

    match decision {
        Decision::Forward { warnings, audited } => {
            tracing::debug!(
                oci.repository = %target.repository,
                oci.reference = %target.reference,
                oci.digest = %digest,
                "manifest push accepted"
            );
            for warning in &warnings {
                tracing::info!(
                    oci.repository = %target.repository,
                    oci.reference = %target.reference,
                    oci.digest = %digest,
                    %warning,
                    "manifest push accepted with a warning"
                );
            }
            let request = Request::from_parts(parts, body::full(bytes));
            let mut response = forward::forward(&gate.upstream, request, client).await?;
            add_warnings(response.headers_mut(), &warnings);
            let outcome = if audited {
                "audited"
            } else if warnings.is_empty() {
                "accepted"
            } else {
                "warned"
            };
            Ok((outcome, response))
        }
        Decision::Rewrite { rewrite, warnings } => {
            let response =
                forward_rewrite(gate, target, parts, &rewrite, &warnings, client).await?;
            Ok(("rewritten", response))
        }
    }
}

fn validations_busy() -> Rejection {
    Rejection::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
        Rule::ValidationsBusy,
        "this gate is validating as many manifest pushes as it is configured to at once; retry the push shortly",
    )
}

fn manifest_read_timeout(limit: std::time::Duration) -> Rejection {
    Rejection::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::ManifestInvalid,
        Rule::ManifestReadTimeout,
        format!(
            "the manifest body did not arrive within {} s; retry the push",
            limit.as_secs()
        ),
    )
}

async fn validate(
    gate: &Gate,
    target: &ManifestPush,
    headers: &HeaderMap,
    bytes: &[u8],
    record: &mut AuditRecord,
) -> Result<Decision, GateError> {
    let manifest = manifest::validate(bytes, headers.get(header::CONTENT_TYPE), &target.reference)?;
    let blobs = UpstreamBlobs {
        upstream: &gate.upstream,
        repository: &target.repository,
        authorization: headers.get(header::AUTHORIZATION),
    };
    let options = wasm::WasmOptions {
        inspect_max_bytes: gate.settings.inspect_max_bytes,
        strict_os: gate.settings.strict_os,
        cache: &gate.inspections,
    };
    let policy = gate.policy.current();
    let evaluation = policy::evaluate(
        &policy,
        &target.repository,
        &target.reference,
        &manifest,
        bytes,
        &blobs,
        &options,
    )
    .await?;

    record.rule = Some(evaluation.rule.clone());
    record.decision = Some(evaluation.decision);
    record.reasons = evaluation
        .violations
        .iter()
        .map(|violation| format!("{}: {}", violation.rule.as_str(), violation.message))
        .collect();

    if evaluation.decision == policy::Decision::Deny {
        let rejection = evaluation
            .rejection()
            .expect("a denied push has at least one violation");
        return Err(rejection.into());
    }
    // Audit mode: each violation becomes a warning, ahead of the ordinary warnings.
    let mut warnings: Vec<String> = evaluation
        .violations
        .iter()
        .map(|violation| {
            format!(
                "policy rule {:?} (audit mode) would reject this push [{}]: {}",
                evaluation.rule,
                violation.rule.as_str(),
                violation.message
            )
        })
        .collect();
    let audited = !warnings.is_empty();
    warnings.extend(evaluation.warnings);
    match evaluation.rewrite {
        Some(rewrite) => Ok(Decision::Rewrite { rewrite, warnings }),
        None => Ok(Decision::Forward { warnings, audited }),
    }
}

/// Uploads the rewritten config, forwards the rewritten manifest under the pushed tag, and
/// tells the client what was stored. `Docker-Content-Digest` is removed from the answer,
/// because it names a digest the client did not push and clients such as oras fail when the
/// header disagrees with their own digest.
async fn forward_rewrite(
    gate: &Gate,
    target: &ManifestPush,
    mut parts: http::request::Parts,
    rewrite: &wasm::rewrite::Rewrite,
    warnings: &[String],
    client: &ClientSide,
) -> Result<Response<Body>, GateError> {
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    gate.upstream
        .upload_blob(
            &target.repository,
            &rewrite.config_descriptor.digest,
            rewrite.config.clone(),
            authorization.as_ref(),
        )
        .await?;

    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(manifest::OCI_MANIFEST),
    );
    parts.headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(rewrite.manifest.len()),
    );
    let request = Request::from_parts(parts, body::full(rewrite.manifest.clone()));
    let mut response = forward::forward(&gate.upstream, request, client).await?;
    if !response.status().is_success() {
        return Ok(response);
    }

    tracing::info!(
        oci.repository = %target.repository,
        oci.reference = %target.reference,
        oci.digest = %rewrite.original_digest,
        oci.stored_digest = %rewrite.stored_digest,
        "legacy WebAssembly artifact rewritten to the CNCF layout"
    );
    let headers = response.headers_mut();
    headers.remove("docker-content-digest");
    if let Ok(value) = HeaderValue::from_str(&rewrite.stored_digest.to_string()) {
        headers.insert(STORED_DIGEST_HEADER, value);
    }
    let mut all = vec![format!(
        "wasmgate rewrote this legacy WebAssembly artifact to the CNCF layout: pushed {}, stored {}",
        rewrite.original_digest, rewrite.stored_digest
    )];
    all.extend_from_slice(warnings);
    add_warnings(headers, &all);
    Ok(response)
}

/// Response header that carries the digest of the manifest the registry stored when the
/// gate rewrote a legacy artifact.
pub const STORED_DIGEST_HEADER: &str = "wasmgate-stored-digest";

/// Most bytes of `Warning` header values added to one answer, as the distribution
/// specification allows.
const MAX_WARNING_BYTES: usize = 4096;

/// Maximum length of one warning text; a longer one is cut and ends in "...".
const MAX_WARNING_TEXT_BYTES: usize = 1024;

/// Adds one `Warning: 299 - "<text>"` header per warning, up to [`MAX_WARNING_BYTES`] in all.
/// A warning longer than [`MAX_WARNING_TEXT_BYTES`] is cut, and when the rest do not fit, a
/// last warning counts those left out, so a client never mistakes a cut list for a
/// whole one. The log and the audit event keep every warning whole.
fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    let mut total = 0;
    // Room for the note: no count it could carry is longer than the number of warnings.
    let note_room = omitted_note(warnings.len()).len();
    for (index, warning) in warnings.iter().enumerate() {
        let value = warning_value(warning);
        let last = index + 1 == warnings.len();
        let reserve = if last { 0 } else { note_room };
        if total + value.len() + reserve > MAX_WARNING_BYTES {
            let note = omitted_note(warnings.len() - index);
            if let Ok(note) = HeaderValue::from_str(&note) {
                headers.append(header::WARNING, note);
            }
            return;
        }
        total += value.len();
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::WARNING, value);
        }
    }
}

/// Formats the last warning, which counts the `omitted` warnings that did not fit.
fn omitted_note(omitted: usize) -> String {
    let noun = if omitted == 1 { "warning" } else { "warnings" };
    format!(
        "299 - \"{omitted} more {noun} left out to keep the headers under {MAX_WARNING_BYTES} bytes; the gate's log has all of them\""
    )
}

/// Formats one warning as a header value: quotes, backslashes, control and non-ASCII
/// characters become `'`, and the text is cut at [`MAX_WARNING_TEXT_BYTES`].
fn warning_value(warning: &str) -> String {
    let mut text: String = warning
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() || !c.is_ascii() {
                '\''
            } else {
                c
            }
        })
        .collect();
    if text.len() > MAX_WARNING_TEXT_BYTES {
        // Every character is ASCII by now, so any byte index is a character boundary.
        text.truncate(MAX_WARNING_TEXT_BYTES - 3);
        text.push_str("...");
    }
    format!("299 - \"{text}\"")
}

/// Reads the manifest body, stopping at `max_bytes`. A `Content-Length` above the cap is
/// rejected before any byte is read.
async fn read_manifest(
    headers: &HeaderMap,
    body: Body,
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
    match collect_limited(body, limit).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) if error.is::<BodyIdleTimeout>() => Err(Rejection::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::ManifestInvalid,
            Rule::ManifestReadTimeout,
            format!("the manifest body stalled ({error}); retry the push"),
        )),
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

/// Reads a whole body, failing past `limit` bytes. A plain function, so the body's error
/// conversion is resolved outside the request future.
fn collect_limited(
    body: Body,
    limit: usize,
) -> impl Future<Output = Result<Collected<Bytes>, BoxError>> + Send {
    Limited::new(body, limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(headers: &HeaderMap) -> Vec<String> {
        headers
            .get_all(header::WARNING)
            .iter()
            .map(|value| value.to_str().expect("ASCII").to_owned())
            .collect()
    }

    #[test]
    fn warnings_fit_in_the_cap_with_a_note() {
        let warnings: Vec<String> = (0..30)
            .map(|index| format!("violation {index}: {}", "x".repeat(200)))
            .collect();
        let mut headers = HeaderMap::new();

        add_warnings(&mut headers, &warnings);

        let added = values(&headers);
        let total: usize = added.iter().map(String::len).sum();
        assert!(total <= MAX_WARNING_BYTES, "{total} bytes");
        let note = added.last().expect("a note");
        let shown = added.len() - 1;
        assert_eq!(
            *note,
            format!(
                "299 - \"{} more warnings left out to keep the headers under 4096 bytes; the gate's log has all of them\"",
                30 - shown
            )
        );
        assert!(added[0].starts_with("299 - \"violation 0: "));
    }

    #[test]
    fn warnings_never_exceed_the_cap() {
        for length in (1..=1100).step_by(7) {
            for count in [2, 5, 17, 200] {
                let warnings = vec!["w".repeat(length); count];
                let mut headers = HeaderMap::new();

                add_warnings(&mut headers, &warnings);

                let added = values(&headers);
                let total: usize = added.iter().map(String::len).sum();
                assert!(
                    total <= MAX_WARNING_BYTES,
                    "{count} x {length}: {total} bytes"
                );
                let left_out = added
                    .iter()
                    .filter(|value| value.contains("left out"))
                    .count();
                let shown = added.len() - left_out;
                assert!(left_out <= 1, "{count} x {length}");
                assert_eq!(shown + usize::from(left_out == 1) * (count - shown), count);
            }
        }
    }

    #[test]
    fn one_left_out_warning_is_singular() {
        assert!(omitted_note(1).starts_with("299 - \"1 more warning left out"));
        assert!(omitted_note(2).starts_with("299 - \"2 more warnings left out"));
    }

    #[test]
    fn long_warning_is_cut_not_dropped() {
        let mut headers = HeaderMap::new();

        add_warnings(&mut headers, &["y".repeat(10_000)]);

        let added = values(&headers);
        assert_eq!(added.len(), 1);
        assert!(
            added[0].ends_with("...\""),
            "{}",
            &added[0][added[0].len() - 10..]
        );
        assert_eq!(added[0].len(), "299 - \"\"".len() + MAX_WARNING_TEXT_BYTES);
    }

    #[test]
    fn warning_text_is_made_header_safe() {
        let value = warning_value("rule \"aud-ünï\"\r\nX-Injected: 1 \\ end");

        assert_eq!(value, "299 - \"rule 'aud-'n''''X-Injected: 1 ' end\"");
        assert!(HeaderValue::from_str(&value).is_ok());
    }

    #[test]
    fn every_warning_that_fits_is_kept() {
        let mut headers = HeaderMap::new();

        add_warnings(&mut headers, &["one".to_owned(), "two".to_owned()]);

        assert_eq!(values(&headers), ["299 - \"one\"", "299 - \"two\""]);
    }
}
