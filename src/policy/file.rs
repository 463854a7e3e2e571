//! The policy file format: TOML read with unknown keys rejected, then checked for what the
//! TOML types cannot express (catalog names that exist, globs that parse), with the file, line
//! and key in every error.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::catalog::{self, BUILTIN_NAMES, DEFAULT_REFERRERS};
use super::pattern::{NamePattern, RepositoryGlob};
use super::{Admit, Capabilities, Legacy, Mode, Policy, PolicyError, PolicyRule, WasmConstraints};
use crate::wasm::Os;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: Spanned<i64>,
    #[serde(default)]
    catalogs: BTreeMap<Spanned<String>, CatalogTable>,
    #[serde(default)]
    rules: Vec<Spanned<RuleTable>>,
    default: Option<Spanned<RuleTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CatalogTable {
    config: Vec<Spanned<String>>,
    #[serde(default)]
    layers: Vec<Spanned<String>>,
    artifact_type: Option<Spanned<String>>,
    #[serde(default)]
    index: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuleTable {
    name: Option<Spanned<String>>,
    repositories: Option<Spanned<Vec<Spanned<String>>>>,
    mode: Option<Mode>,
    admit: Option<Spanned<Vec<Spanned<String>>>>,
    referrers: Option<Spanned<Vec<Spanned<String>>>>,
    legacy: Option<Legacy>,
    wasm: Option<WasmTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct WasmTable {
    os: Option<Spanned<Vec<OsName>>>,
    #[serde(default)]
    require_component: bool,
    max_layer_bytes: Option<u64>,
    #[serde(default)]
    require_full_inspection: bool,
    #[serde(default)]
    imports: CapabilityTable,
    #[serde(default)]
    exports: CapabilityTable,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OsName {
    Wasip1,
    Wasip2,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CapabilityTable {
    allow: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    require: Vec<Spanned<String>>,
}

/// Turns byte offsets into "file: line L, column C" locations.
struct Locator<'a> {
    text: &'a str,
    source: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl AsRef<str>) -> PolicyError {
        let message = message.as_ref();
        match span {
            Some(span) => {
                let start = span.start.min(self.text.len());
                let before = &self.text[..start];
                let line = before.matches('\n').count() + 1;
                let column = start - before.rfind('\n').map_or(0, |index| index + 1) + 1;
                PolicyError(format!(
                    "{}: line {line}, column {column}: {message}",
                    self.source
                ))
            }
            None => PolicyError(format!("{}: {message}", self.source)),
        }
    }
}

pub(super) fn parse(text: &str, source: &str) -> Result<Policy, PolicyError> {
    let locator = Locator { text, source };
    let document: Document = toml::from_str(text).map_err(|error| {
        // toml's message names the unknown key and the keys expected there.
        locator.error(error.span(), error.message().trim_end())
    })?;

    if *document.version.get_ref() != 1 {
        return Err(locator.error(
            Some(document.version.span()),
            format!(
                "version = {} is not supported; this wasmgate reads version = 1",
                document.version.get_ref()
            ),
        ));
    }

    let mut catalogs = catalog::builtin();
    for (name, table) in &document.catalogs {
        catalogs.push(user_catalog(&locator, name, table)?);
    }
    let known: BTreeSet<String> = catalogs
        .iter()
        .map(|catalog| catalog.name.clone())
        .collect();

    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for (index, table) in document.rules.iter().enumerate() {
        let rule = rule(&locator, table, Some(index), &known)?;
        if !names.insert(rule.name.clone()) {
            return Err(locator.error(
                table.get_ref().name.as_ref().map(Spanned::span),
                format!(
                    "two rules are named {:?}; give each rule its own name, because audit events and errors report it",
                    rule.name
                ),
            ));
        }
        if let Some(earlier) = rules.iter().find(|earlier: &&PolicyRule| {
            earlier
                .repositories
                .iter()
                .any(RepositoryGlob::matches_every_repository)
        }) {
            return Err(locator.error(
                table.get_ref().name.as_ref().map(Spanned::span),
                format!(
                    "rule {:?} can never apply, because rule {:?} before it matches every repository; move it above {:?}, or put the catch-all in [default]",
                    rule.name, earlier.name, earlier.name
                ),
            ));
        }
        rules.push(rule);
    }
    let default = match &document.default {
        Some(table) => rule(&locator, table, None, &known)?,
        None => super::Policy::builtin(false).default,
    };

    Ok(Policy {
        source: source.to_owned(),
        catalogs,
        rules,
        default,
    })
}

fn user_catalog(
    locator: &Locator<'_>,
    name: &Spanned<String>,
    table: &CatalogTable,
) -> Result<catalog::Catalog, PolicyError> {
    let text = name.get_ref();
    if BUILTIN_NAMES.contains(&text.as_str()) || text == "*" {
        return Err(locator.error(
            Some(name.span()),
            format!(
                "catalogs.{text}: {text:?} is a built-in catalog name; give the catalog another name"
            ),
        ));
    }
    let valid_name = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid_name {
        return Err(locator.error(
            Some(name.span()),
            format!("catalogs.{text}: a catalog name uses lowercase letters, digits, '-' and '_'"),
        ));
    }
    if table.config.is_empty() {
        return Err(locator.error(
            Some(name.span()),
            format!(
                "catalogs.{text}.config is empty; list the config media types that identify this artifact"
            ),
        ));
    }
    for value in table
        .config
        .iter()
        .chain(&table.layers)
        .chain(&table.artifact_type)
    {
        check_media_type_pattern(locator, value, &format!("catalogs.{text}"))?;
    }
    let strings = |values: &[Spanned<String>]| -> Vec<String> {
        values.iter().map(|value| value.get_ref().clone()).collect()
    };
    Ok(catalog::user_defined(
        text,
        &strings(&table.config),
        &strings(&table.layers),
        table
            .artifact_type
            .as_ref()
            .map(|value| value.get_ref().as_str()),
        table.index,
    ))
}

/// Checks that a media type or pattern has the `type/subtype` shape, so a typo such as a
/// missing slash is caught at load time instead of silently matching nothing.
fn check_media_type_pattern(
    locator: &Locator<'_>,
    value: &Spanned<String>,
    key: &str,
) -> Result<(), PolicyError> {
    let text = value.get_ref();
    let valid = text == "*"
        || (text.contains('/')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-*/".contains(c)));
    if valid {
        Ok(())
    } else {
        Err(locator.error(
            Some(value.span()),
            format!(
                "{key}: {text:?} is not a media type such as \"application/vnd.example.config.v1+json\" (\"*\" is a wildcard)"
            ),
        ))
    }
}

fn rule(
    locator: &Locator<'_>,
    table: &Spanned<RuleTable>,
    index: Option<usize>,
    known: &BTreeSet<String>,
) -> Result<PolicyRule, PolicyError> {
    let span = table.span();
    let table = table.get_ref();
    let key = match index {
        Some(index) => format!("rules[{index}]"),
        None => "default".to_owned(),
    };

    let (name, repositories) = match index {
        Some(_) => {
            let name = table.name.as_ref().ok_or_else(|| {
                locator.error(
                    Some(span.clone()),
                    format!("{key}.name is missing; name each rule"),
                )
            })?;
            if name.get_ref().trim().is_empty() {
                return Err(locator.error(Some(name.span()), format!("{key}.name is empty")));
            }
            if name.get_ref() == "default" {
                return Err(locator.error(
                    Some(name.span()),
                    format!(
                        "{key}.name: \"default\" is the name of the [default] rule; give this rule another name"
                    ),
                ));
            }
            let globs = table.repositories.as_ref().ok_or_else(|| {
                locator.error(
                    Some(span.clone()),
                    format!(
                        "{key}.repositories is missing; list the repository globs this rule applies to, such as [\"prod/**\"]"
                    ),
                )
            })?;
            if globs.get_ref().is_empty() {
                return Err(locator.error(
                    Some(globs.span()),
                    format!("{key}.repositories is empty, so the rule would never apply"),
                ));
            }
            let parsed = globs
                .get_ref()
                .iter()
                .map(|glob| {
                    let text = glob.get_ref();
                    if text.chars().any(|c| c.is_ascii_uppercase()) {
                        return Err(locator.error(
                            Some(glob.span()),
                            format!(
                                "{key}.repositories: {text:?} has uppercase letters, but repository names are lowercase, so it would never match; write {:?}",
                                text.to_ascii_lowercase()
                            ),
                        ));
                    }
                    RepositoryGlob::parse(text).map_err(|error| {
                        locator.error(Some(glob.span()), format!("{key}.repositories: {error}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            (name.get_ref().clone(), parsed)
        }
        None => {
            if let Some(name) = &table.name {
                return Err(locator.error(
                    Some(name.span()),
                    "default.name is not allowed; the default rule is always named \"default\"",
                ));
            }
            if let Some(globs) = &table.repositories {
                return Err(locator.error(
                    Some(globs.span()),
                    "default.repositories is not allowed; the default rule applies to every repository that no rule matches",
                ));
            }
            ("default".to_owned(), Vec::new())
        }
    };

    let admit = match &table.admit {
        Some(list) if list.get_ref().is_empty() => {
            return Err(locator.error(
                Some(list.span()),
                format!(
                    "{key}.admit is empty, so nothing could be pushed; list the catalogs to admit, such as [\"wasm\"]"
                ),
            ));
        }
        Some(list) => admitted_catalogs(locator, list, &format!("{key}.admit"), known)?,
        None => Admit::Any,
    };
    let referrers = match &table.referrers {
        Some(list) => admitted_catalogs(locator, list, &format!("{key}.referrers"), known)?,
        None if admit == Admit::Any => Admit::Any,
        None => Admit::Catalogs(
            DEFAULT_REFERRERS
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
        ),
    };

    let wasm = match &table.wasm {
        Some(wasm) => wasm_constraints(locator, wasm, &format!("{key}.wasm"))?,
        None => WasmConstraints::default(),
    };

    Ok(PolicyRule {
        name,
        repositories,
        mode: table.mode.unwrap_or(Mode::Enforce),
        admit,
        referrers,
        legacy: table.legacy.unwrap_or(Legacy::Allow),
        wasm,
    })
}

fn admitted_catalogs(
    locator: &Locator<'_>,
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    known: &BTreeSet<String>,
) -> Result<Admit, PolicyError> {
    let names = list.get_ref();
    if names.iter().any(|name| name.get_ref() == "*") {
        if names.len() > 1 {
            return Err(locator.error(
                Some(list.span()),
                format!("{key}: \"*\" admits everything, so list it alone"),
            ));
        }
        return Ok(Admit::Any);
    }
    let mut catalogs = Vec::new();
    for name in names {
        if !known.contains(name.get_ref()) {
            return Err(locator.error(
                Some(name.span()),
                format!(
                    "{key}: unknown catalog {:?}; the catalogs are {}, any defined under [catalogs], and \"*\"",
                    name.get_ref(),
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        catalogs.push(name.get_ref().clone());
    }
    Ok(Admit::Catalogs(catalogs))
}

fn wasm_constraints(
    locator: &Locator<'_>,
    table: &WasmTable,
    key: &str,
) -> Result<WasmConstraints, PolicyError> {
    if let Some(os) = &table.os
        && os.get_ref().is_empty()
    {
        return Err(locator.error(
            Some(os.span()),
            format!(
                "{key}.os is empty, so no WebAssembly artifact could be pushed; list \"wasip1\", \"wasip2\" or both, or leave the key out to allow any"
            ),
        ));
    }
    Ok(WasmConstraints {
        os: table.os.as_ref().map(|values| {
            values
                .get_ref()
                .iter()
                .map(|os| match os {
                    OsName::Wasip1 => Os::Wasip1,
                    OsName::Wasip2 => Os::Wasip2,
                })
                .collect()
        }),
        require_component: table.require_component,
        max_layer_bytes: table.max_layer_bytes,
        require_full_inspection: table.require_full_inspection,
        imports: capabilities(locator, &table.imports, &format!("{key}.imports"))?,
        exports: capabilities(locator, &table.exports, &format!("{key}.exports"))?,
    })
}

fn capabilities(
    locator: &Locator<'_>,
    table: &CapabilityTable,
    key: &str,
) -> Result<Capabilities, PolicyError> {
    let patterns = |values: &[Spanned<String>], list: &str| {
        values
            .iter()
            .map(|value| {
                let text = value.get_ref();
                if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    Err(locator.error(
                        Some(value.span()),
                        format!(
                            "{key}.{list}: {text:?} is not an interface pattern such as \"wasi:sockets/*\""
                        ),
                    ))
                } else {
                    Ok(NamePattern::interface(text))
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Capabilities {
        allow: table
            .allow
            .as_ref()
            .map(|values| patterns(values, "allow"))
            .transpose()?,
        deny: patterns(&table.deny, "deny")?,
        require: patterns(&table.require, "require")?,
    })
}
