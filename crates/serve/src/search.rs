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
use serde::Serialize;
use serde_json::Value;

use crate::state::{Live, Serving};
use aisle_train::Servable;

/// A progress callback for long index work: (stage, done, total), stage
/// `embedding` or `graph`. The server logs; `aisle index` draws bars.
#[derive(Clone, Default)]
pub struct Progress(pub Option<ProgressFn>);

/// (stage, done, total).
pub type ProgressFn = std::sync::Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(on)"
        } else {
            "Progress(log)"
        })
    }
}

impl Progress {
    fn report(&self, stage: &str, done: u64, total: u64) {
        match &self.0 {
            Some(f) => f(stage, done, total),
            None => tracing::info!(stage, done, total, "search index"),
        }
    }
}

/// Search settings.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Keyword candidates fetched before fusion and re-ranking.
    pub candidates: usize,
    /// Weight of the personal term in the re-ranking (0: off).
    pub personal_weight: f32,
    /// Weight of the keyword list in the fusion.
    pub keyword_weight: f32,
    /// Weight of the semantic list in the fusion.
    pub semantic_weight: f32,
    /// The sentence encoder's folder (None: `aisle_embed::default_dir()`).
    pub embedder_dir: Option<PathBuf>,
    /// Turn semantic retrieval off (keyword only).
    pub no_semantic: bool,
    /// Catalogs with at least this many items get an HNSW graph for semantic
    /// retrieval (smaller ones are scanned exactly).
    pub ann_min_items: usize,
    /// Beam width of a graph search (at least the number of candidates).
    pub ann_ef: usize,
    /// Progress of embedding and graph building.
    pub progress: Progress,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            candidates: 100,
            // Chosen on validation NDCG@10 of `aisle bench-search` on Online
            // Retail (BENCHMARKS.md §5): the personal order dominates.
            personal_weight: 16.0,
            keyword_weight: 1.0,
            semantic_weight: 1.0,
            embedder_dir: None,
            no_semantic: false,
            ann_min_items: 20_000,
            // Recall@10 against exact search is measured in BENCHMARKS.md §5.
            ann_ef: 128,
            progress: Progress::default(),
        }
    }
}

/// Popular past queries, for autocomplete.
#[derive(Default)]
struct QueryStats {
    counts: HashMap<String, u64>,
}

impl QueryStats {
    /// Counts a query: normalised, 1 to 100 characters, at most 1,000,000
    /// distinct queries (live, at start-up and after an erasure alike).
    fn add(&mut self, q: &str) {
        let q = normalize(q);
        if !q.is_empty()
            && q.chars().count() <= 100
            && (self.counts.len() < 1_000_000 || self.counts.contains_key(&q))
        {
            *self.counts.entry(q).or_default() += 1;
        }
    }

    /// Counts the query of one query-log line (a torn line counts nothing).
    fn add_line(&mut self, v: Option<&Value>) {
        if let Some(q) = v.and_then(|v| v["q"].as_str()) {
            self.add(q);
        }
    }
}

/// The query log, `STORE/search/queries.jsonl`, appended to.
struct QueryLog {
    path: std::path::PathBuf,
    w: Mutex<std::io::BufWriter<std::fs::File>>,
}

/// Semantic retrieval: the encoder, the item vectors, a query cache.
pub struct Semantic {
    pub embedder: aisle_embed::Embedder,
    pub index: std::sync::RwLock<aisle_search::AnnIndex>,
    cache: Mutex<HashMap<String, std::sync::Arc<Vec<f32>>>>,
}

/// Query vectors kept (the cache is cleared when full).
const QUERY_CACHE: usize = 10_000;

