//! Product search in the server: the keyword index of the catalog (kept in
//! `STORE/search/keyword`, updated with every catalog change), the personal
//! re-ranking of the top candidates with the serving sequence model, the
//! query log (`STORE/search/queries.jsonl`) and autocomplete.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aisle_core::CatalogItem;
use aisle_search::{Filters, KeywordIndex};
use serde_json::{json, Value};

use crate::state::{Live, Serving};

/// Search settings.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Keyword candidates fetched before fusion and re-ranking.
    pub candidates: usize,
    /// Weight of the personal term in the re-ranking (0: off).
    pub personal_weight: f32,
    /// Weight of the keyword list in the fusion.
    pub keyword_weight: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            candidates: 100,
            // Chosen on validation NDCG@10 of `aisle bench-search` on Online
            // Retail (BENCHMARKS.md §5): the personal order dominates.
            personal_weight: 16.0,
            keyword_weight: 1.0,
        }
    }
}

/// Popular past queries, for autocomplete.
#[derive(Default)]
struct QueryStats {
    counts: HashMap<String, u64>,
}

pub struct Search {
    pub cfg: SearchConfig,
    /// None when the index could not be built (the reason is in `error`).
    pub keyword: Option<KeywordIndex>,
    pub error: Option<String>,
    queries: Mutex<QueryStats>,
    log: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

/// Catalog entries the index holds: every item with a catalog entry.
pub fn indexable(live: &Live) -> Vec<CatalogItem> {
    live.catalog
        .iter()
        .zip(&live.deleted)
        .filter(|(_, d)| !**d)
        .filter_map(|(c, _)| c.clone())
        .collect()
}

impl Search {
    /// Opens (or builds) the index of `live`'s catalog under `dir`
    /// (`STORE/search`), in memory when `dir` is None.
    pub fn open(dir: Option<&Path>, live: &Live, cfg: SearchConfig) -> Search {
        let items = indexable(live);
        let t = std::time::Instant::now();
        let built = match dir {
            Some(d) => KeywordIndex::open(&d.join("keyword"), &items).or_else(|e| {
                // E.g. another process (a running server) holds the index.
                tracing::info!(error = %e, "keyword index on disk in use or unreadable; searching a copy built in memory");
                KeywordIndex::in_ram(&items)
            }),
            None => KeywordIndex::in_ram(&items),
        };
        let (keyword, error) = match built {
            Ok(k) => {
                tracing::info!(
                    items = items.len(),
                    secs = t.elapsed().as_secs_f64(),
                    "keyword index ready"
                );
                (Some(k), None)
            }
            Err(e) => {
                tracing::error!(error = %e, "keyword index unavailable; search answers 503");
                (None, Some(e.to_string()))
            }
        };
        let mut queries = QueryStats::default();
        let log = dir.and_then(|d| {
            let p = d.join("queries.jsonl");
            // Past queries feed autocomplete.
            if let Ok(text) = std::fs::read_to_string(&p) {
                for line in text.lines() {
                    if let Some(q) = serde_json::from_str::<Value>(line)
                        .ok()
                        .and_then(|v| v["q"].as_str().map(normalize))
                    {
                        *queries.counts.entry(q).or_default() += 1;
                    }
                }
            }
            std::fs::create_dir_all(d).ok()?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map(|f| Mutex::new(std::io::BufWriter::new(f)))
                .map_err(
                    |e| tracing::warn!(path = %p.display(), error = %e, "query log unavailable"),
                )
                .ok()
        });
        Search {
            cfg,
            keyword,
            error,
            queries: Mutex::new(queries),
            log,
        }
    }

    /// Keeps the index in step with a catalog change (called under the
    /// store lock, so changes reach the index in store order).
    pub fn item_changed(&self, item: &CatalogItem, deleted: bool) {
        let Some(k) = &self.keyword else { return };
        let r = if deleted {
            k.delete(&item.id)
        } else {
            k.upsert(std::slice::from_ref(item))
        };
        if let Err(e) = r {
            tracing::error!(item = item.id, error = %e, "keyword index update failed");
        }
    }

    /// Records a query (log line + autocomplete statistics).
    pub fn record(&self, entry: &Value) {
        if let Some(q) = entry["q"].as_str() {
            let q = normalize(q);
            if !q.is_empty() && q.chars().count() <= 100 {
                let mut s = self.queries.lock().unwrap_or_else(|e| e.into_inner());
                if s.counts.len() < 1_000_000 || s.counts.contains_key(&q) {
                    *s.counts.entry(q).or_default() += 1;
                }
            }
        }
        if let Some(log) = &self.log {
            let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(w, "{entry}");
            let _ = w.flush();
        }
    }

