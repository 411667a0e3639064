//! In-process sentence embeddings: a BERT-family sentence-transformers model run with candle.
//!
//! [`LocalEmbedder::load`] reads a model directory in the Hugging Face layout (`config.json`,
//! `tokenizer.json`, `model.safetensors`, optionally `sentence_bert_config.json` and
//! `1_Pooling/config.json`); nothing is ever downloaded. Inference runs on a few dedicated OS
//! threads fed by a bounded channel, never on the async runtime: each thread takes whatever
//! requests are queued (up to `max_batch` texts), runs them through the model together and
//! answers each caller on its own oneshot channel. Output matches sentence-transformers: mean
//! pooling over the attention mask (or CLS pooling when the pooling config says so), then L2
//! normalisation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, ErrorKind};

/// The files of a model directory, named in errors so an operator knows which one to fix.
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SENTENCE_BERT_CONFIG_FILE: &str = "sentence_bert_config.json";
pub const POOLING_CONFIG_FILE: &str = "1_Pooling/config.json";

/// What can go wrong loading or running a local embedding model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LocalModelError {
    /// A required file of the model directory does not exist (or the directory itself does not).
    #[error("local embedding model: {} is missing", path.display())]
    MissingFile { path: PathBuf },
    /// A file exists but cannot be read or does not hold what it should.
    #[error("local embedding model: {} is malformed: {reason}", path.display())]
    MalformedFile { path: PathBuf, reason: String },
    /// The inference threads could not be started.
    #[error("local embedding model: cannot start inference threads: {0}")]
    Startup(String),
    /// `dimensions` was given but the model cannot produce that size.
    #[error(
        "this model does not support 'dimensions' = {requested} (its embeddings have {native} dimensions)"
    )]
    DimensionsUnsupported { requested: usize, native: usize },
    /// No text to embed.
    #[error("'input' must not be empty")]
    EmptyInput,
    /// The tokenizer rejected a text.
    #[error("'input' could not be tokenized: {0}")]
    Tokenization(String),
    /// The model failed on a batch (a bug or resource exhaustion, not bad input).
    #[error("local embedding inference failed: {0}")]
    Inference(String),
    /// The inference threads are gone (shut down or died).
    #[error("local embedding model is not running")]
    Unavailable,
}

impl From<LocalModelError> for ApiError {
    fn from(err: LocalModelError) -> Self {
        let message = err.to_string();
        match err {
            LocalModelError::DimensionsUnsupported { .. } => {
                ApiError::invalid(message, "dimensions")
            }
            LocalModelError::EmptyInput | LocalModelError::Tokenization(_) => {
                ApiError::invalid(message, "input")
            }
            LocalModelError::Inference(_) => ApiError::internal(message),
            // A model that failed to load or stopped is a dependency being unavailable.
            LocalModelError::MissingFile { .. }
            | LocalModelError::MalformedFile { .. }
            | LocalModelError::Startup(_)
            | LocalModelError::Unavailable => ApiError::new(ErrorKind::Unavailable, message),
        }
    }
}

/// How a loaded model is run.
#[derive(Debug, Clone)]
pub struct LocalEmbedderOptions {
    /// Most texts run through the model in one forward pass; queued requests are merged up to
    /// this many texts (a single larger request is split into passes of this size).
    pub max_batch: usize,
    /// Dedicated inference threads. candle already spreads each matrix product over all cores,
    /// so one is right on small machines; more only helps with many cores.
    pub workers: usize,
    /// Requests that may wait for a thread before callers of `embed` wait to enqueue.
    pub queue_depth: usize,
    /// Truncation length in tokens; `None`: `sentence_bert_config.json`'s `max_seq_length`, else
    /// the model's `max_position_embeddings`. Always capped at `max_position_embeddings`.
    pub max_seq_length: Option<usize>,
    /// The model was trained Matryoshka-style, so a prefix of its embedding is itself a good
    /// embedding: `dimensions` is then honoured by truncating and re-normalising. Plain BERT
    /// models are not, and `dimensions` other than the native size is rejected.
    pub truncatable_dimensions: bool,
}

impl Default for LocalEmbedderOptions {
    fn default() -> Self {
        LocalEmbedderOptions {
            max_batch: 32,
            workers: 1,
            queue_depth: 256,
            max_seq_length: None,
            truncatable_dimensions: false,
        }
    }
}

/// The answer to one `embed` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model read for these texts, after truncation, counting `[CLS]` and `[SEP]`
    /// (the `usage.prompt_tokens` of the response).
    pub prompt_tokens: usize,
}

