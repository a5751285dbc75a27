//! The judged set of natural shopper queries (`bench/search/natural.toml`):
//! sentences, needs, gifts, occasions, materials, colours, misspellings and
//! price limits, each judged by a written rule over the catalog's titles and
//! prices (the rule is in the file's header). Every query runs through the
//! server's own search (`App::search`, in-stock items only, no personal
//! ranking) in each retrieval mode; graded NDCG@10, capped Recall@10 and the
//! zero-result rate are reported over all queries, the training split, the
//! test split and each kind.

use std::collections::{BTreeMap, HashMap};

use aisle_core::CatalogItem;
use aisle_eval::{capped_recall_at, graded_ndcg_at};
use anyhow::{bail, Context, Result};
use regex::{RegexSet, RegexSetBuilder};
use serde::Deserialize;
use serde_json::{json, Value};

/// The judged queries, as written in the repository.
pub const NATURAL: &str = include_str!("../../../../bench/search/natural.toml");

/// Results judged per query.
const K: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    query: Vec<RawQuery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    q: String,
    kind: String,
    #[serde(default)]
    good: Vec<String>,
    #[serde(default)]
    fair: Vec<String>,
    #[serde(default)]
    not: Vec<String>,
    max_price: Option<f64>,
}

/// A query's rule, compiled.
struct Rule {
    good: RegexSet,
    fair: RegexSet,
    not: RegexSet,
    max_price: Option<f64>,
}

impl Rule {
    /// A product's grade: 2 good, 1 fair, 0 otherwise (see the file's header).
    fn grade(&self, title: &str, price: Option<f64>) -> u8 {
        if self.not.is_match(title) {
            return 0;
        }
        if let Some(max) = self.max_price {
            if price.is_none_or(|p| p > max) {
                return 0;
            }
        }
        if self.good.is_match(title) {
            2
        } else if self.fair.is_match(title) {
            1
        } else {
            0
        }
    }
}

fn set(q: &str, what: &str, pats: &[String]) -> Result<RegexSet> {
    RegexSetBuilder::new(pats)
        .case_insensitive(true)
        .build()
        .with_context(|| format!("query {q:?}: a `{what}` pattern does not compile"))
}

/// One query with its judgments over a catalog.
#[derive(Debug)]
pub struct Judged {
    pub q: String,
    pub kind: String,
    /// In the training split (the 1st, 4th, 7th ... query of the file).
    pub train: bool,
    /// Item id → grade, for the items of grade 1 or 2.
    pub grades: HashMap<String, u8>,
    pub good: usize,
    pub fair: usize,
}

/// Judges every query of `text` over `catalog` by its rule.
pub fn judge(text: &str, catalog: &[CatalogItem]) -> Result<Vec<Judged>> {
    let file: File = toml::from_str(text).context("the natural query set")?;
    let mut out = Vec::with_capacity(file.query.len());
    for (n, raw) in file.query.into_iter().enumerate() {
        if raw.good.is_empty() {
            bail!("query {:?} has no `good` pattern", raw.q);
        }
        let rule = Rule {
            good: set(&raw.q, "good", &raw.good)?,
            fair: set(&raw.q, "fair", &raw.fair)?,
            not: set(&raw.q, "not", &raw.not)?,
            max_price: raw.max_price,
        };
        let mut grades = HashMap::new();
        for c in catalog {
            let g = rule.grade(c.title.as_deref().unwrap_or(""), c.price);
            if g > 0 {
                grades.insert(c.id.clone(), g);
            }
        }
        let good = grades.values().filter(|g| **g == 2).count();
        out.push(Judged {
            q: raw.q,
            kind: raw.kind,
            train: n % 3 == 0,
            fair: grades.len() - good,
            grades,
            good,
        });
    }
    Ok(out)
}

#[derive(Default, Clone, Copy)]
struct Totals {
    n: usize,
    ndcg: f64,
    recall: f64,
    zero: usize,
}

impl Totals {
    fn add(&mut self, ndcg: f64, recall: f64, zero: bool) {
        self.n += 1;
        self.ndcg += ndcg;
        self.recall += recall;
        self.zero += usize::from(zero);
    }

