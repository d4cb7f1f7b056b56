//! Loading an inventory file: read it, parse its TOML (every syntax error of the file at once),
//! read every section into the typed model (`read`), check the whole (`validate`), and hand back
//! either the [`Inventory`] or one [`Report`] with every problem, in file order.
//!
//! This is the only entry point; it owns the order of the stages and nothing else: it neither
//! knows a key of the file nor a rule about how its parts refer to each other.

use std::path::Path;

use toml::de::DeTable;

use super::model::Inventory;
use super::{read, syntax, validate};
use crate::diag::Report;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read inventory {path}: {source}\n  = help: pass the file with -i FILE, or set DECKHAND_INVENTORY")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Report),
}

/// Load and validate an inventory file, taking `${VAR}` values from this process's environment.
pub fn load(path: &Path) -> Result<Inventory, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let env = |k: &str| std::env::var(k).ok();
    load_str(path, &source, &env).map_err(LoadError::Invalid)
}

/// Load from text; `env` answers `${VAR}` look-ups. Every problem found is in the report.
pub fn load_str(
    file: &Path,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Inventory, Report> {
    let report = |diagnostics| Report {
        file: file.to_path_buf(),
        source: source.to_string(),
        diagnostics,
    };
    // What the parser made of a broken file is a guess: its shape is not worth reporting on.
    let (root, errors) = DeTable::parse_recoverable(source);
    if !errors.is_empty() {
        return Err(report(syntax::diagnostics(source, &root, &errors)));
    }
    let mut cx = read::Cx::new(env);
    let inv = read::inventory(&mut cx, file, &root);
    let mut diags = cx.diags;
    if let Some(inv) = &inv {
        diags.extend(validate::validate(inv, source));
    }
    // Stable order: by position in the file.
    diags.sort_by_key(|d| d.span.as_ref().map(|s| s.start).unwrap_or(usize::MAX));
    match inv {
        Some(inv) if diags.is_empty() => Ok(inv),
        _ => Err(report(diags)),
    }
}