impl Semantic {
    /// Loads the encoder and the stored item vectors; embeds what is missing
    /// or changed (batched, progress in the log) and stores the result. With
    /// `ann_min_items` items or more, an HNSW graph (`hnsw.bin`, reused while
    /// the vectors are the same) serves semantic retrieval.
    pub fn open(
        dir: Option<&Path>,
        items: &[CatalogItem],
        embedder: aisle_embed::Embedder,
        ann_min_items: usize,
        ann_ef: usize,
        progress: &Progress,
    ) -> Semantic {
        let path = dir.map(|d| d.join("vectors.bin"));
        let dim = embedder.dim();
        let mut index = path
            .as_deref()
            .and_then(|p| aisle_search::ExactIndex::load(p, dim))
            .unwrap_or_else(|| aisle_search::ExactIndex::new(dim));
        let ids: std::collections::HashSet<&str> = items.iter().map(|c| c.id.as_str()).collect();
        index.retain(|id| ids.contains(id));
        let todo: Vec<(&str, String, u64)> = items
            .iter()
            .map(|c| {
                let t = aisle_search::item_text(c);
                let h = aisle_search::text_hash(&t);
                (c.id.as_str(), t, h)
            })
            .filter(|(id, _, h)| index.text_hash(id) != Some(*h))
            .collect();
        if !todo.is_empty() {
            let t0 = std::time::Instant::now();
            let chunk = 512;
            for (n, part) in todo.chunks(chunk).enumerate() {
                let texts: Vec<&str> = part.iter().map(|(_, t, _)| t.as_str()).collect();
                match embedder.embed(&texts) {
                    Ok(vecs) => {
                        for ((id, _, h), v) in part.iter().zip(vecs) {
                            index.upsert(id, *h, &v);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "embedding items failed"),
                }
                progress.report(
                    "embedding",
                    (n * chunk + part.len()) as u64,
                    todo.len() as u64,
                );
                tracing::debug!(secs = t0.elapsed().as_secs_f64(), "embedding catalog items");
            }
        }
        if let Some(p) = &path {
            if let Some(d) = p.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            if let Err(e) = index.save(p) {
                tracing::warn!(error = %e, "could not store item vectors");
            }
        }
        let mut index = aisle_search::AnnIndex::exact_only(index);
        index.ef = ann_ef;
        if aisle_search::VectorIndex::len(&index) >= ann_min_items.max(1) {
            let gpath = dir.map(|d| d.join("hnsw.bin"));
            if !gpath.as_deref().is_some_and(|p| index.load_graph(p)) {
                let t0 = std::time::Instant::now();
                let n = aisle_search::VectorIndex::len(&index);
                index.build_graph(aisle_search::hnsw::HnswParams::default(), &|done| {
                    if done % 4096 == 0 || done == n {
                        progress.report("graph", done as u64, n as u64);
                    }
                });
                tracing::info!(
                    items = n,
                    secs = t0.elapsed().as_secs_f64(),
                    "vector graph built"
                );
                if let Some(p) = &gpath {
                    if let Err(e) = index.save_graph(p) {
                        tracing::warn!(error = %e, "could not store the vector graph");
                    }
                }
            }
        }
        Semantic {
            embedder,
            index: std::sync::RwLock::new(index),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The query's vector (cached by normalized text).
    pub fn query_vector(&self, q: &str) -> Result<std::sync::Arc<Vec<f32>>, String> {
        let key = normalize(q);
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v.clone());
        }
        let v = self.embedder.embed_one(q).map_err(|e| e.to_string())?;
        let v = std::sync::Arc::new(v);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= QUERY_CACHE {
            c.clear();
        }
        c.insert(key, v.clone());
        Ok(v)
    }

    /// Embeds a changed item before taking the index lock (searches never
    /// wait on the encoder). `vectors.bin` is not rewritten here: it is a
    /// cache checked by text hash, so the next start re-embeds what changed.
    fn item_changed(&self, item: &CatalogItem, deleted: bool) {
        if deleted {
            self.index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&item.id);
            return;
        }
        let t = aisle_search::item_text(item);
        let h = aisle_search::text_hash(&t);
        let current = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .exact
            .text_hash(&item.id);
        if current == Some(h) {
            return;
        }
        match self.embedder.embed(&[&t]) {
            Ok(mut v) => self
                .index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .upsert(&item.id, h, &v.pop().unwrap_or_default()),
            Err(e) => tracing::error!(item = item.id, error = %e, "embedding failed"),
        }
    }
}

