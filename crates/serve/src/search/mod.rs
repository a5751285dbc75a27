//! Product search in the server: the keyword index of the catalog (kept in
//! `STORE/search/keyword`, updated with every catalog change), the personal
//! re-ranking of the top candidates with the serving sequence model, the
//! query log (`STORE/search/queries.jsonl`) and autocomplete.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aisle_core::CatalogItem;
use aisle_search::KeywordIndex;
use serde_json::Value;

use crate::state::Live;

mod query;
pub use query::{
    pool_features, run, FacetCount, Facets, FusionWeights, PersonalBoost, PoolFeatures, QueryInfo,
    QueryIntent, Rerank, SearchHit, SearchRequest, SearchResults, SemanticMatch, Why,
};

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
    /// Fusion weights (keyword, semantic) per query class (short,
    /// sentence, corrected; see `aisle_search::understand`), in hybrid mode.
    pub class_weights: ClassWeights,
    /// Weight of an intent's list (colour, material, "cheap") in the fusion.
    pub intent_weight: f32,
    /// Collapse results whose titles are the same but for case, spacing
    /// and punctuation (the best one shows, the rest are listed with it).
    pub collapse_duplicates: bool,
    /// Show out-of-stock products after every product in stock (false:
    /// never show them).
    pub demote_out_of_stock: bool,
    /// The re-ranking stage of hybrid search over the fused top
    /// `aisle_search::rerank::POOL` (None, the default: the fused order
    /// stands).
    pub rerank: Option<aisle_search::rerank::Ranker>,
}

/// Fusion weights (keyword, semantic) for each query class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassWeights {
    pub short: (f32, f32),
    pub sentence: (f32, f32),
    pub corrected: (f32, f32),
}

impl ClassWeights {
    /// The same weights for every class.
    pub fn uniform(keyword: f32, semantic: f32) -> ClassWeights {
        ClassWeights {
            short: (keyword, semantic),
            sentence: (keyword, semantic),
            corrected: (keyword, semantic),
        }
    }

    pub fn of(&self, class: aisle_search::understand::QueryClass) -> (f32, f32) {
        use aisle_search::understand::QueryClass;
        match class {
            QueryClass::Short => self.short,
            QueryClass::Sentence => self.sentence,
            QueryClass::Corrected => self.corrected,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            candidates: 100,
            // Chosen on validation NDCG@10 of `aisle bench-search` on Online
            // Retail (BENCHMARKS.md §5): the personal order dominates.
            personal_weight: 16.0,
            embedder_dir: None,
            no_semantic: false,
            ann_min_items: 20_000,
            // Recall@10 against exact search is measured in BENCHMARKS.md §5.
            ann_ef: 128,
            progress: Progress::default(),
            // Fitted per class on the training split of the judged natural
            // queries (`aisle bench-search --set natural --fit-weights` on
            // Online Retail; BENCHMARKS.md §5): semantic leads for
            // sentences, keyword once a word was corrected. Short queries:
            // flat on the natural set (1:1 within 0.003 of the best), and
            // 1:1 is the head-noun set's best on validation.
            class_weights: ClassWeights {
                short: (1.0, 1.0),
                sentence: (0.25, 0.5),
                corrected: (1.0, 0.25),
            },
            intent_weight: 1.0,
            collapse_duplicates: true,
            demote_out_of_stock: false,
            // Off: no fitted ranker beats the fused order on the natural
            // set's test split (`aisle bench-search --set natural
            // --fit-ranker`; BENCHMARKS.md §15).
            rerank: None,
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
    pub embedder: std::sync::Arc<aisle_embed::Embedder>,
    pub index: std::sync::RwLock<aisle_search::AnnIndex>,
    cache: Mutex<HashMap<String, std::sync::Arc<Vec<f32>>>>,
}

/// The encoder in `dir`, loaded once per process while anything holds it:
/// every shop's search shares one (its weights are ~90 MB).
pub fn shared_embedder(dir: &Path) -> aisle_embed::Result<std::sync::Arc<aisle_embed::Embedder>> {
    static LOADED: crate::ProcessShared<PathBuf, aisle_embed::Embedder> =
        crate::ProcessShared::new();
    LOADED.get_or(dir.to_path_buf(), || aisle_embed::Embedder::load(dir))
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
        embedder: std::sync::Arc<aisle_embed::Embedder>,
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
    /// The catalog's words, for query understanding.
    pub vocabulary: std::sync::RwLock<aisle_search::understand::Vocabulary>,
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
            match shared_embedder(&edir) {
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
        let mut vocabulary = aisle_search::understand::Vocabulary::of(&items);
        if let Some(s) = &semantic {
            vocabulary.set_language_words(s.embedder.whole_words());
        }
        Search {
            cfg,
            keyword,
            error,
            semantic,
            semantic_note,
            queries: Mutex::new(queries),
            log,
            vocabulary: std::sync::RwLock::new(vocabulary),
        }
    }

    /// Keeps the index in step with a catalog change (called under the
    /// store lock, so changes reach the index in store order).
    pub fn item_changed(&self, item: &CatalogItem, deleted: bool) {
        if let Some(s) = &self.semantic {
            s.item_changed(item, deleted);
        }
        if !deleted {
            // (A deleted item's words stay known: the vocabulary only grows.)
            let other: Vec<&str> = [&item.category, &item.description]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let mut v = self.vocabulary.write().unwrap_or_else(|e| e.into_inner());
            v.add(item.title.as_deref().unwrap_or(""), &other);
            if let Some(c) = &item.category {
                v.add_category(c);
            }
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

/// STORE/search for a store directory.
pub fn dir_of(store_dir: Option<&Path>) -> Option<PathBuf> {
    store_dir.map(|d| d.join("search"))
}