/// A loaded sentence-embedding model and the threads that run it. Cheap to clone; the threads
/// stop when the last clone is dropped.
#[derive(Clone)]
pub struct LocalEmbedder {
    jobs: mpsc::Sender<Job>,
    dimension: usize,
    max_seq_length: usize,
    truncatable_dimensions: bool,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("dimension", &self.dimension)
            .field("max_seq_length", &self.max_seq_length)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads the model in `model_path` and starts its inference threads. Blocking (reads the
    /// weights, ~90 MB for all-MiniLM-L6-v2): call it at startup or via `spawn_blocking`.
    /// Any missing or malformed file gives an error whose message names that file.
    pub fn load(
        model_path: &Path,
        opts: LocalEmbedderOptions,
    ) -> Result<LocalEmbedder, LocalModelError> {
        let engine = Arc::new(Engine::load(model_path, &opts)?);
        let dimension = engine.dimension;
        let max_seq_length = engine.max_seq_length;
        let max_batch = opts.max_batch.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>(opts.queue_depth.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..opts.workers.max(1) {
            let engine = Arc::clone(&engine);
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("hx-local-embed-{index}"))
                .spawn(move || worker_loop(&engine, &receiver, max_batch))
                .map_err(|e| LocalModelError::Startup(e.to_string()))?;
        }
        Ok(LocalEmbedder {
            jobs,
            dimension,
            max_seq_length,
            truncatable_dimensions: opts.truncatable_dimensions,
        })
    }

    /// Embeds `texts` (unit-length vectors, input order). `dimensions` is honoured only for
    /// models loaded with `truncatable_dimensions`; otherwise anything but the native size is
    /// [`LocalModelError::DimensionsUnsupported`].
    pub async fn embed(
        &self,
        texts: Vec<String>,
        dimensions: Option<usize>,
    ) -> Result<Embeddings, LocalModelError> {
        let keep = self.check_dimensions(dimensions)?;
        if texts.is_empty() {
            return Err(LocalModelError::EmptyInput);
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { texts, reply })
            .await
            .map_err(|_| LocalModelError::Unavailable)?;
        let mut embeddings = answer.await.map_err(|_| LocalModelError::Unavailable)??;
        if let Some(keep) = keep {
            for vector in &mut embeddings.vectors {
                vector.truncate(keep);
                normalize(vector);
            }
        }
        Ok(embeddings)
    }

    /// The size of the model's embeddings (384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Tokens per text after which input is truncated (256 for all-MiniLM-L6-v2).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Whether `dimensions` below the native size can be honoured.
    pub fn supports_dimensions(&self) -> bool {
        self.truncatable_dimensions
    }

    /// `Some(n)`: cut vectors to `n` and re-normalise; `None`: leave them as they are.
    fn check_dimensions(
        &self,
        dimensions: Option<usize>,
    ) -> Result<Option<usize>, LocalModelError> {
        match dimensions {
            None => Ok(None),
            Some(n) if n == self.dimension => Ok(None),
            Some(n) if self.truncatable_dimensions && n > 0 && n < self.dimension => Ok(Some(n)),
            Some(n) => Err(LocalModelError::DimensionsUnsupported {
                requested: n,
                native: self.dimension,
            }),
        }
    }
}

/// Scales `vector` to unit length, as `torch.nn.functional.normalize` does (eps 1e-12).
fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    for x in vector.iter_mut() {
        *x /= norm;
    }
}

/// One caller's request, answered on `reply`.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Embeddings, LocalModelError>>,
}

