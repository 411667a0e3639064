//! `hx-gateway rag ingest`: the chunker on its own, then whole runs against an in-process
//! gateway (real embedded vector store) whose embedding model is a wiremock OpenAI upstream
//! answering deterministic word-hash vectors.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hx_gateway::commands::ingest::{
    IngestError, IngestOptions, IngestReport, chunk_id, content_hash, ingest, split_into_chunks,
};
use hx_gateway::secret::Secret;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{MASTER, TestGateway};

// ---------------------------------------------------------------------------------------------
// Chunker
// ---------------------------------------------------------------------------------------------

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks the chunker's invariants on `text`: every chunk is non-empty and at most `size`
/// characters, is a contiguous stretch of the text (modulo whitespace), and the chunks cover
/// every word of the text in order.
fn check_invariants(text: &str, size: usize, overlap: usize) -> Vec<String> {
    let chunks = split_into_chunks(text, size, overlap);
    let flat = collapse(text);
    for c in &chunks {
        assert!(!c.trim().is_empty(), "empty chunk for size {size}");
        assert!(
            c.chars().count() <= size,
            "chunk of {} chars > {size} (overlap {overlap}): {c:?}",
            c.chars().count()
        );
        assert!(
            flat.contains(&collapse(c)),
            "chunk is not a stretch of the text (size {size}, overlap {overlap}): {c:?}"
        );
    }
    // Coverage: each chunk starts at or before the end of what the previous ones covered
    // (overlap, or the next word) and reaches further; together they reach the end.
    let mut covered = 0usize;
    for (n, c) in chunks.iter().enumerate() {
        let c = collapse(c);
        // The next chunk may skip the one space between two chunks, nothing else.
        let latest = if flat.as_bytes().get(covered) == Some(&b' ') {
            covered + 1
        } else {
            covered
        };
        let start = (0..=latest)
            .rev()
            .filter(|&s| flat.is_char_boundary(s))
            .find(|&s| flat[s..].starts_with(&c) && s + c.len() > covered && (n > 0 || s == 0))
            .unwrap_or_else(|| {
                panic!(
                    "chunk {n} does not continue the text (size {size}, overlap {overlap}): {c:?}"
                )
            });
        covered = start + c.len();
    }
    assert_eq!(
        covered,
        flat.len(),
        "chunks do not cover the text (size {size}, overlap {overlap})"
    );
    chunks
}

#[test]
fn paragraphs_are_packed_whole_when_they_fit() {
    let p1 = "First paragraph, one sentence here.";
    let p2 = "Second paragraph. It has two sentences.";
    let p3 = "Third paragraph is on its own.";
    let text = format!("{p1}\n\n{p2}\n\n\n{p3}\n");
    // p1 + p2 fit in 80 with their blank line; p3 does not fit after them.
    let chunks = split_into_chunks(&text, 80, 0);
    assert_eq!(chunks, [format!("{p1}\n\n{p2}"), p3.to_string()]);
    // Everything fits: one chunk, the text trimmed, paragraphs kept apart.
    let chunks = split_into_chunks(&text, 1000, 100);
    assert_eq!(chunks, [format!("{p1}\n\n{p2}\n\n{p3}")]);
    // CRLF files chunk like LF files.
    assert_eq!(
        split_into_chunks(&text.replace('\n', "\r\n"), 80, 0),
        split_into_chunks(&text, 80, 0)
    );
}

#[test]
fn blank_text_gives_no_chunks() {
    assert!(split_into_chunks("", 100, 10).is_empty());
    assert!(split_into_chunks(" \n\n\t \r\n", 100, 10).is_empty());
}

#[test]
fn long_paragraphs_split_on_sentence_boundaries() {
    // Ten sentences of 29 characters each, one paragraph.
    let sentences: Vec<String> = (0..10)
        .map(|i| format!("Sentence number {i} is here ok."))
        .collect();
    let text = sentences.join(" ");
    let chunks = check_invariants(&text, 70, 0);
    assert!(chunks.len() >= 5, "{chunks:?}");
    for c in &chunks {
        assert!(c.starts_with("Sentence number "), "{c:?}");
        assert!(c.ends_with("here ok."), "{c:?}");
    }
    // Greedy: two sentences (29 + 1 + 29 = 59) per chunk; a third would not fit.
    assert_eq!(chunks[0], format!("{} {}", sentences[0], sentences[1]));
    assert_eq!(chunks.len(), 5);
}

