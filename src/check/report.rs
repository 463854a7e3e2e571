//! The verdict as a JSON report, and the text report rendered from it.

use serde_json::{Value, json};

use super::{Artifact, Judgement};
use crate::error::Rejection;
use crate::manifest::{self, Digest};
use crate::policy::Policy;

pub(super) fn violation_json(rejection: &Rejection) -> Value {
    json!({
        "code": rejection.code.as_str(),
        "rule": rejection.rule.as_str(),
        "message": rejection.message,
        "path": rejection.path,
        "expected": rejection.expected,
        "found": rejection.found,
    })
}

/// Builds the JSON report; the text report is rendered from it.
pub(super) fn report(
    policy: &Policy,
    repository: &str,
    artifact: &Artifact,
    outcome: &Result<Judgement, String>,
) -> Value {
    let digest = Digest::of(manifest::digest::Algorithm::Sha256, &artifact.body).to_string();
    let mut report = json!({
        "artifact": artifact.origin,
        "digest": digest,
        "repository": repository,
        "tag": artifact.tag,
        "policy": policy.source,
    });
    match outcome {
        Ok(Judgement::Evaluated(evaluation)) => {
            report["decision"] = json!(evaluation.decision.as_str());
            report["rule"] = json!(evaluation.rule);
            report["mode"] = json!(evaluation.mode.as_str());
            report["catalogs"] = json!(evaluation.catalogs);
            report["referrer"] = json!(evaluation.referrer);
            report["violations"] =
                Value::Array(evaluation.violations.iter().map(violation_json).collect());
            report["warnings"] = json!(evaluation.warnings);
        }
        Ok(Judgement::Malformed(rejection)) => {
            report["decision"] = json!("deny");
            report["rule"] = Value::Null;
            report["mode"] = Value::Null;
            report["catalogs"] = json!([]);
            report["referrer"] = json!(false);
            report["violations"] = json!([violation_json(rejection)]);
            report["warnings"] = json!([]);
        }
        Err(message) => {
            report["decision"] = json!("error");
            report["error"] = json!(message);
        }
    }
    report
}

pub(super) fn text_report(report: &Value) -> String {
    let mut text = String::new();
    let decision = report["decision"].as_str().unwrap_or("error");
    let verdict = match decision {
        "allow" => "ALLOWED",
        "rewrite" => "ALLOWED (rewritten to the CNCF layout)",
        "would_deny" => "ALLOWED (audit mode; enforce mode would reject it)",
        "deny" => "DENIED",
        _ => "ERROR",
    };
    text.push_str(&format!(
        "{verdict}: {}\n",
        report["artifact"].as_str().unwrap_or("")
    ));
    let repository = report["repository"].as_str().unwrap_or("");
    match report["rule"].as_str() {
        Some(rule) => text.push_str(&format!(
            "  policy rule {rule:?} ({} mode) of {} for repository {}\n",
            report["mode"].as_str().unwrap_or(""),
            report["policy"].as_str().unwrap_or(""),
            if repository.is_empty() {
                "(none given)"
            } else {
                repository
            },
        )),
        None if decision == "deny" => {
            text.push_str("  rejected by the manifest format checks, before any policy rule\n")
        }
        None => {}
    }
    if let Some(catalogs) = report["catalogs"].as_array() {
        let names: Vec<&str> = catalogs.iter().filter_map(Value::as_str).collect();
        let names = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        text.push_str(&format!("  catalogs: {names}\n"));
    }
    for violation in report["violations"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  violation [{}]: {}\n",
            violation["rule"].as_str().unwrap_or(""),
            violation["message"].as_str().unwrap_or("")
        ));
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        text.push_str(&format!("  warning: {}\n", warning.as_str().unwrap_or("")));
    }
    if let Some(error) = report["error"].as_str() {
        text.push_str(&format!("  error: {error}\n"));
    }
    text
}
