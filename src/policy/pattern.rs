//! The two pattern languages of policy files: repository globs, where `*` stays within one
//! path component and `**` spans components, and name patterns for media types and WIT
//! interface names, where `*` matches any run of characters.

/// A repository glob such as `team/*`, `prod/**` or `**/wasm-*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryGlob {
    source: String,
    components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Component {
    /// `**`: zero or more whole path components.
    AnyDepth,
    /// One path component, matched with `*` as a wildcard inside it.
    Segment(String),
}

impl RepositoryGlob {
    /// Parses a glob; fails on empty components and on `**` mixed with other characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a repository glob must not be empty".to_owned());
        }
        if text.starts_with('/') || text.ends_with('/') || text.contains("//") {
            return Err(format!(
                "repository glob {text:?} has an empty path component; write it as a repository name, such as \"team/*\" or \"prod/**\""
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/*".contains(*c)))
        {
            return Err(format!(
                "repository glob {text:?} contains {bad:?}, which no repository name can contain, so it would never match; names use lowercase letters, digits, '.', '_', '-' and '/'"
            ));
        }
        let mut components = Vec::new();
        for part in text.split('/') {
            if part == "**" {
                components.push(Component::AnyDepth);
            } else if part.contains("**") {
                return Err(format!(
                    "repository glob {text:?}: \"**\" must be a whole path component, as in \"prod/**\""
                ));
            } else {
                components.push(Component::Segment(part.to_owned()));
            }
        }
        Ok(Self {
            source: text.to_owned(),
            components,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Returns whether the glob matches every repository name: it is made of `**` and at
    /// most one `*`, such as `**`, `**/*` or `*/**`.
    pub fn matches_every_repository(&self) -> bool {
        let any_depth = self
            .components
            .iter()
            .filter(|component| **component == Component::AnyDepth)
            .count();
        let single = self
            .components
            .iter()
            .filter(|component| matches!(component, Component::Segment(text) if text == "*"))
            .count();
        any_depth > 0 && single <= 1 && any_depth + single == self.components.len()
    }

    /// Returns whether `repository` matches. `prod/**` matches `prod/app` and `prod/a/b`,
    /// but not `prod` itself.
    pub fn matches(&self, repository: &str) -> bool {
        let parts: Vec<&str> = repository.split('/').collect();
        match_components(&self.components, &parts)
    }
}

fn match_components(pattern: &[Component], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Component::AnyDepth, rest)) => {
            // `**` at the end needs at least one component, so `prod/**` is not `prod`.
            if rest.is_empty() {
                return !parts.is_empty();
            }
            (0..=parts.len()).any(|skip| match_components(rest, &parts[skip..]))
        }
        Some((Component::Segment(segment), rest)) => match parts.split_first() {
            Some((part, remaining)) => {
                wildcard_match(segment, part) && match_components(rest, remaining)
            }
            None => false,
        },
    }
}

/// A name pattern for media types and interface names: `*` matches any run of characters,
/// everything else matches itself. Media types are compared without regard to ASCII case, as
/// RFC 6838 defines them; interface names are compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    source: String,
    ignore_case: bool,
}

impl NamePattern {
    pub fn media_type(text: &str) -> Self {
        Self {
            source: text.to_ascii_lowercase(),
            ignore_case: true,
        }
    }

    pub fn interface(text: &str) -> Self {
        Self {
            source: text.to_owned(),
            ignore_case: false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, name: &str) -> bool {
        if self.ignore_case {
            wildcard_match(&self.source, &name.to_ascii_lowercase())
        } else {
            wildcard_match(&self.source, name)
        }
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters. Iterative,
/// with one backtracking point, so hostile inputs cannot make it exponential.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let text = text.as_bytes();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_globs() {
        let cases = [
            ("team/*", "team/app", true),
            ("team/*", "team/app/sub", false),
            ("team/*", "team", false),
            ("prod/**", "prod/app", true),
            ("prod/**", "prod/a/b/c", true),
            ("prod/**", "prod", false),
            ("prod/**", "production/app", false),
            ("**", "anything/at/all", true),
            ("**/wasm-*", "a/b/wasm-tools", true),
            ("**/wasm-*", "wasm-tools", true),
            ("**/wasm-*", "a/tools", false),
            ("exact/name", "exact/name", true),
            ("exact/name", "exact/name2", false),
            ("a/**/z", "a/z", true),
            ("a/**/z", "a/b/c/z", true),
        ];
        for (glob, repository, expected) in cases {
            let parsed = RepositoryGlob::parse(glob).expect(glob);
            assert_eq!(
                parsed.matches(repository),
                expected,
                "{glob} vs {repository}"
            );
        }
    }

    #[test]
    fn catch_all_globs() {
        for text in ["**", "**/*", "*/**", "**/**", "**/*/**"] {
            let glob = RepositoryGlob::parse(text).expect("valid glob");
            assert!(glob.matches_every_repository(), "{text}");
        }
        for text in ["*", "*/*/**", "prod/**", "**/a"] {
            let glob = RepositoryGlob::parse(text).expect("valid glob");
            assert!(!glob.matches_every_repository(), "{text}");
        }
    }

    #[test]
    fn invalid_repository_globs() {
        for glob in [
            "", "/prod", "prod/", "a//b", "prod**", "a/**b", "prod/a b", "prod/ä*", "a:b",
        ] {
            assert!(RepositoryGlob::parse(glob).is_err(), "{glob:?}");
        }
    }

    #[test]
    fn name_patterns() {
        let sockets = NamePattern::interface("wasi:sockets/*");
        assert!(sockets.matches("wasi:sockets/tcp@0.2.0"));
        assert!(!sockets.matches("wasi:http/outgoing-handler@0.2.0"));

        let handler = NamePattern::interface("wasi:http/incoming-handler@0.2.*");
        assert!(handler.matches("wasi:http/incoming-handler@0.2.3"));
        assert!(!handler.matches("wasi:http/incoming-handler@0.3.0"));

        let layer = NamePattern::media_type("application/vnd.oci.image.layer.*");
        assert!(layer.matches("Application/VND.oci.image.layer.v1.tar+gzip"));
        assert!(!NamePattern::interface("Wasi:*").matches("wasi:cli/run"));
    }

    #[test]
    fn wildcards_backtrack_without_blowing_up() {
        let pattern = "*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(5000);
        assert!(!wildcard_match(pattern, &text));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "a"));
    }
}
