//! The command line: LiteLLM's flags (so an `ExecStart` line only changes the program name)
//! and HX's own commands (`check`, `migrate`, `smoke`, `rag ingest`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hx-gateway",
    version,
    about = "LLM gateway: LiteLLM-compatible API, keys, limits, caching and RAG"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Path to the LiteLLM config.yaml (else LITELLM_CONFIG).
    #[arg(long, short = 'c', global = true, env = "LITELLM_CONFIG")]
    pub config: Option<PathBuf>,

    /// Loads KEY=VALUE lines (systemd EnvironmentFile format) for variables not already set.
    #[arg(long = "env-file", alias = "env_file", global = true)]
    pub env_file: Option<PathBuf>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub port: u16,

    /// Worker threads of the async runtime (LiteLLM: worker processes).
    #[arg(long = "num_workers", alias = "num-workers", env = "NUM_WORKERS")]
    pub num_workers: Option<usize>,

    /// TLS private key (PEM); with --ssl_certfile_path the gateway serves HTTPS.
    #[arg(
        long = "ssl_keyfile_path",
        alias = "ssl-keyfile-path",
        env = "SSL_KEYFILE_PATH"
    )]
    pub ssl_keyfile_path: Option<PathBuf>,

    /// TLS certificate chain (PEM).
    #[arg(
        long = "ssl_certfile_path",
        alias = "ssl-certfile-path",
        env = "SSL_CERTFILE_PATH"
    )]
    pub ssl_certfile_path: Option<PathBuf>,

    /// Serve without any key when no master key is configured (development only).
    #[arg(long = "allow-unauthenticated", alias = "allow_unauthenticated")]
    pub allow_unauthenticated: bool,

    /// Do not run database migrations at start.
    #[arg(long = "no-migrate", alias = "no_migrate")]
    pub no_migrate: bool,

    /// Logs as JSON lines (also JSON_LOGS=true).
    #[arg(long = "json-logs", alias = "json_logs")]
    pub json_logs: bool,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(
        long = "graceful-timeout",
        alias = "graceful_timeout",
        default_value_t = 30.0
    )]
    pub graceful_timeout: f64,

    #[command(flatten)]
    pub litellm: LitellmCompatArgs,
}

/// LiteLLM CLI flags that HX accepts so existing command lines keep working, and reports once
/// as ignored.
#[derive(Debug, Args, Default)]
pub struct LitellmCompatArgs {
    #[arg(long = "api_base", hide = true)]
    pub api_base: Option<String>,
    #[arg(long = "api_version", hide = true)]
    pub api_version: Option<String>,
    #[arg(long = "model", short = 'm', hide = true)]
    pub model: Option<String>,
    #[arg(long = "alias", hide = true)]
    pub alias: Option<String>,
    #[arg(long = "add_key", hide = true)]
    pub add_key: Option<String>,
    #[arg(long = "headers", hide = true)]
    pub headers: Option<String>,
    #[arg(long = "save", hide = true)]
    pub save: bool,
    #[arg(long = "debug", hide = true)]
    pub debug: bool,
    #[arg(long = "detailed_debug", hide = true)]
    pub detailed_debug: bool,
    #[arg(long = "temperature", hide = true)]
    pub temperature: Option<String>,
    #[arg(long = "max_tokens", hide = true)]
    pub max_tokens: Option<String>,
    #[arg(long = "request_timeout", hide = true)]
    pub request_timeout: Option<String>,
    #[arg(long = "drop_params", hide = true)]
    pub drop_params: bool,
    #[arg(long = "add_function_to_prompt", hide = true)]
    pub add_function_to_prompt: bool,
    #[arg(long = "max_budget", hide = true)]
    pub max_budget: Option<String>,
    #[arg(long = "telemetry", hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub telemetry: Option<String>,
    #[arg(long = "test", hide = true)]
    pub test: bool,
    #[arg(long = "health", hide = true)]
    pub health: bool,
    #[arg(long = "local", hide = true)]
    pub local: bool,
    #[arg(long = "num_requests", hide = true)]
    pub num_requests: Option<String>,
    #[arg(long = "test_async", hide = true)]
    pub test_async: bool,
    #[arg(long = "use_queue", hide = true)]
    pub use_queue: bool,
    #[arg(long = "run_gunicorn", hide = true)]
    pub run_gunicorn: bool,
    #[arg(long = "run_hypercorn", hide = true)]
    pub run_hypercorn: bool,
    #[arg(long = "run_granian", hide = true)]
    pub run_granian: bool,
    #[arg(long = "ciphers", hide = true)]
    pub ciphers: Option<String>,
    #[arg(long = "skip_server_startup", hide = true)]
    pub skip_server_startup: bool,
    #[arg(long = "iam_token_db_auth", hide = true)]
    pub iam_token_db_auth: bool,
    #[arg(long = "keepalive_timeout", hide = true)]
    pub keepalive_timeout: Option<String>,
    #[arg(long = "log_config", hide = true)]
    pub log_config: Option<String>,
    #[arg(long = "max_requests_before_restart", hide = true)]
    pub max_requests_before_restart: Option<String>,
    #[arg(long = "use_prisma_migrate", hide = true)]
    pub use_prisma_migrate: bool,
    #[arg(long = "use_prisma_db_push", hide = true)]
    pub use_prisma_db_push: bool,
    #[arg(long = "skip_db_migration_check", hide = true)]
    pub skip_db_migration_check: bool,
}

