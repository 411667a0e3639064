//! The environment as the config sees it: process environment over `--env-file` over the
//! config's `environment_variables`, read through a trait so tests inject their own.

use std::collections::HashMap;
use std::path::Path;

/// Where variables come from. The process environment in production; a map in tests.
pub trait EnvSource: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Layered lookup, highest first: process (or injected) environment, `--env-file`,
/// `environment_variables` of the config.
pub struct Env<'a> {
    process: &'a dyn EnvSource,
    env_file: HashMap<String, String>,
    config_vars: HashMap<String, String>,
}

impl<'a> Env<'a> {
    pub fn new(process: &'a dyn EnvSource, env_file: HashMap<String, String>) -> Self {
        Env {
            process,
            env_file,
            config_vars: HashMap::new(),
        }
    }

    pub fn set_config_vars(&mut self, vars: HashMap<String, String>) {
        self.config_vars = vars;
    }

    pub fn var(&self, name: &str) -> Option<String> {
        self.process
            .var(name)
            .or_else(|| self.env_file.get(name).cloned())
            .or_else(|| self.config_vars.get(name).cloned())
            .filter(|v| !v.is_empty())
    }

    /// A boolean switch (`1`, `true`, `yes`, `on`, any case).
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.var(name).map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    }
}

/// Errors reading an env file.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read env file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("env file {path}, line {line}: expected KEY=VALUE")]
    Syntax { path: String, line: usize },
}

/// Parses a systemd `EnvironmentFile`: `KEY=VALUE` lines, `#`/`;` comments, optional
/// `export `, values optionally in single or double quotes.
// Written by hand rather than with dotenvy because systemd's format differs from dotenv's
// (comments with `;`, no variable expansion), and an operator's existing file must mean the
// same thing to HX as to systemd.
pub fn parse_env_file(path: &Path) -> Result<HashMap<String, String>, EnvFileError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EnvFileError::Read {
        path: display.clone(),
        source,
    })?;
    let mut vars = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(EnvFileError::Syntax {
                path: display,
                line: index + 1,
            });
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(EnvFileError::Syntax {
                path: display,
                line: index + 1,
            });
        }
        let value = value.trim();
        let value = unquote(value);
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() >= 2 {
        let (first, last) = (bytes[0], bytes[bytes.len() - 1]);
        if (first == b'"' && last == b'"') || (first == b'\'' && last == b'\'') {
            return value[1..value.len() - 1].to_string();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_follows_systemd_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(
            &path,
            "# comment\n; other\nA=1\nexport B = \"two words\"\nC='x=y'\n\nEMPTY=\n",
        )
        .unwrap();
        let vars = parse_env_file(&path).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x=y");
        assert_eq!(vars["EMPTY"], "");
        std::fs::write(&path, "NOEQUALS\n").unwrap();
        assert!(matches!(
            parse_env_file(&path),
            Err(EnvFileError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn precedence_is_process_then_file_then_config() {
        let process: HashMap<String, String> = [("A".to_string(), "process".to_string())].into();
        let file: HashMap<String, String> = [
            ("A".to_string(), "file".to_string()),
            ("B".to_string(), "file".to_string()),
        ]
        .into();
        let mut env = Env::new(&process, file);
        env.set_config_vars(
            [
                ("B".to_string(), "config".to_string()),
                ("C".to_string(), "config".to_string()),
            ]
            .into(),
        );
        assert_eq!(env.var("A").unwrap(), "process");
        assert_eq!(env.var("B").unwrap(), "file");
        assert_eq!(env.var("C").unwrap(), "config");
        assert_eq!(env.var("D"), None);
    }
}