    fn json(&self) -> Value {
        let n = self.n.max(1) as f64;
        json!({
            "queries": self.n,
            "ndcg10": self.ndcg / n,
            "recall10": self.recall / n,
            "zero_result_rate": self.zero as f64 / n,
        })
    }
}

/// One query's figures in one mode: (NDCG@10, Recall@10, no results).
pub fn score(j: &Judged, shown: &[String]) -> (f64, f64, bool) {
    let grades: Vec<u8> = shown
        .iter()
        .take(K)
        .map(|id| j.grades.get(id).copied().unwrap_or(0))
        .collect();
    let judged: Vec<u8> = j.grades.values().copied().collect();
    let relevant: Vec<bool> = grades.iter().map(|g| *g > 0).collect();
    (
        graded_ndcg_at(&grades, &judged, K),
        capped_recall_at(&relevant, j.grades.len(), K),
        shown.is_empty(),
    )
}

/// Runs every judged query (those with a grade-2 product in this catalog)
/// in each mode through `search` (query, mode → the shown ids, best
/// first), and reports the figures.
pub fn evaluate(
    judged: &[Judged],
    modes: &[&str],
    default_mode: &str,
    search: impl Fn(&str, &str) -> Result<Vec<String>>,
) -> Result<Value> {
    let usable: Vec<&Judged> = judged.iter().filter(|j| j.good > 0).collect();
    let mut by_mode = serde_json::Map::new();
    let mut per_query: Vec<Value> = usable
        .iter()
        .map(|j| {
            json!({
                "q": j.q, "kind": j.kind, "split": if j.train { "train" } else { "test" },
                "good": j.good, "fair": j.fair, "ndcg10": {},
            })
        })
        .collect();
    for mode in modes {
        let (mut all, mut train, mut test) =
            (Totals::default(), Totals::default(), Totals::default());
        let mut kinds: BTreeMap<&str, Totals> = BTreeMap::new();
        let mut zero: Vec<&str> = Vec::new();
        for (j, pq) in usable.iter().zip(per_query.iter_mut()) {
            let shown = search(&j.q, mode).with_context(|| format!("{mode} search {:?}", j.q))?;
            let (ndcg, recall, none) = score(j, &shown);
            if none {
                zero.push(&j.q);
            }
            let split = if j.train { &mut train } else { &mut test };
            for t in [&mut all, split, kinds.entry(j.kind.as_str()).or_default()] {
                t.add(ndcg, recall, none);
            }
            pq["ndcg10"][*mode] = json!(ndcg);
        }
        by_mode.insert(
            mode.to_string(),
            json!({
                "all": all.json(),
                "train": train.json(),
                "test": test.json(),
                "by_kind": kinds.iter().map(|(k, t)| (k.to_string(), t.json())).collect::<serde_json::Map<_, _>>(),
                "zero_result_queries": zero,
            }),
        );
    }
    Ok(json!({
        "queries": judged.len(),
        "judged_queries": usable.len(),
        "without_a_good_product": judged.iter().filter(|j| j.good == 0).map(|j| j.q.clone()).collect::<Vec<_>>(),
        "default_mode": default_mode,
        "modes": by_mode,
        "per_query": per_query,
        "protocol": "bench/search/natural.toml: each query judged by its written rule over the catalog's titles and prices (grade 2 good, 1 fair, 0 otherwise); every query with a grade-2 product runs through the server's search (in-stock items only, no personal ranking, top 10); NDCG@10 with gain 2^grade - 1 over the ideal order of every judged product; Recall@10 = grade >= 1 results in the top 10 / min(10, grade >= 1 products); zero-result rate = share of queries with no result; train split = the 1st, 4th, 7th ... query of the file, test = the rest",
    }))
}

/// The keyword and semantic weights tried by [`fit_weights`].
pub const KEYWORD_GRID: &[f32] = &[0.25, 0.5, 1.0, 2.0];
pub const SEMANTIC_GRID: &[f32] = &[0.25, 0.5, 1.0, 2.0, 4.0];

