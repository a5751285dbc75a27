//! The model registry: trained artifacts in `STORE/models/*.safetensors`
//! (each carries its kind, config, item ids and training figures in its
//! metadata), a `PROMOTED` file naming the one to serve, and
//! `promotions.log` with every promotion (so `rollback` can go back).
//!
//! Over a PostgreSQL store the artifacts and promotions live in the database
//! ([`aisle_store::pg::PgModels`]), so every replica and worker shares them;
//! the folder is then a local cache the artifacts are read from (a training
//! run writes there, then [`Registry::publish`]es), and a promotion reaches
//! every replica as a change on the store's feed.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Artifact, Result, TrainError};

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// File name, e.g. `sasrec-1764300000.safetensors`: the version id.
    pub version: String,
    pub model: String,
    pub bytes: u64,
    pub promoted: bool,
    /// Metadata written at training time (dataset, users, best_valid_ndcg10...).
    pub meta: serde_json::Map<String, serde_json::Value>,
}

pub struct Registry {
    dir: PathBuf,
    /// The database that holds the artifacts (PostgreSQL stores).
    remote: Option<aisle_store::pg::PgModels>,
}

impl Registry {
    /// The registry of a store directory.
    pub fn new(store_dir: &Path) -> Registry {
        Registry {
            dir: store_dir.join("models"),
            remote: None,
        }
    }

    /// The registry of the store at `url`: its folder's, or the database's
    /// (cached in a folder of the system's temporary directory named after
    /// the URL); None for an in-memory store.
    pub fn of_store(url: &str) -> Result<Option<Registry>> {
        match aisle_store::parse_url(url)? {
            aisle_store::Location::Postgres(u) => {
                let shown = aisle_store::pg::redact(&u);
                let tag = aisle_core::hash::hash_fields([shown.as_bytes()]);
                Ok(Some(Registry {
                    dir: std::env::temp_dir().join(format!("aisle-models-{tag:016x}")),
                    remote: Some(aisle_store::pg::PgModels::open(&u)?),
                }))
            }
            loc => Ok(loc.dir().map(|d| Registry::new(&d))),
        }
    }

    /// Stores the artifact at `path` (in this registry's folder) in the
    /// database, for the other processes; a no-op for a folder registry.
    pub fn publish(&self, path: &Path) -> Result<String> {
        let version = self.version_of(path)?;
        if let Some(r) = &self.remote {
            let model = read_meta(path)
                .and_then(|m| m.get("model").and_then(|v| v.as_str()).map(String::from))
                .unwrap_or_else(|| "?".into());
            r.put(&version, &model, &std::fs::read(path)?)?;
        }
        Ok(version)
    }

