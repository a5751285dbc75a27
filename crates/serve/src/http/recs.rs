//! Recommendations: per user, per session, popular, similar items.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;

use super::error::{body_as, path_id, ApiError, ApiResult, Code};
use super::query::{FilterParams, ListQuery, Params, UserRecsParams};
use super::types::{ExperimentArm, ItemList, ModelRef, RecItem, SessionRecs, UserRecs};
use super::{compute, heavy};

use crate::state::Live;
use crate::App;
use aisle_train::Servable;

pub(super) fn rec_item(live: &Live, i: u32, score: f32, source: &str, reason: String) -> RecItem {
    RecItem {
        item_id: live.items[i as usize].clone(),
        score,
        source: source.to_string(),
        reason,
        purchase_probability: None,
    }
}

/// Popular items passing the filter, skipping `taken`.
pub(super) fn popular_items(
    live: &Live,
    q: &ListQuery,
    k: usize,
    purchased: Option<&std::collections::HashSet<u32>>,
    taken: &[u32],
) -> Vec<RecItem> {
    let scores = &live.popularity;
    aisle_eval::top_k(scores, k, |i| {
        taken.contains(&(i as u32)) || !q.allows(live, i as u32, purchased)
    })
    .into_iter()
    .map(|i| {
        let reason = match live.category(i) {
            Some(c) => format!("popular in {c}"),
            None => "popular in the shop".to_string(),
        };
        rec_item(live, i, scores[i as usize], "popularity", reason)
    })
    .collect()
}

/// Model recommendations after `history` (live indices), topped up with
/// popular items. Returns (items, unknown history entries).
/// Model candidates the purchase model re-ranks (at least; 5·k when larger).
pub(super) const RERANK_CANDIDATES: usize = 50;

#[allow(clippy::too_many_arguments)]
pub(super) fn recommend(
    app: &App,
    live: &Live,
    q: &ListQuery,
    user: Option<&str>,
    history: &[u32],
    purchased: Option<&std::collections::HashSet<u32>>,
    use_model: bool,
) -> (Vec<RecItem>, usize) {
    let serving = app.current();
    let mut out = Vec::new();
    let mut taken = Vec::new();
    let mut unknown = 0;
    if let (Some(model), true) = (&serving.model, use_model && !history.is_empty()) {
        let hist = serving.known_history(live, history);
        unknown = history.len() - hist.len();
        if !hist.is_empty() {
            let mut scores = vec![0f32; model.n_items()];
            model.score_history(&hist, &mut scores);
            let last = live.title(*history.last().expect("non-empty"));
            // With the purchase model: a wider candidate list, re-ranked.
            let rerank = app.purchase.as_ref().filter(|_| q.rerank && user.is_some());
            let n = if rerank.is_some() {
                (q.k * 5).max(RERANK_CANDIDATES)
            } else {
                q.k
            };
            let mut top = aisle_eval::top_k(&scores, n, |j| {
                match live.index.get(&serving.model_items[j]) {
                    Some(&li) => !q.allows(live, li, purchased),
                    None => true,
                }
            });
            let mut prob: Vec<Option<f64>> = vec![None; top.len()];
            if let (Some(p), Some(user)) = (rerank, user) {
                let ids: Vec<&str> = top
                    .iter()
                    .map(|&j| serving.model_items[j as usize].as_str())
                    .collect();
                let (probs, _) = p.probabilities(user, &ids, aisle_core::time::unix_now() + 1);
                let mut order: Vec<usize> = (0..top.len()).collect();
                order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
                order.truncate(q.k);
                prob = order.iter().map(|&o| Some(probs[o])).collect();
                top = order.iter().map(|&o| top[o]).collect();
            }
            for (j, p) in top.into_iter().zip(prob) {
                let li = live.index[&serving.model_items[j as usize]];
                taken.push(li);
                let mut v = rec_item(
                    live,
                    li,
                    scores[j as usize],
                    &serving.name,
                    format!("follows your recent interest in {last}"),
                );
                if let Some(p) = p {
                    v.purchase_probability = Some(p);
                    v.source = format!("{}+ranker", serving.name);
                    v.reason = format!(
                        "follows your recent interest in {last}; purchase probability {:.1}%",
                        p * 100.0
                    );
                }
                out.push(v);
            }
        }
    }
    if out.len() < q.k {
        out.extend(popular_items(live, q, q.k - out.len(), purchased, &taken));
    }
    (out, unknown)
}

/// The model serving now, by name and version.
pub(super) fn serving_model(app: &App) -> ModelRef {
    let s = app.current();
    ModelRef {
        name: s.name.clone(),
        version: s.version.clone(),
    }
}

