//! Policy: per-repository rules that decide which artifacts a push may store, loaded from a
//! TOML file (`--policy`) or the built-in default, and evaluated by the same engine in the
//! gate and in `wasmgate check`.
//!
//! A policy is a list of rules, each selecting repositories by glob, tried in file order with
//! the first match winning, and a final default rule. Each rule has a mode (enforce, audit,
//! off), the artifact catalogs it admits, the catalogs its referrers are judged by, how it
//! treats legacy WebAssembly artifacts, and constraints on WebAssembly binaries.

pub mod audit;
pub mod catalog;
mod evaluate;
mod file;
pub mod pattern;
pub mod store;

use std::fmt;
use std::path::Path;

pub use catalog::Catalog;
pub use evaluate::{Decision, Evaluation, evaluate};
pub use store::PolicyStore;

use pattern::{NamePattern, RepositoryGlob};

/// The built-in default policy, as `wasmgate policy default` prints it.
pub const DEFAULT_POLICY: &str = include_str!("default.toml");

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Origin of the policy: a file path, or "built-in default".
    pub source: String,
    pub catalogs: Vec<Catalog>,
    pub rules: Vec<PolicyRule>,
    /// The rule for repositories that no other rule matches.
    pub default: PolicyRule,
}

/// Effect of a rule on a push that breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reject the push.
    Enforce,
    /// Forward the push with one warning per violation.
    Audit,
    /// Skip the policy and WebAssembly checks; the manifest format is still validated.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
            Self::Off => "off",
        }
    }
}

/// Handling of legacy WebAssembly artifacts under a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Legacy {
    /// Forward it unchanged.
    Allow,
    /// Reject it.
    Reject,
    /// Turn it into the CNCF layout before forwarding (pushes by tag only).
    Rewrite,
}

impl Legacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Reject => "reject",
            Self::Rewrite => "rewrite",
        }
    }
}

/// Artifact kinds a rule admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Every kind (`"*"`).
    Any,
    /// The catalogs with these names.
    Catalogs(Vec<String>),
}

impl Admit {
    pub fn describe(&self) -> String {
        match self {
            Self::Any => "any artifact".to_owned(),
            Self::Catalogs(names) if names.is_empty() => "no catalog".to_owned(),
            Self::Catalogs(names) => names.join(", "),
        }
    }

    /// Returns whether the admitted set includes the catalog `name`.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Catalogs(names) => names.iter().any(|admitted| admitted == name),
        }
    }
}

/// One rule of a policy.
#[derive(Debug, Clone)]
pub struct PolicyRule {
    pub name: String,
    /// Globs of the repositories the rule applies to; empty for the default rule.
    pub repositories: Vec<RepositoryGlob>,
    pub mode: Mode,
    pub admit: Admit,
    pub referrers: Admit,
    pub legacy: Legacy,
    pub wasm: WasmConstraints,
}

/// Constraints on WebAssembly binaries, checked against the decoded layer.
#[derive(Debug, Clone, Default)]
pub struct WasmConstraints {
    /// Config `os` values allowed; `None` allows both.
    pub os: Option<Vec<crate::wasm::Os>>,
    /// Whether the layer must be a component rather than a core module.
    pub require_component: bool,
    /// Largest layer allowed, in bytes.
    pub max_layer_bytes: Option<u64>,
    /// Whether the layer must be read whole and validated, not only its header.
    pub require_full_inspection: bool,
    pub imports: Capabilities,
    pub exports: Capabilities,
}

impl WasmConstraints {
    /// Returns whether any capability rule is set, which needs the decoded component.
    pub fn has_capability_rules(&self) -> bool {
        !self.imports.is_empty() || !self.exports.is_empty()
    }

    /// Returns whether any constraint is set.
    pub fn is_empty(&self) -> bool {
        self.os.is_none()
            && !self.require_component
            && self.max_layer_bytes.is_none()
            && !self.require_full_inspection
            && !self.has_capability_rules()
    }
}

/// Allow, deny and require patterns over the interface names a component imports or exports.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// When set, every name must match one of these.
    pub allow: Option<Vec<NamePattern>>,
    /// No name may match any of these.
    pub deny: Vec<NamePattern>,
    /// Each of these must match at least one name.
    pub require: Vec<NamePattern>,
}

impl Capabilities {
    pub fn is_empty(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty() && self.require.is_empty()
    }
}

/// An invalid policy file: the message names the file, the line and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// Largest policy file read, in bytes; real policies are a few KiB.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

impl Policy {
    /// Returns the built-in default policy; `rewrite_legacy` turns on the legacy rewrite, as
    /// `--rewrite-legacy` requests.
    pub fn builtin(rewrite_legacy: bool) -> Self {
        let mut policy =
            Self::parse(DEFAULT_POLICY, "built-in default").expect("the built-in policy is valid");
        if rewrite_legacy {
            policy.default.legacy = Legacy::Rewrite;
        }
        policy
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        use std::io::Read as _;
        let name = path.display().to_string();
        // Only a regular file (or a link to one, as a mounted ConfigMap is): opening a FIFO
        // would block the reload, and with it the task that runs it, until a writer came.
        let metadata = std::fs::metadata(path).map_err(|error| {
            PolicyError(format!("{name}: cannot read the policy file: {error}"))
        })?;
        if !metadata.is_file() {
            return Err(PolicyError(format!(
                "{name}: the policy file is not a regular file; point --policy at a TOML file"
            )));
        }
        let file = std::fs::File::open(path).map_err(|error| {
            PolicyError(format!("{name}: cannot read the policy file: {error}"))
        })?;
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|error| {
                PolicyError(format!("{name}: cannot read the policy file: {error}"))
            })?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError(format!(
                "{name}: the policy file is larger than {MAX_POLICY_BYTES} bytes"
            )));
        }
        Self::parse(&text, &name)
    }

    /// Parses and validates policy text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, PolicyError> {
        file::parse(text, source)
    }

    /// Returns the rule for `repository`: the first rule whose glob matches, else the default.
    pub fn rule_for(&self, repository: &str) -> &PolicyRule {
        // An empty name (`wasmgate check` without --repository) is judged by the default.
        if repository.is_empty() {
            return &self.default;
        }
        self.rules
            .iter()
            .find(|rule| {
                rule.repositories
                    .iter()
                    .any(|glob| glob.matches(repository))
            })
            .unwrap_or(&self.default)
    }

    /// Returns the names of the catalogs the manifest belongs to.
    pub fn catalogs_of(&self, manifest: &crate::manifest::Manifest) -> Vec<&str> {
        self.catalogs
            .iter()
            .filter(|catalog| catalog.entries.iter().any(|entry| entry.matches(manifest)))
            .map(|catalog| catalog.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests;
