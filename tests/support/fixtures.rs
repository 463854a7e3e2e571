//! Test inputs built at test time: WebAssembly binaries from WAT text, configs and manifests
//! as JSON.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER: &str = "application/wasm";
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const IMAGE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A component that imports `wasi:cli/environment@0.2.0` and exports `wasi:cli/run@0.2.0`.
pub const COMPONENT_WAT: &str = r#"
(component
  (type $environment (instance
    (export "get-arguments" (func (result (list string))))
  ))
  (import "wasi:cli/environment@0.2.0" (instance $env (type $environment)))
  (core module $main
    (func (export "run") (result i32) i32.const 0)
  )
  (core instance $instance (instantiate $main))
  (func $run (result (result)) (canon lift (core func $instance "run")))
  (instance $exported (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $exported))
)
"#;

pub const MODULE_WAT: &str = r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#;

/// Builds a component with one instance import per name in `imports` and one exported
/// instance.
pub fn component_with(imports: &[&str], export: &str) -> Vec<u8> {
    let imports: String = imports
        .iter()
        .map(|name| format!("  (import \"{name}\" (instance (type $empty)))\n"))
        .collect();
    let text = format!(
        r#"(component
  (type $empty (instance (export "f" (func (result u32)))))
{imports}  (core module $m (func (export "handle") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $handle (result (result)) (canon lift (core func $i "handle")))
  (instance $e (export "handle" (func $handle)))
  (export "{export}" (instance $e))
)"#
    );
    wat::parse_str(text).expect("component WAT compiles")
}

pub fn component() -> Vec<u8> {
    wat::parse_str(COMPONENT_WAT).expect("component WAT compiles")
}

pub fn core_module() -> Vec<u8> {
    wat::parse_str(MODULE_WAT).expect("module WAT compiles")
}

pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// The config oci-wasm writes for a component built from [`COMPONENT_WAT`].
pub fn component_config(layer: &[u8]) -> Value {
    json!({
        "created": "2026-12-04T12:00:00Z",
        "author": null,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [sha256(layer)],
        "component": {
            "exports": ["wasi:cli/run@0.2.0"],
            "imports": ["wasi:cli/environment@0.2.0"],
            "target": null
        }
    })
}

/// An OCI image manifest with the given config and layers.
pub fn manifest(config: Value, layers: Vec<Value>) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    })
}

pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON serializes")
}
