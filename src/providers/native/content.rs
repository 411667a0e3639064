//! Reading OpenAI request content for a provider that speaks another protocol: message text,
//! image references, completion prompts as messages, embedding inputs.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::providers::ProviderError;

/// The text of an OpenAI message `content`: a string, or the `text` parts of a list.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push_str(text);
                } else if let Some(text) = part.as_str() {
                    out.push_str(text);
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// An image (or file) reference from an `image_url` part.
pub enum ImageRef<'a> {
    /// A `data:` URL: media type and base64 payload.
    Inline {
        media_type: &'a str,
        data: &'a str,
    },
    Url(&'a str),
}

/// Reads an OpenAI `image_url` value (`"url"` or `{"url": ...}`).
pub fn image_ref(part: &Value) -> Option<ImageRef<'_>> {
    let url = match part.get("image_url")? {
        Value::String(s) => s.as_str(),
        other => other.get("url")?.as_str()?,
    };
    Some(parse_data_url(url).unwrap_or(ImageRef::Url(url)))
}

/// `data:image/png;base64,AAAA` into its media type and payload.
pub fn parse_data_url(url: &str) -> Option<ImageRef<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(ImageRef::Inline { media_type, data })
}

/// A 400 about the request's content, naming the field.
pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProviderError {
    ProviderError::Rejected(ApiError::invalid(message, param))
}

/// `/v1/completions` on a chat-only provider: the prompt becomes one user message.
pub fn prompt_to_messages(body: &mut Map<String, Value>) -> Result<(), ProviderError> {
    let prompt = match body.remove("prompt") {
        Some(Value::String(s)) => s,
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        _ => {
            return Err(invalid(
                "'prompt' must be one string for this provider.",
                "prompt",
            ));
        }
    };
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    Ok(())
}

/// The texts of an embeddings `input` (a string or a list of strings).
pub fn embedding_inputs(body: &mut Map<String, Value>) -> Result<Vec<String>, ProviderError> {
    let bad = || {
        invalid(
            "'input' must be a string or a list of strings for this provider.",
            "input",
        )
    };
    match body.remove("input") {
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// The parameters embeddings take on every provider (`encoding_format: float` is the default).
pub fn embedding_accepts(name: &str, value: &Value, dimensions: bool) -> bool {
    match name {
        "encoding_format" => value.as_str() == Some("float"),
        "dimensions" => dimensions,
        _ => false,
    }
}
