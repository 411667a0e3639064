//! `hx-gateway rag ingest`: chunks text and Markdown files and stores them through a running
//! gateway's `/v1/rag/*` routes.
//!
//! It is a client of the gateway, not of the vector store, because the embedded store has one
//! owner (the gateway process holds its directory lock), and because going through the
//! gateway applies the key's namespace scope and bills the embeddings to the key.
//!
//! Re-running is cheap and idempotent: every chunk has an id derived from the namespace, its
//! source and its index, and a `content_hash` in its payload. Before writing a file's chunks,
//! the client lists what the gateway already holds for that source (`POST /v1/rag/points`),
//! upserts only new or changed chunks (so unchanged ones cost no embedding), and deletes the
//! chunks the file no longer produces (it got shorter).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::cli::IngestArgs;
use crate::error::{ApiError, ErrorKind};
use crate::secret::{Secret, redact_url, scrub};

/// Chunks per upsert request (each request embeds them in the gateway's batches).
pub const DEFAULT_UPSERT_BATCH: usize = 64;
/// Page size when listing what is stored for a source (the route's maximum).
const LIST_PAGE: usize = 1000;
/// File extensions read when walking a directory (files named explicitly are always read).
const TEXT_EXTENSIONS: &[&str] = &["txt", "md", "markdown"];

/// What to ingest and where.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Files or directories (directories are walked recursively).
    pub paths: Vec<PathBuf>,
    pub namespace: String,
    /// `None`: the gateway's default collection.
    pub collection: Option<String>,
    /// Maximum characters (Unicode scalar values) per chunk.
    pub chunk_size: usize,
    /// Maximum characters a chunk repeats from the end of the previous one.
    pub chunk_overlap: usize,
    /// Base URL of the gateway, e.g. `http://127.0.0.1:4000`.
    pub url: String,
    /// The gateway key (master key or a virtual key allowed the namespace).
    pub key: Option<Secret>,
    /// Chunks per upsert request.
    pub batch_size: usize,
}

impl IngestOptions {
    /// The options of `hx-gateway rag ingest`; `default_url` is used without `--url`.
    pub fn from_args(args: &IngestArgs, default_url: &str) -> Self {
        IngestOptions {
            paths: args.paths.clone(),
            namespace: args.namespace.clone(),
            collection: args.collection.clone(),
            chunk_size: args.chunk_size,
            chunk_overlap: args.chunk_overlap,
            url: args.url.clone().unwrap_or_else(|| default_url.to_string()),
            key: args.key.clone().filter(|k| !k.is_empty()).map(Secret::new),
            batch_size: DEFAULT_UPSERT_BATCH,
        }
    }

