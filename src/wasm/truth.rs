//! The config's claims checked against the layer: is it WebAssembly at all, is `os` the
//! right one for its kind, and does `config.component` list exactly the interfaces that
//! the component imports and exports.

use std::collections::BTreeSet;

use serde_json::json;

use super::inspect::{self, BinaryKind, HEADER_BYTES, InspectError, Inspection, Interfaces};
use super::{BlobRole, BlobSource, ConfigClaims, Os, WasmOptions};
use crate::error::{GateError, Rejection, Rule};
use crate::manifest::Descriptor;

/// Inspects the layer, or takes the result from the cache. Only full inspections are
/// cached; failed reads and header checks are not.
pub async fn inspect_layer(
    layer: &Descriptor,
    index: usize,
    blobs: &impl BlobSource,
    options: &WasmOptions<'_>,
) -> Result<Inspection, GateError> {
    let role = BlobRole::Layer(index);
    if let Some(cached) = options.cache.get(&layer.digest) {
        // A full read checked the blob's real size, so a descriptor that now claims another
        // size for the same digest is wrong.
        if let Ok(Inspection {
            size: Some(size), ..
        }) = &cached
        {
            super::verify_size(layer, role, *size)?;
        }
        return cached.map_err(|error| inspection_rejection(&error, layer, index).into());
    }

    if layer.size <= options.inspect_max_bytes {
        let bytes = blobs.fetch(layer, role, options.inspect_max_bytes).await?;
        let result = inspect::inspect_full(&bytes);
        options.cache.insert(layer.digest.clone(), result.clone());
        return result.map_err(|error| inspection_rejection(&error, layer, index).into());
    }

    // Header-only results are not cached: a later push may name the same digest with a size
    // within the limit, and that push must get the full inspection.
    let header = blobs.fetch_prefix(layer, role, HEADER_BYTES).await?;
    inspect::classify_header(&header)
        .map(|kind| Inspection {
            kind,
            interfaces: None,
            full: false,
            size: None,
        })
        .map_err(|error| inspection_rejection(&error, layer, index).into())
}

pub(super) fn inspection_rejection(
    error: &InspectError,
    layer: &Descriptor,
    index: usize,
) -> Rejection {
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match error {
        InspectError::NotWasm { header } if header.is_empty() => Rejection::manifest_invalid(
            Rule::LayerNotWasm,
            format!(
                "layer {index} ({}) is empty, so it is not a WebAssembly binary; push the .wasm file itself",
                layer.digest
            ),
        )
        .at(format!("$.layers[{index}]"))
        .expected("00 61 73 6d"),
        InspectError::NotWasm { header } => Rejection::manifest_invalid(
            Rule::LayerNotWasm,
            format!(
                "layer {index} ({}) is not a WebAssembly binary: it starts with the bytes {}, not the magic number 00 61 73 6d; push the .wasm file itself",
                layer.digest,
                hex(header)
            ),
        )
        .at(format!("$.layers[{index}]"))
        .expected("00 61 73 6d")
        .found(hex(header)),
        InspectError::UnsupportedVersion { header } => Rejection::manifest_invalid(
            Rule::LayerInvalid,
            format!(
                "layer {index} ({}) has the WebAssembly magic number but the version and layer bytes {}, which current parsers reject (an early component encoding?); rebuild it with current tools",
                layer.digest,
                hex(&header[4.min(header.len())..])
            ),
        )
        .at(format!("$.layers[{index}]"))
        .found(hex(header)),
        InspectError::Invalid(reason) => Rejection::manifest_invalid(
            Rule::LayerInvalid,
            format!("layer {index} ({}) is not valid WebAssembly: {reason}; rebuild it", layer.digest),
        )
        .at(format!("$.layers[{index}]")),
    }
}

/// Compares the config's claims with the inspection and returns warnings for what does not
/// reject the push.
pub(super) fn compare(
    claims: &ConfigClaims,
    layer: &Descriptor,
    inspection: &Inspection,
    options: &WasmOptions<'_>,
) -> Result<Vec<String>, Rejection> {
    let mut warnings = Vec::new();

    let actual_os = match inspection.kind {
        BinaryKind::CoreModule => Os::Wasip1,
        BinaryKind::Component => Os::Wasip2,
    };
    if claims.os != actual_os {
        let message = format!(
            "config.os is {} but layer 0 ({}) is {}, so config.os should be {actual_os}",
            claims.os,
            layer.digest,
            inspection.kind.describe()
        );
        if options.strict_os {
            return Err(Rejection::manifest_invalid(
                Rule::ConfigOsMismatch,
                format!(
                    "{message}; this gate rejects the mismatch (--strict-os), so rebuild the config"
                ),
            )
            .at("config.os")
            .expected(actual_os.to_string())
            .found(claims.os.to_string()));
        }
        warnings.push(message);
    }

    if let (Some(claimed), Some(actual)) = (&claims.component, &inspection.interfaces) {
        compare_interfaces(claimed, actual)?;
    }

    if !inspection.full {
        warnings.push(format!(
            "layer 0 ({}) is {} bytes, above this gate's inspection limit of {} bytes, so only its header was checked",
            layer.digest, layer.size, options.inspect_max_bytes
        ));
    }
    Ok(warnings)
}

fn compare_interfaces(claimed: &Interfaces, actual: &Interfaces) -> Result<(), Rejection> {
    if claimed == actual {
        return Ok(());
    }
    let mut parts = Vec::new();
    let mut describe = |what: &str, claimed: &BTreeSet<String>, actual: &BTreeSet<String>| {
        let missing: Vec<&String> = actual.difference(claimed).collect();
        let extra: Vec<&String> = claimed.difference(actual).collect();
        if !missing.is_empty() {
            parts.push(format!(
                "the component {what}s {missing:?} but the config does not list them"
            ));
        }
        if !extra.is_empty() {
            parts.push(format!(
                "the config lists {what}s {extra:?} that the component does not have"
            ));
        }
    };
    describe("import", &claimed.imports, &actual.imports);
    describe("export", &claimed.exports, &actual.exports);

    Err(Rejection::manifest_invalid(
        Rule::ConfigComponentMismatch,
        format!(
            "config.component does not match the component's WIT world: {}; rebuild the config from the binary, as `wkg oci push` does",
            parts.join("; ")
        ),
    )
    .at("config.component")
    .expected(json!({ "imports": actual.imports, "exports": actual.exports }))
    .found(json!({ "imports": claimed.imports, "exports": claimed.exports })))
}
