//! Layer inspection: what the bytes of a WebAssembly layer really are. The header tells a
//! core module from a component; full inspection validates the binary with wasmparser and,
//! for a component, decodes its WIT world to list the interfaces it imports and exports.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use wasmparser::{Parser, Validator, WasmFeatures};
use wit_parser::decoding::{DecodedWasm, decode};

use crate::manifest::Digest;

/// Bytes of the preamble: the magic `\0asm`, a version and a layer field.
pub const HEADER_BYTES: usize = 8;

/// Kinds of WebAssembly binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    CoreModule,
    Component,
}

impl BinaryKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::CoreModule => "a core module",
            Self::Component => "a component",
        }
    }
}

/// Interface names of a component's world, as `wasi:http/incoming-handler@0.2.0`, or plain
/// names for functions imported or exported directly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interfaces {
    pub imports: BTreeSet<String>,
    pub exports: BTreeSet<String>,
}

/// What inspecting a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub kind: BinaryKind,
    /// The decoded world of a component; `None` for core modules and when only the header
    /// was read.
    pub interfaces: Option<Interfaces>,
    /// Whether the whole binary was validated, or only its header read.
    pub full: bool,
    /// Length of the binary, when it was read whole.
    pub size: Option<u64>,
}

/// Why a layer is not acceptable WebAssembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// The bytes do not start with the WebAssembly magic number.
    NotWasm { header: Vec<u8> },
    /// The magic number is there, but the version is one that wasmparser does not accept,
    /// such as a pre-release component encoding.
    UnsupportedVersion { header: Vec<u8> },
    /// Validation or WIT decoding failed.
    Invalid(String),
}

/// Classifies a binary by its first eight bytes.
pub fn classify_header(header: &[u8]) -> Result<BinaryKind, InspectError> {
    if Parser::is_component(header) {
        return Ok(BinaryKind::Component);
    }
    if Parser::is_core_wasm(header) {
        return Ok(BinaryKind::CoreModule);
    }
    let header = header[..header.len().min(HEADER_BYTES)].to_vec();
    if header.starts_with(b"\0asm") {
        Err(InspectError::UnsupportedVersion { header })
    } else {
        Err(InspectError::NotWasm { header })
    }
}

/// Validates a whole binary and decodes a component's world.
pub fn inspect_full(bytes: &[u8]) -> Result<Inspection, InspectError> {
    let kind = classify_header(bytes)?;
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|error| InspectError::Invalid(error.to_string()))?;

    let interfaces = match kind {
        BinaryKind::CoreModule => None,
        BinaryKind::Component => Some(decode_interfaces(bytes)?),
    };
    Ok(Inspection {
        kind,
        interfaces,
        full: true,
        size: Some(bytes.len() as u64),
    })
}

/// Names the imports and exports of a component the way wkg and oci-wasm write them into
/// `config.component`, so that the two can be compared as sets.
fn decode_interfaces(bytes: &[u8]) -> Result<Interfaces, InspectError> {
    let decoded = decode(bytes).map_err(|error| {
        InspectError::Invalid(format!(
            "the component's WIT world cannot be decoded: {error:#}"
        ))
    })?;
    match decoded {
        DecodedWasm::Component(resolve, world) => {
            let world = &resolve.worlds[world];
            Ok(Interfaces {
                imports: world
                    .imports
                    .keys()
                    .map(|key| resolve.name_world_key(key))
                    .collect(),
                exports: world
                    .exports
                    .keys()
                    .map(|key| resolve.name_world_key(key))
                    .collect(),
            })
        }
        // A WIT package encoded as a component exports its worlds and interfaces and imports
        // nothing, which is how oci-wasm describes it.
        DecodedWasm::WitPackage(resolve, package) => {
            let package = &resolve.packages[package];
            let mut exports = BTreeSet::new();
            for world in package.worlds.values() {
                let world = &resolve.worlds[*world];
                exports.extend(world.exports.keys().map(|key| resolve.name_world_key(key)));
                let mut qualified = format!(
                    "{}:{}/{}",
                    package.name.namespace, package.name.name, world.name
                );
                if let Some(version) = &package.name.version {
                    qualified.push_str(&format!("@{version}"));
                }
                exports.insert(qualified);
            }
            exports.extend(
                package
                    .interfaces
                    .values()
                    .filter_map(|id| resolve.id_of(*id)),
            );
            Ok(Interfaces {
                imports: BTreeSet::new(),
                exports,
            })
        }
    }
}

/// Inspection results by layer digest. Layers are content-addressed, so a digest always
/// names the same bytes and a result never goes stale.
pub struct InspectionCache {
    entries: Mutex<LruCache<Digest, Result<Inspection, InspectError>>>,
}

/// Default number of layer digests remembered. Entries hold a few hundred bytes of
/// interface names, so the cache stays well under a megabyte.
pub const DEFAULT_CACHE_ENTRIES: usize = 4096;

impl InspectionCache {
    pub fn new(entries: usize) -> Self {
        let capacity = NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub fn get(&self, digest: &Digest) -> Option<Result<Inspection, InspectError>> {
        self.lock().get(digest).cloned()
    }

    pub fn insert(&self, digest: Digest, result: Result<Inspection, InspectError>) {
        self.lock().put(digest, result);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, LruCache<Digest, Result<Inspection, InspectError>>> {
        // A panic while holding the lock cannot leave the cache inconsistent, because every
        // operation on it is a single call into the LRU.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for InspectionCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_ENTRIES)
    }
}