    fn validate(&self) -> Result<(), IngestError> {
        if self.namespace.trim().is_empty() {
            return Err(IngestError::Usage(
                "--namespace must not be empty".to_string(),
            ));
        }
        if self.chunk_size == 0 {
            return Err(IngestError::Usage(
                "--chunk-size must be greater than 0".to_string(),
            ));
        }
        if self.chunk_overlap >= self.chunk_size {
            return Err(IngestError::Usage(format!(
                "--chunk-overlap ({}) must be smaller than --chunk-size ({})",
                self.chunk_overlap, self.chunk_size
            )));
        }
        if self.paths.is_empty() {
            return Err(IngestError::Usage(
                "give at least one file or directory".to_string(),
            ));
        }
        if self
            .collection
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(IngestError::Usage(
                "--collection must not be empty".to_string(),
            ));
        }
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(url).is_err()
        {
            return Err(IngestError::Usage(format!(
                "--url '{}' is not an http(s) URL",
                redact_url(url)
            )));
        }
        Ok(())
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The `source` stored in the payload: the path relative to the given directory (`/`
    /// separators), or the file name of a file given directly.
    pub source: String,
    pub chunks: usize,
    /// Chunks upserted (new, or their text changed).
    pub upserted: usize,
    pub unchanged: usize,
    /// Stored chunks of this source that the file no longer produces, deleted.
    pub deleted: usize,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
    /// Files skipped with a warning (not UTF-8 text), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl IngestReport {
    pub fn chunks(&self) -> usize {
        self.files.iter().map(|f| f.chunks).sum()
    }
    pub fn upserted(&self) -> usize {
        self.files.iter().map(|f| f.upserted).sum()
    }
    pub fn unchanged(&self) -> usize {
        self.files.iter().map(|f| f.unchanged).sum()
    }
    pub fn deleted(&self) -> usize {
        self.files.iter().map(|f| f.deleted).sum()
    }
}

/// Why a run failed. Messages never contain the key.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Bad arguments (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot reach the gateway at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The gateway answered an error; `message` is its own.
    #[error("the gateway refused {route} (HTTP {status}): {message}")]
    Gateway {
        route: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from the gateway to {route}: {message}")]
    BadAnswer { route: String, message: String },
}

impl IngestError {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            IngestError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        let message = err.to_string();
        match err {
            IngestError::Usage(_) => ApiError::new(ErrorKind::InvalidRequest, message),
            IngestError::Read { .. } => ApiError::new(ErrorKind::InvalidRequest, message),
            IngestError::Unreachable { .. } => ApiError::new(ErrorKind::Unavailable, message),
            IngestError::Gateway { status, .. } => {
                ApiError::new(ErrorKind::Upstream(status), message)
            }
            IngestError::BadAnswer { .. } => ApiError::new(ErrorKind::UpstreamConnection, message),
        }
    }
}

/// The id of chunk `index` of `source` in `namespace`: stable across runs, so a re-run
/// replaces instead of duplicating.
pub fn chunk_id(namespace: &str, source: &str, index: usize) -> Uuid {
    let name = format!("hx-ingest:{namespace}\n{source}\n{index}");
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes())
}

/// Hex SHA-256 of a chunk's text, stored as `content_hash`.
pub fn content_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reads, chunks and stores every file under `opts.paths` through the gateway. Progress and
/// warnings go to `progress`, one line per call (no trailing newline): one line per file,
/// then a total line.
pub async fn ingest(
    opts: IngestOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<IngestReport, IngestError> {
    opts.validate()?;
    let files = collect_files(&opts.paths)?;
    let client = GatewayClient::new(&opts)?;
    let mut report = IngestReport::default();
    for file in files {
        let bytes = std::fs::read(&file.path).map_err(|e| IngestError::Read {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        let text = match decode_text(&bytes) {
            Ok(text) => text,
            Err(reason) => {
                progress(&format!(
                    "warning: skipping {}: {reason}",
                    file.path.display()
                ));
                report.skipped.push((file.path, reason.to_string()));
                continue;
            }
        };
        let chunks = split_into_chunks(&text, opts.chunk_size, opts.chunk_overlap);
        let file_report = client.sync_source(&opts, &file.source, chunks).await?;
        progress(&format!(
            "{}: {} chunks ({} new/changed, {} unchanged, {} deleted)",
            file_report.source,
            file_report.chunks,
            file_report.upserted,
            file_report.unchanged,
            file_report.deleted
        ));
        report.files.push(file_report);
    }
    progress(&format!(
        "total: {} files, {} chunks ({} new/changed, {} unchanged, {} deleted){}",
        report.files.len(),
        report.chunks(),
        report.upserted(),
        report.unchanged(),
        report.deleted(),
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", report.skipped.len())
        }
    ));
    Ok(report)
}

/// A file to ingest and the `source` it is stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceFile {
    path: PathBuf,
    source: String,
}

/// Every file to read, in a deterministic order: the given paths in order, each directory's
/// files sorted by their relative path. Two inputs yielding the same source are refused (their
/// chunks would overwrite each other).
fn collect_files(paths: &[PathBuf]) -> Result<Vec<SourceFile>, IngestError> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for root in paths {
        let meta = std::fs::metadata(root)
            .map_err(|e| IngestError::Usage(format!("cannot read {}: {e}", root.display())))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            walk(root, root, &mut found)?;
            found.sort_by(|a: &SourceFile, b| a.source.cmp(&b.source));
        } else {
            let name = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    IngestError::Usage(format!("{} is not a file name", root.display()))
                })?;
            found.push(SourceFile {
                path: root.clone(),
                source: name,
            });
        }
        for file in found {
            if let Some(previous) = seen.get(&file.source) {
                return Err(IngestError::Usage(format!(
                    "{} and {} would both be stored as source '{}'; ingest them in separate runs or namespaces",
                    previous.display(),
                    file.path.display(),
                    file.source
                )));
            }
            seen.insert(file.source.clone(), file.path.clone());
            out.push(file);
        }
    }
    Ok(out)
}