    /// Copies `version` from the database into the cache folder if it is
    /// not there yet (written whole, then renamed).
    fn pull(&self, version: &str) -> Result<()> {
        let Some(r) = &self.remote else {
            return Ok(());
        };
        let path = self.dir.join(version);
        if path.exists() {
            return Ok(());
        }
        if let Some(bytes) = r.get(version)? {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = self
                .dir
                .join(format!(".{version}.{}.part", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every artifact, oldest first (by file name: MODEL-UNIXTIME).
    pub fn list(&self) -> Result<Vec<Entry>> {
        let promoted = self.promoted_name()?;
        let mut out = Vec::new();
        let shared: Option<std::collections::HashSet<String>> = match &self.remote {
            Some(r) => {
                let versions = r.versions()?;
                for (v, _) in &versions {
                    self.pull(v)?;
                }
                Some(versions.into_iter().map(|(v, _)| v).collect())
            }
            None => None,
        };
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.ends_with(".safetensors") {
                continue;
            }
            // (The cache may hold a version of an older database at this URL.)
            if shared.as_ref().is_some_and(|s| !s.contains(&name)) {
                continue;
            }
            let meta = read_meta(&e.path()).unwrap_or_default();
            out.push(Entry {
                model: meta
                    .get("model")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string(),
                bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                promoted: promoted.as_deref() == Some(name.as_str()),
                version: name,
                meta,
            });
        }
        out.sort_by_key(|e| {
            let stamp = e
                .version
                .trim_end_matches(".safetensors")
                .rsplit('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            (stamp, e.version.clone())
        });
        Ok(out)
    }

    /// The promoted version's file name, if any.
    pub fn promoted_name(&self) -> Result<Option<String>> {
        if let Some(r) = &self.remote {
            return Ok(r.promoted()?);
        }
        match std::fs::read_to_string(self.dir.join("PROMOTED")) {
            Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::Io(e)),
        }
    }

    /// The file of `version`; names that could leave the registry folder are refused.
    pub fn path_of(&self, version: &str) -> Result<PathBuf> {
        if version.contains('/') || version.contains("..") {
            return Err(TrainError::BadVersion(version.to_string()));
        }
        self.pull(version)?;
        Ok(self.dir.join(version))
    }

    /// The version (file name) of an artifact at `path`, which must lie in
    /// this registry's folder.
    pub fn version_of(&self, path: &Path) -> Result<String> {
        let outside = || TrainError::NotInRegistry {
            path: path.to_path_buf(),
            dir: self.dir.clone(),
        };
        let inside = path
            .parent()
            .zip(std::fs::canonicalize(&self.dir).ok())
            .is_some_and(|(p, d)| std::fs::canonicalize(p).ok() == Some(d));
        if !inside {
            return Err(outside());
        }
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(outside)
    }

    /// Marks `version` as the one to serve, after checking that it loads.
    pub fn promote(&self, version: &str) -> Result<()> {
        Artifact::load(&self.path_of(version)?).map_err(|e| TrainError::NotPromotable {
            version: version.to_string(),
            reason: e.to_string(),
        })?;
        self.mark_promoted(version)
    }

    /// Records `version` as promoted without loading it: for a caller that
    /// has just loaded it (the server's hot swap).
    pub fn mark_promoted(&self, version: &str) -> Result<()> {
        self.path_of(version)?;
        if let Some(r) = &self.remote {
            return Ok(r.promote(version)?);
        }
        let tmp = self.dir.join("PROMOTED.tmp");
        std::fs::write(&tmp, format!("{version}\n"))?;
        std::fs::rename(&tmp, self.dir.join("PROMOTED"))?;
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("promotions.log"))?;
        writeln!(log, "{version}")?;
        Ok(())
    }

    /// Promotes the version promoted before the current one.
    pub fn rollback(&self) -> Result<String> {
        let log = match &self.remote {
            Some(r) => r.promotions()?.join("\n"),
            None => std::fs::read_to_string(self.dir.join("promotions.log")).unwrap_or_default(),
        };
        let mut history: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
        let current = self.promoted_name()?;
        // Drop the current promotion (and repeats of it) from the end.
        while history
            .last()
            .is_some_and(|l| Some(*l) == current.as_deref())
        {
            history.pop();
        }
        let Some(prev) = history.last() else {
            return Err(TrainError::NoEarlierPromotion);
        };
        let prev = prev.to_string();
        self.promote(&prev)?;
        Ok(prev)
    }
}

/// The metadata of an artifact as JSON strings, read from its header only;
/// the long `item_ids` list is replaced by its count, `items`, and the
/// training curve is JSON.
fn read_meta(path: &Path) -> Option<serde_json::Map<String, serde_json::Value>> {
    let meta = aisle_core::tensors::read_meta(path)?;
    Some(
        meta.into_iter()
            .map(|(k, v)| {
                if k == "item_ids" {
                    let n = serde_json::from_str::<Vec<String>>(&v).map_or(0, |v| v.len());
                    ("items".to_string(), serde_json::json!(n))
                } else if k == crate::fit::CURVE {
                    let curve = serde_json::from_str(&v).unwrap_or(serde_json::Value::Null);
                    (k, curve)
                } else {
                    (k, serde_json::Value::String(v))
                }
            })
            .collect(),
    )
}