pub struct Search {
    pub cfg: SearchConfig,
    /// None when the index could not be built (the reason is in `error`).
    pub keyword: Option<KeywordIndex>,
    pub error: Option<String>,
    /// None when the encoder is not installed or turned off (`semantic_note` says why).
    pub semantic: Option<Semantic>,
    pub semantic_note: String,
    queries: Mutex<QueryStats>,
    log: Option<QueryLog>,
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
                    queries.add_line(serde_json::from_str::<Value>(line).ok().as_ref());
                }
            }
            std::fs::create_dir_all(d).ok()?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map(|f| QueryLog {
                    path: p.clone(),
                    w: Mutex::new(std::io::BufWriter::new(f)),
                })
                .map_err(
                    |e| tracing::warn!(path = %p.display(), error = %e, "query log unavailable"),
                )
                .ok()
        });
        let (semantic, semantic_note) = if cfg.no_semantic {
            (None, "off (no_semantic)".to_string())
        } else {
            let edir = cfg
                .embedder_dir
                .clone()
                .unwrap_or_else(aisle_embed::default_dir);
            match aisle_embed::Embedder::load(&edir) {
                Ok(e) => (
                    Some(Semantic::open(
                        dir,
                        &items,
                        e,
                        cfg.ann_min_items,
                        cfg.ann_ef,
                        &cfg.progress,
                    )),
                    format!("all-MiniLM-L6-v2 from {}", edir.display()),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "semantic search unavailable; keyword only");
                    (None, format!("not available: {e}"))
                }
            }
        };
        Search {
            cfg,
            keyword,
            error,
            semantic,
            semantic_note,
            queries: Mutex::new(queries),
            log,
        }
    }

    /// Keeps the index in step with a catalog change (called under the
    /// store lock, so changes reach the index in store order).
    pub fn item_changed(&self, item: &CatalogItem, deleted: bool) {
        if let Some(s) = &self.semantic {
            s.item_changed(item, deleted);
        }
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
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_line(Some(entry));
        if let Some(log) = &self.log {
            let mut w = log.w.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(w, "{entry}");
            let _ = w.flush();
        }
    }

    /// Erases `user`'s queries: the query log is rewritten without them
    /// (synced, then renamed over the old one) and autocomplete is recounted
    /// from what is left. Returns how many were removed. (Without a store
    /// folder there is no log, and suggestions keep no per-user record.)
    pub fn erase_user(&self, user: &str) -> std::io::Result<u64> {
        let Some(log) = &self.log else { return Ok(0) };
        let path = &log.path;
        let mut w = log.w.lock().unwrap_or_else(|e| e.into_inner());
        w.flush()?;
        let text = std::fs::read_to_string(path)?;
        let mut kept = String::with_capacity(text.len());
        let mut counts = QueryStats::default();
        let mut removed = 0;
        for line in text.lines() {
            let v = serde_json::from_str::<Value>(line).ok();
            let mine = match &v {
                Some(v) => v["user"].as_str() == Some(user),
                // A torn line: dropped if it names the user at all (as a
                // whole token, the quarantine's rule).
                None => aisle_ingest::erase::mentions(line.as_bytes(), user.as_bytes()),
            };
            if mine {
                removed += 1;
                continue;
            }
            counts.add_line(v.as_ref());
            kept.push_str(line);
            kept.push('\n');
        }
        if removed > 0 {
            let tmp = path.with_extension("jsonl.tmp");
            {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(kept.as_bytes())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)?;
            let f = std::fs::OpenOptions::new().append(true).open(path)?;
            *w = std::io::BufWriter::new(f);
            *self.queries.lock().unwrap_or_else(|e| e.into_inner()) = counts;
        }
        Ok(removed)
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
    /// `keyword`, `semantic` or `hybrid` (None: hybrid when the encoder is
    /// installed, else keyword).
    pub mode: Option<String>,
}

/// What `GET /v1/search` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Best first.
    pub results: Vec<SearchHit>,
    /// Items that matched (keyword mode and hybrid: keyword matches).
    pub total: usize,
    pub facets: Facets,
    pub query: QueryInfo,
    /// Whether semantic search is on, and why not when it is off.
    pub semantic: String,
    /// Time spent answering, in milliseconds.
    pub took_ms: f64,
}