/// Text and Markdown files under `dir`, skipping hidden entries and not following symlinked
/// directories (no cycles).
fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), IngestError> {
    let read_err = |e: std::io::Error| IngestError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(read_err)?;
        if kind.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        // A symlink counts when it points at a file; symlinked directories are not followed.
        let is_file = kind.is_file()
            || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TEXT_EXTENSIONS.iter().any(|t| e.eq_ignore_ascii_case(t)));
        if is_file && wanted {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let source = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(SourceFile { path, source });
        }
    }
    Ok(())
}

/// The file as text, or why it is not (binary, not UTF-8). A UTF-8 BOM is dropped.
fn decode_text(bytes: &[u8]) -> Result<String, &'static str> {
    if bytes.contains(&0) {
        return Err("binary file (contains NUL bytes)");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text")?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string())
}

// ---------------------------------------------------------------------------------------------
// Chunking
// ---------------------------------------------------------------------------------------------

/// A piece of text no longer than the chunk size, with the separator that joins it to the
/// piece before it in the original text.
#[derive(Debug, Clone, PartialEq)]
struct Piece<'a> {
    text: &'a str,
    sep: &'static str,
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Splits `text` into chunks of at most `size` characters (Unicode scalar values; never
/// inside one). Paragraphs (separated by blank lines) are packed greedily; a paragraph longer
/// than `size` is split on sentence boundaries, a sentence longer than `size` on whitespace,
/// and a word longer than `size` at `size` characters. Each chunk after the first starts with
/// the end of the previous one, at most `overlap` characters cut at a sentence or word
/// boundary, when that still fits. Empty or blank text gives no chunks. `size` 0 is treated
/// as 1.
pub fn split_into_chunks(text: &str, size: usize, overlap: usize) -> Vec<String> {
    let size = size.max(1);
    let text = text.replace("\r\n", "\n");
    let mut pieces = Vec::new();
    for (i, paragraph) in paragraphs(&text).into_iter().enumerate() {
        let sep = if i == 0 { "" } else { "\n\n" };
        split_paragraph(paragraph, size, sep, &mut pieces);
    }

    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for piece in pieces {
        let piece_len = char_len(piece.text);
        if current.is_empty() {
            current.push_str(piece.text);
            current_len = piece_len;
            continue;
        }
        let sep_len = char_len(piece.sep);
        if current_len + sep_len + piece_len <= size {
            current.push_str(piece.sep);
            current.push_str(piece.text);
            current_len += sep_len + piece_len;
            continue;
        }
        let tail = overlap_tail(&current, overlap, size.saturating_sub(sep_len + piece_len));
        let mut next = String::new();
        if !tail.is_empty() {
            next.push_str(tail);
            next.push_str(piece.sep);
        }
        next.push_str(piece.text);
        chunks.push(std::mem::replace(&mut current, next));
        current_len = char_len(&current);
    }
    if !current.trim().is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Paragraphs: runs of lines separated by blank lines, trimmed, never empty.
fn paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(text[s..end].trim());
            }
        } else {
            if start.is_none() {
                start = Some(offset);
            }
            end = offset + line.len();
        }
        offset += line.len();
    }
    if let Some(s) = start {
        out.push(text[s..end].trim());
    }
    out.retain(|p| !p.is_empty());
    out
}