/// For each query class (`class` names it), the (keyword, semantic) weights
/// of the grid with the best mean NDCG@10 on the training split (ties: the
/// first in grid order), and what they score on the test split.
pub fn fit_weights(
    judged: &[Judged],
    class: &dyn Fn(&str) -> String,
    search: impl Fn(&str, (f32, f32)) -> Result<Vec<String>>,
) -> Result<Value> {
    let usable: Vec<&Judged> = judged.iter().filter(|j| j.good > 0).collect();
    let classes: Vec<String> = usable.iter().map(|j| class(&j.q)).collect();
    let grid: Vec<(f32, f32)> = KEYWORD_GRID
        .iter()
        .flat_map(|&k| SEMANTIC_GRID.iter().map(move |&s| (k, s)))
        .collect();
    // NDCG@10 of every query at every grid point.
    let mut ndcg = vec![vec![0.0; usable.len()]; grid.len()];
    for (g, w) in grid.iter().enumerate() {
        for (i, j) in usable.iter().enumerate() {
            ndcg[g][i] = score(j, &search(&j.q, *w)?).0;
        }
    }
    let mean = |g: usize, pick: &dyn Fn(usize) -> bool| -> (f64, usize) {
        let idx: Vec<usize> = (0..usable.len()).filter(|&i| pick(i)).collect();
        let n = idx.len();
        (
            idx.iter().map(|&i| ndcg[g][i]).sum::<f64>() / n.max(1) as f64,
            n,
        )
    };
    let mut names: Vec<String> = classes.clone();
    names.sort();
    names.dedup();
    let mut out = serde_json::Map::new();
    let mut chosen: HashMap<String, usize> = HashMap::new();
    for name in &names {
        let train = |i: usize| usable[i].train && classes[i] == *name;
        let best = (0..grid.len())
            .max_by(|&a, &b| {
                mean(a, &train)
                    .0
                    .total_cmp(&mean(b, &train).0)
                    .then(b.cmp(&a))
            })
            .unwrap_or(0);
        chosen.insert(name.clone(), best);
        let test = |i: usize| !usable[i].train && classes[i] == *name;
        let (tr, ntr) = mean(best, &train);
        let (te, nte) = mean(best, &test);
        let table: Vec<Value> = (0..grid.len())
            .map(|g| json!([grid[g].0, grid[g].1, mean(g, &train).0]))
            .collect();
        out.insert(
            name.clone(),
            json!({"keyword": grid[best].0, "semantic": grid[best].1, "train_ndcg10": tr, "train_queries": ntr, "test_ndcg10": te, "test_queries": nte, "train_by_weights": table}),
        );
    }
    // Every query with its class's fitted weights.
    let at = |i: usize| ndcg[chosen[&classes[i]]][i];
    let split = |train: bool| -> f64 {
        let idx: Vec<usize> = (0..usable.len())
            .filter(|&i| usable[i].train == train)
            .collect();
        idx.iter().map(|&i| at(i)).sum::<f64>() / idx.len().max(1) as f64
    };
    Ok(json!({
        "by_class": out,
        "grid": {"keyword": KEYWORD_GRID, "semantic": SEMANTIC_GRID},
        "train_ndcg10": split(true),
        "test_ndcg10": split(false),
    }))
}

/// Steps of [`fit_ranker`]'s fits.
pub const RANKER_STEPS: usize = 500;
/// The L2 penalties [`fit_ranker`] tries.
pub const RANKER_L2: &[f32] = &[1e-3, 1e-2, 1e-1];
/// The feature sets [`fit_ranker`] tries (names from
/// `aisle_search::rerank::FEATURES`; "fused" always in).
pub const RANKER_SETS: &[&[&str]] = &[
    &["fused", "cosine"],
    &["fused", "coverage"],
    &["fused", "cosine", "coverage"],
    &["fused", "cosine", "coverage", "title_words"],
    &["fused", "cosine", "coverage", "all_words", "intent_missed"],
    &aisle_search::rerank::FEATURES,
];
/// Folds of the training split's cross-validation.
pub const RANKER_FOLDS: usize = 5;

/// An f32 setting as the decimal it was written as (0.01, not 0.0099999998).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

type Pool = Vec<([f32; aisle_search::rerank::N], u8)>;

/// Mean NDCG@10 of `queries` (pools with their judged products' grades)
/// with each pool's first 10 grades as `order` puts them (the re-ranking
/// stage alone: no collapsing, nothing past the pool).
fn pool_mean(queries: &[(&Pool, &Judged)], order: impl Fn(&Pool) -> Vec<u8>) -> f64 {
    let mut total = 0.0;
    for (pool, j) in queries {
        let judged: Vec<u8> = j.grades.values().copied().collect();
        total += graded_ndcg_at(&order(pool), &judged, K);
    }
    total / queries.len().max(1) as f64
}

