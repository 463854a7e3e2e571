//! Which blob of a manifest is being read, and the checks every blob read shares.

use http::StatusCode;

use crate::error::{ErrorCode, Rejection, Rule};
use crate::manifest::{Descriptor, Digest};

/// The place of a blob in the manifest, for rules and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRole {
    Config,
    Layer(usize),
}

impl BlobRole {
    /// JSON path of the blob's descriptor.
    pub fn path(self) -> String {
        match self {
            Self::Config => "$.config".to_owned(),
            Self::Layer(index) => format!("$.layers[{index}]"),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Config => "the config blob".to_owned(),
            Self::Layer(index) => format!("layer {index}"),
        }
    }
}

/// Checks that `bytes` are the blob the descriptor names.
pub fn verify_blob(descriptor: &Descriptor, role: BlobRole, bytes: &[u8]) -> Result<(), Rejection> {
    verify_size(descriptor, role, bytes.len() as u64)?;
    verify_digest(
        descriptor,
        role,
        &Digest::of(descriptor.digest.algorithm, bytes),
    )
}

pub fn verify_size(descriptor: &Descriptor, role: BlobRole, actual: u64) -> Result<(), Rejection> {
    if actual == descriptor.size {
        return Ok(());
    }
    let rule = match role {
        BlobRole::Config => Rule::ConfigSizeMismatch,
        BlobRole::Layer(_) => Rule::LayerSizeMismatch,
    };
    Err(Rejection::manifest_invalid(
        rule,
        format!(
            "{} {} is {actual} bytes but the manifest says {}; set its size in the manifest to the blob's length",
            role.describe(),
            descriptor.digest,
            descriptor.size
        ),
    )
    .at(format!("{}.size", role.path()))
    .expected(actual)
    .found(descriptor.size))
}

pub fn verify_digest(
    descriptor: &Descriptor,
    role: BlobRole,
    actual: &Digest,
) -> Result<(), Rejection> {
    if *actual == descriptor.digest {
        return Ok(());
    }
    let rule = match role {
        BlobRole::Config => Rule::ConfigDigestMismatch,
        BlobRole::Layer(_) => Rule::LayerDigestMismatch,
    };
    Err(Rejection::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::DigestInvalid,
        rule,
        format!(
            "the stored bytes of {} hash to {actual}, not {}; push the blob again",
            role.describe(),
            descriptor.digest
        ),
    )
    .at(format!("{}.digest", role.path()))
    .expected(descriptor.digest.to_string())
    .found(actual.to_string()))
}

/// The rejection for a blob the registry does not have.
pub fn blob_unknown(descriptor: &Descriptor, role: BlobRole) -> Rejection {
    let rule = match role {
        BlobRole::Config => Rule::ConfigBlobUnknown,
        BlobRole::Layer(_) => Rule::LayerBlobUnknown,
    };
    Rejection::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::ManifestBlobUnknown,
        rule,
        format!(
            "{} {} is not in the repository; upload every blob before the manifest",
            role.describe(),
            descriptor.digest
        ),
    )
    .at(format!("{}.digest", role.path()))
    .found(descriptor.digest.to_string())
}
