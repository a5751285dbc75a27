//! `aisle bench-search`: search quality on two query sets.
//!
//! **natural** ([`natural`]): shopper-style queries judged by written rules
//! over the catalog (`bench/search/natural.toml`), run through the server's
//! search in each mode.
//!
//! **head** (written down in BENCHMARKS.md §5): for each user's held-out
//! purchase (leave-one-out: the last item for test, the second-to-last for
//! validation), the query is the **head noun** of the bought product's
//! title — its last word of 3+ letters that is not a colour, size, pattern
//! or style modifier ([`MODIFIERS`]) — and the bought item is the one
//! relevant result. The personal signal is the sequence model's score after
//! the user's earlier items (the model never trained on either target).
//! Re-ranking weights are chosen on validation, reported on test.

use std::collections::HashMap;

use aisle_train::Servable;
use std::path::PathBuf;

pub mod natural;

use aisle_eval::{expected_at, ndcg_at, recall_at};
use aisle_search::{Filters, KeywordIndex};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Trailing words that describe rather than name the product.
pub const MODIFIERS: &[&str] = &[
    "design",
    "designs",
    "set",
    "sets",
    "assorted",
    "large",
    "small",
    "medium",
    "mini",
    "jumbo",
    "big",
    "pink",
    "blue",
    "red",
    "green",
    "white",
    "black",
    "cream",
    "ivory",
    "gold",
    "silver",
    "purple",
    "orange",
    "yellow",
    "brown",
    "grey",
    "gray",
    "retrospot",
    "polkadot",
    "paisley",
    "spaceboy",
    "vintage",
    "colour",
    "colours",
    "color",
    "colors",
    "size",
    "font",
    "flock",
    "metal",
    "the",
    "and",
    "with",
];

/// The head noun of a title (lower-case), if it has one.
pub fn head_noun(title: &str) -> Option<String> {
    title
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .rfind(|w| !MODIFIERS.contains(&w.as_str()))
}

#[derive(clap::Args, Debug)]
pub struct BenchSearchArgs {
    /// Store directory or URL (with titles in its catalog).
    #[arg(long)]
    pub store: String,
    /// Sequence-model artifact for the personal signal (default: the store's promoted version).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Keyword candidates re-ranked (as `aisle serve` does).
    #[arg(long, default_value_t = 100)]
    pub candidates: usize,
    /// Re-ranking weights tried on validation.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,1,2,4,8,16")]
    pub weights: Vec<f32>,
    /// Which query set: `head` (head nouns of held-out purchases),
    /// `natural` (the judged shopper queries) or `all`.
    #[arg(long, value_enum, default_value_t = QuerySet::All)]
    pub set: QuerySet,
    /// Fit hybrid fusion weights per query class on the natural set's
    /// training split (a grid of keyword x semantic weights) and report them.
    #[arg(long)]
    pub fit_weights: bool,
    /// Fit the re-ranking stage's linear ranker on the natural set's
    /// training split and report its weights and both splits' figures.
    #[arg(long)]
    pub fit_ranker: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuerySet {
    Head,
    Natural,
    All,
}

struct Case {
    query: String,
    target: String,
    history: Vec<u32>,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    n: usize,
    ndcg: f64,
    recall: f64,
}

impl Totals {
    fn add(&mut self, rank: Option<usize>) {
        self.n += 1;
        self.ndcg += ndcg_at(rank, 10);
        self.recall += recall_at(rank, 10);
    }
    fn add_expected(&mut self, counts: Option<(usize, usize)>) {
        self.n += 1;
        self.ndcg += expected_at(counts, 10, ndcg_at);
        self.recall += expected_at(counts, 10, recall_at);
    }
    fn json(&self) -> Value {
        let n = self.n.max(1) as f64;
        json!({"queries": self.n, "ndcg10": self.ndcg / n, "recall10": self.recall / n})
    }
    fn ndcg(&self) -> f64 {
        self.ndcg / self.n.max(1) as f64
    }
}

/// Each user's held-out item (`drop_last` = 0: the last, 1: the one before)
/// as a query case; users whose target has no head noun are counted in `skipped`.
fn cases(
    seqs: &aisle_features::Sequences,
    title: &HashMap<&str, &str>,
    drop_last: usize,
    skipped: &mut usize,
) -> Vec<Case> {
    let mut out = Vec::new();
    for s in &seqs.seqs {
        if s.len() < drop_last + 2 {
            continue;
        }
        let cut = s.len() - drop_last;
        let target = &seqs.items[s[cut - 1] as usize];
        match title.get(target.as_str()).and_then(|t| head_noun(t)) {
            Some(q) => out.push(Case {
                query: q,
                target: target.clone(),
                history: s[..cut - 1].to_vec(),
            }),
            None => *skipped += 1,
        }
    }
    out
}

/// Semantic retrieval when the encoder is installed (vectors cached in STORE/search).
fn open_semantic(
    store: &str,
    catalog: &[aisle_core::CatalogItem],
    embedder_dir: &std::path::Path,
) -> Option<aisle_serve::search::Semantic> {
    match aisle_serve::search::shared_embedder(embedder_dir) {
        Ok(e) => {
            let dir = aisle_store::data_dir(store).map(|d| d.join("search"));
            let cfg = aisle_serve::search::SearchConfig::default();
            Some(aisle_serve::search::Semantic::open(
                dir.as_deref(),
                catalog,
                e,
                cfg.ann_min_items,
                cfg.ann_ef,
                &cfg.progress,
            ))
        }
        Err(e) => {
            eprintln!("semantic modes skipped: {e}");
            None
        }
    }
}

/// The top `k` items of semantic retrieval for each distinct query.
fn semantic_lists<'c>(
    s: &aisle_serve::search::Semantic,
    cases: impl Iterator<Item = &'c Case>,
    k: usize,
) -> Result<HashMap<String, Vec<String>>> {
    let ix = s
        .index
        .read()
        .map_err(|_| anyhow::anyhow!("vector index lock"))?;
    let mut lists = HashMap::new();
    for c in cases {
        if lists.contains_key(&c.query) {
            continue;
        }
        let v = s.query_vector(&c.query).map_err(anyhow::Error::msg)?;
        let top = aisle_search::VectorIndex::search(&*ix, &v, k, &|_| true);
        lists.insert(c.query.clone(), top.into_iter().map(|(id, _)| id).collect());
    }
    Ok(lists)
}

