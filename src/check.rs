//! `hx-gateway check`: validates the config and the environment and reports every problem in
//! plain words; the exit code says whether the gateway can start cleanly.

use crate::config::{EnvSource, GatewayConfig};
use crate::lifecycle::ConfigSource;
use crate::router::Router;

/// The outcome of a check: one line per finding.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub ok: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The report as printed: `ok:`, `warning:`, `error:` lines, then a verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.ok {
            out.push_str(&format!("ok: {line}\n"));
        }
        for line in &self.warnings {
            out.push_str(&format!("warning: {line}\n"));
        }
        for line in &self.errors {
            out.push_str(&format!("error: {line}\n"));
        }
        if self.passed() {
            out.push_str("check passed\n");
        } else {
            out.push_str(&format!("check failed: {} problem(s)\n", self.errors.len()));
        }
        out
    }
}

/// Checks the config without starting anything.
pub fn check_config(source: &ConfigSource, env: &dyn EnvSource) -> (Report, Option<GatewayConfig>) {
    let mut report = Report::default();
    match &source.path {
        Some(p) => report.ok.push(format!("config file {}", p.display())),
        None => report
            .warnings
            .push("no config file given (--config or LITELLM_CONFIG): no models".into()),
    }
    let config = match source.load(env) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("config: {e}"));
            return (report, None);
        }
    };
    for key in &config.ignored {
        report.warnings.push(format!(
            "config key {key} is not used by HX Gateway and is ignored"
        ));
    }
    for d in &config.disabled {
        report.errors.push(format!(
            "deployment #{} of model '{}' is disabled: {}",
            d.index, d.model_name, d.reason
        ));
    }
    // Building the router builds every provider, which finds what the config alone cannot
    // (a local model directory that is missing, a header value that is not valid).
    let http = reqwest::Client::new();
    let router = Router::build(&config, &http);
    for d in &router.disabled {
        report.errors.push(format!(
            "deployment #{} of model '{}' is disabled: {}",
            d.index, d.model_name, d.reason
        ));
    }
    let groups = config.model_names();
    report.ok.push(format!(
        "{} model group(s), {} deployment(s): {}",
        groups.len(),
        config.deployments.len() - router.disabled.len(),
        groups.join(", ")
    ));
    if config.master_key.is_none() {
        report.errors.push(
            "no master key: set general_settings.master_key or LITELLM_MASTER_KEY (the gateway refuses to start without one unless --allow-unauthenticated)".into(),
        );
    } else {
        report.ok.push("master key is set".into());
    }
    (report, Some(config))
}