/// A paragraph as pieces of at most `size` characters.
fn split_paragraph<'a>(
    paragraph: &'a str,
    size: usize,
    sep: &'static str,
    out: &mut Vec<Piece<'a>>,
) {
    if char_len(paragraph) <= size {
        out.push(Piece {
            text: paragraph,
            sep,
        });
        return;
    }
    for (i, (sentence, newline)) in sentences(paragraph).into_iter().enumerate() {
        let sep = match (i, newline) {
            (0, _) => sep,
            (_, true) => "\n",
            (_, false) => " ",
        };
        if char_len(sentence) <= size {
            out.push(Piece {
                text: sentence,
                sep,
            });
            continue;
        }
        for (j, word) in sentence.split_whitespace().enumerate() {
            let sep = if j == 0 { sep } else { " " };
            if char_len(word) <= size {
                out.push(Piece { text: word, sep });
                continue;
            }
            for (k, part) in hard_split(word, size).into_iter().enumerate() {
                out.push(Piece {
                    text: part,
                    sep: if k == 0 { sep } else { "" },
                });
            }
        }
    }
}

/// Sentences of a paragraph, trimmed, each with whether a line break preceded it. A sentence
/// ends after `.`, `!` or `?` (and any closing quotes or brackets) followed by whitespace, or
/// at a line break (Markdown lists and headings are one item per line).
fn sentences(paragraph: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut newline_before = false;
    let mut prev_terminal = false;
    let mut iter = paragraph.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if c.is_whitespace() && (prev_terminal || c == '\n') {
            let sentence = paragraph[start..i].trim();
            // Swallow the whole whitespace run, noting a line break in it.
            let mut newline = c == '\n';
            let mut next_start = i + c.len_utf8();
            while let Some(&(j, w)) = iter.peek() {
                if !w.is_whitespace() {
                    break;
                }
                newline |= w == '\n';
                next_start = j + w.len_utf8();
                iter.next();
            }
            if !sentence.is_empty() {
                out.push((sentence, newline_before));
                newline_before = newline;
            } else {
                newline_before |= newline;
            }
            start = next_start;
            prev_terminal = false;
            continue;
        }
        prev_terminal = match c {
            '.' | '!' | '?' | '…' | '。' | '！' | '？' => true,
            '"' | '\'' | ')' | ']' | '”' | '’' | '»' => prev_terminal,
            _ => false,
        };
    }
    let last = paragraph[start..].trim();
    if !last.is_empty() {
        out.push((last, newline_before));
    }
    out
}

