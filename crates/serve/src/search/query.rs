//! One search request: retrieval (keyword, semantic or both), the
//! personal re-ranking and the explained hits of `GET /v1/search`.

use std::collections::HashMap;

use aisle_search::understand::{understand, Understood};
use aisle_search::Filters;
use serde::Serialize;

use super::Search;
use crate::state::{Live, Serving};
use aisle_train::Servable;

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
    /// Fusion weights (keyword, semantic) instead of the query class's
    /// (evaluation fits them; requests leave it None).
    pub weights: Option<(f32, f32)>,
    /// The re-ranking stage (evaluation compares and fits rankers;
    /// requests take the configured one).
    pub rerank: Rerank,
}

/// Which re-ranking stage a request runs.
#[derive(Debug, Clone, Default)]
pub enum Rerank {
    /// The server's (`SearchConfig::rerank`).
    #[default]
    Configured,
    Off,
    With(aisle_search::rerank::Ranker),
}

/// What `GET /v1/search` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Identifies this list: send it back with the clicks, carts and
    /// purchases it leads to (`POST /v1/events`, `request_id`).
    pub request_id: String,
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
    /// Items with the same title (but for case, spacing and punctuation)
    /// collapsed into this one, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
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
    /// What the query was read to ask for.
    pub intent: QueryIntent,
    /// The fusion weights this query ran with.
    pub weights: FusionWeights,
    /// 1-based place in the fused list before the re-ranking stage moved
    /// it (absent: the stage did not run on this result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused_rank: Option<usize>,
}

/// What query understanding read (`aisle_search::understand`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryIntent {
    /// `short`, `sentence` or `corrected`: picks the fusion weights.
    pub class: String,
    /// The words keyword retrieval searched.
    pub keyword_query: String,
    /// A price limit read from the query ("under 5 pounds"), applied as a
    /// filter unless the request set one.
    pub price_max: Option<f64>,
    pub price_min: Option<f64>,
    /// The query asked for low prices ("cheap"): cheaper results boosted.
    pub cheap: bool,
    /// Colours and materials named (results holding every content word
    /// are boosted).
    pub colours: Vec<String>,
    pub materials: Vec<String>,
    /// Catalog categories named: their products boosted (unless the
    /// request filters by a category).
    pub categories: Vec<String>,
    /// Function and filler words left out of keyword retrieval.
    pub ignored: Vec<String>,
    /// Spelling corrections, `[typed, corrected]`.
    pub corrected: Vec<[String; 2]>,
}

/// The weights of the fused lists.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct FusionWeights {
    pub keyword: f32,
    pub semantic: f32,
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
    (u, filters): (&Understood, &Filters),
    mode: &str,
    n: usize,
) -> (
    Result<aisle_search::KeywordResults, String>,
    Option<Result<std::sync::Arc<Vec<f32>>, String>>,
) {
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let embedding = match (&search.semantic, mode) {
            (Some(s), "semantic" | "hybrid") => {
                Some(scope.spawn(|| s.query_vector(&u.semantic_text)))
            }
            _ => None,
        };
        let kw = if mode == "semantic" {
            Ok(aisle_search::KeywordResults::default())
        } else {
            keyword
                .search(&u.keyword_text, filters, n)
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
    let Some(u) = live.user(user) else {
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
    ranked: &[(&aisle_search::fuse::Ranked, Vec<String>)],
    kw: &aisle_search::KeywordResults,
    (shown, kw_rank): (&[usize], &HashMap<&str, usize>),
    sem_score: &HashMap<&str, (usize, f32)>,
    live: &Live,
    (intent, weights): (&QueryIntent, FusionWeights),
    fused_place: &HashMap<String, usize>,
) -> Result<Vec<SearchHit>, String> {
    let mut results: Vec<SearchHit> = Vec::with_capacity(ranked.len());
    for (r, also) in ranked {
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
                intent: intent.clone(),
                weights,
                fused_rank: fused_place.get(&r.id).copied(),
            },
            also: also.clone(),
        });
    }
    Ok(results)
}