/// The artifact promoted in the store's registry.
fn promoted(store: &str) -> Result<PathBuf> {
    let reg = crate::commands::registry(store)?;
    let v = reg
        .promoted_name()?
        .context("no promoted model: give --model or promote one")?;
    Ok(reg.path_of(&v)?)
}

/// What the evaluation reads: the keyword index, the model behind the
/// personal signal, training popularity, semantic lists per query.
struct Bench<'a> {
    index: KeywordIndex,
    mm: aisle_train::MappedModel,
    popularity: HashMap<&'a str, f32>,
    sem_lists: HashMap<String, Vec<String>>,
    /// Semantic weights tried (empty without the encoder).
    sem_grid: &'static [f32],
    candidates: usize,
}

impl Bench<'_> {
    /// Every mode's metrics over `cases`, for each re-ranking weight.
    fn eval(&self, cases: &[Case], weights: &[f32]) -> Result<Value> {
        let mut kw_expected = Totals::default();
        let mut kw_served = Totals::default();
        let mut in_candidates = 0usize;
        let mut personal = vec![Totals::default(); weights.len()];
        let mut sem_only = Totals::default();
        let mut hybrid = vec![Totals::default(); self.sem_grid.len()];
        // (semantic weight, personal weight) pairs.
        let mut hybrid_personal = vec![Totals::default(); self.sem_grid.len() * weights.len()];
        let mut pop = vec![Totals::default(); weights.len()];
        let mut scores = vec![0f32; self.mm.model.n_items()];
        for c in cases {
            // Every match, for the tie-aware keyword figure.
            let found = self
                .index
                .search_no_facets(&c.query, &Filters::default(), 100_000)?;
            let all: Vec<(String, f32)> = found
                .candidates
                .into_iter()
                .map(|c| (c.item_id, c.score))
                .collect();
            let counts = all.iter().position(|(id, _)| *id == c.target).map(|p| {
                let st = all[p].1;
                let greater = all.iter().filter(|(_, s)| *s > st).count();
                let ties = all.iter().filter(|(_, s)| *s == st).count() - 1;
                (greater, ties)
            });
            kw_expected.add_expected(counts);
            let ids: Vec<String> = all
                .iter()
                .take(self.candidates)
                .map(|(id, _)| id.clone())
                .collect();
            let served = ids.iter().position(|id| *id == c.target);
            kw_served.add(served);
            in_candidates += usize::from(served.is_some());
            let hist: Vec<u32> = c
                .history
                .iter()
                .filter_map(|&i| self.mm.map[i as usize])
                .collect();
            self.mm.model.score_history(&hist, &mut scores);
            let personal_score = |id: &str| -> Option<f32> {
                (!hist.is_empty())
                    .then(|| self.mm.index.get(id).map(|&j| scores[j as usize]))
                    .flatten()
            };
            let pop_score = |id: &str| -> Option<f32> { self.popularity.get(id).copied() };
            if let Some(sl) = self.sem_lists.get(&c.query) {
                sem_only.add(sl.iter().position(|id| *id == c.target));
                for (si, sw) in self.sem_grid.iter().enumerate() {
                    let lists: [(&[String], f32); 2] = [(&ids, 1.0), (sl, *sw)];
                    let at = |w: f32, f: &dyn Fn(&str) -> Option<f32>| {
                        aisle_search::fuse::rank(&lists, f, w)
                            .iter()
                            .position(|r| r.id == c.target)
                    };
                    hybrid[si].add(at(0.0, &|_| None));
                    for (wi, w) in weights.iter().enumerate() {
                        hybrid_personal[si * weights.len() + wi].add(at(*w, &personal_score));
                    }
                }
            }
            for (w, (pt, qt)) in weights.iter().zip(personal.iter_mut().zip(pop.iter_mut())) {
                let rank = |f: &dyn Fn(&str) -> Option<f32>| {
                    aisle_search::fuse::rank(&[(&ids, 1.0)], f, *w)
                        .iter()
                        .position(|r| r.id == c.target)
                };
                pt.add(rank(&personal_score));
                qt.add(rank(&pop_score));
            }
        }
        let pick = |t: &[Totals]| -> usize {
            (0..t.len())
                .max_by(|&a, &b| t[a].ndcg().total_cmp(&t[b].ndcg()).then(b.cmp(&a)))
                .unwrap_or(0)
        };
        let (bp, bq) = (pick(&personal), pick(&pop));
        let bh = pick(&hybrid);
        let bhp = pick(&hybrid_personal);
        let semantic_json = if self.sem_grid.is_empty() {
            Value::Null
        } else {
            json!({
                "semantic_only": sem_only.json(),
                "hybrid": {"by_semantic_weight": self.sem_grid.iter().zip(&hybrid).map(|(w, t)| json!({"semantic_weight": w, "metrics": t.json()})).collect::<Vec<_>>(), "best": self.sem_grid.get(bh)},
                "hybrid_personal": {
                    "by_weights": hybrid_personal.iter().enumerate().map(|(i, t)| json!({"semantic_weight": self.sem_grid[i / weights.len()], "personal_weight": weights[i % weights.len()], "metrics": t.json()})).collect::<Vec<_>>(),
                    "best": {"semantic_weight": self.sem_grid.get(bhp / weights.len().max(1)), "personal_weight": weights.get(bhp % weights.len().max(1))},
                },
            })
        };
        Ok(json!({
            "semantic": semantic_json,
            "keyword_expected_over_ties": kw_expected.json(),
            "keyword_as_served": kw_served.json(),
            "target_in_candidates": in_candidates as f64 / cases.len().max(1) as f64,
            "keyword_popularity": {"by_weight": weights.iter().zip(&pop).map(|(w, t)| json!({"weight": w, "metrics": t.json()})).collect::<Vec<_>>(), "best_weight": weights.get(bq)},
            "keyword_personal": {"by_weight": weights.iter().zip(&personal).map(|(w, t)| json!({"weight": w, "metrics": t.json()})).collect::<Vec<_>>(), "best_weight": weights.get(bp)},
        }))
    }
}

