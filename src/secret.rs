//! Secrets kept out of logs: a wrapper whose `Debug`/`Display` never show the value, URL
//! password redaction, key hashing, and constant-time comparison.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string (master key, upstream api key, URL with a password). Printing it shows
/// `***`; the value is reachable only through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison against a candidate presented by a client.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Compares two byte strings without leaking, through timing, where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false at once; the length of a key is
    // not a secret worth protecting, its content is.
    a.ct_eq(b).into()
}

/// Lowercase hex SHA-256 of a key, as LiteLLM stores it in `token`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A URL with any password (and any `api_key`-like query value) replaced by `***`, for logs,
/// errors and health output.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            let redacted = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None => "***".to_string(),
            };
            out.replace_range(rest_start..rest_start + at, &redacted);
        }
    }
    out
}

/// Removes every occurrence of the given secrets from a text (error messages from upstreams
/// and dependencies may echo what they were sent).
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = redact_url_all(text);
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "***");
    }
    out
}

/// Redacts passwords of every URL found in a free text.
fn redact_url_all(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") && word.contains('@') {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgresql://gateway:secret@db:5432/gw"),
            "postgresql://gateway:***@db:5432/gw"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(redact_url("http://127.0.0.1:6333"), "http://127.0.0.1:6333");
        assert_eq!(
            scrub(
                "failed: redis://:pw@cache:6379 with sk-abcdef",
                &["sk-abcdef"]
            ),
            "failed: redis://:***@cache:6379 with ***"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-1234");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert!(s.matches("sk-1234"));
        assert!(!s.matches("sk-1235"));
    }

    #[test]
    fn hash_is_litellm_compatible() {
        assert_eq!(
            hash_key("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
    }
}
