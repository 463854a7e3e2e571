//! Strict JSON reading for manifests and configs.
//!
//! Registries behind the gate are written in Go, whose `encoding/json` lets the last of two
//! duplicate keys win and matches keys to struct fields without regard to case (with Unicode
//! simple folding, so `ſize` fills `size`). If the gate accepted such documents it would
//! validate one reading while the registry stores another. This reader therefore rejects, at
//! every level, exact duplicate keys and keys that fold to a known field name without being
//! spelled exactly like it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Rejection, Rule};

/// Field names of the OCI image manifest, index, descriptor and platform, of Docker schema 2
/// and of the CNCF WebAssembly config. A key that folds to one of these must be spelled
/// exactly like it.
const KNOWN_FIELDS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "urls",
    "data",
    "platform",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
    "created",
    "author",
    "layerDigests",
    "component",
    "exports",
    "imports",
    "target",
];

/// Fields whose value is a free-form string map: their keys are not field names.
const FREE_FORM_FIELDS: &[&str] = &["annotations"];

/// Folds a key the way Go's `encoding/json` compares names: ASCII case plus the two
/// non-ASCII letters whose simple case folding reaches ASCII letters used in field names
/// (U+017F LATIN SMALL LETTER LONG S and U+212A KELVIN SIGN).
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// Parses `bytes` as one JSON document under the strict rules above. `document` names it in
/// messages; `root` starts the JSON paths of its values (`$` for the manifest, `config` for
/// the config blob).
pub fn parse(bytes: &[u8], document: &str, root: &str) -> Result<Value, Rejection> {
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(Rejection::manifest_invalid(
            Rule::Utf8,
            format!(
                "the {document} is not valid UTF-8 (first invalid byte at offset {}); encode it as UTF-8 JSON",
                error.valid_up_to()
            ),
        )
        .at(root));
    }

    let violation = RefCell::new(None);
    let seed = StrictSeed {
        path: root.to_owned(),
        free_form: false,
        violation: &violation,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = seed.deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    match result {
        Ok(value) => Ok(value),
        Err(error) => Err(violation.into_inner().unwrap_or_else(|| {
            Rejection::manifest_invalid(
                Rule::JsonSyntax,
                format!("the {document} is not valid JSON: {error}"),
            )
            .at(root)
        })),
    }
}

struct StrictSeed<'a> {
    path: String,
    free_form: bool,
    violation: &'a RefCell<Option<Rejection>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = StrictSeed {
                path: format!("{}[{}]", self.path, items.len()),
                free_form: false,
                violation: self.violation,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{}", self.path, key);
            if !seen.insert(key.clone()) {
                return Err(self.fail(
                    Rejection::manifest_invalid(
                        Rule::DuplicateKey,
                        format!("key {key:?} appears twice at {path}; keep exactly one"),
                    )
                    .at(&path),
                ));
            }
            if !self.free_form {
                self.check_case(&key, &path)
                    .map_err(|rejection| self.fail(rejection))?;
            }
            let seed = StrictSeed {
                free_form: FREE_FORM_FIELDS.contains(&key.as_str()),
                path,
                violation: self.violation,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

impl StrictSeed<'_> {
    fn check_case(&self, key: &str, path: &str) -> Result<(), Rejection> {
        if KNOWN_FIELDS.contains(&key) {
            return Ok(());
        }
        let folded = fold(key);
        match KNOWN_FIELDS.iter().find(|known| fold(known) == folded) {
            None => Ok(()),
            Some(known) => Err(Rejection::manifest_invalid(
                Rule::CaseVariantKey,
                format!(
                    "key {key:?} at {path} differs from the field {known:?} only in case; registries written in Go would read it as {known:?}, so spell it exactly {known:?}"
                ),
            )
            .at(path)
            .expected(*known)
            .found(key)),
        }
    }

    /// Records the rejection and returns a placeholder error that stops parsing.
    fn fail<E: de::Error>(&self, rejection: Rejection) -> E {
        let message = rejection.message.clone();
        *self.violation.borrow_mut() = Some(rejection);
        E::custom(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(input: &str) -> Rule {
        parse(input.as_bytes(), "manifest", "$")
            .expect_err(input)
            .rule
    }

    #[test]
    fn accepts_plain_documents() {
        let value = parse(
            br#"{"schemaVersion":2,"annotations":{"Size":"1","size":"2"}}"#,
            "manifest",
            "$",
        )
        .expect("valid");

        assert_eq!(value["schemaVersion"], 2);
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        let rejection =
            parse(br#"{"config":{"size":1,"size":2}}"#, "manifest", "$").expect_err("duplicate");

        assert_eq!(rejection.rule, Rule::DuplicateKey);
        assert_eq!(rejection.path.as_deref(), Some("$.config.size"));
        assert_eq!(
            rule_of(r#"{"layers":[{"a":1},{"digest":"x","digest":"y"}]}"#),
            Rule::DuplicateKey
        );
        assert_eq!(rule_of(r#"{"a":1,"\u0061":2}"#), Rule::DuplicateKey);
        assert_eq!(
            rule_of(r#"{"annotations":{"k":"1","k":"2"}}"#),
            Rule::DuplicateKey
        );
    }

    #[test]
    fn rejects_case_variants_of_known_fields() {
        let rejection = parse(br#"{"Config":{}}"#, "manifest", "$").expect_err("case variant");

        assert_eq!(rejection.rule, Rule::CaseVariantKey);
        assert_eq!(rejection.expected.as_deref(), Some(&Value::from("config")));
        assert_eq!(
            rule_of(r#"{"layers":[{"MediaType":"a"}]}"#),
            Rule::CaseVariantKey
        );
        assert_eq!(rule_of("{\"\u{017F}ize\":1}"), Rule::CaseVariantKey);
        assert_eq!(rule_of(r#"{"LAYERDIGESTS":[]}"#), Rule::CaseVariantKey);
    }

    #[test]
    fn rejects_invalid_text() {
        assert_eq!(
            parse(b"{\"a\":\"\xff\"}", "manifest", "$")
                .expect_err("utf-8")
                .rule,
            Rule::Utf8
        );
        assert_eq!(rule_of("{"), Rule::JsonSyntax);
        assert_eq!(rule_of("{} {}"), Rule::JsonSyntax);
    }
}