pub fn run(a: BenchSearchArgs, embedder_dir: &std::path::Path) -> Result<()> {
    let store = aisle_store::open_existing(&a.store)?;
    let catalog = store.catalog()?;
    drop(store);
    if catalog.iter().all(|c| c.title.is_none()) {
        bail!("{}: the catalog has no titles to search", a.store);
    }
    let mut report = match a.set {
        QuerySet::Natural => json!({"store": a.store, "items": catalog.len()}),
        _ => head(&a, &catalog, embedder_dir)?,
    };
    report["set"] = json!(format!("{:?}", a.set).to_lowercase());
    if a.set != QuerySet::Head {
        report["natural"] = run_natural(
            &a.store,
            &catalog,
            (a.fit_weights, a.fit_ranker),
            embedder_dir,
        )?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if a.set != QuerySet::Natural {
            print_table(&report, a.candidates);
        }
        if a.set != QuerySet::Head {
            print_natural(&report["natural"]);
        }
    }
    Ok(())
}

/// The natural set's row for hybrid search without the re-ranking stage.
const HYBRID_FUSED: &str = "hybrid_fused";

/// The natural set through the server's own search (`App::search`, as
/// `aisle search` runs it): every mode the server offers, and its default.
fn run_natural(
    store: &str,
    catalog: &[aisle_core::CatalogItem],
    (fit, fit_ranker): (bool, bool),
    embedder_dir: &std::path::Path,
) -> Result<Value> {
    let judged = natural::judge(natural::NATURAL, catalog)?;
    let usable = judged.iter().filter(|j| j.good > 0).count();
    if usable * 2 < judged.len() {
        return Ok(json!(format!(
            "not applicable: {usable} of {} queries have a good product in this catalog (the set is judged over Online Retail's)",
            judged.len()
        )));
    }
    let mut cfg =
        aisle_serve::ServeConfig::new(store, "127.0.0.1:0".parse().expect("literal address"));
    cfg.search.embedder_dir = Some(embedder_dir.to_path_buf());
    let app = aisle_serve::App::open(cfg)?;
    let semantic = app.search.semantic.is_some();
    let modes: &[&str] = if semantic {
        &["keyword", "semantic", "hybrid", HYBRID_FUSED]
    } else {
        &["keyword"]
    };
    let default_mode = if semantic { "hybrid" } else { "keyword" };
    let t = std::time::Instant::now();
    let request = |q: &str, mode: &str, weights: Option<(f32, f32)>, rerank| {
        let (mode, rerank) = match mode {
            HYBRID_FUSED => ("hybrid", aisle_serve::search::Rerank::Off),
            m => (m, rerank),
        };
        aisle_serve::search::SearchRequest {
            q: q.to_string(),
            user: None,
            k: 10,
            filters: aisle_search::Filters {
                in_stock_only: true,
                ..Default::default()
            },
            personal: false,
            mode: Some(mode.to_string()),
            weights,
            rerank,
        }
    };
    let search_with = |q: &str, mode: &str, weights, rerank| -> Result<Vec<String>> {
        let out = app
            .search(&request(q, mode, weights, rerank))
            .map_err(anyhow::Error::msg)?;
        Ok(out.results.into_iter().map(|h| h.item_id).collect())
    };
    let search = |q: &str, mode: &str, weights: Option<(f32, f32)>| {
        search_with(q, mode, weights, aisle_serve::search::Rerank::Configured)
    };
    let mut v = natural::evaluate(&judged, modes, default_mode, |q, mode| {
        search(q, mode, None)
    })?;
    if fit_ranker && semantic {
        let off = aisle_serve::search::Rerank::Off;
        v["fitted_ranker"] = natural::fit_ranker(
            &judged,
            |q| {
                app.search_pool(&request(q, "hybrid", None, off.clone()))
                    .map_err(anyhow::Error::msg)
            },
            |q, r| {
                search_with(
                    q,
                    "hybrid",
                    None,
                    aisle_serve::search::Rerank::With(r.clone()),
                )
            },
        )?;
    }
    if fit && semantic {
        let vocab = app
            .search
            .vocabulary
            .read()
            .map_err(|_| anyhow::anyhow!("vocabulary lock"))?
            .clone();
        let class = |q: &str| {
            format!(
                "{:?}",
                aisle_search::understand::understand(q, &vocab).class
            )
            .to_lowercase()
        };
        v["fitted_weights"] =
            natural::fit_weights(&judged, &class, |q, w| search(q, "hybrid", Some(w)))?;
    }
    v["semantic"] = json!(app.search.semantic_note);
    v["secs"] = json!(t.elapsed().as_secs_f64());
    Ok(v)
}