    /// Past queries starting with `prefix`, most frequent first.
    pub fn popular_queries(&self, prefix: &str, k: usize) -> Vec<(String, u64)> {
        let p = normalize(prefix);
        let s = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, u64)> = s
            .counts
            .iter()
            .filter(|(q, _)| q.starts_with(&p) && **q != p)
            .map(|(q, n)| (q.clone(), *n))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

fn normalize(q: &str) -> String {
    q.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A search request after validation.
pub struct SearchRequest {
    pub q: String,
    pub user: Option<String>,
    pub k: usize,
    pub filters: Filters,
    pub personal: bool,
}

/// Runs a search: keyword candidates, fusion, personal re-ranking.
pub fn run(
    search: &Search,
    live: &Live,
    serving: &Serving,
    req: &SearchRequest,
) -> Result<Value, String> {
    let keyword = search
        .keyword
        .as_ref()
        .ok_or_else(|| search.error.clone().unwrap_or_default())?;
    let n = search.cfg.candidates.max(req.k);
    let kw = keyword
        .search(&req.q, &req.filters, n)
        .map_err(|e| e.to_string())?;
    // Only items that may be shown (deleted or out of stock never are).
    let shown: Vec<usize> = (0..kw.candidates.len())
        .filter(|&c| {
            live.index
                .get(&kw.candidates[c].item_id)
                .is_some_and(|&i| live.recommendable(i))
        })
        .collect();
    let ids: Vec<String> = shown
        .iter()
        .map(|&c| kw.candidates[c].item_id.clone())
        .collect();
    let by_id: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(r, id)| (id.as_str(), r))
        .collect();
    // Personal scores: the serving model after the user's history.
    let mut personal_note = Value::Null;
    let mut scores: Option<Vec<f32>> = None;
    if let (true, Some(user), Some(model)) = (req.personal, &req.user, &serving.model) {
        match live.users.get(user) {
            None => personal_note = json!("unknown user: no personal ranking"),
            Some(u) => {
                let hist: Vec<u32> = u
                    .history
                    .iter()
                    .filter_map(|&i| serving.model_index.get(&live.items[i as usize]).copied())
                    .collect();
                if hist.is_empty() {
                    personal_note = json!("no history the model knows");
                } else {
                    let mut s = vec![0f32; model.n_items];
                    model.score_history(&hist, &mut s);
                    scores = Some(s);
                    personal_note =
                        json!(format!("re-ranked by {} {}", serving.name, serving.version));
                }
            }
        }
    }
    let personal = |id: &str| -> Option<f32> {
        let s = scores.as_ref()?;
        serving.model_index.get(id).map(|&j| s[j as usize])
    };
    let ranked = aisle_search::fuse::rank(
        &[(&ids, search.cfg.keyword_weight)],
        &personal,
        if scores.is_some() {
            search.cfg.personal_weight
        } else {
            0.0
        },
    );
    let mut results: Vec<Value> = Vec::with_capacity(req.k);
    for r in ranked.iter().take(req.k) {
        let kr = by_id[r.id.as_str()];
        let h = kw.explain(shown[kr]).map_err(|e| e.to_string())?;
        results.push(json!({
            "item_id": r.id,
            "title": h.title,
            "score": r.score,
            "why": {
                "matched": h.matched,
                "approximate": h.approximate,
                "keyword_rank": kr + 1,
                "bm25": h.score,
                "semantic": Value::Null,
                "personal": r.personal_rank.map(|pr| json!({"rank": pr, "boost": r.boost})),
            },
        }));
    }
    Ok(json!({
        "results": results,
        "total": kw.total,
        "facets": {"category": kw.facets.iter().map(|(c, n)| json!({"value": c, "count": n})).collect::<Vec<_>>()},
        "query": {"words": kw.words, "modes": ["keyword"], "personal": personal_note},
        "semantic": "not available: no embedder in this build yet (keyword only)",
    }))
}

/// STORE/search for a store directory.
pub fn dir_of(store_dir: Option<&Path>) -> Option<PathBuf> {
    store_dir.map(|d| d.join("search"))
}