/// The normalised title two near-duplicates share: lower-case words of
/// letters and digits.
fn title_key(title: &str) -> String {
    let mut key = String::with_capacity(title.len());
    for w in title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !key.is_empty() {
            key.push(' ');
        }
        key.extend(w.chars().flat_map(char::to_lowercase));
    }
    key
}

/// The first `k` of `ranked` with near-duplicate titles collapsed into the
/// best of them (each with the ids it took in, from as far as 20 results
/// past the k-th).
fn collapse(
    ranked: &[aisle_search::fuse::Ranked],
    k: usize,
    key_of: impl Fn(&str) -> String,
    on: bool,
) -> Vec<(&aisle_search::fuse::Ranked, Vec<String>)> {
    // Results read past the k-th for duplicates of the shown ones.
    const GATHER: usize = 20;
    let mut gathered = 0;
    let mut out: Vec<(&aisle_search::fuse::Ranked, Vec<String>)> = Vec::with_capacity(k);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in ranked {
        let key = if on { key_of(&r.id) } else { String::new() };
        if on && !key.is_empty() {
            if let Some(&at) = seen.get(&key) {
                out[at].1.push(r.id.clone());
                continue;
            }
        }
        if out.len() == k {
            if on && gathered < GATHER {
                // Duplicates of what is shown are still gathered a while.
                gathered += 1;
                continue;
            }
            break;
        }
        if on && !key.is_empty() {
            seen.insert(key, out.len());
        }
        out.push((r, Vec::new()));
    }
    out
}

/// Candidates (from `ids`, in order) whose titles (as [`title_key`]s)
/// hold every one of `words`.
fn carrying_all(
    ids: Vec<&String>,
    words: &[String],
    key_of: &dyn Fn(&str) -> String,
) -> Vec<String> {
    ids.into_iter()
        .filter(|id| {
            let t = key_of(id);
            words.iter().all(|q| aisle_search::rerank::holds(&t, q))
        })
        .cloned()
        .collect()
}

/// The ids in order, each once.
fn distinct<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| seen.insert(id.as_str())).collect()
}

/// One candidate of the re-ranking stage and its features.
pub type PoolFeatures = Vec<(String, [f32; aisle_search::rerank::N])>;

/// Runs a search: understanding, retrieval, fusion, the re-ranking stage,
/// the personal boost, collapsing and the explained hits.
pub fn run(
    search: &Search,
    live: &Live,
    serving: &Serving,
    req: &SearchRequest,
) -> Result<SearchResults, String> {
    run_capturing(search, live, serving, req, None)
}

/// The re-ranking stage's pool (the fused top candidates, in fused order)
/// and their features for a hybrid search (empty in other modes): what a
/// ranker is fitted on.
pub fn pool_features(
    search: &Search,
    live: &Live,
    serving: &Serving,
    req: &SearchRequest,
) -> Result<PoolFeatures, String> {
    let mut out = Vec::new();
    run_capturing(search, live, serving, req, Some(&mut out))?;
    Ok(out)
}