impl LitellmCompatArgs {
    /// The LiteLLM flags given on this command line, for the one warning that lists them.
    pub fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name: &'static str| {
            if set {
                out.push(name);
            }
        };
        add(self.api_base.is_some(), "--api_base");
        add(self.api_version.is_some(), "--api_version");
        add(self.model.is_some(), "--model");
        add(self.alias.is_some(), "--alias");
        add(self.add_key.is_some(), "--add_key");
        add(self.headers.is_some(), "--headers");
        add(self.save, "--save");
        add(self.debug, "--debug");
        add(self.detailed_debug, "--detailed_debug");
        add(self.temperature.is_some(), "--temperature");
        add(self.max_tokens.is_some(), "--max_tokens");
        add(self.request_timeout.is_some(), "--request_timeout");
        add(self.drop_params, "--drop_params");
        add(self.add_function_to_prompt, "--add_function_to_prompt");
        add(self.max_budget.is_some(), "--max_budget");
        add(self.telemetry.is_some(), "--telemetry");
        add(self.test, "--test");
        add(self.health, "--health");
        add(self.local, "--local");
        add(self.num_requests.is_some(), "--num_requests");
        add(self.test_async, "--test_async");
        add(self.use_queue, "--use_queue");
        add(self.run_gunicorn, "--run_gunicorn");
        add(self.run_hypercorn, "--run_hypercorn");
        add(self.run_granian, "--run_granian");
        add(self.ciphers.is_some(), "--ciphers");
        add(self.skip_server_startup, "--skip_server_startup");
        add(self.iam_token_db_auth, "--iam_token_db_auth");
        add(self.keepalive_timeout.is_some(), "--keepalive_timeout");
        add(self.log_config.is_some(), "--log_config");
        add(
            self.max_requests_before_restart.is_some(),
            "--max_requests_before_restart",
        );
        add(self.use_prisma_migrate, "--use_prisma_migrate");
        add(self.use_prisma_db_push, "--use_prisma_db_push");
        add(self.skip_db_migration_check, "--skip_db_migration_check");
        out
    }
}

impl ServeArgs {
    /// Where a command finds the gateway this command line would serve: the loopback address
    /// on `--port` / `PORT` (default 4000), for `smoke` and `rag ingest` without `--url`.
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config, the environment and every configured dependency.
    Check,
    /// Apply database migrations and exit.
    Migrate,
    /// Post-deploy validation of a running gateway.
    Smoke(SmokeArgs),
    /// Retrieval tools.
    #[command(subcommand)]
    Rag(RagCommand),
}

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Base URL of the running gateway (default: http://127.0.0.1 on --port / PORT, 4000).
    #[arg(long)]
    pub url: Option<String>,
    /// Key to call it with (else LITELLM_MASTER_KEY).
    #[arg(long, env = "LITELLM_MASTER_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RagCommand {
    /// Chunk text and Markdown files and upsert them through a running gateway.
    Ingest(IngestArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories (read recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long)]
    pub namespace: String,
    #[arg(long)]
    pub collection: Option<String>,
    #[arg(long = "chunk-size", default_value_t = 1000)]
    pub chunk_size: usize,
    #[arg(long = "chunk-overlap", default_value_t = 100)]
    pub chunk_overlap: usize,
    /// Base URL of the running gateway (default: http://127.0.0.1 on --port / PORT, 4000,
    /// as `serve` listens).
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, env = "LITELLM_MASTER_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "hx-gateway",
            "--config",
            "/etc/litellm/config.yaml",
            "--host",
            "0.0.0.0",
            "--port",
            "4000",
            "--num_workers",
            "4",
            "--detailed_debug",
            "--telemetry",
            "False",
            "--run_gunicorn",
        ])
        .unwrap();
        assert_eq!(cli.serve.port, 4000);
        assert_eq!(cli.serve.num_workers, Some(4));
        assert_eq!(
            cli.serve.litellm.given(),
            vec!["--detailed_debug", "--telemetry", "--run_gunicorn"]
        );
        assert!(cli.command.is_none());
    }

    #[test]
    fn commands_parse() {
        let cli = Cli::try_parse_from(["hx-gateway", "check", "--config", "c.yaml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Check)));
        assert_eq!(cli.config.unwrap(), PathBuf::from("c.yaml"));
        let cli = Cli::try_parse_from([
            "hx-gateway",
            "rag",
            "ingest",
            "docs/",
            "--namespace",
            "docs",
            "--chunk-size",
            "500",
        ])
        .unwrap();
        let Some(Command::Rag(RagCommand::Ingest(args))) = cli.command else {
            panic!("expected rag ingest");
        };
        assert_eq!(args.chunk_size, 500);
        assert_eq!(args.namespace, "docs");
    }
}