/// [`pool_mean`] with each pool ordered by `ranker`.
fn pool_ndcg(queries: &[(&Pool, &Judged)], ranker: &aisle_search::rerank::Ranker) -> f64 {
    pool_mean(queries, |pool| {
        let features: Vec<[f32; aisle_search::rerank::N]> = pool.iter().map(|c| c.0).collect();
        ranker
            .order(&features)
            .into_iter()
            .take(K)
            .map(|i| pool[i].1)
            .collect()
    })
}

/// [`pool_mean`] with each pool in the best order (by grade): what a
/// perfect re-ranking of the pool would reach.
fn pool_ceiling(queries: &[(&Pool, &Judged)]) -> f64 {
    pool_mean(queries, |pool| {
        let mut grades: Vec<u8> = pool.iter().map(|c| c.1).collect();
        grades.sort_unstable_by(|a, b| b.cmp(a));
        grades
    })
}

/// Fits the re-ranking stage's linear ranker on the training split and
/// reports what it would do. Each query's pool (`pool`: the fused top
/// candidates and their features) is graded by its rule. A feature set
/// and L2 penalty ([`RANKER_SETS`] x [`RANKER_L2`]) are chosen by
/// [`RANKER_FOLDS`]-fold cross-validation on the training split (pool
/// NDCG@10, folds by file order), refitted on the whole training split,
/// and every query then runs through search with it (`search`), reported
/// on both splits next to the fused order's pool figures.
pub fn fit_ranker(
    judged: &[Judged],
    pool: impl Fn(&str) -> Result<Vec<(String, [f32; aisle_search::rerank::N])>>,
    search: impl Fn(&str, &aisle_search::rerank::Ranker) -> Result<Vec<String>>,
) -> Result<Value> {
    use aisle_search::rerank::{Ranker, FEATURES, N};
    let usable: Vec<&Judged> = judged.iter().filter(|j| j.good > 0).collect();
    let mut pools: Vec<Pool> = Vec::with_capacity(usable.len());
    for j in &usable {
        pools.push(
            pool(&j.q)?
                .into_iter()
                .map(|(id, f)| (f, j.grades.get(&id).copied().unwrap_or(0)))
                .collect(),
        );
    }
    let split = |train: bool| -> Vec<(&Pool, &Judged)> {
        pools
            .iter()
            .zip(usable.iter().copied())
            .filter(|(_, j)| j.train == train)
            .collect()
    };
    let (train, test) = (split(true), split(false));
    let fit = |qs: &[(&Pool, &Judged)], used: &[bool; N], l2: f32| -> Ranker {
        let data: Vec<Pool> = qs.iter().map(|(p, _)| (*p).clone()).collect();
        Ranker::fit(&data, used, RANKER_STEPS, l2)
    };
    let mut table = Vec::new();
    // (cross-validated NDCG@10, feature set, its mask, L2)
    let mut best: Option<(f64, usize, [bool; N], f32)> = None;
    for (si, set) in RANKER_SETS.iter().enumerate() {
        let mut used = [false; N];
        for name in *set {
            let k = FEATURES
                .iter()
                .position(|f| f == name)
                .with_context(|| format!("no feature {name}"))?;
            used[k] = true;
        }
        for &l2 in RANKER_L2 {
            let (mut cv, mut folds) = (0.0, 0);
            for fold in 0..RANKER_FOLDS.min(train.len()) {
                let (rest, held): (Vec<_>, Vec<_>) = train
                    .iter()
                    .enumerate()
                    .partition(|(i, _)| i % RANKER_FOLDS != fold);
                let rest: Vec<_> = rest.into_iter().map(|(_, q)| *q).collect();
                let held: Vec<_> = held.into_iter().map(|(_, q)| *q).collect();
                cv += pool_ndcg(&held, &fit(&rest, &used, l2));
                folds += 1;
            }
            let cv = cv / f64::from(folds.max(1));
            table.push(json!({"features": set, "l2": decimal(l2), "cv_ndcg10": cv}));
            if best.is_none_or(|(b, ..)| cv > b) {
                best = Some((cv, si, used, l2));
            }
        }
    }
    let (cv, si, used, l2) = best.context("no feature set to try")?;
    let ranker = fit(&train, &used, l2);
    let fused = Ranker::fused_only();
    let (mut searched_train, mut searched_test) = (Totals::default(), Totals::default());
    for j in &usable {
        let (ndcg, recall, none) = score(j, &search(&j.q, &ranker)?);
        if j.train {
            &mut searched_train
        } else {
            &mut searched_test
        }
        .add(ndcg, recall, none);
    }
    Ok(json!({
        "protocol": "pools = the fused top candidates of hybrid search (in stock, no personal ranking) with their features; grades by each query's rule; a feature set and L2 penalty chosen by 5-fold cross-validation on the training split (pool NDCG@10), refitted on the whole training split (pairwise logistic loss, Adam); then every query searched with it (collapsing included)",
        "pool": aisle_search::rerank::POOL,
        "steps": RANKER_STEPS,
        "tried": table,
        "chosen": {"features": RANKER_SETS[si], "l2": decimal(l2), "cv_ndcg10": cv},
        "weights": FEATURES.iter().zip(ranker.weights).filter(|(_, w)| *w != 0.0).map(|(f, w)| (f.to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
        "pool_ndcg10": {
            "fused": {"train": pool_ndcg(&train, &fused), "test": pool_ndcg(&test, &fused)},
            "reranked": {"train": pool_ndcg(&train, &ranker), "test": pool_ndcg(&test, &ranker)},
            "best_order": {"train": pool_ceiling(&train), "test": pool_ceiling(&test)},
        },
        "searched": {"train": searched_train.json(), "test": searched_test.json()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, title: &str, price: Option<f64>) -> CatalogItem {
        CatalogItem {
            id: id.into(),
            title: Some(title.into()),
            price,
            ..Default::default()
        }
    }

    const ONE: &str = r#"
[[query]]
q = "lamp for candles"
kind = "need"
good = ['LANTERN', 'T-LIGHT HOLDER']
fair = ['\bCANDLES?\b']
not = ['PAPER LANTERN']
max_price = 5.0
"#;

    #[test]
    fn a_rule_grades_by_good_then_fair_and_not_and_price_override_both() {
        let catalog = [
            item("a", "White Metal Lantern", Some(3.0)),
            item("b", "SET OF 6 CANDLES", Some(1.0)),
            item("c", "CHINESE PAPER LANTERN", Some(1.0)),
            item("d", "ZINC T-LIGHT HOLDER", Some(9.0)),
            item("e", "CANDLE HOLDER LANTERN", None),
            item("f", "CANDLESTICK", Some(1.0)),
        ];
        let j = &judge(ONE, &catalog).unwrap()[0];
        assert_eq!(j.grades.get("a"), Some(&2));
        assert_eq!(j.grades.get("b"), Some(&1));
        // Excluded by `not`, over the price limit, no price under a limit,
        // and a word that only starts like a pattern.
        for id in ["c", "d", "e", "f"] {
            assert_eq!(j.grades.get(id), None, "{id}");
        }
        assert_eq!((j.good, j.fair, j.train), (1, 1, true));
    }

    #[test]
    fn a_bad_pattern_or_a_query_without_good_patterns_is_refused_by_name() {
        let e = judge("[[query]]\nq = \"x\"\nkind = \"need\"\ngood = ['(']\n", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("\"x\""), "{e:#}");
        let e = judge("[[query]]\nq = \"y\"\nkind = \"need\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("\"y\""), "{e}");
        assert!(judge(
            "[[query]]\nq = \"z\"\nkind = \"k\"\ngood = ['A']\ntypo = 1\n",
            &[]
        )
        .is_err());
    }

    #[test]
    fn figures_per_mode_split_and_kind_come_from_the_shown_ids() {
        let catalog = [
            item("a", "LANTERN", Some(1.0)),
            item("b", "CANDLES", Some(1.0)),
        ];
        let text = format!("{ONE}\n[[query]]\nq = \"lanterns\"\nkind = \"misspelling\"\ngood = ['LANTERN']\n\n[[query]]\nq = \"none here\"\nkind = \"need\"\ngood = ['TEAPOT']\n");
        let judged = judge(&text, &catalog).unwrap();
        let r = evaluate(&judged, &["keyword", "semantic"], "semantic", |q, mode| {
            Ok(match (q, mode) {
                (_, "semantic") => vec!["a".into(), "b".into()],
                ("lamp for candles", _) => vec!["b".into()],
                _ => vec![],
            })
        })
        .unwrap();
        assert_eq!(r["judged_queries"], 2);
        assert_eq!(r["without_a_good_product"], json!(["none here"]));
        let s = &r["modes"]["semantic"]["all"];
        assert_eq!(
            (s["ndcg10"].as_f64(), s["recall10"].as_f64()),
            (Some(1.0), Some(1.0))
        );
        let k = &r["modes"]["keyword"];
        // "lamp for candles": a fair item first: (2^1-1)/(2^2-1 + 1/log2 3).
        let want = 1.0 / (3.0 + 1.0 / 3f64.log2());
        let got = k["by_kind"]["need"]["ndcg10"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{got}");
        assert_eq!(k["by_kind"]["misspelling"]["zero_result_rate"], 1.0);
        assert_eq!(k["all"]["zero_result_rate"], 0.5);
        assert_eq!(
            (
                k["train"]["queries"].as_u64(),
                k["test"]["queries"].as_u64()
            ),
            (Some(1), Some(1))
        );
    }

    /// Fifteen queries over the same catalog whose fused order puts the
    /// good product second (reversed, too) and whose "coverage" feature
    /// marks it: the cross-validated fit picks a feature set with coverage,
    /// and search with it ranks the good product first on both splits.
    #[test]
    fn the_fitted_ranker_learns_from_the_training_split_and_is_scored_on_both() {
        use aisle_search::rerank::{FEATURES, N};
        let catalog = [
            item("a", "LANTERN", Some(1.0)),
            item("b", "CANDLES", Some(1.0)),
            item("c", "MUG", Some(1.0)),
        ];
        let text: String = (0..15)
            .map(|i| format!("[[query]]\nq = \"q{i}\"\nkind = \"need\"\ngood = ['LANTERN']\n\n"))
            .collect();
        let judged = judge(&text, &catalog).unwrap();
        let at = |name: &str| FEATURES.iter().position(|f| *f == name).unwrap();
        let pool = |_: &str| -> Result<Vec<(String, [f32; N])>> {
            Ok(["c", "a", "b"]
                .iter()
                .enumerate()
                .map(|(place, id)| {
                    let mut f = [0f32; N];
                    f[at("fused")] = 1.0 - place as f32 * 0.1;
                    f[at("coverage")] = f32::from(u8::from(*id == "a"));
                    (id.to_string(), f)
                })
                .collect())
        };
        let search = |q: &str, r: &aisle_search::rerank::Ranker| -> Result<Vec<String>> {
            let mut p = pool(q)?;
            p.sort_by(|x, y| r.score(&y.1).total_cmp(&r.score(&x.1)));
            Ok(p.into_iter().map(|(id, _)| id).collect())
        };
        let v = fit_ranker(&judged, pool, search).unwrap();
        let chosen: Vec<String> = serde_json::from_value(v["chosen"]["features"].clone()).unwrap();
        assert!(chosen.iter().any(|f| f == "coverage"), "{v}");
        assert_eq!(v["searched"]["train"]["ndcg10"], 1.0, "{v}");
        assert_eq!(v["searched"]["test"]["ndcg10"], 1.0, "{v}");
        assert_eq!(v["searched"]["test"]["queries"], 10, "{v}");
        assert!(
            v["pool_ndcg10"]["fused"]["test"].as_f64().unwrap() < 1.0,
            "{v}"
        );
        assert_eq!(
            v["tried"].as_array().unwrap().len(),
            RANKER_SETS.len() * RANKER_L2.len()
        );
    }

    #[test]
    fn the_repository_set_parses_and_has_150_or_more_queries_of_every_kind() {
        let judged = judge(NATURAL, &[]).unwrap();
        assert!(judged.len() >= 150, "{}", judged.len());
        for kind in [
            "need",
            "gift",
            "occasion",
            "material",
            "colour",
            "misspelling",
            "price",
            "sentence",
        ] {
            assert!(
                judged.iter().filter(|j| j.kind == kind).count() >= 10,
                "{kind}"
            );
        }
    }
}