fn run_capturing(
    search: &Search,
    live: &Live,
    serving: &Serving,
    req: &SearchRequest,
    capture: Option<&mut PoolFeatures>,
) -> Result<SearchResults, String> {
    let keyword = search
        .keyword
        .as_ref()
        .ok_or_else(|| search.error.clone().unwrap_or_default())?;
    let n = search.cfg.candidates.max(req.k);
    let mode = mode_of(search, req)?;
    let u = understand(
        &req.q,
        &search.vocabulary.read().unwrap_or_else(|e| e.into_inner()),
    );
    // A price limit read from the query filters, unless the request set one.
    let mut filters = req.filters.clone();
    if filters.price_max.is_none() && filters.price_min.is_none() {
        filters.price_max = u.intent.price_max;
        filters.price_min = u.intent.price_min;
    }
    // Out of stock: never shown, or shown after everything in stock.
    let demote = search.cfg.demote_out_of_stock && filters.in_stock_only;
    if demote {
        filters.in_stock_only = false;
    }
    let f = &filters;
    let allowed = |id: &str| -> bool {
        live.index.get(id).is_some_and(|&i| {
            let (cat, lo, hi) = (f.category.as_deref(), f.price_min, f.price_max);
            if demote {
                live.matches(i, cat, lo, hi)
            } else {
                live.passes(i, cat, lo, hi)
            }
        })
    };
    // Each candidate's normalised title, made once.
    let keys: std::cell::RefCell<HashMap<String, String>> = Default::default();
    let key_of = |id: &str| -> String {
        if let Some(k) = keys.borrow().get(id) {
            return k.clone();
        }
        let k = match live.index.get(id).map(|&i| i as usize) {
            Some(i) => match live.catalog[i].as_ref().and_then(|c| c.title.as_deref()) {
                Some(t) => title_key(t),
                None => title_key(&live.items[i]),
            },
            None => String::new(),
        };
        keys.borrow_mut().insert(id.to_string(), k.clone());
        k
    };
    let started = std::time::Instant::now();
    let (kw, query_vec) = retrieve(search, keyword, (&u, f), mode, n);
    let kw = kw?;
    // Only items that may be shown (deleted never are; out of stock only
    // when demoted).
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
    let (wk, ws) = req
        .weights
        .unwrap_or_else(|| search.cfg.class_weights.of(u.class));
    let weights = FusionWeights {
        keyword: wk,
        semantic: ws,
    };
    // Intents, as lists of their own in the fusion. The candidates whose
    // titles hold every content word (a colour and its noun, both words of
    // a phrase: BM25 alone adds up any word), from each list's first 50
    // (what lies further rarely reaches the top).
    let content: Vec<String> = u
        .keyword_text
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let carry = if content.len() < 2 {
        Vec::new()
    } else {
        carrying_all(
            distinct(kw_ids.iter().take(50).chain(sem_ids.iter().take(50))),
            &content,
            &key_of,
        )
    };
    // Every candidate once, keyword's first, when an intent needs them.
    let wants_category = !u.intent.categories.is_empty() && f.category.is_none();
    let pool: Vec<&String> = if u.intent.cheap || wants_category {
        distinct(kw_ids.iter().chain(&sem_ids))
    } else {
        Vec::new()
    };
    // "Cheap": the candidates by price, cheapest first.
    let cheap = if u.intent.cheap {
        let mut c: Vec<(&String, f64)> = pool
            .iter()
            .filter_map(|id| Some((*id, live.price(*live.index.get(id.as_str())?)?)))
            .collect();
        c.sort_by(|a, b| a.1.total_cmp(&b.1));
        c.into_iter().map(|(id, _)| id.clone()).collect()
    } else {
        Vec::new()
    };
    // A named category: its candidates, in order.
    let in_category: Vec<String> = if wants_category {
        pool.iter()
            .filter(|id| {
                live.index.get(id.as_str()).is_some_and(|&i| {
                    live.category(i)
                        .is_some_and(|c| u.intent.categories.iter().any(|x| x == c))
                })
            })
            .map(|id| (*id).clone())
            .collect()
    } else {
        Vec::new()
    };
    let iw = search.cfg.intent_weight;
    let mut fused = aisle_search::fuse::rrf(&[
        (&kw_ids, wk),
        (&sem_ids, ws),
        (&carry, iw),
        (&cheap, iw),
        (&in_category, iw),
    ]);
    let ranker = match &req.rerank {
        Rerank::Configured => search.cfg.rerank.as_ref(),
        Rerank::Off => None,
        Rerank::With(r) => Some(r),
    };
    let mut fused_place: HashMap<String, usize> = HashMap::new();
    if mode == "hybrid" && (ranker.is_some() || capture.is_some()) {
        use aisle_search::rerank::{QueryView, Signals, POOL};
        let m = POOL.min(fused.len());
        let titles: Vec<String> = fused[..m].iter().map(|(id, _)| key_of(id)).collect();
        let signals: Vec<Signals> = fused[..m]
            .iter()
            .zip(&titles)
            .map(|((id, s), title)| Signals {
                fused: *s,
                keyword: kw_rank
                    .get(id.as_str())
                    .map(|&r| (r, kw.candidates[shown[r]].score)),
                semantic: sem_score.get(id.as_str()).copied(),
                title,
                popularity: live
                    .index
                    .get(id)
                    .map_or(0.0, |&i| live.popularity[i as usize]),
                in_category: in_category.contains(id),
            })
            .collect();
        let intents: Vec<String> = u
            .intent
            .colours
            .iter()
            .chain(&u.intent.materials)
            .cloned()
            .collect();
        let view = QueryView {
            content: &content,
            head: u.head.as_deref(),
            intents: &intents,
        };
        let features = aisle_search::rerank::features(&signals, &view);
        if let Some(out) = capture {
            *out = fused[..m]
                .iter()
                .map(|(id, _)| id.clone())
                .zip(features.iter().copied())
                .collect();
        }
        if let Some(r) = ranker {
            // New places, the fused scores kept by place.
            let order = r.order(&features);
            let before: Vec<(String, f32)> = fused[..m].to_vec();
            for (place, &from) in order.iter().enumerate() {
                fused[place].0 = before[from].0.clone();
                fused_place.insert(before[from].0.clone(), from + 1);
            }
        }
    }
    let mut ranked = aisle_search::fuse::rank_fused(
        fused,
        &personal,
        if scores.is_some() {
            search.cfg.personal_weight
        } else {
            0.0
        },
    );
    if demote {
        // In stock first; the order within each part kept.
        ranked.sort_by_key(|r| live.index.get(&r.id).is_none_or(|&i| !live.in_stock(i)));
    }
    let intent = QueryIntent {
        class: format!("{:?}", u.class).to_lowercase(),
        keyword_query: u.keyword_text.clone(),
        price_max: u.intent.price_max,
        price_min: u.intent.price_min,
        cheap: u.intent.cheap,
        colours: u.intent.colours.clone(),
        materials: u.intent.materials.clone(),
        categories: u.intent.categories.clone(),
        ignored: u.intent.ignored.clone(),
        corrected: u.intent.corrected.clone(),
    };
    let shown_ranked = collapse(&ranked, req.k, key_of, search.cfg.collapse_duplicates);
    let results = hits(
        &shown_ranked,
        &kw,
        (&shown, &kw_rank),
        &sem_score,
        live,
        (&intent, weights),
        &fused_place,
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
        request_id: String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(ids: &[&str]) -> Vec<aisle_search::fuse::Ranked> {
        aisle_search::fuse::rank(
            &[(&ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 1.0)],
            &|_| None,
            0.0,
        )
    }

    #[test]
    fn titles_that_differ_in_case_spacing_or_punctuation_collapse_into_the_first() {
        let titles: HashMap<&str, &str> = [
            ("a", "TEA TIME CLOTH"),
            ("b", "Tea time  cloth."),
            ("c", "TEA MUG"),
            ("d", "tea-time cloth"),
            ("e", "JAR"),
        ]
        .into();
        let title = |id: &str| title_key(titles[id]);
        let r = ranked(&["a", "b", "c", "d", "e"]);
        let got: Vec<(&str, Vec<String>)> = collapse(&r, 2, title, true)
            .into_iter()
            .map(|(r, also)| (r.id.as_str(), also))
            .collect();
        // Duplicates of a shown result are gathered even past k.
        assert_eq!(
            got,
            [("a", vec!["b".to_string(), "d".to_string()]), ("c", vec![])]
        );
        let off: Vec<&str> = collapse(&r, 3, title, false)
            .into_iter()
            .map(|(r, _)| r.id.as_str())
            .collect();
        assert_eq!(off, ["a", "b", "c"]);
    }

    #[test]
    fn a_title_carries_every_word_in_either_number() {
        let titles: HashMap<&str, &str> = [
            ("a", "PINK HANDBAGS"),
            ("b", "PINK MUG"),
            ("c", "BLUE HANDBAG"),
        ]
        .into();
        let title = |id: &str| title_key(titles[id]);
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let words = ["pink".to_string(), "handbag".to_string()];
        assert_eq!(carrying_all(ids.iter().collect(), &words, &title), ["a"]);
    }
}
