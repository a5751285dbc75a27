//! `GET /v1/search` and `GET /v1/search/suggest`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::error::{ApiError, ApiResult, Code};
use super::query::{flag, parse_k, ListQuery, Params, SearchParams, SuggestParams};
use super::types::{ExperimentArm, ModelRef, Suggestion, Suggestions};
use crate::search::{SearchHit, SearchRequest, SearchResults};
use crate::App;
use aisle_experiment::{Surface, Team};

/// `GET /v1/search?q=&user=&k=&category=&price_min=&price_max=&personal=`
pub(super) async fn search(State(app): State<Arc<App>>, q: Params<SearchParams>) -> ApiResult {
    let t = Instant::now();
    let Query(p) = q?;
    let lq = ListQuery::filters(&app, &p.k, &p.category, &p.price_min, &p.price_max)?;
    let text = p.q.as_deref().map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err(ApiError::new(
            Code::EmptyQuery,
            "q is required and must not be blank",
        ));
    }
    if text.len() > 10_000 {
        return Err(ApiError::new(
            Code::QueryTooLong,
            "q is limited to 10,000 bytes",
        ));
    }
    let personal = flag(p.personal.as_deref(), "personal", true)?;
    let user = p.user.clone().filter(|u| !u.is_empty());
    if let Some(why) = user.as_deref().and_then(aisle_core::id_problem) {
        return Err(ApiError::new(Code::BadId, format!("user {why}")));
    }
    let req = crate::search::SearchRequest {
        q: text.to_string(),
        user,
        k: lq.k,
        filters: aisle_search::Filters {
            category: lq.category.clone(),
            price_min: lq.price_min,
            price_max: lq.price_max,
            in_stock_only: true,
        },
        personal,
        mode: p.mode.clone().filter(|m| !m.is_empty()),
        weights: None,
        rerank: crate::search::Rerank::Configured,
    };
    if let Some(m) = &req.mode {
        if !["keyword", "semantic", "hybrid"].contains(&m.as_str()) {
            return Err(ApiError::new(
                Code::BadQuery,
                format!("mode must be keyword, semantic or hybrid, not {m:?}"),
            ));
        }
        if m != "keyword" && app.search.semantic.is_none() {
            return Err(ApiError::new(
                Code::SemanticUnavailable,
                format!("semantic search is {}", app.search.semantic_note),
            ));
        }
    }
    let app2 = app.clone();
    let rid = app.online.request_id();
    let (mut out, req, teams, model, experiment) =
        tokio::task::spawn_blocking(move || searched(&app2, req, rid))
            .await
            .map_err(ApiError::task)??;
    out.request_id = crate::online::format_request_id(rid);
    let shown: Vec<(&str, f32)> = out
        .results
        .iter()
        .map(|h| (h.item_id.as_str(), h.score))
        .collect();
    super::recs::log_list(
        &app,
        rid,
        super::recs::ListShown {
            surface: "search",
            user: req.user.as_deref(),
            session: None,
            experiment: experiment.as_ref(),
            model: &model,
            query: Some(&req.q),
            events_seq: app.live.read().unwrap_or_else(|e| e.into_inner()).last_seq,
        },
        &shown,
        teams.as_deref(),
        None,
    );
    let took = t.elapsed().as_secs_f64() * 1000.0;
    out.took_ms = took;
    let top: Vec<&str> = out
        .results
        .iter()
        .take(10)
        .map(|x| x.item_id.as_str())
        .collect();
    app.search.record(&json!({
        "ts": aisle_core::time::unix_now(), "q": req.q, "user": req.user, "k": req.k,
        "total": out.total, "top": top, "took_ms": took,
    }));
    Ok(Json(out).into_response())
}

type Searched = (
    SearchResults,
    SearchRequest,
    Option<Vec<Team>>,
    ModelRef,
    Option<ExperimentArm>,
);

/// Runs a search: under a running search experiment (and a `user`), with
/// the user's arm's model re-ranking (A/B) or both arms' results merged by
/// team draft (interleaving); else with the serving model.
fn searched(app: &App, req: SearchRequest, rid: u64) -> Result<Searched, ApiError> {
    let unavailable = |e: String| ApiError::new(Code::SearchUnavailable, e);
    let running = app.online.running(Surface::Search);
    let (Some(spec), Some(user)) = (running, req.user.clone()) else {
        let out = app.search(&req).map_err(unavailable)?;
        let model = super::recs::model_ref(&app.current());
        return Ok((out, req, None, model, None));
    };
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let run = |s: &crate::Serving| crate::search::run(&app.search, &live, s, &req);
    let mut failure = None;
    let mut first: Option<SearchResults> = None;
    let mut pool: Vec<SearchHit> = Vec::new();
    let list = super::recs::experiment_list(app, &spec, &user, rid, req.k, |s| match run(s) {
        Ok(out) => {
            let hits = out.results.iter().map(hit_item).collect();
            pool.extend(out.results.iter().cloned());
            first.get_or_insert(out);
            hits
        }
        Err(e) => {
            failure = Some(e);
            Vec::new()
        }
    })?;
    if let Some(e) = failure {
        return Err(unavailable(e));
    }
    let mut out = first.ok_or_else(|| unavailable("no search ran".into()))?;
    // The list shown, as hits: each from whichever arm's results hold it.
    out.results = list
        .items
        .iter()
        .filter_map(|v| pool.iter().find(|h| h.item_id == v.item_id).cloned())
        .collect();
    drop(live);
    Ok((out, req, list.teams, list.model, Some(list.arm)))
}

/// A search hit as a list item (what experiment lists merge).
fn hit_item(h: &SearchHit) -> super::types::RecItem {
    super::types::RecItem {
        item_id: h.item_id.clone(),
        score: h.score,
        source: "search".into(),
        reason: String::new(),
        purchase_probability: None,
    }
}

/// `GET /v1/search/suggest?q=&k=`: past queries, then catalog titles.
pub(super) async fn suggest(State(app): State<Arc<App>>, q: Params<SuggestParams>) -> ApiResult {
    let Query(p) = q?;
    let k = parse_k(&app, p.k.as_deref())?;
    let prefix = p.q.as_deref().map(str::trim).unwrap_or("");
    if prefix.is_empty() {
        return Err(ApiError::new(
            Code::EmptyQuery,
            "q is required and must not be blank",
        ));
    }
    let mut out: Vec<Suggestion> = app
        .search
        .popular_queries(prefix, k)
        .into_iter()
        .map(|(text, n)| Suggestion {
            text,
            source: "query",
            count: Some(n),
        })
        .collect();
    if out.len() < k {
        if let Some(index) = &app.search.keyword {
            let titles = index
                .suggest_titles(prefix, k - out.len())
                .map_err(|e| ApiError::new(Code::SearchUnavailable, e.to_string()))?;
            out.extend(titles.into_iter().map(|text| Suggestion {
                text,
                source: "title",
                count: None,
            }));
        }
    }
    Ok(Json(Suggestions { suggestions: out }).into_response())
}
