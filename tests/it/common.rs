//! Test harness: the real gateway on port 0, and scripted upstreams speaking OpenAI's wire
//! format (plain JSON and SSE) for what wiremock cannot do (hold a stream open, see a hang-up).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use hx_gateway::config::GatewayConfig;
use hx_gateway::gateway::AppState;
use hx_gateway::providers::Upstream;
use hx_gateway::server;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

pub const MASTER: &str = "sk-test-master-0001";

/// A gateway serving on 127.0.0.1:<random port>.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _data_dir: tempfile::TempDir,
}

impl TestGateway {
    /// Starts a gateway from YAML; `general_settings.master_key` is set to [`MASTER`] unless the
    /// YAML sets its own.
    pub async fn start(yaml: &str) -> Self {
        Self::start_with_env(yaml, HashMap::new()).await
    }

    pub async fn start_with_env(yaml: &str, env: HashMap<String, String>) -> Self {
        let yaml = if yaml.contains("master_key") {
            yaml.to_string()
        } else {
            format!("{yaml}\ngeneral_settings:\n  master_key: {MASTER}\n")
        };
        let data_dir = tempfile::tempdir().expect("data dir");
        let mut env = env;
        env.entry("HX_DATA_DIR".to_string())
            .or_insert_with(|| data_dir.path().display().to_string());
        let config = GatewayConfig::from_yaml_str(&yaml, &env).expect("config loads");
        // A config may name a database that is down on purpose (health tests): the gateway
        // then serves without its key store, as it does while one is unreachable.
        let keys = hx_gateway::commands::migrate::connect_keys(&config, true).await;
        let http = Upstream::new().expect("http client");
        let state = AppState::new(config, http, false).expect("state");
        match keys {
            Ok(keys) => state.set_keys(keys),
            Err(_) => state.set_ready(),
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let st = state.clone();
        tokio::spawn(async move {
            let _ = server::serve(listener, st, async move {
                let _ = rx.await;
            })
            .await;
        });
        TestGateway {
            addr,
            state,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POST with the master key.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(MASTER)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(MASTER)
            .send()
            .await
            .expect("request sent")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts an OpenAI-shaped error with the given status and type; returns the error object.
pub async fn expect_error(
    response: reqwest::Response,
    status: u16,
    kind: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: serde_json::Value = response.json().await.expect("error body is JSON");
    let error = body
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(error["type"], kind, "error type in {body}");
    assert_eq!(error["code"], status.to_string(), "error code in {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert!(error.get("param").is_some(), "param key present in {body}");
    error
}

/// Serves an axum app on a random loopback port.
pub async fn serve_app(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// An OpenAI chat completion chunk as an SSE frame.
pub fn sse_chunk(content: &str) -> String {
    let chunk = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n")
}

/// An upstream whose stream sends one chunk, then waits for `release` before the rest.
pub struct HeldStream {
    pub addr: SocketAddr,
    pub release: Arc<Notify>,
    /// Set when the upstream's response body was dropped (the connection went away).
    pub closed: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `hold_forever`: after the first chunk the stream keeps sending a chunk every 100 ms until
/// its client goes away (for disconnect tests); otherwise it waits for `release`.
pub async fn held_stream_upstream(hold_forever: bool) -> HeldStream {
    let release = Arc::new(Notify::new());
    let closed = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (r, c, n) = (release.clone(), closed.clone(), requests.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (release, closed, requests) = (r.clone(), c.clone(), n.clone());
            async move {
                requests.fetch_add(1, Ordering::SeqCst);
                let flag = DropFlag(closed);
                let stream = async_stream_body(release, flag, hold_forever);
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .expect("response")
            }
        }),
    );
    HeldStream {
        addr: serve_app(app).await,
        release,
        closed,
        requests,
    }
}

fn async_stream_body(
    release: Arc<Notify>,
    flag: DropFlag,
    hold_forever: bool,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> + Send {
    futures::stream::unfold(
        (0u32, release, flag),
        move |(step, release, flag)| async move {
            match step {
                0 => Some((Ok(sse_chunk("first")), (1, release, flag))),
                1 if hold_forever => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok(sse_chunk(".")), (1, release, flag)))
                }
                1 => {
                    release.notified().await;
                    Some((Ok(sse_chunk("second")), (2, release, flag)))
                }
                2 => Some((Ok("data: [DONE]\n\n".to_string()), (3, release, flag))),
                _ => None,
            }
        },
    )
}

/// A free loopback port (bound, then released for a child process to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The real `hx-gateway` binary running as a child process; killed on drop.
pub struct GatewayProcess {
    pub port: u16,
    pub child: std::process::Child,
}

impl GatewayProcess {
    /// Starts the binary with `--config` and the given environment, and waits until
    /// `/health/readiness` answers 200.
    pub async fn spawn(config: &std::path::Path, env: &[(&str, String)], args: &[&str]) -> Self {
        Self::spawn_in(None, config, env, args).await
    }

    /// As [`GatewayProcess::spawn`], in the working directory `cwd` (relative paths of the
    /// config, such as a local model's `model_path`, resolve against it).
    pub async fn spawn_in(
        cwd: Option<&std::path::Path>,
        config: &std::path::Path,
        env: &[(&str, String)],
        args: &[&str],
    ) -> Self {
        let port = free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hx-gateway"));
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        cmd.arg("--config")
            .arg(config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args);
        // Two server threads whatever the machine's cores, so every process test runs the
        // threaded server (`server::threads`) as production does on a multi-core host.
        if !args.iter().any(|a| a.starts_with("--num_workers")) {
            cmd.args(["--num_workers", "2"]);
        }
        cmd.env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("QDRANT_URL")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("gateway binary starts");
        let process = GatewayProcess { port, child };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(process.url("/health/readiness")).send().await
                && r.status() == 200
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway on port {port} did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch Postgres database on the shared server, dropped on drop.
pub struct ScratchDb {
    pub name: String,
}

impl ScratchDb {
    pub async fn create() -> Self {
        let name = format!("hx_it_{}", uuid::Uuid::new_v4().simple());
        let admin = "postgres://postgres@127.0.0.1:5432/postgres";
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
            .await
            .expect("postgres");
        let create = format!("CREATE DATABASE {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .expect("create db");
        ScratchDb { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl ScratchDb {
    /// A scratch database with LiteLLM's schema, built from LiteLLM's own migrations (as a
    /// LiteLLM deployment's database is) before HX ever connects to it.
    pub async fn litellm() -> Self {
        let db = ScratchDb::create().await;
        let pool = sqlx::PgPool::connect(&db.url()).await.expect("scratch db");
        apply_litellm_migrations(&pool).await;
        pool.close().await;
        db
    }
}

/// Splits a SQL file into statements (quotes, dollar quotes and comments respected), so each
/// runs on its own like `psql -f` does (`CREATE INDEX CONCURRENTLY` cannot run in the
/// implicit transaction of a multi-statement query).
pub fn split_sql(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'$' => {
                let rest = &sql[i + 1..];
                if let Some(end) = rest.find('$') {
                    let tag = &rest[..end];
                    if tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        let delimiter = format!("${tag}$");
                        let body_start = i + delimiter.len();
                        if let Some(close) = sql[body_start..].find(&delimiter) {
                            i = body_start + close + delimiter.len();
                            continue;
                        }
                    }
                }
            }
            b';' => {
                statements.push(sql[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    statements.push(sql[start..].to_string());
    statements
        .into_iter()
        .filter(|s| {
            s.lines()
                .map(|l| l.split("--").next().unwrap_or("").trim())
                .any(|l| !l.is_empty())
        })
        .collect()
}

pub fn litellm_migration_dirs() -> Vec<std::path::PathBuf> {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/litellm_migrations");
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("migration.sql").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() > 100, "vendored LiteLLM migrations missing");
    dirs
}

/// Applies LiteLLM's vendored migrations in name order, as LiteLLM's deploy does.
pub async fn apply_litellm_migrations(pool: &sqlx::PgPool) {
    for dir in litellm_migration_dirs() {
        let sql = std::fs::read_to_string(dir.join("migration.sql")).unwrap();
        for statement in split_sql(&sql) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                .execute(pool)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{statement}", dir.display()));
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The events of a stream whose events are named by their type (Anthropic's Messages,
/// OpenAI's Responses): asserts a 200 event stream without OpenAI's `[DONE]`, each event's
/// name matching its data's `type`; the data, in order.
pub async fn typed_events(response: reqwest::Response) -> Vec<serde_json::Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let (name, data) = frame
                .split_once("\ndata: ")
                .unwrap_or_else(|| panic!("{frame}"));
            let value: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(name, format!("event: {}", value["type"].as_str().unwrap()));
            value
        })
        .collect()
}

/// A key's spend rows in the embedded store: `(call_type, prompt_tokens)`, pending spend
/// flushed first.
pub async fn spend_rows(gw: &TestGateway, key: &str) -> Vec<(String, i64)> {
    let keys = gw.state.keys().unwrap();
    keys.flush_spend().await.unwrap();
    sqlx::query_as(r#"SELECT call_type, prompt_tokens FROM "LiteLLM_SpendLogs" WHERE api_key = ?"#)
        .bind(hx_gateway::secret::hash_key(key))
        .fetch_all(keys.store().sqlite_pool().unwrap())
        .await
        .unwrap()
}

/// OpenAI chat chunks as the SSE body of a stream: each a `data:` event, then `[DONE]`.
pub fn openai_sse(chunks: &[serde_json::Value]) -> String {
    let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    out.push_str("data: [DONE]\n\n");
    out
}
