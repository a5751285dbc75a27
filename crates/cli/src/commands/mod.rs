//! The subcommands, one module per family: data (ingest, append, stats,
//! split, presets, demo-data), demo, models (bench, evaluate, train, the
//! registry), serve (serve, index, search), experiments (list, report, ope)
//! and simulate. Each parses its arguments
//! into library calls and prints; this module holds what they share.

pub mod data;
pub mod demo;
pub mod experiments;
pub mod models;
mod report;
pub mod serve;
pub mod shops;
pub mod simulate;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// The sentence encoder's folder: `AISLE_EMBEDDER_DIR` when set (only the
/// binary reads the environment), else where `aisle_embed` finds it.
pub(crate) fn embedder_dir() -> PathBuf {
    std::env::var_os("AISLE_EMBEDDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(aisle_embed::default_dir)
}

/// Where the store's files go (see [`aisle_store::files_dir`]; the system's
/// temporary directory for a store in memory).
fn store_dir(url: &str) -> Result<PathBuf> {
    let shared = matches!(
        aisle_store::parse_url(url)?,
        aisle_store::Location::Postgres(_)
    );
    let dir = aisle_store::files_dir(url).unwrap_or_else(std::env::temp_dir);
    if shared {
        std::fs::create_dir_all(&dir)?;
    }
    Ok(dir)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {percent:>3}% {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A progress bar per step of a training run, cleared when the step ends.
struct Bars;

/// Clears its bar when dropped (with the step's progress callback).
struct Cleared(ProgressBar);

impl Drop for Cleared {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl aisle_train::Monitor for Bars {
    fn step<'a>(&'a self, what: &str) -> Box<dyn Fn(u64, u64) + Sync + 'a> {
        let pb = Cleared(bar(0, what));
        Box::new(move |done, total| {
            pb.0.set_length(total);
            pb.0.set_position(done);
        })
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The model registry of the store at `store`.
pub(crate) fn registry(store: &str) -> Result<aisle_train::Registry> {
    aisle_train::Registry::of_store(store)?.ok_or_else(|| no_registry(store))
}

/// The error for a store without a registry (an in-memory one).
pub(crate) fn no_registry(store: &str) -> anyhow::Error {
    anyhow::anyhow!("{store} has no place for a model registry")
}
