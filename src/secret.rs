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

/// Parameter names whose values are secrets, in URL query strings (`?password=`) and
/// libpq key/value strings (`host=db password=...`). Compared case-insensitively.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "sslpassword",
    "secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "api-key",
    "key",
];

/// A URL or connection string with every password replaced by `***`, for logs, errors and
/// health output: the userinfo password (`scheme://user:***@host`), secret query parameters
/// (`?password=***`, `&api_key=***`) and libpq key/value pairs (`password=***`, quoted or
/// not).
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
    redact_params(&out)
}

/// Replaces the value of every `name=value` whose name is in [`SECRET_PARAMS`]. A name starts
/// the text or follows a space, `?`, `&` or `;`; spaces may surround `=` (libpq allows them);
/// a value ends at whitespace, `&`, `#` or `;`, or, when it opens with a quote, at the
/// matching unescaped quote. Written by hand: no URL crate parses libpq's key/value form.
fn redact_params(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || matches!(bytes[i - 1], b' ' | b'?' | b'&' | b';' | b'\t');
        if !at_boundary {
            i += 1;
            continue;
        }
        let name_end = text[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(text.len(), |n| i + n);
        let name = &text[i..name_end];
        let mut j = name_end;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let is_secret = !name.is_empty()
            && j < bytes.len()
            && bytes[j] == b'='
            && SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name));
        if !is_secret {
            i = name_end.max(i + 1);
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let value_end = if j < bytes.len() && (bytes[j] == b'\'' || bytes[j] == b'"') {
            let quote = char::from(bytes[j]);
            let mut end = text.len();
            let mut escaped = false;
            for (offset, c) in text[j + 1..].char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == quote {
                    end = j + 1 + offset + 1;
                    break;
                }
            }
            end
        } else {
            text[j..]
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '#' | ';'))
                .map_or(text.len(), |n| j + n)
        };
        out.push_str(&text[copied..j]);
        out.push_str("***");
        copied = value_end;
        i = value_end.max(j + 1);
    }
    out.push_str(&text[copied.min(text.len())..]);
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

/// Redacts passwords of every URL and every `password=` pair found in a free text.
fn redact_url_all(text: &str) -> String {
    let urls = text
        .split(' ')
        .map(|word| {
            if word.contains("://") && word.contains('@') {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    redact_params(&urls)
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
    fn database_url_passwords_are_redacted_in_every_form() {
        for (url, shown) in [
            (
                "postgresql://db:5432/gw?user=gw&password=hunter2xyz",
                "postgresql://db:5432/gw?user=gw&password=***",
            ),
            (
                "postgres://db/gw?sslmode=require&PASSWORD=hunter2xyz#x",
                "postgres://db/gw?sslmode=require&PASSWORD=***#x",
            ),
            (
                "host=db port=5432 password=hunter2xyz dbname=gw",
                "host=db port=5432 password=*** dbname=gw",
            ),
            (
                "host=db password = 'hunter 2xyz' user=gw",
                "host=db password = *** user=gw",
            ),
            (
                "postgresql://gw:hunter2xyz@db/gw?sslpassword=hunter2xyz",
                "postgresql://gw:***@db/gw?sslpassword=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let said = scrub(&format!("cannot connect to {url}: refused"), &[]);
            assert!(!said.contains("hunter"), "{said}");
        }
        // Names that only end like a secret one are left alone.
        assert_eq!(redact_url("http://h/?monkey=1"), "http://h/?monkey=1");
        assert_eq!(redact_url("http://h/?keyboard=1"), "http://h/?keyboard=1");
        assert_eq!(
            redact_url("host=é password='pä\\'ss' x=ü"),
            "host=é password=*** x=ü"
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
