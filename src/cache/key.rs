//! Cache keys: SHA-256 over the model group and the request fields that change the answer,
//! serialized as canonical JSON (sorted keys, no whitespace) so field order never matters.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::Endpoint;

/// Top-level request fields that do not change the answer (transport, bookkeeping, routing
/// and the cache controls themselves). `model` is replaced by the model group.
const NON_SEMANTIC_FIELDS: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "litellm_metadata",
    "cache",
    "caching",
    "no-log",
    "tags",
    "timeout",
    "request_timeout",
    "num_retries",
    "max_retries",
    "fallbacks",
    "context_window_fallbacks",
    "litellm_call_id",
    "litellm_logging_obj",
    "proxy_server_request",
    "secret_fields",
    "api_key",
    "extra_headers",
    "guardrails",
    "store",
    "prompt_cache_key",
    "safety_identifier",
];

/// The cache key (lowercase hex SHA-256) of a request body for a model group and call type.
pub fn cache_key(call: Endpoint, model_group: &str, body: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"call\":");
    write_str(call.call_type(), &mut out);
    out.extend_from_slice(b",\"model\":");
    write_str(model_group, &mut out);
    out.extend_from_slice(b",\"request\":");
    match body {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, _)| !NON_SEMANTIC_FIELDS.contains(&k.as_str()))
                .collect();
            fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_object(&fields, &mut out);
        }
        other => write_canonical(other, &mut out),
    }
    out.push(b'}');
    hex::encode(Sha256::digest(&out))
}

/// Canonical JSON of a value: object keys sorted, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
            write_object(&fields, out);
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_str(s, out),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn write_object(fields: &[(&String, &Value)], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, out);
        out.push(b':');
        write_canonical(v, out);
    }
    out.push(b'}');
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail; an empty string is the harmless fallback.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_and_non_semantic_fields_do_not_matter() {
        let a = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                       "temperature": 0.2, "stream": true, "user": "u1",
                       "metadata": {"x": 1}, "cache": {"ttl": 5}});
        let b = json!({"temperature": 0.2, "messages": [{"content": "hi", "role": "user"}],
                       "model": "alias"});
        assert_eq!(
            cache_key(Endpoint::Chat, "gpt-4o", &a),
            cache_key(Endpoint::Chat, "gpt-4o", &b)
        );
    }

    #[test]
    fn semantic_fields_change_the_key() {
        let base = json!({"messages": [{"role": "user", "content": "hi"}]});
        let k = cache_key(Endpoint::Chat, "gpt-4o", &base);
        assert_eq!(k.len(), 64);
        for changed in [
            json!({"messages": [{"role": "user", "content": "hi!"}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 1}),
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": []}),
        ] {
            assert_ne!(k, cache_key(Endpoint::Chat, "gpt-4o", &changed));
        }
        assert_ne!(k, cache_key(Endpoint::Chat, "gpt-4o-mini", &base));
        assert_ne!(k, cache_key(Endpoint::Completion, "gpt-4o", &base));
    }

    #[test]
    fn canonical_sorts_nested_keys() {
        assert_eq!(
            canonical_json(&json!({"b": [ {"z": 1, "a": "\"q"} ], "a": null})),
            r#"{"a":null,"b":[{"a":"\"q","z":1}]}"#
        );
    }
}
