//! Reading the hook files: every `*.pb.js` of the hooks folder, in name order, evaluated
//! in a fresh engine whose registration functions record what each file registers.
//! A file that throws is reported with its file and line, and nothing of that load is
//! used (the hooks already running stay).

use crate::registry::{Registration, Registry};
use crate::Shared;
use galley_core::CoreError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest hook file or module read (a bound on what a load can pull in).
const MAX_FILE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}:{line}: {message}")]
    Js {
        file: String,
        line: u32,
        message: String,
    },
    #[error("{0}: {1}")]
    Io(String, String),
}

/// `dir`'s files whose names end with `suffix`, sorted by name.
pub(crate) fn files(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, LoadError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(LoadError::Io(dir.display().to_string(), e.to_string())),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<String, LoadError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| LoadError::Io(name.clone(), e.to_string()))?;
    if meta.len() > MAX_FILE {
        return Err(LoadError::Io(
            name,
            format!("larger than {} MiB", MAX_FILE >> 20),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| LoadError::Io(name, e.to_string()))
}

/// Where in `file` a JavaScript error happened, from its stack (`file:line[:col]`).
fn line_of(file: &str, text: &str) -> u32 {
    let base = Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file);
    for part in text.split(|c: char| c == '(' || c == ')' || c.is_whitespace()) {
        if let Some(rest) = part.strip_prefix(base).or_else(|| part.strip_prefix(file)) {
            if let Some(n) = rest
                .strip_prefix(':')
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse().ok())
            {
                return n;
            }
        }
    }
    0
}

/// Evaluates `paths` in a fresh engine and returns what they registered.
pub(crate) fn load(shared: &Arc<Shared>, paths: &[PathBuf]) -> Result<Registry, LoadError> {
    let mut reg = Registry::default();
    for path in paths {
        let file = path.display().to_string();
        let regs = registrations(shared, path)?;
        reg.add(regs).map_err(|message| LoadError::Js {
            file: file.clone(),
            line: 0,
            message,
        })?;
        reg.files.push(path.clone());
    }
    Ok(reg)
}

/// What one file registers when evaluated.
pub(crate) fn registrations(
    shared: &Arc<Shared>,
    path: &Path,
) -> Result<Vec<Registration>, LoadError> {
    evaluate(shared, &path.display().to_string(), &read(path)?)
}

/// What `source`, as the file `file`, registers when evaluated in a fresh engine.
pub(crate) fn evaluate(
    shared: &Arc<Shared>,
    file: &str,
    source: &str,
) -> Result<Vec<Registration>, LoadError> {
    let regs = crate::engine::fresh(shared, |ctx| {
        // Handlers run later as text: a name they use that is not offered is found now
        // (before the file runs, so that a top-level use is reported by its name too).
        let missing = crate::engine::call(ctx, "check", vec![source.to_owned()])?;
        if !missing.is_empty() {
            return Ok((String::new(), missing));
        }
        crate::engine::call(ctx, "begin", vec![])?;
        let opts = {
            let mut o = rquickjs::context::EvalOptions::default();
            o.filename = Some(file.to_owned());
            o.strict = false;
            o
        };
        let r = ctx.eval_with_options::<(), _>(source.as_bytes(), opts);
        let regs = crate::engine::call(ctx, "end", vec![])?;
        r.map_err(|e| crate::engine::EngineError::Js(crate::engine::describe(ctx, e)))?;
        Ok((regs, missing))
    })
    .map_err(|e| {
        let text = e.to_string();
        LoadError::Js {
            line: line_of(file, &text),
            message: text.lines().next().unwrap_or_default().to_owned(),
            file: file.to_owned(),
        }
    })?;
    let (regs, missing) = regs;
    if let Some((line, name)) = missing.split_once(':') {
        return Err(LoadError::Js {
            file: file.to_owned(),
            line: line.parse().unwrap_or(0),
            message: format!(
                "{name} is part of PocketBase's JavaScript API but Galley does not offer it"
            ),
        });
    }
    serde_json::from_str(&regs).map_err(|e| LoadError::Js {
        file: file.to_owned(),
        line: 0,
        message: e.to_string(),
    })
}

/// `require(path)`: a CommonJS file inside the hooks folder (absolute, as
/// `${__hooks}/x.js`, or relative to the folder); nothing outside it.
pub(crate) fn resolve_module(shared: &Shared, path: &str) -> Result<Value, CoreError> {
    let Some(dir) = &shared.config.dir else {
        return Err(CoreError::bad_request(
            "require(): there is no hooks folder",
        ));
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| CoreError::bad_request(format!("require(): {e}")))?;
    let p = Path::new(path);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    let full = full
        .canonicalize()
        .map_err(|e| CoreError::bad_request(format!("require({path:?}): {e}")))?;
    if !full.starts_with(&dir) {
        return Err(CoreError::bad_request(format!(
            "require({path:?}): only files inside the hooks folder can be required"
        )));
    }
    let source = read(&full).map_err(|e| CoreError::bad_request(format!("require(): {e}")))?;
    Ok(json!({"path": full.display().to_string(), "source": source}))
}
