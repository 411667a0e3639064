//! The binary's command line as a LiteLLM `ExecStart` uses it: LiteLLM flags, `--env-file`,
//! TLS, and the refusal to serve without a master key.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

const CONFIG: &str = "model_list:\n  - model_name: mock\n    litellm_params: {model: openai/mock, mock_response: os.environ/MOCK_TEXT}\n";

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    path
}

#[tokio::test]
async fn litellm_flags_and_env_file_work_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let env_file = dir.path().join("hx.env");
    std::fs::write(&env_file, format!("# systemd EnvironmentFile\nLITELLM_MASTER_KEY={MASTER}\nMOCK_TEXT=\"from the env file\"\n")).unwrap();
    let env_path = env_file.display().to_string();
    let gw = GatewayProcess::spawn(
        &config,
        &[("HX_DATA_DIR", dir.path().display().to_string())],
        &[
            "--env-file",
            &env_path,
            "--num_workers",
            "2",
            "--detailed_debug",
            "--telemetry",
            "False",
            "--run_gunicorn",
        ],
    )
    .await;
    let r = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "from the env file"
    );
}

#[tokio::test]
async fn without_a_master_key_it_refuses_to_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &free_port().to_string()])
        .env_remove("LITELLM_MASTER_KEY")
        .env("HX_DATA_DIR", dir.path())
        .env("MOCK_TEXT", "x")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no master key") && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );

    let gw = GatewayProcess::spawn(
        &config,
        &[
            ("HX_DATA_DIR", dir.path().display().to_string()),
            ("MOCK_TEXT", "open".into()),
            ("HX_ALLOW_UNAUTHENTICATED", "1".into()),
        ],
        &[],
    )
    .await;
    let r = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn ssl_flags_serve_https() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl makes a self-signed certificate");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hx-gateway"))
        .arg("--config")
        .arg(&config)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--ssl_keyfile_path",
        ])
        .arg(&key)
        .arg("--ssl_certfile_path")
        .arg(&cert)
        .env("LITELLM_MASTER_KEY", MASTER)
        .env("HX_DATA_DIR", dir.path())
        .env("MOCK_TEXT", "over tls")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if client
            .get(format!("{url}/health/readiness"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/health/liveliness")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "HTTPS readiness answered 200");
    assert!(
        plain.is_err() || plain.is_ok_and(|r| r.status() != 200),
        "plain HTTP is not served on the TLS port"
    );
}
