//! Which tokenizer counts a model's tokens, and the count. OpenAI's model families get the
//! encoding OpenAI gives them (tiktoken's `o200k_base` or `cl100k_base`, from the
//! `tiktoken-rs` crate, whose BPE tables are compiled into the binary: nothing is read or
//! downloaded at run time); every other model gets the documented approximation of
//! [`rough_tokens`](super::rough_tokens), about four characters a token.
//!
//! The choice is made from the model's own name (`gpt-4o`, not a group alias), as a
//! deployment's `model_info.base_model` or upstream model gives it: a provider or
//! organisation prefix (`openai/gpt-oss-20b`), a fine-tune's `ft:` wrapping and case do not
//! matter. OpenAI's mapping:
//!
//! | encoding | models |
//! |---|---|
//! | `o200k_base` | `gpt-4o…`, `chatgpt-4o…`, `gpt-4.1…`, `gpt-4.5…`, `gpt-5…`, `o1…`, `o3…`, `o4…`, `codex-mini…`, `gpt-oss…` (its `o200k_harmony` differs only in special tokens, which ordinary text never produces) |
//! | `cl100k_base` | `gpt-4`, `gpt-4-…` (`gpt-4-turbo`, `gpt-4-32k`), `gpt-3.5…`, `gpt-35-turbo…` (Azure's spelling), `text-embedding-ada-002`, `text-embedding-3-…`, `davinci-002`, `babbage-002` |
//! | approximation | anything else (Llama, Mistral, Qwen, Gemini, Claude, …) |
//!
//! Long text is encoded in pieces of at most 8 KiB, each cut just before a space that follows
//! a non-space character: the encodings' pre-tokenizer always splits there, so the count is
//! the same as in one piece. Only a stretch of 8 KiB with no such place (one run of spaces,
//! of a single symbol) is cut inside, which can move its count by a token. The pieces keep
//! tiktoken's backtracking regex within bounds: on a run of a million spaces it gives up
//! (o200k_base), and the crate then panics, which would end a release build's process.

use std::sync::LazyLock;

use tiktoken_rs::CoreBPE;

/// A tokenizer for counting (not for encoding requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokenizer {
    /// tiktoken's `o200k_base` (gpt-4o, gpt-4.1, gpt-5, the o-series).
    O200kBase,
    /// tiktoken's `cl100k_base` (gpt-4, gpt-3.5-turbo, the text-embedding models).
    Cl100kBase,
    /// No tokenizer for the model family: about four characters a token.
    Approximate,
}

// The encodings are built on first use, once per process, and kept. Building o200k_base
// (200k ranks parsed from the embedded table into maps) takes about 0.1 s in a release build
// and adds about 45 MB to the resident size; cl100k_base about 40 ms and 25 MB. So a gateway
// that never counts an OpenAI model's tokens pays nothing, the first count of each encoding
// pays that once, and callers on an event loop count in `spawn_blocking`. Building cannot
// fail on the crate's own tables; if it did, counting falls back to the approximation.
static O200K_BASE: LazyLock<Option<CoreBPE>> =
    LazyLock::new(|| load("o200k_base", tiktoken_rs::o200k_base));
static CL100K_BASE: LazyLock<Option<CoreBPE>> =
    LazyLock::new(|| load("cl100k_base", tiktoken_rs::cl100k_base));

fn load(name: &str, build: fn() -> anyhow::Result<CoreBPE>) -> Option<CoreBPE> {
    build()
        .inspect_err(|e| {
            tracing::error!("tokenizer {name} did not load ({e}); counting approximately")
        })
        .ok()
}

impl Tokenizer {
    /// The tokenizer of a model, by its name (see the module's table).
    pub fn for_model(model: &str) -> Self {
        let lower = model.trim().to_ascii_lowercase();
        // A fine-tune (`ft:gpt-4o-mini:org::id`) counts as its base model.
        let name = lower.strip_prefix("ft:").map_or(lower.as_str(), |rest| {
            rest.split(':').next().unwrap_or(rest)
        });
        // `openai/gpt-4o`, `hosted_vllm/openai/gpt-oss-20b`: the last path segment.
        let name = name.rsplit('/').next().unwrap_or(name);
        // A family name alone or followed by a version, date or tag (`o1`, `o1-mini`).
        let family = |f: &str| {
            name.strip_prefix(f)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', ':', '.', '_']))
        };
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
        if starts(&[
            "gpt-4o",
            "chatgpt-4o",
            "gpt-4.1",
            "gpt-4.5",
            "gpt-5",
            "codex-mini",
            "gpt-oss",
        ]) || ["o1", "o3", "o4"].into_iter().any(family)
        {
            Tokenizer::O200kBase
        } else if name == "gpt-4"
            || starts(&["gpt-4-"])
            || starts(&["gpt-3.5", "gpt-35-turbo", "text-embedding-3-"])
            || ["text-embedding-ada-002", "davinci-002", "babbage-002"]
                .into_iter()
                .any(family)
        {
            Tokenizer::Cl100kBase
        } else {
            Tokenizer::Approximate
        }
    }

    /// The encoding's name (`approximate` for the approximation).
    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::O200kBase => "o200k_base",
            Tokenizer::Cl100kBase => "cl100k_base",
            Tokenizer::Approximate => "approximate",
        }
    }

    /// Whether this is a real tokenizer (whose first use loads its table), not the
    /// approximation.
    pub fn is_exact(self) -> bool {
        self != Tokenizer::Approximate
    }

    /// The tokens of `text`, as ordinary text: a special token's spelling in it
    /// (`<|endoftext|>`) counts as the text it is, as a model's API counts a prompt.
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        match self.bpe() {
            Some(bpe) => pieces(text)
                .map(|piece| bpe.encode_ordinary(piece).len() as u64)
                .sum(),
            None => super::rough_tokens(text),
        }
    }

    fn bpe(self) -> Option<&'static CoreBPE> {
        match self {
            Tokenizer::O200kBase => O200K_BASE.as_ref(),
            Tokenizer::Cl100kBase => CL100K_BASE.as_ref(),
            Tokenizer::Approximate => None,
        }
    }
}