/// A word cut into parts of `size` characters (the last may be shorter).
fn hard_split(word: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in word.char_indices() {
        if count == size {
            out.push(&word[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < word.len() {
        out.push(&word[start..]);
    }
    out
}

/// The longest end of `chunk` of at most `min(overlap, room)` characters that starts at a
/// sentence start, else at a word start; empty when there is none.
fn overlap_tail(chunk: &str, overlap: usize, room: usize) -> &str {
    let limit = overlap.min(room);
    if limit == 0 {
        return "";
    }
    // Byte offsets of sentence and word starts, with the number of chars from there to the end.
    let total = char_len(chunk);
    let mut sentence_start = None;
    let mut word_start = None;
    let mut prev: Option<char> = None;
    let mut prev_terminal = false;
    for (pos, (i, c)) in chunk.char_indices().enumerate() {
        let remaining = total - pos;
        let after_space = prev.is_some_and(char::is_whitespace);
        if remaining <= limit && !c.is_whitespace() && after_space {
            word_start.get_or_insert(i);
            if prev_terminal || prev == Some('\n') {
                sentence_start.get_or_insert(i);
            }
        }
        if let Some(p) = prev
            && p.is_whitespace()
            && !c.is_whitespace()
        {
            prev_terminal = false;
        }
        if !c.is_whitespace() {
            prev_terminal = match c {
                '.' | '!' | '?' | '…' | '。' | '！' | '？' => true,
                '"' | '\'' | ')' | ']' | '”' | '’' | '»' => prev_terminal,
                _ => false,
            };
        }
        prev = Some(c);
    }
    match sentence_start.or(word_start) {
        Some(i) => chunk[i..].trim_end(),
        None => "",
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway client
// ---------------------------------------------------------------------------------------------

/// A stored chunk as listed by the gateway.
struct StoredChunk {
    content_hash: Option<String>,
}

struct GatewayClient {
    http: reqwest::Client,
    base: String,
    key: Option<Secret>,
}

impl GatewayClient {
    fn new(opts: &IngestOptions) -> Result<Self, IngestError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Upserts embed their documents upstream: allow for a slow embedding model.
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| IngestError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(GatewayClient {
            http,
            base: opts.url.trim().trim_end_matches('/').to_string(),
            key: opts.key.clone(),
        })
    }

    fn display_url(&self) -> String {
        redact_url(&self.base)
    }

    fn scrub(&self, text: &str) -> String {
        let text = text.replace(&self.base, &self.display_url());
        match &self.key {
            Some(k) => scrub(&text, &[k.expose()]),
            None => text,
        }
    }

    /// POSTs `body` to `route`; the JSON answer on success, the gateway's message otherwise.
    async fn post(&self, route: &str, body: &Value) -> Result<Value, IngestError> {
        let mut request = self.http.post(format!("{}{route}", self.base)).json(body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| {
            let (connect, timeout) = (e.is_connect(), e.is_timeout());
            let detail = self.scrub(&e.without_url().to_string());
            let message = if connect {
                format!("is it running? ({detail})")
            } else if timeout {
                "no answer in time".to_string()
            } else {
                detail
            };
            IngestError::Unreachable {
                url: self.display_url(),
                message,
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| IngestError::Unreachable {
                url: self.display_url(),
                message: self.scrub(&e.without_url().to_string()),
            })?;
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let message = json
                .as_ref()
                .and_then(|j| j.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let text = String::from_utf8_lossy(&bytes);
                    let text = text.trim();
                    if text.is_empty() {
                        status.canonical_reason().unwrap_or("error").to_string()
                    } else {
                        text.chars().take(500).collect()
                    }
                });
            let mut message = self.scrub(&message);
            if status.as_u16() == 401 && self.key.is_none() {
                message.push_str(" (no key given: set --key or LITELLM_MASTER_KEY)");
            }
            return Err(IngestError::Gateway {
                route: route.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        json.ok_or_else(|| IngestError::BadAnswer {
            route: route.to_string(),
            message: "the body is not JSON".to_string(),
        })
    }

    /// Every stored chunk of `source` in the namespace, by id. A missing collection holds
    /// nothing.
    async fn stored_chunks(
        &self,
        opts: &IngestOptions,
        source: &str,
    ) -> Result<HashMap<Uuid, StoredChunk>, IngestError> {
        let route = "/v1/rag/points";
        let mut stored = HashMap::new();
        let mut offset = Value::Null;
        loop {
            let mut body = json!({
                "namespace": opts.namespace,
                "filter": {"must": [{"key": "source", "match": {"value": source}}]},
                "limit": LIST_PAGE,
                "with_payload": ["content_hash", "chunk"],
            });
            if let Some(c) = &opts.collection {
                body["collection"] = json!(c);
            }
            if !offset.is_null() {
                body["offset"] = offset.clone();
            }
            let answer = match self.post(route, &body).await {
                Ok(a) => a,
                Err(IngestError::Gateway { status: 404, .. }) if stored.is_empty() => {
                    return Ok(stored);
                }
                Err(e) => return Err(e),
            };
            let bad = |message: &str| IngestError::BadAnswer {
                route: route.to_string(),
                message: message.to_string(),
            };
            let points = answer
                .pointer("/result/points")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("no result.points list"))?;
            for p in points {
                // Only points this client made count (their id is the one of their `chunk`):
                // a document upserted by other means with the same `source` is left alone.
                let Some(id) = p["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
                    continue;
                };
                let made_here = p
                    .pointer("/payload/chunk")
                    .and_then(Value::as_u64)
                    .and_then(|c| usize::try_from(c).ok())
                    .is_some_and(|c| chunk_id(&opts.namespace, source, c) == id);
                if !made_here {
                    continue;
                }
                stored.insert(
                    id,
                    StoredChunk {
                        content_hash: p
                            .pointer("/payload/content_hash")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    },
                );
            }
            match answer.pointer("/result/next_page_offset") {
                None | Some(Value::Null) => return Ok(stored),
                Some(next) if *next == offset => {
                    return Err(bad("the listing does not advance"));
                }
                Some(next) => offset = next.clone(),
            }
        }
    }

    /// Makes the stored chunks of `source` equal to `chunks`.
    async fn sync_source(
        &self,
        opts: &IngestOptions,
        source: &str,
        chunks: Vec<String>,
    ) -> Result<FileReport, IngestError> {
        let stored = self.stored_chunks(opts, source).await?;
        let mut produced = HashSet::new();
        let mut to_upsert = Vec::new();
        let mut unchanged = 0;
        for (index, text) in chunks.iter().enumerate() {
            let id = chunk_id(&opts.namespace, source, index);
            produced.insert(id);
            let hash = content_hash(text);
            if stored
                .get(&id)
                .is_some_and(|s| s.content_hash.as_deref() == Some(hash.as_str()))
            {
                unchanged += 1;
                continue;
            }
            to_upsert.push(json!({
                "id": id.hyphenated().to_string(),
                "text": text,
                "metadata": {"source": source, "chunk": index, "content_hash": hash},
            }));
        }
        let upserted = to_upsert.len();
        for batch in to_upsert.chunks(opts.batch_size.max(1)) {
            let mut body = json!({"namespace": opts.namespace, "documents": batch});
            if let Some(c) = &opts.collection {
                body["collection"] = json!(c);
            }
            let answer = self.post("/v1/rag/upsert", &body).await?;
            let count = answer.pointer("/result/upserted").and_then(Value::as_u64);
            if count != Some(batch.len() as u64) {
                return Err(IngestError::BadAnswer {
                    route: "/v1/rag/upsert".to_string(),
                    message: format!(
                        "{} chunks sent, the gateway reports {} stored",
                        batch.len(),
                        count.map_or("none".to_string(), |c| c.to_string())
                    ),
                });
            }
        }
        // Stale chunks go last, so an interrupted run leaves old text rather than a gap.
        let stale: BTreeMap<String, Value> = stored
            .keys()
            .filter(|id| !produced.contains(id))
            .map(|id| {
                let s = id.hyphenated().to_string();
                (s.clone(), Value::String(s))
            })
            .collect();
        let deleted = stale.len();
        let stale: Vec<Value> = stale.into_values().collect();
        for batch in stale.chunks(LIST_PAGE) {
            let mut body = json!({"namespace": opts.namespace, "ids": batch});
            if let Some(c) = &opts.collection {
                body["collection"] = json!(c);
            }
            self.post("/v1/rag/delete", &body).await?;
        }
        Ok(FileReport {
            source: source.to_string(),
            chunks: chunks.len(),
            upserted,
            unchanged,
            deleted,
        })
    }
}
