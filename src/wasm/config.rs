//! Rules for the CNCF WebAssembly config (`application/vnd.wasm.config.v0+json`).
//!
//! Optional fields accept an explicit `null`, because oci-wasm writes `null` for `author`,
//! `target` and a module's `component`. Unknown fields are tolerated, as the image
//! specification asks of processors.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::inspect::Interfaces;
use crate::error::{Rejection, Rule};
use crate::manifest::{Digest, json_type, strict_json};

/// What a valid config says about its layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigClaims {
    pub os: Os,
    /// `config.component`, when it is not null.
    pub component: Option<Interfaces>,
}

/// Checks a config blob against the manifest's layer digests, in order, and returns its
/// claims about the layer.
pub fn check_config(bytes: &[u8], layer_digests: &[&Digest]) -> Result<ConfigClaims, Rejection> {
    let document = strict_json::parse(bytes, "WebAssembly config", "config")?;
    let Value::Object(config) = &document else {
        return Err(Rejection::manifest_invalid(
            Rule::NotAnObject,
            "the WebAssembly config must be a JSON object",
        )
        .at("config")
        .found(json_type(&document)));
    };

    check_created(config)?;
    check_author(config)?;
    check_architecture(config)?;
    let os = check_os(config)?;
    check_layer_digests(config, layer_digests)?;
    let component = check_component(config, os)?;
    Ok(ConfigClaims { os, component })
}

fn check_created(config: &Map<String, Value>) -> Result<(), Rejection> {
    let value = config.get("created");
    let valid = value
        .and_then(Value::as_str)
        .is_some_and(|text| OffsetDateTime::parse(text, &Rfc3339).is_ok());
    if valid {
        return Ok(());
    }
    Err(Rejection::manifest_invalid(
        Rule::ConfigCreated,
        "config.created must be an RFC 3339 timestamp such as \"2024-05-01T12:00:00Z\"",
    )
    .at("config.created")
    .found(value.cloned().unwrap_or(Value::Null)))
}

fn check_author(config: &Map<String, Value>) -> Result<(), Rejection> {
    match config.get("author") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(other) => Err(Rejection::manifest_invalid(
            Rule::FieldType,
            format!(
                "config.author must be a string or null, not {}",
                json_type(other)
            ),
        )
        .at("config.author")
        .found(other.clone())),
    }
}

fn check_architecture(config: &Map<String, Value>) -> Result<(), Rejection> {
    let value = config.get("architecture");
    if value.and_then(Value::as_str) == Some("wasm") {
        return Ok(());
    }
    Err(Rejection::manifest_invalid(
        Rule::ConfigArchitecture,
        "config.architecture must be \"wasm\" for a WebAssembly artifact",
    )
    .at("config.architecture")
    .expected("wasm")
    .found(value.cloned().unwrap_or(Value::Null)))
}

/// WebAssembly system interface targets that the CNCF layout names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// A core module.
    Wasip1,
    /// A component.
    Wasip2,
}

impl std::fmt::Display for Os {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Wasip1 => "wasip1",
            Self::Wasip2 => "wasip2",
        })
    }
}

fn check_os(config: &Map<String, Value>) -> Result<Os, Rejection> {
    let value = config.get("os");
    match value.and_then(Value::as_str) {
        Some("wasip1") => Ok(Os::Wasip1),
        Some("wasip2") => Ok(Os::Wasip2),
        _ => Err(Rejection::manifest_invalid(
            Rule::ConfigOs,
            "config.os must be \"wasip1\" for a core module or \"wasip2\" for a component (lowercase)",
        )
        .at("config.os")
        .expected(vec!["wasip1", "wasip2"])
        .found(value.cloned().unwrap_or(Value::Null))),
    }
}