#[test]
fn overlap_repeats_the_previous_end_on_a_sentence_boundary() {
    let sentences: Vec<String> = (0..10)
        .map(|i| format!("Sentence number {i} is here ok."))
        .collect();
    let text = sentences.join(" ");
    let chunks = check_invariants(&text, 70, 35);
    for pair in chunks.windows(2) {
        // The last sentence (29 chars <= 35) of a chunk starts the next one.
        let last_sentence = pair[0].rsplit(". ").next().unwrap();
        assert!(
            pair[1].starts_with(last_sentence),
            "{:?} does not start with {last_sentence:?}",
            pair[1]
        );
        assert!(last_sentence.chars().count() <= 35);
    }
    // Without a sentence boundary in reach, the overlap falls back to whole words.
    let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi";
    let chunks = check_invariants(words, 20, 8);
    assert!(chunks.len() >= 4, "{chunks:?}");
    for pair in chunks.windows(2) {
        // The longest run of whole last words of at most 8 characters.
        let prev: Vec<&str> = pair[0].split(' ').collect();
        let tail = (0..prev.len())
            .map(|k| prev[k..].join(" "))
            .find(|t| t.chars().count() <= 8)
            .unwrap();
        assert!(!tail.is_empty() && tail.len() <= 8, "{pair:?}");
        assert!(
            pair[1].starts_with(&format!("{tail} ")),
            "{pair:?} (tail {tail:?})"
        );
    }
    // No sentence start within 10 characters of the end: whole words within the bound.
    let chunks = check_invariants(&text, 70, 10);
    assert!(chunks.len() >= 5, "{chunks:?}");
    for pair in chunks.windows(2) {
        assert!(pair[0].ends_with(" here ok."), "{pair:?}");
        assert!(pair[1].starts_with("here ok. Sentence number "), "{pair:?}");
    }
}

#[test]
fn long_sentences_split_on_whitespace_and_long_words_hard() {
    let sentence = "word ".repeat(40); // 200 chars, no sentence end
    let chunks = check_invariants(&sentence, 23, 0);
    for c in &chunks {
        assert!(!c.starts_with(' ') && !c.ends_with(' '), "{c:?}");
        assert!(
            c.split(' ').all(|w| w == "word"),
            "split inside a word: {c:?}"
        );
    }
    let long_word = "x".repeat(25);
    let chunks = check_invariants(&format!("a {long_word} b"), 10, 3);
    assert!(chunks.iter().all(|c| c.chars().count() <= 10), "{chunks:?}");
}

#[test]
fn never_splits_inside_a_character() {
    // Multi-byte text with and without spaces, under every small size and overlap: any cut
    // inside a UTF-8 sequence would panic on slicing.
    let texts = [
        "日本語のテキストです。".repeat(30),
        "héllo wörld ñandú çà! ".repeat(20),
        "🦀🦀🦀 crab 🦀 party.\n\n👩‍👩‍👧 family  emoji ✨.".repeat(10),
        "Ωμέγα. Ἀλφα βῆτα? Γάμμα!\nΔέλτα".to_string(),
    ];
    for text in &texts {
        for size in 1..=24 {
            for overlap in 0..size {
                check_invariants(text, size, overlap);
            }
        }
    }
    // Without whitespace, hard splits are exact and lose nothing.
    let cjk = "日本語".repeat(100);
    let chunks = split_into_chunks(&cjk, 7, 3);
    assert_eq!(chunks.concat(), cjk);
    assert!(chunks.iter().all(|c| c.chars().count() <= 7));
    assert_eq!(chunks.len(), 300usize.div_ceil(7));
}

