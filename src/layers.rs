//! The layer of every top-level module (the table in `lib.rs`), and the test that keeps imports
//! running one way: it reads every `crate::` path in `src/` and fails on one that reaches a
//! layer above the importing module's own, unless it is on [`EXCEPTIONS`], and on two modules
//! of one layer that import each other (a cycle the table cannot show).

#![cfg(test)]

use std::path::{Path, PathBuf};

/// Each top-level module and its layer, bottom (0) to top.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("secret", 0),
    ("api", 0),
    ("tokens", 0),
    ("prices", 0),
    ("link", 0),
    ("metrics", 0),
    ("log", 0),
    ("config", 1),
    ("db", 2),
    ("providers", 2),
    ("limits", 2),
    ("cache", 2),
    ("changes", 2),
    ("embeddings", 2),
    ("keys", 3),
    ("spend", 3),
    ("router", 3),
    ("rag", 3),
    ("health", 3),
    ("gateway", 4),
    ("caller", 4),
    ("roles", 4),
    ("proxy", 5),
    ("manage", 5),
    ("server", 6),
    ("commands", 7),
];

/// Imports allowed to point upwards: (importing module, imported module, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`, `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Every module named right after `crate::` in a line of code (comments skipped), including
/// each entry of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
    }
    out
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut missing: Vec<String> = files
        .iter()
        .filter_map(|f| module_of(&src, f))
        .filter(|m| m != "layers" && layer_of(m).is_none())
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "modules without a layer in src/layers.rs: {missing:?}"
    );
}

#[test]
fn imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "read only {} files", files.len());
    let mut upward = Vec::new();
    let mut sideways = std::collections::BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            continue;
        };
        let code = std::fs::read_to_string(file).unwrap();
        for target in crate_paths(&code) {
            let Some(layer) = layer_of(&target) else {
                continue;
            };
            let allowed = EXCEPTIONS
                .iter()
                .any(|(from, to, _)| *from == module && *to == target);
            if layer == own && target != module {
                sideways.insert((module.clone(), target.clone()));
            }
            if layer > own && !allowed {
                upward.push(format!(
                    "{} (layer {own}) imports crate::{target} (layer {layer})",
                    file.strip_prefix(&src).unwrap_or(file).display()
                ));
            }
        }
    }
    for (a, b) in &sideways {
        if a < b && sideways.contains(&(b.clone(), a.clone())) {
            upward.push(format!(
                "crate::{a} and crate::{b} (one layer) import each other"
            ));
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports that run upwards:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_reader_finds_plain_grouped_and_nested_paths() {
    let code = "use crate::config::GatewayConfig;\n// crate::server in a comment\nlet x = crate::proxy::run();\nuse crate::{error::ApiError, secret};";
    assert_eq!(
        crate_paths(code),
        ["config", "proxy", "error", "secret"].map(String::from)
    );
    // An upward import in a layer-0 file is seen as one.
    let own = layer_of("error").unwrap();
    assert!(
        crate_paths("use crate::server::app;")
            .iter()
            .any(|m| layer_of(m).unwrap() > own)
    );
}