pub(super) async fn user_recs(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Params<UserRecsParams>,
) -> ApiResult {
    let id = path_id(id)?;
    let q = ListQuery::of_user(&app, q)?;
    compute(heavy(&app), move || {
        // A/B: a stable half of the users of an experiment get popularity.
        let variant = q.experiment.as_ref().map(|e| {
            let h = aisle_core::hash::hash_fields([e.as_bytes(), id.as_bytes()]);
            if h % 2 == 0 {
                "model"
            } else {
                "popularity"
            }
        });
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        let user = live.users.get(&id);
        let history = user.map_or(&[][..], |u| &u.history[..]);
        let purchased = user.map(|u| &u.purchased);
        let (items, unknown) = recommend(
            &app,
            &live,
            &q,
            Some(&id),
            history,
            purchased,
            variant != Some("popularity"),
        );
        let experiment = match (&q.experiment, variant) {
            (Some(e), Some(v)) => Some(ExperimentArm {
                name: e.clone(),
                variant: v,
            }),
            _ => None,
        };
        let body = UserRecs {
            items,
            model: serving_model(&app),
            user_known: user.is_some(),
            history_items_unknown_to_model: unknown,
            experiment,
        };
        Ok(Json(body).into_response())
    })
    .await
}

/// `POST /v1/sessions/recommendations`: `{"items": [ids...], "k"?}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionBody {
    /// Item ids (strings or numbers), oldest first.
    #[schema(value_type = Vec<String>)]
    items: Vec<Value>,
    /// How many items (1 to the server's max_k; default 10).
    #[schema(value_type = Option<u32>)]
    k: Option<Value>,
}

pub(super) async fn session_recs(
    State(app): State<Arc<App>>,
    q: Params<FilterParams>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = ListQuery::of_filters(&app, q)?;
    let body: SessionBody = body_as(body, Code::BadSession)?;
    let ids = body.items;
    let k = match &body.k {
        None => q.k,
        Some(k) => k
            .as_u64()
            .filter(|&k| k >= 1 && k as usize <= app.cfg.max_k)
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadK,
                    format!("k must be an integer from 1 to {}", app.cfg.max_k),
                )
            })? as usize,
    };
    let q = ListQuery { k, ..q };
    compute(heavy(&app), move || {
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        let mut history = Vec::new();
        let mut unknown_ids = 0;
        for id in &ids {
            match aisle_ingest::api::id_string(id).and_then(|s| live.index.get(&s).copied()) {
                Some(i) => history.push(i),
                None => unknown_ids += 1,
            }
        }
        let (items, unknown) = recommend(&app, &live, &q, None, &history, None, true);
        Ok(Json(SessionRecs {
            items,
            model: serving_model(&app),
            unknown_items: unknown_ids + unknown,
        })
        .into_response())
    })
    .await
}

pub(super) async fn popular(State(app): State<Arc<App>>, q: Params<FilterParams>) -> ApiResult {
    let q = ListQuery::of_filters(&app, q)?;
    compute(heavy(&app), move || {
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        let items = popular_items(&live, &q, q.k, None, &[]);
        let model = ModelRef {
            name: "popularity".into(),
            version: "live".into(),
        };
        Ok(Json(ItemList { items, model }).into_response())
    })
    .await
}

pub(super) async fn similar(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Params<FilterParams>,
) -> ApiResult {
    let id = path_id(id)?;
    let q = ListQuery::of_filters(&app, q)?;
    compute(heavy(&app), move || {
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        let Some(&li) = live.index.get(&id) else {
            return Err(ApiError::not_found(format!("unknown item {id:?}")));
        };
        let serving = app.current();
        let title = live.title(li);
        let mut items = Vec::new();
        if let (Some(model), Some(&mj)) = (&serving.model, serving.model_index.get(&id)) {
            let mut scores = vec![0f32; model.n_items()];
            model.similar(mj, &mut scores);
            for j in aisle_eval::top_k(&scores, q.k, |j| {
                j == mj as usize
                    || live
                        .index
                        .get(&serving.model_items[j])
                        .is_none_or(|&l| !q.allows(&live, l, None))
            }) {
                let l = live.index[&serving.model_items[j as usize]];
                items.push(rec_item(
                    &live,
                    l,
                    scores[j as usize],
                    &serving.name,
                    format!("often in the same sessions as {title}"),
                ));
            }
        }
        if items.len() < q.k {
            // Cold item (or no model): content similarity (title words, category).
            let taken: Vec<u32> = items
                .iter()
                .filter_map(|v| live.index.get(&v.item_id).copied())
                .chain(std::iter::once(li))
                .collect();
            let scores = live.content_scores(li);
            let cat = live.category(li);
            for j in aisle_eval::top_k(&scores, q.k - items.len(), |j| {
                taken.contains(&(j as u32)) || !q.allows(&live, j as u32, None)
            }) {
                let words = live.shared_words(li, j);
                let same = cat.is_some() && live.category(j) == cat;
                let reason = match (words.is_empty(), same) {
                    (false, true) => format!("\"{}\" like {title}, same category", words.join(" ")),
                    (false, false) => format!("\"{}\" like {title}", words.join(" ")),
                    (true, true) => format!("same category as {title}"),
                    (true, false) => "popular in the shop".to_string(),
                };
                items.push(rec_item(&live, j, scores[j as usize], "content", reason));
            }
        }
        Ok(Json(ItemList {
            items,
            model: serving_model(&app),
        })
        .into_response())
    })
    .await
}