#[test]
fn ids_and_hashes_are_deterministic() {
    let id = chunk_id("docs", "guide/a.md", 3);
    let expected = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"hx-ingest:docs\nguide/a.md\n3");
    assert_eq!(id, expected);
    assert_ne!(id, chunk_id("docs", "guide/a.md", 4));
    assert_ne!(id, chunk_id("other", "guide/a.md", 3));
    assert_eq!(
        content_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

// ---------------------------------------------------------------------------------------------
// Against a gateway
// ---------------------------------------------------------------------------------------------

const DIMS: usize = 16;

/// An OpenAI `/v1/embeddings` upstream: each word is hashed into one of 16 dimensions, so texts
/// sharing words point the same way. Counts requests and embedded texts.
#[derive(Clone, Default)]
struct WordHashEmbeddings {
    requests: Arc<AtomicUsize>,
    texts: Arc<AtomicUsize>,
}

fn word_hash_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; DIMS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        // FNV-1a: stable across runs and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        v[(h % DIMS as u64) as usize] += 1.0;
    }
    v
}

impl Respond for WordHashEmbeddings {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect(),
            _ => {
                return ResponseTemplate::new(400)
                    .set_body_json(json!({"error": {"message": "no input"}}));
            }
        };
        self.texts.fetch_add(inputs.len(), Ordering::SeqCst);
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": word_hash_vector(t)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "model": "text-embedding-3-small", "data": data,
            "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()}
        }))
    }
}

struct Setup {
    gw: TestGateway,
    embeddings: WordHashEmbeddings,
    _upstream: MockServer,
}

async fn setup() -> Setup {
    let upstream = MockServer::start().await;
    let embeddings = WordHashEmbeddings::default();
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(embeddings.clone())
        .mount(&upstream)
        .await;
    let yaml = format!(
        r#"
model_list:
  - model_name: emb-premium
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {}/v1
      api_key: sk-upstream-emb
    model_info: {{mode: embedding}}
"#,
        upstream.uri()
    );
    let gw = TestGateway::start(&yaml).await;
    Setup {
        gw,
        embeddings,
        _upstream: upstream,
    }
}

fn options(gw: &TestGateway, root: &Path, namespace: &str) -> IngestOptions {
    IngestOptions {
        paths: vec![root.to_path_buf()],
        namespace: namespace.to_string(),
        collection: None,
        chunk_size: 120,
        chunk_overlap: 30,
        url: gw.url(""),
        key: Some(Secret::new(MASTER)),
        batch_size: 3,
    }
}

async fn run(opts: IngestOptions) -> (Result<IngestReport, IngestError>, Vec<String>) {
    let mut lines = Vec::new();
    let result = ingest(opts, &mut |line: &str| lines.push(line.to_string())).await;
    (result, lines)
}