/// The natural set's figures as a table.
fn print_natural(v: &Value) {
    let Some(modes) = v["modes"].as_object() else {
        println!("natural queries: {v}");
        return;
    };
    println!(
        "\nnatural queries ({} judged; the server's search, in stock, no personal ranking; default mode {})",
        v["judged_queries"], v["default_mode"]
    );
    println!(
        "{:<13} {:>8} {:>10} {:>10} {:>11} {:>10}",
        "mode", "NDCG@10", "Recall@10", "zero-res", "NDCG train", "NDCG test"
    );
    for (mode, m) in modes {
        let f = |p: &str, k: &str| m[p][k].as_f64().unwrap_or(0.0);
        println!(
            "{mode:<13} {:>8.4} {:>10.4} {:>10.3} {:>11.4} {:>10.4}",
            f("all", "ndcg10"),
            f("all", "recall10"),
            f("all", "zero_result_rate"),
            f("train", "ndcg10"),
            f("test", "ndcg10")
        );
    }
    let kinds: Vec<String> = modes
        .values()
        .next()
        .and_then(|m| m["by_kind"].as_object())
        .map(|k| k.keys().cloned().collect())
        .unwrap_or_default();
    println!("NDCG@10 by kind:");
    for kind in kinds {
        let cells: Vec<String> = modes
            .iter()
            .map(|(mode, m)| {
                format!(
                    "{mode} {:.3}",
                    m["by_kind"][&kind]["ndcg10"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!(
            "  {kind:<12} ({:>3})  {}",
            modes.values().next().unwrap()["by_kind"][&kind]["queries"],
            cells.join("  ")
        );
    }
    let r = &v["fitted_ranker"];
    if r.is_object() {
        println!(
            "re-ranking stage fitted on the training split: {} (L2 {}, cross-validated NDCG@10 {:.4})",
            r["chosen"]["features"], r["chosen"]["l2"], r["chosen"]["cv_ndcg10"].as_f64().unwrap_or(0.0)
        );
        let f = |p: &str, k: &str| r["searched"][p][k].as_f64().unwrap_or(0.0);
        println!(
            "  hybrid with it: NDCG@10 train {:.4}, test {:.4}; weights {}",
            f("train", "ndcg10"),
            f("test", "ndcg10"),
            r["weights"]
        );
    }
}

/// The head-noun set's report.
fn head(
    a: &BenchSearchArgs,
    catalog: &[aisle_core::CatalogItem],
    embedder_dir: &std::path::Path,
) -> Result<Value> {
    let t0 = std::time::Instant::now();
    let aisle_train::StoreData { seqs, dataset, .. } = aisle_train::StoreData::load(&a.store)?;
    let title: HashMap<&str, &str> = catalog
        .iter()
        .filter_map(|c| c.title.as_deref().map(|t| (c.id.as_str(), t)))
        .collect();
    let index = KeywordIndex::in_ram(catalog)?;
    let semantic = open_semantic(&a.store, catalog, embedder_dir);
    let model_path = match &a.model {
        Some(p) => p.clone(),
        None => promoted(&a.store)?,
    };
    let mm = aisle_train::MappedModel::load(&model_path, &seqs.items)?;
    // Popularity over each sequence without its last two items (training part).
    let mut popularity: HashMap<&str, f32> = HashMap::new();
    for s in &seqs.seqs {
        for &i in &s[..s.len().saturating_sub(2)] {
            *popularity
                .entry(seqs.items[i as usize].as_str())
                .or_default() += 1.0;
        }
    }
    let mut skipped = 0usize;
    let valid = cases(&seqs, &title, 1, &mut skipped);
    let test = cases(&seqs, &title, 0, &mut skipped);
    let sem_lists = match &semantic {
        Some(s) => semantic_lists(s, valid.iter().chain(&test), a.candidates)?,
        None => HashMap::new(),
    };
    let sem_grid: &'static [f32] = if semantic.is_some() {
        &[0.5, 1.0, 2.0, 4.0]
    } else {
        &[]
    };
    let bench = Bench {
        index,
        mm,
        popularity,
        sem_lists,
        sem_grid,
        candidates: a.candidates,
    };
    if a.weights.is_empty() || a.weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        bail!("--weights must be non-negative numbers");
    }
    let v = bench.eval(&valid, &a.weights)?;
    let wp = v["keyword_personal"]["best_weight"].as_f64().unwrap_or(1.0) as f32;
    let wq = v["keyword_popularity"]["best_weight"]
        .as_f64()
        .unwrap_or(1.0) as f32;
    let tp = bench.eval(&test, &[wp])?;
    let tq = bench.eval(&test, &[wq])?;
    let pick_entry = |list: &Value, key: &str, w: &Value| -> Value {
        list.as_array()
            .and_then(|l| l.iter().find(|e| e[key] == *w))
            .map_or(Value::Null, |e| e.clone())
    };
    let test_semantic = if v["semantic"].is_null() {
        json!("not measured: the sentence encoder is not installed (scripts/fetch-embedder.sh)")
    } else {
        let hs = v["semantic"]["hybrid"]["best"].clone();
        let hps = v["semantic"]["hybrid_personal"]["best"]["semantic_weight"].clone();
        let hpp = v["semantic"]["hybrid_personal"]["best"]["personal_weight"]
            .as_f64()
            .unwrap_or(1.0) as f32;
        let th = bench.eval(&test, &[hpp])?;
        json!({
            "semantic_only": tp["semantic"]["semantic_only"],
            "hybrid": pick_entry(&tp["semantic"]["hybrid"]["by_semantic_weight"], "semantic_weight", &hs),
            "hybrid_personal": pick_entry(&th["semantic"]["hybrid_personal"]["by_weights"], "semantic_weight", &hps),
        })
    };
    let report = json!({
        "dataset": dataset,
        "store": a.store,
        "model": model_path.display().to_string(),
        "protocol": "query = head noun of the held-out purchase's title (last word of 3+ letters not in MODIFIERS); relevant = that item; leave-one-out: test = each user's last item, validation = second-to-last; history = the user's earlier items; keyword candidates = top `candidates` by BM25 (ties in tantivy's order), re-ranked with RRF + weight/(60 + rank by the signal); keyword_expected_over_ties ranks every match with BM25 ties broken uniformly at random; weights chosen on validation NDCG@10",
        "candidates": a.candidates,
        "items": catalog.len(),
        "queries_skipped_no_head_noun": skipped,
        "test": {
            "semantic": test_semantic,
            "keyword_expected_over_ties": tp["keyword_expected_over_ties"],
            "keyword_as_served": tp["keyword_as_served"],
            "target_in_candidates": tp["target_in_candidates"],
            "keyword_popularity": {"weight": wq, "metrics": tq["keyword_popularity"]["by_weight"][0]["metrics"]},
            "keyword_personal": {"weight": wp, "metrics": tp["keyword_personal"]["by_weight"][0]["metrics"]},
        },
        "validation": v,
        "secs": t0.elapsed().as_secs_f64(),
    });
    Ok(report)
}

/// The test figures of `report` as a table.
fn print_table(report: &Value, candidates: usize) {
    let t = &report["test"];
    let (wq, wp) = (
        &t["keyword_popularity"]["weight"],
        &t["keyword_personal"]["weight"],
    );
    let row = |name: &str, m: &Value| {
        println!(
            "{name:<34} {:>8.4} {:>10.4}",
            m["ndcg10"].as_f64().unwrap_or(0.0),
            m["recall10"].as_f64().unwrap_or(0.0)
        );
    };
    println!(
        "search quality on {} ({} test queries, {} candidates; test split)",
        report["dataset"], t["keyword_as_served"]["queries"], candidates
    );
    println!("{:<34} {:>8} {:>10}", "mode", "NDCG@10", "Recall@10");
    row(
        "keyword (BM25, ties expected)",
        &t["keyword_expected_over_ties"],
    );
    row("keyword (BM25, as served)", &t["keyword_as_served"]);
    row(
        &format!("keyword + popularity (w={wq})"),
        &t["keyword_popularity"]["metrics"],
    );
    row(
        &format!("keyword + personal (w={wp})"),
        &t["keyword_personal"]["metrics"],
    );
    if t["semantic"].is_object() {
        let s = &t["semantic"];
        row("semantic only (MiniLM, exact)", &s["semantic_only"]);
        row(
            &format!(
                "hybrid (RRF, semantic w={})",
                s["hybrid"]["semantic_weight"]
            ),
            &s["hybrid"]["metrics"],
        );
        row(
            &format!(
                "hybrid + personal (w={}/{})",
                s["hybrid_personal"]["semantic_weight"], s["hybrid_personal"]["personal_weight"]
            ),
            &s["hybrid_personal"]["metrics"],
        );
    } else {
        println!("semantic modes: {}", t["semantic"]);
    }
    println!(
        "target among the candidates: {:.3}",
        t["target_in_candidates"].as_f64().unwrap_or(0.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_nouns_skip_modifiers() {
        assert_eq!(
            head_noun("WHITE HANGING HEART T-LIGHT HOLDER").as_deref(),
            Some("holder")
        );
        assert_eq!(
            head_noun("SET OF 3 CAKE TINS PANTRY DESIGN").as_deref(),
            Some("pantry")
        );
        assert_eq!(head_noun("RED RETROSPOT").as_deref(), None);
        assert_eq!(head_noun("").as_deref(), None);
    }
}