fn check_layer_digests(config: &Map<String, Value>, layers: &[&Digest]) -> Result<(), Rejection> {
    let expected: Vec<String> = layers.iter().map(ToString::to_string).collect();
    let Some(value) = config.get("layerDigests") else {
        let hint = if config.contains_key("layer_digests") {
            " (the config has \"layer_digests\", the spelling of oci-wasm 0.0.1; rebuild it with a current wkg or oci-wasm)"
        } else {
            ""
        };
        return Err(Rejection::manifest_invalid(
            Rule::ConfigLayerDigests,
            format!("config.layerDigests is missing{hint}; it must list the manifest's layer digests in order"),
        )
        .at("config.layerDigests")
        .expected(expected));
    };

    let Some(found) = value
        .as_array()
        .filter(|items| items.iter().all(Value::is_string))
    else {
        return Err(Rejection::manifest_invalid(
            Rule::ConfigLayerDigests,
            "config.layerDigests must be an array of digest strings, one per manifest layer, in order",
        )
        .at("config.layerDigests")
        .expected(expected)
        .found(value.clone()));
    };

    for (index, layer) in expected.iter().enumerate() {
        match found.get(index).and_then(Value::as_str) {
            Some(claimed) if claimed == layer => {}
            Some(claimed) => {
                return Err(Rejection::manifest_invalid(
                    Rule::ConfigLayerDigests,
                    format!(
                        "config.layerDigests[{index}] is {claimed} but the manifest's layer {index} is {layer}; rebuild the config from the layers"
                    ),
                )
                .at(format!("config.layerDigests[{index}]"))
                .expected(layer.as_str())
                .found(claimed));
            }
            None => {
                return Err(Rejection::manifest_invalid(
                    Rule::ConfigLayerDigests,
                    format!(
                        "config.layerDigests has {} entries but the manifest has {}; rebuild the config from the layers",
                        found.len(),
                        layer_count(expected.len())
                    ),
                )
                .at("config.layerDigests")
                .expected(expected.clone())
                .found(value.clone()));
            }
        }
    }
    if found.len() > expected.len() {
        return Err(Rejection::manifest_invalid(
            Rule::ConfigLayerDigests,
            format!(
                "config.layerDigests has {} entries but the manifest has {}; rebuild the config from the layers",
                found.len(),
                layer_count(expected.len())
            ),
        )
        .at("config.layerDigests")
        .expected(expected)
        .found(value.clone()));
    }
    Ok(())
}

/// Checks `config.component` and returns its interface lists, or `None` when it is null.
fn check_component(config: &Map<String, Value>, os: Os) -> Result<Option<Interfaces>, Rejection> {
    let component = match config.get("component") {
        None | Some(Value::Null) if os == Os::Wasip1 => return Ok(None),
        None | Some(Value::Null) => {
            return Err(Rejection::manifest_invalid(
                Rule::ConfigComponent,
                "config.component is required when config.os is \"wasip2\"; list the component's imports and exports in it",
            )
            .at("config.component"));
        }
        Some(Value::Object(component)) => component,
        Some(other) => {
            return Err(component_type_error(
                "config.component",
                "an object or null",
                other,
            ));
        }
    };

    let exports = interface_names(component, "exports")?;
    let imports = interface_names(component, "imports")?;
    match component.get("target") {
        None | Some(Value::Null | Value::String(_)) => Ok(Some(Interfaces { imports, exports })),
        Some(other) => Err(component_type_error(
            "config.component.target",
            "a string or null",
            other,
        )),
    }
}

/// Reads `config.component.<field>`, an array of interface names.
fn interface_names(
    component: &Map<String, Value>,
    field: &str,
) -> Result<BTreeSet<String>, Rejection> {
    let path = format!("config.component.{field}");
    match component.get(field) {
        Some(Value::Array(items)) => {
            let mut names = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                match item {
                    Value::String(name) => {
                        names.insert(name.clone());
                    }
                    other => {
                        return Err(component_type_error(
                            &format!("{path}[{index}]"),
                            "a string",
                            other,
                        ));
                    }
                }
            }
            Ok(names)
        }
        Some(Value::Null) | None => Err(Rejection::manifest_invalid(
            Rule::ConfigComponent,
            format!(
                "{path} is missing; it must be an array of interface names, empty if there are none"
            ),
        )
        .at(path)),
        Some(other) => Err(component_type_error(&path, "an array of strings", other)),
    }
}

fn component_type_error(path: &str, expected: &str, found: &Value) -> Rejection {
    Rejection::manifest_invalid(
        Rule::ConfigComponent,
        format!("{path} must be {expected}, not {}", json_type(found)),
    )
    .at(path)
    .expected(expected)
    .found(found.clone())
}

/// "1 layer" or "N layers".
fn layer_count(count: usize) -> String {
    if count == 1 {
        "1 layer".to_owned()
    } else {
        format!("{count} layers")
    }
}
