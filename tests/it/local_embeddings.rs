//! Local embeddings: the engine against sentence-transformers' reference vectors for
//! all-MiniLM-L6-v2, batching, and the errors for missing or malformed model directories.
//!
//! The reference model is fetched by `.ci/fetch-model.sh`; the tests find it via
//! `HX_TEST_MODEL_DIR` or in `$HOME/.cache/hx-gateway/models/all-MiniLM-L6-v2`. Without it they
//! skip loudly, unless `HX_REQUIRE_MODEL=1` (CI), where they fail. The other tests build a tiny
//! random BERT model in a temporary directory and always run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use hx_gateway::embeddings::local::{
    LocalEmbedder, LocalEmbedderOptions, LocalModelError, SENTENCE_BERT_CONFIG_FILE,
};
use hx_gateway::error::ApiError;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The reference vectors (made with sentence-transformers), kept in the repository.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/minilm-l6-v2-reference.json"
);

#[derive(Deserialize)]
pub(crate) struct Reference {
    model_safetensors_sha256: String,
    pub(crate) max_seq_length: usize,
    pub(crate) cases: Vec<ReferenceCase>,
}

#[derive(Deserialize)]
pub(crate) struct ReferenceCase {
    pub(crate) text: String,
    pub(crate) token_count: usize,
    pub(crate) embedding: Vec<f32>,
}

fn fixture_path() -> PathBuf {
    PathBuf::from(FIXTURE)
}

pub(crate) fn reference() -> Reference {
    let path = fixture_path();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// The reference model's directory, or `None` after a loud skip message (a failure when
/// `HX_REQUIRE_MODEL=1`).
pub(crate) fn reference_model_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("HX_TEST_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/hx-gateway/models/all-MiniLM-L6-v2"),
    };
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var("HX_REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!(
            "local embedding model not found in {} and HX_REQUIRE_MODEL=1: run .ci/fetch-model.sh \
             or set HX_TEST_MODEL_DIR",
            dir.display()
        );
    }
    // Written to the real stderr, not through `eprintln!`, which the test harness captures
    // and hides for passing tests.
    let message = format!(
        "\n**********\nSKIPPED: local embedding model not found in {} (run .ci/fetch-model.sh or \
         set HX_TEST_MODEL_DIR); the tests that need it did NOT run\n**********\n",
        dir.display()
    );
    let _ = std::io::stderr().write_all(message.as_bytes());
    None
}

/// One loaded reference model shared by the tests (the engine does not depend on a runtime).
fn reference_embedder() -> Option<&'static LocalEmbedder> {
    static EMBEDDER: OnceLock<LocalEmbedder> = OnceLock::new();
    let dir = reference_model_dir()?;
    Some(EMBEDDER.get_or_init(|| {
        LocalEmbedder::load(&dir, LocalEmbedderOptions::default())
            .unwrap_or_else(|e| panic!("loading the reference model: {e}"))
    }))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub(crate) fn assert_matches_reference(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: dimension");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5,
            "{what}: dimension {i} is {g}, reference {w}"
        );
    }
    let cos = cosine(got, want);
    assert!(cos > 0.9999, "{what}: cosine {cos}");
}

pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn reference_model_file_has_the_fixture_checksum() {
    let Some(dir) = reference_model_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        digest,
        reference().model_safetensors_sha256,
        "model.safetensors in {} is not the file the reference vectors were made from",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_vectors_match_each_text_alone() {
    let Some(embedder) = reference_embedder() else {
        return;
    };
    let reference = reference();
    assert_eq!(embedder.dimension(), 384);
    assert_eq!(embedder.max_seq_length(), reference.max_seq_length);
    let mut truncated = 0;
    for case in &reference.cases {
        let out = embedder.embed(vec![case.text.clone()], None).await.unwrap();
        assert_eq!(out.vectors.len(), 1);
        assert_matches_reference(&out.vectors[0], &case.embedding, &case.text);
        assert_eq!(
            out.prompt_tokens,
            case.token_count.min(reference.max_seq_length),
            "tokens of {:?}",
            case.text
        );
        if case.token_count > reference.max_seq_length {
            truncated += 1;
        }
    }
    // The fixture must keep exercising truncation at 256 (not the tokenizer file's 128).
    assert!(truncated >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_vectors_match_in_one_batch() {
    let Some(embedder) = reference_embedder() else {
        return;
    };
    let reference = reference();
    let texts: Vec<String> = reference.cases.iter().map(|c| c.text.clone()).collect();
    let out = embedder.embed(texts, None).await.unwrap();
    assert_eq!(out.vectors.len(), reference.cases.len());
    for (got, case) in out.vectors.iter().zip(&reference.cases) {
        assert_matches_reference(got, &case.embedding, &case.text);
    }
    let tokens: usize = reference
        .cases
        .iter()
        .map(|c| c.token_count.min(reference.max_seq_length))
        .sum();
    assert_eq!(out.prompt_tokens, tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_model_rejects_dimensions() {
    let Some(embedder) = reference_embedder() else {
        return;
    };
    let err = embedder
        .embed(vec!["hello".into()], Some(128))
        .await
        .unwrap_err();
    assert!(matches!(err, LocalModelError::DimensionsUnsupported { .. }));
    let api: ApiError = err.into();
    assert_eq!(api.status().as_u16(), 400);
    assert_eq!(api.param.as_deref(), Some("dimensions"));
    // The native size is not a change, so it is accepted.
    let out = embedder
        .embed(vec!["hello".into()], Some(384))
        .await
        .unwrap();
    assert_eq!(out.vectors[0].len(), 384);
}

/// Many callers at once (so the worker merges their requests into shared batches) get what
/// they get when asking alone.
async fn concurrent_calls_match_single_calls(
    embedder: &'static LocalEmbedder,
    texts: Vec<String>,
    rounds: usize,
) {
    let mut alone = Vec::new();
    for text in &texts {
        let out = embedder.embed(vec![text.clone()], None).await.unwrap();
        alone.push(out.vectors[0].clone());
    }
    let mut tasks = Vec::new();
    for round in 0..rounds {
        for (i, text) in texts.iter().enumerate() {
            // Mix single-text and multi-text requests.
            let request = if (i + round) % 3 == 0 {
                vec![text.clone(), texts[(i + 1) % texts.len()].clone()]
            } else {
                vec![text.clone()]
            };
            let indexes = if request.len() == 2 {
                vec![i, (i + 1) % texts.len()]
            } else {
                vec![i]
            };
            tasks.push(tokio::spawn(async move {
                (indexes, embedder.embed(request, None).await.unwrap())
            }));
        }
    }
    for task in tasks {
        let (indexes, out) = task.await.unwrap();
        assert_eq!(out.vectors.len(), indexes.len());
        for (vector, i) in out.vectors.iter().zip(indexes) {
            let diff = max_abs_diff(vector, &alone[i]);
            // Same maths; only the padding of the shared batch differs, which the attention
            // mask cancels. Allow float rounding, nothing more.
            assert!(diff <= 1e-6, "text {i}: batched differs by {diff}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_model_concurrent_callers_match_single_calls() {
    let Some(embedder) = reference_embedder() else {
        return;
    };
    let texts = reference().cases.into_iter().map(|c| c.text).collect();
    concurrent_calls_match_single_calls(embedder, texts, 2).await;
}

// ---- a tiny random BERT model, always available ----

const TINY_VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "quick", "brown", "fox",
    "jumps", "over", "lazy", "dog", "##s", "a", "b", "c", ".",
];

fn tiny_config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 16,
        "initializer_range": 0.02,
        "intermediate_size": 32,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": 2,
        "vocab_size": TINY_VOCAB.len(),
    })
}

/// A BERT WordPiece tokenizer like the real one, including its fixed padding (8 here) and
/// truncation (6 here) that the engine must override.
fn tiny_tokenizer() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = TINY_VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t).to_string(), serde_json::json!(i)))
        .collect();
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 6, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"),
            special(3, "[SEP]"), special(4, "[MASK]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// Writes a complete tiny model directory with random weights.
fn write_tiny_model(dir: &Path) {
    let config = tiny_config();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tiny_tokenizer().to_string()).unwrap();
    std::fs::write(
        dir.join(SENTENCE_BERT_CONFIG_FILE),
        r#"{"max_seq_length": 10, "do_lower_case": false}"#,
    )
    .unwrap();
    let config: BertConfig = serde_json::from_value(config).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, &config).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}

