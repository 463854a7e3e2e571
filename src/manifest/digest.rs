//! Content digests: the grammar of the OCI image specification and the two registered
//! algorithms, `sha256` (64 lowercase hex characters) and `sha512` (128).

use std::fmt;
use std::sync::LazyLock;

use http::StatusCode;
use regex::Regex;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{ErrorCode, Rejection, Rule};

static GRAMMAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$").expect("digest grammar compiles")
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// Hashes `bytes` and returns the lowercase hex encoding.
    pub fn hash_hex(self, bytes: &[u8]) -> String {
        match self {
            Self::Sha256 => hex(&Sha256::digest(bytes)),
            Self::Sha512 => hex(&Sha512::digest(bytes)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A validated digest such as `sha256:44136fa3…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub hex: String,
}

impl Digest {
    /// Parses a digest string. `path` names where it was found, for the error.
    pub fn parse(value: &str, path: &str) -> Result<Self, Rejection> {
        let invalid = |rule, message: String| {
            Rejection::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::DigestInvalid,
                rule,
                message,
            )
            .at(path)
            .found(value)
        };
        if !GRAMMAR.is_match(value) {
            return Err(invalid(
                Rule::DigestGrammar,
                format!(
                    "{path} is not a valid digest: {value:?}; write it as sha256:<64 lowercase hex characters>"
                ),
            ));
        }
        let (algorithm, encoded) = value.split_once(':').expect("grammar requires a colon");
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(invalid(
                    Rule::DigestAlgorithm,
                    format!(
                        "{path} uses the unsupported digest algorithm {other:?}; use sha256 or sha512"
                    ),
                ));
            }
        };
        let well_formed = encoded.len() == algorithm.hex_len()
            && encoded
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(invalid(
                Rule::DigestGrammar,
                format!(
                    "{path} is not a valid {} digest: it needs exactly {} lowercase hex characters after the colon",
                    algorithm.as_str(),
                    algorithm.hex_len()
                ),
            ));
        }
        Ok(Self {
            algorithm,
            hex: encoded.to_owned(),
        })
    }

    /// Computes the digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        Self {
            algorithm,
            hex: algorithm.hash_hex(bytes),
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.algorithm.hash_hex(bytes) == self.hex
    }
}

/// Incremental hashing for a blob that arrives in pieces.
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha512(hasher) => hasher.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Self::Sha256(hasher) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex(&hasher.finalize()),
            },
            Self::Sha512(hasher) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex(&hasher.finalize()),
            },
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_JSON: &str =
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn parses_and_verifies_sha256() {
        let digest = Digest::parse(EMPTY_JSON, "$.config.digest").expect("valid digest");

        assert!(digest.matches(b"{}"));
        assert_eq!(digest.to_string(), EMPTY_JSON);
        assert_eq!(Digest::of(Algorithm::Sha256, b"{}"), digest);
    }

    #[test]
    fn rejects_bad_digests() {
        let cases = [
            ("sha256:ABC", Rule::DigestGrammar),
            (&EMPTY_JSON.to_uppercase(), Rule::DigestGrammar),
            ("sha256:abcd", Rule::DigestGrammar),
            (
                "sha512:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                Rule::DigestGrammar,
            ),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                Rule::DigestAlgorithm,
            ),
            ("no-colon", Rule::DigestGrammar),
        ];
        for (input, rule) in cases {
            let rejection = Digest::parse(input, "$.digest").expect_err(input);
            assert_eq!(rejection.rule, rule, "{input}");
            assert_eq!(rejection.code, ErrorCode::DigestInvalid, "{input}");
        }
    }
}
