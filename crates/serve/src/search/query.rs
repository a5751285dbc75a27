//! One search request: retrieval (keyword, semantic or both), the
//! personal re-ranking and the explained hits of `GET /v1/search`.

use std::collections::HashMap;

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
