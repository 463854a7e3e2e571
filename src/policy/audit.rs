//! Audit events: one structured event per manifest push, on the tracing target
//! `wasmgate::audit`, so log pipelines can route them apart from operational logs.

use base64::Engine as _;
use http::HeaderValue;

/// Tracing target of audit events.
pub const TARGET: &str = "wasmgate::audit";

/// Maximum length of a recorded user name, in characters. Any client can send any name, so a longer one
/// is cut rather than let one request write an arbitrarily long log line.
pub const MAX_USER_CHARS: usize = 256;

/// Returns the user a request claims to be: the user name of Basic credentials, or the `sub`
/// claim of a Bearer JWT. The token's signature is not verified, because the registry does
/// that, so the name is what the client claims. The credential itself is never returned.
pub fn user_of(authorization: Option<&HeaderValue>) -> Option<String> {
    let user = claimed_user(authorization?)?;
    Some(match user.char_indices().nth(MAX_USER_CHARS) {
        Some((end, _)) => format!("{}...", &user[..end]),
        None => user,
    })
}

fn claimed_user(authorization: &HeaderValue) -> Option<String> {
    let text = authorization.to_str().ok()?;
    let (scheme, credentials) = text.trim().split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, _password) = decoded.split_once(':')?;
        return Some(user.to_owned()).filter(|user| !user.is_empty());
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let payload = credentials.split('.').nth(1)?;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&decoded).ok()?;
        return claims["sub"]
            .as_str()
            .map(str::to_owned)
            .filter(|sub| !sub.is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).expect("valid header")
    }

    #[test]
    fn long_user_name_is_cut() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:pw", "é".repeat(1000)));
        let user = user_of(Some(&header(&format!("Basic {encoded}")))).expect("a user");
        assert_eq!(user.chars().count(), MAX_USER_CHARS + 3);
        assert!(user.ends_with("é..."));
    }

    #[test]
    fn basic_user_name() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let user = user_of(Some(&header(&format!("Basic {encoded}"))));
        assert_eq!(user.as_deref(), Some("alice"));
    }

    #[test]
    fn bearer_subject_claim() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"sub":"ci-bot","access":[]}"#);
        let user = user_of(Some(&header(&format!(
            "Bearer eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"
        ))));
        assert_eq!(user.as_deref(), Some("ci-bot"));
    }

    #[test]
    fn opaque_or_broken_credentials() {
        assert_eq!(user_of(None), None);
        assert_eq!(user_of(Some(&header("Bearer opaque-token"))), None);
        assert_eq!(user_of(Some(&header("Basic !!!"))), None);
        assert_eq!(user_of(Some(&header("Negotiate abc"))), None);
    }
}
