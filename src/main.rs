//! The `hx-gateway` binary: parses the command line, sets up logging and the runtime, and
//! hands over to the library.

// The binary talks to the operator on stdout/stderr; the library never prints.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: its output is printed"
)]

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use hx_gateway::commands::cli::{Cli, Command, RagCommand};
use hx_gateway::commands::{ConfigSource, migrate, serve};
use hx_gateway::config::{EnvSource, ProcessEnv, env::parse_env_file};
use hx_gateway::log::format::{PlainFields, UtcTime};
use hx_gateway::log::writer::{BatchedWriter, FlushGuard};

/// mimalloc instead of glibc's malloc: the request path allocates many small, short-lived
/// buffers: +25% requests/s over glibc at full load (bench/). Without transparent huge pages
/// (`no_thp`), which raised peak RSS by ~15 MB. Its v2 line (`v2`): on the benchmark ~10% less
/// CPU per request than v3, whose allocation path was 5% of the profile, at the same RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Process environment first, then the `--env-file` (for variables not already set).
struct LayeredEnv(HashMap<String, String>);

impl EnvSource for LayeredEnv {
    fn var(&self, name: &str) -> Option<String> {
        ProcessEnv.var(name).or_else(|| self.0.get(name).cloned())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env_file = match &cli.env_file {
        Some(path) => match parse_env_file(path) {
            Ok(vars) => vars,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => HashMap::new(),
    };
    let env = LayeredEnv(env_file.clone());
    // Held to the end of `main`: dropping it writes out the log lines still buffered.
    let _log_guard = init_logging(&env, cli.serve.json_logs);

    let config_path = cli
        .config
        .clone()
        .or_else(|| env.var("LITELLM_CONFIG").map(Into::into));
    let source = ConfigSource {
        path: config_path,
        env_file,
    };

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = cli.serve.num_workers.filter(|n| *n > 0) {
        builder.worker_threads(n);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    match cli.command {
        None => {
            let ignored = cli.serve.litellm.given();
            if !ignored.is_empty() {
                tracing::warn!(flags = %ignored.join(" "), "LiteLLM command-line flags accepted and ignored");
            }
            match runtime.block_on(serve::serve(&cli.serve, source, &env)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Check) => {
            let report = runtime.block_on(hx_gateway::commands::check::check(
                &source,
                &env,
                &cli.serve.host,
            ));
            print!("{}", report.render());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Command::Migrate) => match runtime.block_on(migrate::migrate_only(&source, &env)) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Smoke(args)) => {
            let url = args.url.clone().unwrap_or_else(|| cli.serve.local_url());
            let report =
                runtime.block_on(hx_gateway::commands::smoke::run(&url, args.key.as_deref()));
            print!("{}", report.render());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Command::Rag(RagCommand::Ingest(args))) => {
            use hx_gateway::commands::ingest::{IngestOptions, ingest};
            let mut progress = |line: &str| {
                if line.starts_with("warning:") {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            };
            match runtime.block_on(ingest(
                IngestOptions::from_args(&args, &cli.serve.local_url()),
                &mut progress,
            )) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}

/// Level from `LITELLM_LOG` or `RUST_LOG` (default info); JSON lines with `--json-logs` or
/// `JSON_LOGS=true`.
///
/// Lines go to stderr in batches (`log_writer`): at full load the access log costs a copy per
/// request, not a `write`.
fn init_logging(env: &dyn EnvSource, json_flag: bool) -> FlushGuard<std::io::Stderr> {
    use tracing_subscriber::EnvFilter;
    let level = env
        .var("RUST_LOG")
        .or_else(|| env.var("LITELLM_LOG").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = json_flag
        || env
            .var("JSON_LOGS")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    let (writer, guard) = BatchedWriter::new(std::io::stderr());
    // Colours only for a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_timer(UtcTime)
        .with_writer(writer);
    if json {
        builder.json().flatten_event(true).init();
    } else if ansi {
        builder.init();
    } else {
        builder.fmt_fields(PlainFields).init();
    }
    guard
}