/// Every stored point of a namespace (id, payload), paging through `/v1/rag/points`.
async fn stored(gw: &TestGateway, namespace: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut offset = Value::Null;
    loop {
        let r = gw
            .post(
                "/v1/rag/points",
                json!({"namespace": namespace, "limit": 2, "offset": offset}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        for p in body["result"]["points"].as_array().unwrap() {
            out.push((p["id"].as_str().unwrap().to_string(), p["payload"].clone()));
        }
        offset = body["result"]["next_page_offset"].clone();
        if offset.is_null() {
            return out;
        }
    }
}

/// Paragraphs of distinct words, so chunks are distinct and searchable.
fn doc(topic: &str, paragraphs: usize) -> String {
    (0..paragraphs)
        .map(|p| {
            format!(
                "The {topic} paragraph {p} talks about {topic} things. It mentions item{p} and {topic}{p} in detail. \
                 A third sentence closes paragraph {p}."
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_idempotent_and_follows_edits() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.md", doc("astronomy", 4));
    write(root, "sub/b.txt", doc("botany", 2));
    write(root, ".hidden/c.md", doc("hidden", 1));
    write(root, "image.png", [0x89, b'P', b'N', b'G', 0, 1, 2]);
    write(root, "notes.md", [b'o', b'k', 0xff, 0xfe, b'x']);

    // First run: everything is new.
    let (result, lines) = run(options(&s.gw, root, "kb")).await;
    let report = result.unwrap();
    let sources: Vec<&str> = report.files.iter().map(|f| f.source.as_str()).collect();
    assert_eq!(
        sources,
        ["a.md", "sub/b.txt"],
        "sorted, hidden and non-text skipped"
    );
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].0.ends_with("notes.md"));
    let a_chunks = report.files[0].chunks;
    assert!(a_chunks >= 4, "{report:?}");
    assert_eq!(report.upserted(), report.chunks());
    assert_eq!((report.unchanged(), report.deleted()), (0, 0));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("warning: skipping") && l.contains("notes.md")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!(
            "a.md: {a_chunks} chunks ({a_chunks} new/changed, 0 unchanged, 0 deleted)"
        )),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().starts_with(&format!(
            "total: 2 files, {} chunks ({} new/changed, 0 unchanged, 0 deleted), 1 skipped",
            report.chunks(),
            report.chunks()
        )),
        "{lines:?}"
    );

    // Stored as specified: deterministic ids, source/chunk/content_hash/namespace payloads.
    let points = stored(&s.gw, "kb").await;
    assert_eq!(points.len(), report.chunks());
    let expected_a = split_into_chunks(&doc("astronomy", 4), 120, 30);
    assert_eq!(expected_a.len(), a_chunks);
    for (i, text) in expected_a.iter().enumerate() {
        let id = chunk_id("kb", "a.md", i).hyphenated().to_string();
        let (_, payload) = points
            .iter()
            .find(|(pid, _)| *pid == id)
            .expect("chunk stored");
        assert_eq!(payload["source"], "a.md");
        assert_eq!(payload["chunk"], i);
        assert_eq!(payload["text"], text.as_str());
        assert_eq!(payload["content_hash"], content_hash(text));
        assert_eq!(payload["namespace"], "kb");
    }
    // Searchable.
    let found: Value =
        s.gw.post(
            "/v1/rag/search",
            json!({"query": "botany1 botany things", "namespace": "kb", "limit": 3}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        found["result"]["result"][0]["payload"]["source"], "sub/b.txt",
        "{found}"
    );

    // Second run: nothing changes, and nothing is embedded again.
    let requests_before = s.embeddings.requests.load(Ordering::SeqCst);
    let (result, _) = run(options(&s.gw, root, "kb")).await;
    let again = result.unwrap();
    assert_eq!(again.upserted(), 0, "{again:?}");
    assert_eq!(again.deleted(), 0);
    assert_eq!(again.unchanged(), report.chunks());
    assert_eq!(
        s.embeddings.requests.load(Ordering::SeqCst),
        requests_before
    );
    assert_eq!(stored(&s.gw, "kb").await, points);

    // Edit: a.md keeps its first paragraph, changes the second and loses the rest.
    let edited = format!(
        "{}\n\nA rewritten second paragraph about comets and nebulae.",
        doc("astronomy", 1)
    );
    write(root, "a.md", &edited);
    let new_chunks = split_into_chunks(&edited, 120, 30);
    assert!(new_chunks.len() < a_chunks);
    let texts_before = s.embeddings.texts.load(Ordering::SeqCst);
    let (result, lines) = run(options(&s.gw, root, "kb")).await;
    let third = result.unwrap();
    let a = &third.files[0];
    assert_eq!(a.chunks, new_chunks.len());
    assert!(a.unchanged >= 1, "the first chunk is unchanged: {a:?}");
    assert_eq!(a.upserted + a.unchanged, new_chunks.len());
    assert_eq!(a.deleted, a_chunks - new_chunks.len());
    assert_eq!(
        s.embeddings.texts.load(Ordering::SeqCst) - texts_before,
        a.upserted,
        "only changed chunks are embedded"
    );
    let b = &third.files[1];
    assert_eq!((b.upserted, b.deleted), (0, 0), "{lines:?}");
    let points = stored(&s.gw, "kb").await;
    let a_points: Vec<&Value> = points
        .iter()
        .filter(|(_, p)| p["source"] == "a.md")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(a_points.len(), new_chunks.len());
    for p in a_points {
        let i = p["chunk"].as_u64().unwrap() as usize;
        assert_eq!(p["text"], new_chunks[i].as_str());
    }

    // Other namespaces are separate: the same files there are all new.
    let (result, _) = run(options(&s.gw, root, "kb2")).await;
    assert_eq!(result.unwrap().unchanged(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_documents_with_the_same_source_are_left_alone() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.md", doc("geology", 1));
    // A document upserted by other means, claiming the same source.
    let r = s
        .gw
        .post(
            "/v1/rag/upsert",
            json!({"namespace": "kb", "documents": [{"text": "hand made", "metadata": {"source": "a.md"}}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (result, _) = run(options(&s.gw, dir.path(), "kb")).await;
    assert_eq!(result.unwrap().deleted(), 0);
    let points = stored(&s.gw, "kb").await;
    assert!(
        points.iter().any(|(_, p)| p["text"] == "hand made"),
        "{points:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported_clearly() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.md", doc("chemistry", 2));

    // A wrong key: the gateway's own message, no secret, exit code 1.
    let mut opts = options(&s.gw, dir.path(), "kb");
    opts.key = Some(Secret::new("sk-wrong-key-123"));
    let (result, _) = run(opts).await;
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, IngestError::Gateway { status: 401, .. }),
        "{text}"
    );
    assert!(!text.contains("sk-wrong-key-123"), "{text}");
    assert_eq!(err.exit_code(), 1);
    let mut opts = options(&s.gw, dir.path(), "kb");
    opts.key = None;
    let text = run(opts).await.0.unwrap_err().to_string();
    assert!(text.contains("LITELLM_MASTER_KEY"), "{text}");

    // Nothing listens: a clear message naming the URL.
    let port = crate::common::free_port();
    let mut opts = options(&s.gw, dir.path(), "kb");
    opts.url = format!("http://127.0.0.1:{port}");
    let err = run(opts).await.0.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, IngestError::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&format!(
            "cannot reach the gateway at http://127.0.0.1:{port}"
        )),
        "{text}"
    );

    // Usage errors: exit code 2, before any request.
    let requests = s.embeddings.requests.load(Ordering::SeqCst);
    for (change, needle) in [
        (
            Box::new(|o: &mut IngestOptions| o.chunk_overlap = 120)
                as Box<dyn Fn(&mut IngestOptions)>,
            "--chunk-overlap",
        ),
        (
            Box::new(|o: &mut IngestOptions| o.chunk_size = 0),
            "--chunk-size",
        ),
        (
            Box::new(|o: &mut IngestOptions| o.namespace = " ".into()),
            "--namespace",
        ),
        (
            Box::new(|o: &mut IngestOptions| o.paths = vec!["/nonexistent/hx-ingest".into()]),
            "/nonexistent/hx-ingest",
        ),
        (
            Box::new(|o: &mut IngestOptions| o.url = "localhost:4000".into()),
            "--url",
        ),
    ] {
        let mut opts = options(&s.gw, dir.path(), "kb");
        change(&mut opts);
        let err = run(opts).await.0.unwrap_err();
        assert!(matches!(err, IngestError::Usage(_)), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert_eq!(s.embeddings.requests.load(Ordering::SeqCst), requests);
    assert!(stored_or_missing(&s.gw).await.is_empty());

    // An embedding upstream failure surfaces the gateway's message.
    s._upstream.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "emb upstream exploded"}})),
        )
        .mount(&s._upstream)
        .await;
    let err = run(options(&s.gw, dir.path(), "kb")).await.0.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, IngestError::Gateway { .. }), "{text}");
    assert!(text.contains("/v1/rag/upsert"), "{text}");
}