fn tiny_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path());
    dir
}

fn tiny_embedder(opts: LocalEmbedderOptions) -> (tempfile::TempDir, LocalEmbedder) {
    let dir = tiny_model_dir();
    let embedder = LocalEmbedder::load(dir.path(), opts).unwrap();
    (dir, embedder)
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pads_per_batch_and_truncates_at_sentence_bert_max() {
    let (_dir, embedder) = tiny_embedder(LocalEmbedderOptions::default());
    assert_eq!(embedder.dimension(), 16);
    assert_eq!(embedder.max_seq_length(), 10);
    // "hello world" is [CLS] hello world [SEP]: 4 tokens, not the file's fixed 8.
    let out = embedder
        .embed(vec!["Hello world".into()], None)
        .await
        .unwrap();
    assert_eq!(out.prompt_tokens, 4);
    // 14 words: truncated at 10 (sentence_bert_config.json), not the file's 6.
    let long = "the quick brown fox jumps over the lazy dog the quick brown fox jumps".to_string();
    let out = embedder
        .embed(vec![long, "a b c".into()], None)
        .await
        .unwrap();
    assert_eq!(out.prompt_tokens, 10 + 5);
    for v in &out.vectors {
        assert_eq!(v.len(), 16);
        assert!((norm(v) - 1.0).abs() < 1e-5, "not unit length: {}", norm(v));
    }
    assert_ne!(out.vectors[0], out.vectors[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_seq_length_option_overrides_the_files() {
    let opts = LocalEmbedderOptions {
        max_seq_length: Some(5),
        ..LocalEmbedderOptions::default()
    };
    let (_dir, embedder) = tiny_embedder(opts);
    assert_eq!(embedder.max_seq_length(), 5);
    let out = embedder
        .embed(vec!["the quick brown fox jumps over".into()], None)
        .await
        .unwrap();
    assert_eq!(out.prompt_tokens, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_model_concurrent_callers_match_single_calls() {
    static EMBEDDER: OnceLock<(tempfile::TempDir, LocalEmbedder)> = OnceLock::new();
    let (_, embedder) = EMBEDDER.get_or_init(|| {
        tiny_embedder(LocalEmbedderOptions {
            max_batch: 4,
            ..LocalEmbedderOptions::default()
        })
    });
    let texts = [
        "hello",
        "hello world",
        "the quick brown fox",
        "the lazy dog jumps over the quick fox",
        "a",
        "a b c .",
        "dogs",
        "unknown words here",
    ]
    .map(String::from)
    .to_vec();
    concurrent_calls_match_single_calls(embedder, texts, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimensions_are_refused_unless_the_model_is_truncatable() {
    let (dir, plain) = tiny_embedder(LocalEmbedderOptions::default());
    let err = plain
        .embed(vec!["hello".into()], Some(8))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LocalModelError::DimensionsUnsupported {
                requested: 8,
                native: 16
            }
        ),
        "{err:?}"
    );
    let api: ApiError = err.into();
    assert_eq!(api.status().as_u16(), 400);
    assert_eq!(api.param.as_deref(), Some("dimensions"));

    let matryoshka = LocalEmbedder::load(
        dir.path(),
        LocalEmbedderOptions {
            truncatable_dimensions: true,
            ..LocalEmbedderOptions::default()
        },
    )
    .unwrap();
    assert!(matryoshka.supports_dimensions());
    let full = matryoshka
        .embed(vec!["hello world".into()], None)
        .await
        .unwrap();
    let cut = matryoshka
        .embed(vec!["hello world".into()], Some(8))
        .await
        .unwrap();
    let prefix = &full.vectors[0][..8];
    let want: Vec<f32> = prefix.iter().map(|x| x / norm(prefix)).collect();
    assert_eq!(cut.vectors[0].len(), 8);
    assert!(max_abs_diff(&cut.vectors[0], &want) < 1e-6);
    for bad in [0, 17] {
        let err = matryoshka
            .embed(vec!["hello".into()], Some(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LocalModelError::DimensionsUnsupported { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_input_is_a_400_on_input() {
    let (_dir, embedder) = tiny_embedder(LocalEmbedderOptions::default());
    let err = embedder.embed(Vec::new(), None).await.unwrap_err();
    assert!(matches!(err, LocalModelError::EmptyInput));
    let api: ApiError = err.into();
    assert_eq!(api.status().as_u16(), 400);
    assert_eq!(api.param.as_deref(), Some("input"));
    // An empty string is still a text: [CLS] [SEP].
    let out = embedder.embed(vec![String::new()], None).await.unwrap();
    assert_eq!(out.prompt_tokens, 2);
    assert!((norm(&out.vectors[0]) - 1.0).abs() < 1e-5);
}

/// Loads `dir` and returns the error message, which must exist.
fn load_error(dir: &Path) -> String {
    match LocalEmbedder::load(dir, LocalEmbedderOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_names(message: &str, file: &str) {
    assert!(
        message.contains(file),
        "error should name {file}: {message}"
    );
}

#[test]
fn missing_directory_or_files_are_named() {
    let parent = tempfile::tempdir().unwrap();
    assert_names(&load_error(&parent.path().join("nope")), "config.json");

    let dir = tiny_model_dir();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let moved = dir.path().join(format!("{file}.away"));
        std::fs::rename(dir.path().join(file), &moved).unwrap();
        let message = load_error(dir.path());
        assert_names(&message, file);
        assert!(message.contains("missing"), "{message}");
        std::fs::rename(&moved, dir.path().join(file)).unwrap();
    }
    // Optional files may be absent.
    std::fs::remove_file(dir.path().join(SENTENCE_BERT_CONFIG_FILE)).unwrap();
    let embedder = LocalEmbedder::load(dir.path(), LocalEmbedderOptions::default()).unwrap();
    assert_eq!(embedder.max_seq_length(), 64);
}

#[test]
fn malformed_files_are_named() {
    let dir = tiny_model_dir();
    let path = |f: &str| dir.path().join(f);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("config.json", b"{not json".to_vec()),
        ("config.json", br#"{"hidden_size": 16}"#.to_vec()),
        ("tokenizer.json", b"{\"model\": 3}".to_vec()),
        ("model.safetensors", b"not a safetensors file".to_vec()),
        ("model.safetensors", Vec::new()),
        (SENTENCE_BERT_CONFIG_FILE, b"[1, 2".to_vec()),
        (
            "1_Pooling/config.json",
            b"{\"pooling_mode_max_tokens\": true}".to_vec(),
        ),
    ];
    for (file, bytes) in cases {
        let original = std::fs::read(path(file)).ok();
        std::fs::create_dir_all(path(file).parent().unwrap()).unwrap();
        std::fs::write(path(file), &bytes).unwrap();
        let message = load_error(dir.path());
        assert_names(&message, file);
        match original {
            Some(original) => std::fs::write(path(file), original).unwrap(),
            None => std::fs::remove_file(path(file)).unwrap(),
        }
    }

    // A weights file cut short.
    let weights = std::fs::read(path("model.safetensors")).unwrap();
    std::fs::write(path("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    assert_names(&load_error(dir.path()), "model.safetensors");
    std::fs::write(path("model.safetensors"), &weights).unwrap();

    // Config and weights that do not fit each other.
    let mut config = tiny_config();
    config["hidden_size"] = serde_json::json!(32);
    std::fs::write(path("config.json"), config.to_string()).unwrap();
    assert_names(&load_error(dir.path()), "model.safetensors");

    // A config that would divide by zero later.
    config["num_attention_heads"] = serde_json::json!(0);
    std::fs::write(path("config.json"), config.to_string()).unwrap();
    assert_names(&load_error(dir.path()), "config.json");

    // Not a BERT model.
    let mut config = tiny_config();
    config["model_type"] = serde_json::json!("xlm-roberta");
    std::fs::write(path("config.json"), config.to_string()).unwrap();
    assert_names(&load_error(dir.path()), "config.json");

    // A tokenizer with more tokens than the model has embeddings.
    let mut config = tiny_config();
    config["vocab_size"] = serde_json::json!(5);
    std::fs::write(path("config.json"), config.to_string()).unwrap();
    assert_names(&load_error(dir.path()), "tokenizer.json");

    // Restored, it loads.
    std::fs::write(path("config.json"), tiny_config().to_string()).unwrap();
    LocalEmbedder::load(dir.path(), LocalEmbedderOptions::default()).unwrap();
}