/// One result and why it ranks where it does.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub item_id: String,
    pub title: String,
    pub score: f32,
    pub why: Why,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Why {
    /// Query words found in the item.
    pub matched: Vec<String>,
    /// Query words matched approximately (typo or prefix).
    pub approximate: Vec<String>,
    /// 1-based rank in the keyword list.
    pub keyword_rank: Option<usize>,
    pub bm25: Option<f32>,
    pub semantic: Option<SemanticMatch>,
    pub personal: Option<PersonalBoost>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SemanticMatch {
    /// 1-based rank in the semantic list.
    pub rank: usize,
    pub cosine: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonalBoost {
    /// Rank of the item in the user's model scores among the candidates.
    pub rank: usize,
    pub boost: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Facets {
    pub category: Vec<FacetCount>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryInfo {
    /// The analyzed query words.
    pub words: Vec<String>,
    pub mode: String,
    /// The retrievers that ran.
    pub modes: Vec<String>,
    /// What personal ranking did (None: not asked or no model).
    pub personal: Option<String>,
}

/// Runs a search: keyword candidates, fusion, personal re-ranking.
/// The retrieval mode asked for (hybrid by default when semantic search is up).
fn mode_of(search: &Search, req: &SearchRequest) -> Result<&'static str, String> {
    let mode = match req.mode.as_deref() {
        Some("keyword") => "keyword",
        Some("semantic") => "semantic",
        Some("hybrid") => "hybrid",
        Some(other) => {
            return Err(format!(
                "mode must be keyword, semantic or hybrid, not {other:?}"
            ))
        }
        None if search.semantic.is_some() => "hybrid",
        None => "keyword",
    };
    if mode != "keyword" && search.semantic.is_none() {
        return Err(format!("semantic search is {}", search.semantic_note));
    }
    Ok(mode)
}

/// Keyword candidates and, for semantic modes, the query's embedding: the
/// embedding (the slow part of hybrid search, ~5 ms) runs on its own thread
/// while keyword retrieval runs on this one.
#[allow(clippy::type_complexity)]
fn retrieve(
    search: &Search,
    keyword: &aisle_search::KeywordIndex,
    req: &SearchRequest,
    mode: &str,
    n: usize,
) -> (
    Result<aisle_search::KeywordResults, String>,
    Option<Result<std::sync::Arc<Vec<f32>>, String>>,
) {
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let embedding = match (&search.semantic, mode) {
            (Some(s), "semantic" | "hybrid") => Some(scope.spawn(|| s.query_vector(&req.q))),
            _ => None,
        };
        let kw = if mode == "semantic" {
            Ok(aisle_search::KeywordResults::default())
        } else {
            keyword
                .search(&req.q, &req.filters, n)
                .map_err(|e| e.to_string())
        };
        let keyword_ms = started.elapsed().as_secs_f64() * 1e3;
        let v = embedding.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err("the query encoder panicked".to_string()))
        });
        tracing::debug!(
            keyword_ms,
            retrieval_ms = started.elapsed().as_secs_f64() * 1e3,
            "search retrieval"
        );
        (kw, v)
    })
}

/// Personal scores (the serving model after the user's history) and what
/// the response says about them.
fn personal_scores(
    live: &Live,
    serving: &Serving,
    req: &SearchRequest,
) -> (Option<Vec<f32>>, Option<String>) {
    let (true, Some(user), Some(model)) = (req.personal, &req.user, &serving.model) else {
        return (None, None);
    };
    let Some(u) = live.users.get(user) else {
        return (None, Some("unknown user: no personal ranking".into()));
    };
    let hist = serving.known_history(live, &u.history);
    if hist.is_empty() {
        return (None, Some("no history the model knows".into()));
    }
    let mut s = vec![0f32; model.n_items()];
    model.score_history(&hist, &mut s);
    let note = format!("re-ranked by {} {}", serving.name, serving.version);
    (Some(s), Some(note))
}

/// The shown results with why each is where it is.
fn hits(
    ranked: &[aisle_search::fuse::Ranked],
    kw: &aisle_search::KeywordResults,
    (shown, kw_rank): (&[usize], &HashMap<&str, usize>),
    sem_score: &HashMap<&str, (usize, f32)>,
    live: &Live,
) -> Result<Vec<SearchHit>, String> {
    let mut results: Vec<SearchHit> = Vec::with_capacity(ranked.len());
    for r in ranked {
        let kr = kw_rank.get(r.id.as_str()).copied();
        let (title, matched, approximate, bm25) = match kr {
            Some(kr) => {
                let h = kw.explain(shown[kr]).map_err(|e| e.to_string())?;
                (h.title, h.matched, h.approximate, Some(h.score))
            }
            None => {
                let t = live
                    .index
                    .get(&r.id)
                    .map(|&i| live.title(i))
                    .unwrap_or_default();
                (t, Vec::new(), Vec::new(), None)
            }
        };
        let semantic = sem_score
            .get(r.id.as_str())
            .map(|&(rank, cosine)| SemanticMatch {
                rank: rank + 1,
                cosine,
            });
        results.push(SearchHit {
            item_id: r.id.clone(),
            title,
            score: r.score,
            why: Why {
                matched,
                approximate,
                keyword_rank: kr.map(|k| k + 1),
                bm25,
                semantic,
                personal: r.personal_rank.map(|rank| PersonalBoost {
                    rank,
                    boost: r.boost,
                }),
            },
        });
    }
    Ok(results)
}