/// Stored points of `kb`, or none when the collection does not exist yet.
async fn stored_or_missing(gw: &TestGateway) -> Vec<Value> {
    let r = gw.post("/v1/rag/points", json!({"namespace": "kb"})).await;
    if r.status() == 404 {
        return Vec::new();
    }
    let body: Value = r.json().await.unwrap();
    body["result"]["points"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_progress_and_exits_by_outcome() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "guide.md", doc("physics", 2));
    let url = s.gw.url("");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .args(["rag", "ingest"])
        .arg(dir.path())
        .args([
            "--namespace",
            "cli",
            "--chunk-size",
            "100",
            "--chunk-overlap",
            "20",
            "--url",
            &url,
        ])
        .env("LITELLM_MASTER_KEY", MASTER)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = split_into_chunks(&doc("physics", 2), 100, 20).len();
    assert!(
        stdout.contains(&format!(
            "guide.md: {n} chunks ({n} new/changed, 0 unchanged, 0 deleted)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("total: 1 files"), "{stdout}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .args(["rag", "ingest"])
        .arg(dir.path())
        .args([
            "--namespace",
            "cli",
            "--chunk-size",
            "10",
            "--chunk-overlap",
            "10",
            "--url",
            &url,
        ])
        .env("LITELLM_MASTER_KEY", MASTER)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--chunk-overlap (10) must be smaller than --chunk-size (10)"),
        "{stderr}"
    );
}