/// The most text encoded at once (see the module's doc).
const PIECE_BYTES: usize = 8 * 1024;

/// `text` in consecutive pieces of at most [`PIECE_BYTES`], each cut before a space that
/// follows a non-space where there is one.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = if rest.len() <= PIECE_BYTES {
            rest.len()
        } else {
            let limit = rest.floor_char_boundary(PIECE_BYTES);
            let bytes = rest.as_bytes();
            (1..limit)
                .rev()
                .find(|&i| {
                    bytes[i] == b' '
                        && rest[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|c| !c.is_whitespace())
                })
                .unwrap_or(limit)
        };
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_get_the_encoding_openai_gives_them() {
        for model in [
            "gpt-4o",
            "gpt-4o-mini-2024-07-18",
            "chatgpt-4o-latest",
            "gpt-4.1-nano",
            "gpt-4.5-preview",
            "gpt-5",
            "gpt-5.1-codex",
            "o1",
            "o1-mini",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-oss:20b",
            "openai/gpt-oss-120b",
            "ft:gpt-4o-mini-2024-07-18:acme::abc123",
            "GPT-4o",
        ] {
            assert_eq!(Tokenizer::for_model(model), Tokenizer::O200kBase, "{model}");
        }
        for model in [
            "gpt-4",
            "gpt-4-0613",
            "gpt-4-turbo",
            "gpt-4-32k",
            "gpt-3.5-turbo",
            "gpt-3.5-turbo-instruct",
            "gpt-35-turbo",
            "text-embedding-3-small",
            "text-embedding-ada-002",
            "ft:gpt-3.5-turbo-0125:acme::xyz",
        ] {
            assert_eq!(
                Tokenizer::for_model(model),
                Tokenizer::Cl100kBase,
                "{model}"
            );
        }
    }

    #[test]
    fn other_model_families_get_the_approximation() {
        for model in [
            "llama3",
            "llama3.1:8b",
            "meta-llama/Llama-3.1-8B-Instruct",
            "mistral-large",
            "qwen2.5-coder",
            "gemini-2.5-pro",
            "claude-sonnet-4-5",
            "o1x",
            "omni",
            "gpt-40",
            "",
        ] {
            assert_eq!(
                Tokenizer::for_model(model),
                Tokenizer::Approximate,
                "{model}"
            );
        }
    }

    #[test]
    fn the_encodings_are_the_real_tables() {
        // Token ids tiktoken publishes for "hello world" in each encoding.
        let ids = |t: Tokenizer| t.bpe().map(|b| b.encode_ordinary("hello world"));
        assert_eq!(ids(Tokenizer::O200kBase), Some(vec![24912, 2375]));
        assert_eq!(ids(Tokenizer::Cl100kBase), Some(vec![15339, 1917]));
    }

    #[test]
    fn hello_world_is_two_tokens_and_each_further_word_one_more() {
        // Each " world" is one token: the pre-tokenizer splits a word with its leading
        // space, and " world" is in both vocabularies.
        let long = format!("hello{}", " world".repeat(99));
        for t in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
            assert_eq!(t.count("hello world"), 2, "{}", t.name());
            assert_eq!(t.count(&long), 100, "{}", t.name());
        }
    }

    #[test]
    fn digits_are_counted_in_runs_of_at_most_three() {
        // Both encodings split numbers into runs of 1-3 digits, each one token:
        // 123|456|789|0.
        for t in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
            assert_eq!(t.count("1234567890"), 4, "{}", t.name());
        }
    }

    #[test]
    fn a_special_tokens_spelling_counts_as_ordinary_text() {
        // Not the one <|endoftext|> token: its characters, as several.
        for t in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
            assert!(t.count("<|endoftext|>") > 1, "{}", t.name());
        }
    }

    #[test]
    fn long_text_counts_the_same_in_pieces_as_in_one() {
        // Prose, code, numbers, newlines and non-ASCII text, well over one piece.
        let paragraph = "The quick brown fox (a vulpine) jumps over 1234567 lazy dogs.\n\
                         fn main() {\n    let x = vec![1, 2, 3];\n}\n\
                         Größe, 東京都 and naïve café — don't stop.  \t \n";
        let text = paragraph.repeat(400);
        assert!(text.len() > 5 * PIECE_BYTES);
        for t in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
            let whole = t.bpe().map(|b| b.encode_ordinary(&text).len() as u64);
            assert_eq!(Some(t.count(&text)), whole, "{}", t.name());
        }
        assert_eq!(pieces(&text).collect::<String>(), text);
        assert!(pieces(&text).all(|p| p.len() <= PIECE_BYTES));
    }

    #[test]
    fn a_huge_run_of_one_character_class_is_counted_without_failing() {
        // Runs on which tiktoken's regex alone gives up (and the crate panics).
        for run in [" ", "\t"] {
            let text = run.repeat(1_000_000);
            for t in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
                let n = t.count(&text);
                assert!(n > 0 && n <= 1_000_000, "{run:?} {}: {n}", t.name());
            }
        }
    }

    #[test]
    fn the_approximation_is_four_characters_a_token_rounded_up() {
        assert_eq!(Tokenizer::Approximate.count("hello world"), 3);
        assert_eq!(Tokenizer::Approximate.count("abcd"), 1);
        assert_eq!(Tokenizer::Approximate.count("héllo"), 2);
        assert_eq!(Tokenizer::Approximate.count(""), 0);
    }
}