pub fn run(
    search: &Search,
    live: &Live,
    serving: &Serving,
    req: &SearchRequest,
) -> Result<SearchResults, String> {
    let keyword = search
        .keyword
        .as_ref()
        .ok_or_else(|| search.error.clone().unwrap_or_default())?;
    let n = search.cfg.candidates.max(req.k);
    let mode = mode_of(search, req)?;
    let f = &req.filters;
    let allowed = |id: &str| -> bool {
        live.index
            .get(id)
            .is_some_and(|&i| live.passes(i, f.category.as_deref(), f.price_min, f.price_max))
    };
    let started = std::time::Instant::now();
    let (kw, query_vec) = retrieve(search, keyword, req, mode, n);
    let kw = kw?;
    // Only items that may be shown (deleted or out of stock never are).
    let shown: Vec<usize> = (0..kw.candidates.len())
        .filter(|&c| allowed(&kw.candidates[c].item_id))
        .collect();
    let kw_ids: Vec<String> = shown
        .iter()
        .map(|&c| kw.candidates[c].item_id.clone())
        .collect();
    let kw_rank: HashMap<&str, usize> = kw_ids
        .iter()
        .enumerate()
        .map(|(r, id)| (id.as_str(), r))
        .collect();
    let sem: Vec<(String, f32)> = match (&search.semantic, query_vec) {
        (Some(s), Some(q)) => {
            let q = q?;
            let ix = s.index.read().unwrap_or_else(|e| e.into_inner());
            aisle_search::VectorIndex::search(&*ix, &q, n, &allowed)
        }
        _ => Vec::new(),
    };
    let sem_ids: Vec<String> = sem.iter().map(|(id, _)| id.clone()).collect();
    let sem_score: HashMap<&str, (usize, f32)> = sem
        .iter()
        .enumerate()
        .map(|(r, (id, s))| (id.as_str(), (r, *s)))
        .collect();
    let (scores, personal_note) = personal_scores(live, serving, req);
    let personal = |id: &str| -> Option<f32> {
        let s = scores.as_ref()?;
        serving.model_index.get(id).map(|&j| s[j as usize])
    };
    let ranked = aisle_search::fuse::rank(
        &[
            (&kw_ids, search.cfg.keyword_weight),
            (&sem_ids, search.cfg.semantic_weight),
        ],
        &personal,
        if scores.is_some() {
            search.cfg.personal_weight
        } else {
            0.0
        },
    );
    let results = hits(
        &ranked[..ranked.len().min(req.k)],
        &kw,
        (&shown, &kw_rank),
        &sem_score,
        live,
    )?;
    tracing::debug!(
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "search ranked and explained"
    );
    let modes: Vec<&str> = match mode {
        "hybrid" => vec!["keyword", "semantic"],
        m => vec![m],
    };
    Ok(SearchResults {
        results,
        total: if mode == "semantic" {
            sem.len()
        } else {
            kw.total
        },
        facets: Facets {
            category: kw
                .facets
                .iter()
                .map(|(value, count)| FacetCount {
                    value: value.clone(),
                    count: *count,
                })
                .collect(),
        },
        query: QueryInfo {
            words: kw.words.clone(),
            mode: mode.to_string(),
            modes: modes.iter().map(|m| m.to_string()).collect(),
            personal: personal_note,
        },
        semantic: search.semantic_note.clone(),
        took_ms: 0.0,
    })
}

/// STORE/search for a store directory.
pub fn dir_of(store_dir: Option<&Path>) -> Option<PathBuf> {
    store_dir.map(|d| d.join("search"))
}