/// Takes queued jobs (up to `max_batch` texts), runs them together, repeats until every
/// `LocalEmbedder` clone is gone.
fn worker_loop(engine: &Engine, receiver: &Mutex<mpsc::Receiver<Job>>, max_batch: usize) {
    loop {
        let jobs = {
            let mut receiver = receiver.lock();
            let Some(first) = receiver.blocking_recv() else {
                return;
            };
            let mut texts = first.texts.len();
            let mut jobs = vec![first];
            while texts < max_batch {
                match receiver.try_recv() {
                    Ok(job) => {
                        texts += job.texts.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        run_jobs(engine, jobs, max_batch);
    }
}

/// Where one job stands while its texts go through the model.
struct JobState {
    reply: oneshot::Sender<Result<Embeddings, LocalModelError>>,
    vectors: Vec<Vec<f32>>,
    prompt_tokens: usize,
    error: Option<LocalModelError>,
}

/// Tokenizes every text of `jobs`, runs them in passes of at most `max_batch` texts sorted by
/// length (so short texts are not padded to a long one), and answers each job.
fn run_jobs(engine: &Engine, jobs: Vec<Job>, max_batch: usize) {
    let mut states = Vec::with_capacity(jobs.len());
    // (job, position in the job, token ids)
    let mut sequences: Vec<(usize, usize, Vec<u32>)> = Vec::new();
    for job in jobs {
        // The caller gave up (client went away): skip the work.
        if job.reply.is_closed() {
            continue;
        }
        let index = states.len();
        let mut state = JobState {
            reply: job.reply,
            vectors: vec![Vec::new(); job.texts.len()],
            prompt_tokens: 0,
            error: None,
        };
        match engine.tokenize(&job.texts) {
            Ok(ids) => {
                for (position, ids) in ids.into_iter().enumerate() {
                    state.prompt_tokens += ids.len();
                    sequences.push((index, position, ids));
                }
            }
            Err(e) => state.error = Some(e),
        }
        states.push(state);
    }
    sequences.sort_by_key(|(_, _, ids)| ids.len());
    for chunk in sequences.chunks(max_batch) {
        let batch: Vec<&[u32]> = chunk.iter().map(|(_, _, ids)| ids.as_slice()).collect();
        match engine.forward(&batch) {
            Ok(vectors) => {
                for ((job, position, _), vector) in chunk.iter().zip(vectors) {
                    if let Some(slot) = states[*job].vectors.get_mut(*position) {
                        *slot = vector;
                    }
                }
            }
            Err(e) => {
                let error = LocalModelError::Inference(e.to_string());
                for (job, _, _) in chunk {
                    states[*job].error.get_or_insert_with(|| error.clone());
                }
            }
        }
    }
    for state in states {
        let answer = match state.error {
            Some(e) => Err(e),
            None => Ok(Embeddings {
                vectors: state.vectors,
                prompt_tokens: state.prompt_tokens,
            }),
        };
        // The caller may have gone away meanwhile; nothing to do then.
        let _ = state.reply.send(answer);
    }
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// Mean over the tokens the attention mask keeps (sentence-transformers' usual choice).
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
}

/// `sentence_bert_config.json`: only the truncation length matters here.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// `1_Pooling/config.json` of sentence-transformers.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

/// The model, its tokenizer and what is needed to run them; shared by the worker threads.
struct Engine {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
    pooling: Pooling,
    dimension: usize,
    max_seq_length: usize,
}

/// Reads a file of the model directory; a missing one is reported as missing, by name.
fn read_model_file(path: &Path) -> Result<Vec<u8>, LocalModelError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LocalModelError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => malformed(path, e),
    })
}

/// Reads an optional file: `Ok(None)` if it does not exist.
fn read_optional_file(path: &Path) -> Result<Option<Vec<u8>>, LocalModelError> {
    match read_model_file(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(LocalModelError::MissingFile { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn malformed(path: &Path, reason: impl std::fmt::Display) -> LocalModelError {
    LocalModelError::MalformedFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Rejects configs that would make candle fail or divide by zero later, when serving.
fn validate_config(config: &BertConfig) -> Result<(), String> {
    if let Some(model_type) = &config.model_type
        && model_type != "bert"
    {
        return Err(format!(
            "model_type {model_type:?} is not supported (only BERT models are)"
        ));
    }
    let sizes = [
        ("vocab_size", config.vocab_size),
        ("hidden_size", config.hidden_size),
        ("num_hidden_layers", config.num_hidden_layers),
        ("num_attention_heads", config.num_attention_heads),
        ("intermediate_size", config.intermediate_size),
        ("max_position_embeddings", config.max_position_embeddings),
        ("type_vocab_size", config.type_vocab_size),
    ];
    if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
        return Err(format!("{name} must be positive"));
    }
    if !config
        .hidden_size
        .is_multiple_of(config.num_attention_heads)
    {
        return Err(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size, config.num_attention_heads
        ));
    }
    Ok(())
}

impl Engine {
    fn load(dir: &Path, opts: &LocalEmbedderOptions) -> Result<Engine, LocalModelError> {
        let config_path = dir.join(CONFIG_FILE);
        let config: BertConfig = serde_json::from_slice(&read_model_file(&config_path)?)
            .map_err(|e| malformed(&config_path, e))?;
        validate_config(&config).map_err(|e| malformed(&config_path, e))?;

        // Truncation length: the option, else sentence-transformers' own setting (256 for
        // all-MiniLM-L6-v2, where tokenizer.json says 128), else what the positions allow.
        let sbert_path = dir.join(SENTENCE_BERT_CONFIG_FILE);
        let sbert_max = match read_optional_file(&sbert_path)? {
            Some(bytes) => {
                serde_json::from_slice::<SentenceBertConfig>(&bytes)
                    .map_err(|e| malformed(&sbert_path, e))?
                    .max_seq_length
            }
            None => None,
        };
        let max_seq_length = opts
            .max_seq_length
            .or(sbert_max)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        if max_seq_length < 2 {
            return Err(malformed(
                &sbert_path,
                format!("max_seq_length {max_seq_length} leaves no room for text"),
            ));
        }

        let pooling_path = dir.join(POOLING_CONFIG_FILE);
        let pooling = match read_optional_file(&pooling_path)? {
            None => Pooling::Mean,
            Some(bytes) => {
                let pooling: PoolingConfig =
                    serde_json::from_slice(&bytes).map_err(|e| malformed(&pooling_path, e))?;
                if pooling.pooling_mode_mean_tokens {
                    Pooling::Mean
                } else if pooling.pooling_mode_cls_token {
                    Pooling::Cls
                } else {
                    return Err(malformed(
                        &pooling_path,
                        "unsupported pooling mode (only mean and CLS pooling are)",
                    ));
                }
            }
        };

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let mut tokenizer = Tokenizer::from_bytes(read_model_file(&tokenizer_path)?)
            .map_err(|e| malformed(&tokenizer_path, e))?;
        // The file pads every text to a fixed 128 tokens; pad per batch ourselves instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| malformed(&tokenizer_path, e))?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab > config.vocab_size {
            return Err(malformed(
                &tokenizer_path,
                format!(
                    "it has {tokenizer_vocab} tokens but {CONFIG_FILE} says vocab_size {}",
                    config.vocab_size
                ),
            ));
        }

        let weights_path = dir.join(WEIGHTS_FILE);
        let device = Device::Cpu;
        // Read into memory rather than mmap: no `unsafe`, and the buffer is freed once the
        // tensors are built.
        let vb = VarBuilder::from_buffered_safetensors(
            read_model_file(&weights_path)?,
            DType::F32,
            &device,
        )
        .map_err(|e| malformed(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| {
            malformed(
                &weights_path,
                format!("does not fit {CONFIG_FILE} as a BERT model: {e}"),
            )
        })?;

        Ok(Engine {
            model,
            tokenizer,
            device,
            pad_id: u32::try_from(config.pad_token_id).unwrap_or(0),
            pooling,
            dimension: config.hidden_size,
            max_seq_length,
        })
    }

    /// Token ids of each text, with `[CLS]`/`[SEP]`, truncated at `max_seq_length`.
    fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, LocalModelError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|e| LocalModelError::Tokenization(e.to_string()))?;
        Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// One forward pass over `batch` (padded to its longest sequence); unit-length vectors.
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = batch.len();
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        if rows == 0 {
            return Ok(Vec::new());
        }
        if width == 0 {
            // Only possible with a tokenizer that adds no special tokens and empty texts.
            return Ok(vec![vec![0.0; self.dimension]; rows]);
        }
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for sequence in batch {
            let padding = width - sequence.len();
            ids.extend_from_slice(sequence);
            ids.extend(std::iter::repeat_n(self.pad_id, padding));
            mask.extend(std::iter::repeat_n(1u32, sequence.len()));
            mask.extend(std::iter::repeat_n(0u32, padding));
        }
        let ids = Tensor::from_vec(ids, (rows, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)?;
        let token_types = ids.zeros_like()?;
        // (rows, width, hidden)
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        let pooled = match self.pooling {
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                summed.broadcast_div(&counts)?
            }
            Pooling::Cls => hidden.i((.., 0))?.contiguous()?,
        };
        let norms = pooled
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        pooled.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn dimensions_error_is_a_400_naming_the_field() {
        let api: ApiError = LocalModelError::DimensionsUnsupported {
            requested: 128,
            native: 384,
        }
        .into();
        assert_eq!(api.status(), StatusCode::BAD_REQUEST);
        assert_eq!(api.param.as_deref(), Some("dimensions"));
        assert!(api.message.contains("dimensions"), "{}", api.message);
    }

    #[test]
    fn load_errors_are_unavailable_and_name_the_file() {
        let api: ApiError = LocalModelError::MissingFile {
            path: PathBuf::from("/m/tokenizer.json"),
        }
        .into();
        assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(api.message.contains("tokenizer.json"), "{}", api.message);
    }

    #[test]
    fn normalize_gives_unit_length_and_survives_zero() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut zero = vec![0.0; 3];
        normalize(&mut zero);
        assert!(zero.iter().all(|x| x.is_finite()));
    }
}
