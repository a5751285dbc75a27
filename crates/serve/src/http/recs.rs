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

use crate::online::format_request_id;
use crate::state::{Live, Serving};
use crate::App;
use aisle_experiment::{ExperimentSpec, Mode, Surface, Team};
use aisle_store::online::{Impression, Shown};
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
pub(crate) fn recommend(
    purchase: Option<&crate::purchase::Purchase>,
    serving: &Serving,
    live: &Live,
    q: &ListQuery,
    user: Option<&str>,
    history: &[u32],
    purchased: Option<&std::collections::HashSet<u32>>,
    use_model: bool,
) -> (Vec<RecItem>, usize) {
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
            let rerank = purchase.filter(|_| q.rerank && user.is_some());
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
                // A model that weighs the history (GAT's attention) names
                // the item that weighed most.
                let why = model
                    .explain(&hist, j)
                    .and_then(|(k, w)| {
                        let id = serving.model_items.get(k as usize)?;
                        Some((live.title(*live.index.get(id)?), w))
                    })
                    .map(|(title, w)| {
                        format!(
                            "shoppers who bought {title} weighed most ({:.0}% of the attention)",
                            w * 100.0
                        )
                    });
                let mut v = rec_item(
                    live,
                    li,
                    scores[j as usize],
                    &serving.name,
                    why.unwrap_or_else(|| format!("follows your recent interest in {last}")),
                );
                if let Some(p) = p {
                    v.purchase_probability = Some(p);
                    v.source = format!("{}+ranker", serving.name);
                    v.reason = format!("{}; purchase probability {:.1}%", v.reason, p * 100.0);
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
pub(crate) fn serving_model(app: &App) -> ModelRef {
    model_ref(&app.current())
}

pub(super) fn model_ref(s: &Serving) -> ModelRef {
    ModelRef {
        name: s.name.clone(),
        version: s.version.clone(),
    }
}

/// What one list was, for the impression log.
pub(super) struct ListShown<'a> {
    pub surface: &'static str,
    pub user: Option<&'a str>,
    pub session: Option<&'a str>,
    pub experiment: Option<&'a ExperimentArm>,
    pub model: &'a ModelRef,
    pub query: Option<&'a str>,
    /// `Live::last_seq` of the view the list was computed from.
    pub events_seq: i64,
}

/// Logs a list shown under request id `rid` (never blocks: see `Online::log`).
pub(super) fn log_list(
    app: &App,
    rid: u64,
    what: ListShown<'_>,
    items: &[(&str, f32)],
    teams: Option<&[Team]>,
    propensities: Option<&[f64]>,
) {
    app.online.log(Impression {
        rid,
        ts_ms: aisle_core::time::unix_now_ms(),
        user: what.user.map(str::to_string),
        session: what.session.map(str::to_string),
        surface: what.surface.to_string(),
        experiment: what.experiment.map(|e| e.name.clone()),
        arm: what.experiment.map(|e| e.arm.clone()),
        model: format!("{}@{}", what.model.name, what.model.version),
        query: what.query.map(str::to_string),
        events_seq: Some(what.events_seq),
        items: items
            .iter()
            .enumerate()
            .map(|(p, (item, score))| Shown {
                item: item.to_string(),
                score: *score,
                propensity: propensities.and_then(|t| t.get(p).copied()),
                team: teams.and_then(|t| t.get(p).copied()),
            })
            .collect(),
    });
}

fn rec_ids(items: &[RecItem]) -> Vec<(&str, f32)> {
    items
        .iter()
        .map(|v| (v.item_id.as_str(), v.score))
        .collect()
}

/// A list under an experiment: the user's arm (A/B), or both arms' lists
/// merged by team draft (interleaving, seeded by the request id).
pub(super) struct ArmList {
    pub items: Vec<RecItem>,
    /// Each item's interleaving team (interleaving only).
    pub teams: Option<Vec<Team>>,
    /// What answered (both arms' models, `a|b`, when interleaved).
    pub model: ModelRef,
    pub arm: ExperimentArm,
}

pub(super) fn experiment_list(
    app: &App,
    spec: &ExperimentSpec,
    user: &str,
    rid: u64,
    k: usize,
    mut list: impl FnMut(&Serving) -> Vec<RecItem>,
) -> Result<ArmList, ApiError> {
    let arm_error = |e: crate::ServeError| ApiError::new(Code::UnknownArm, e.to_string());
    match spec.mode {
        Mode::Ab => {
            let arm = spec.assign(user);
            let serving = app.arm_serving(&spec.arms[arm].model).map_err(arm_error)?;
            let items = list(&serving);
            let exp = ExperimentArm {
                name: spec.name.clone(),
                arm: spec.arms[arm].name.clone(),
                variant: None,
            };
            Ok(ArmList {
                items,
                teams: None,
                model: model_ref(&serving),
                arm: exp,
            })
        }
        Mode::Interleave => {
            let a = app.arm_serving(&spec.arms[0].model).map_err(arm_error)?;
            let b = app.arm_serving(&spec.arms[1].model).map_err(arm_error)?;
            let (la, lb) = (list(&a), list(&b));
            let ia: Vec<&str> = la.iter().map(|v| v.item_id.as_str()).collect();
            let ib: Vec<&str> = lb.iter().map(|v| v.item_id.as_str()).collect();
            let merged =
                aisle_experiment::team_draft(&ia, &ib, k, &mut aisle_core::rng::Rng::seed(rid));
            let items = merged
                .items
                .iter()
                .map(|id| {
                    la.iter()
                        .chain(&lb)
                        .find(|v| v.item_id == *id)
                        .cloned()
                        .expect("drafted from the two lists")
                })
                .collect();
            let model = ModelRef {
                name: format!("{}|{}", a.name, b.name),
                version: format!("{}|{}", a.version, b.version),
            };
            let exp = ExperimentArm {
                name: spec.name.clone(),
                arm: "interleaved".into(),
                variant: None,
            };
            Ok(ArmList {
                items,
                teams: Some(merged.teams),
                model,
                arm: exp,
            })
        }
    }
}

/// Mixed into a request id to seed its exploration draw (independent of
/// the interleaving coin flips, which the request id seeds directly).
const EXPLORE_SEED: u64 = 0x0e8b_1a7e_5eed_0001;

pub(super) async fn user_recs(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Params<UserRecsParams>,
) -> ApiResult {
    let id = path_id(id)?;
    let q = ListQuery::of_user(&app, q)?;
    compute(heavy(&app), move || {
        let rid = app.online.request_id();
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        // An alias is answered as its user: the same history, the same arm
        // (the list is logged under the id asked for).
        let who = live.owner(&id).to_string();
        let user = live.users.get(&who);
        let history = user.map_or(&[][..], |u| &u.history[..]);
        let purchased = user.map(|u| &u.purchased);
        let mut unknown = 0;
        let mut rec = |serving: &Serving, q: &ListQuery, use_model: bool| {
            let (items, u) = recommend(
                app.purchase.as_ref(),
                serving,
                &live,
                q,
                Some(&who),
                history,
                purchased,
                use_model,
            );
            unknown = u;
            items
        };
        let mut propensities = None;
        let explore = app.online.config().explore;
        let (items, teams, model, experiment) = match app.online.running(Surface::Recommendations) {
            Some(spec) => {
                let l = experiment_list(&app, &spec, &who, rid, q.k, |s| rec(s, &q, true))?;
                (l.items, l.teams, l.model, Some(l.arm))
            }
            None if explore > 0.0 && q.experiment.is_none() => {
                // Exploration: the model's top pool, of which a share of
                // requests shows a random draw (propensities logged).
                let serving = app.current();
                let pool_q = ListQuery {
                    k: app.online.config().explore_pool.max(q.k),
                    ..q.clone()
                };
                let pool = rec(&serving, &pool_q, true);
                let mut rng = aisle_core::rng::Rng::seed(rid ^ EXPLORE_SEED);
                let (order, props) =
                    aisle_experiment::ope::explore(pool.len(), q.k, explore, &mut rng);
                propensities = Some(props);
                let items = order.iter().map(|&o| pool[o].clone()).collect();
                (items, None, model_ref(&serving), None)
            }
            None => {
                // The legacy flag: a stable half of the users of
                // `?experiment=NAME` get popularity.
                let variant = q.experiment.as_ref().map(|e| {
                    let h = aisle_core::hash::hash_fields([e.as_bytes(), who.as_bytes()]);
                    if h % 2 == 0 {
                        "model"
                    } else {
                        "popularity"
                    }
                });
                let serving = app.current();
                let items = rec(&serving, &q, variant != Some("popularity"));
                let experiment = match (&q.experiment, variant) {
                    (Some(e), Some(v)) => Some(ExperimentArm {
                        name: e.clone(),
                        arm: v.to_string(),
                        variant: Some(v),
                    }),
                    _ => None,
                };
                (items, None, model_ref(&serving), experiment)
            }
        };
        log_list(
            &app,
            rid,
            ListShown {
                surface: "recommendations",
                user: Some(&id),
                session: None,
                experiment: experiment.as_ref(),
                model: &model,
                query: None,
                events_seq: live.last_seq,
            },
            &rec_ids(&items),
            teams.as_deref(),
            propensities.as_deref(),
        );
        let body = UserRecs {
            request_id: format_request_id(rid),
            items,
            model,
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
        let serving = app.current();
        let (items, unknown) = recommend(
            app.purchase.as_ref(),
            &serving,
            &live,
            &q,
            None,
            &history,
            None,
            true,
        );
        let rid = app.online.request_id();
        let model = model_ref(&serving);
        log_list(
            &app,
            rid,
            ListShown {
                surface: "session",
                user: q.user.as_deref(),
                session: q.session.as_deref(),
                experiment: None,
                model: &model,
                query: None,
                events_seq: live.last_seq,
            },
            &rec_ids(&items),
            None,
            None,
        );
        Ok(Json(SessionRecs {
            request_id: format_request_id(rid),
            items,
            model,
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
        let rid = app.online.request_id();
        log_list(
            &app,
            rid,
            ListShown {
                surface: "popular",
                user: q.user.as_deref(),
                session: q.session.as_deref(),
                experiment: None,
                model: &model,
                query: None,
                events_seq: live.last_seq,
            },
            &rec_ids(&items),
            None,
            None,
        );
        Ok(Json(ItemList {
            request_id: format_request_id(rid),
            items,
            model,
            experiment: None,
        })
        .into_response())
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
        let rid = app.online.request_id();
        let list = |s: &Serving| similar_items(s, &live, li, &id, &q);
        let running = app.online.running(Surface::Similar);
        let (items, teams, model, experiment) = match (running, &q.user) {
            (Some(spec), Some(user)) => {
                let l = experiment_list(&app, &spec, user, rid, q.k, list)?;
                (l.items, l.teams, l.model, Some(l.arm))
            }
            _ => {
                let serving = app.current();
                (list(&serving), None, model_ref(&serving), None)
            }
        };
        log_list(
            &app,
            rid,
            ListShown {
                surface: "similar",
                user: q.user.as_deref(),
                session: q.session.as_deref(),
                experiment: experiment.as_ref(),
                model: &model,
                query: None,
                events_seq: live.last_seq,
            },
            &rec_ids(&items),
            teams.as_deref(),
            None,
        );
        Ok(Json(ItemList {
            request_id: format_request_id(rid),
            items,
            model,
            experiment,
        })
        .into_response())
    })
    .await
}

/// Items like item `li` (`id`): the model's neighbours, then content
/// similarity for what the model does not know.
fn similar_items(serving: &Serving, live: &Live, li: u32, id: &str, q: &ListQuery) -> Vec<RecItem> {
    let title = live.title(li);
    let mut items = Vec::new();
    if let (Some(model), Some(&mj)) = (&serving.model, serving.model_index.get(id)) {
        let mut scores = vec![0f32; model.n_items()];
        model.similar(mj, &mut scores);
        for j in aisle_eval::top_k(&scores, q.k, |j| {
            j == mj as usize
                || live
                    .index
                    .get(&serving.model_items[j])
                    .is_none_or(|&l| !q.allows(live, l, None))
        }) {
            let l = live.index[&serving.model_items[j as usize]];
            items.push(rec_item(
                live,
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
            taken.contains(&(j as u32)) || !q.allows(live, j as u32, None)
        }) {
            let words = live.shared_words(li, j);
            let same = cat.is_some() && live.category(j) == cat;
            let reason = match (words.is_empty(), same) {
                (false, true) => format!("\"{}\" like {title}, same category", words.join(" ")),
                (false, false) => format!("\"{}\" like {title}", words.join(" ")),
                (true, true) => format!("same category as {title}"),
                (true, false) => "popular in the shop".to_string(),
            };
            items.push(rec_item(live, j, scores[j as usize], "content", reason));
        }
    }
    items
}

/// What a shopper's recommendations are now, for the console: the list the
/// API would answer (the user's arm under an A/B experiment, else the
/// serving model's list, without exploration), computed but neither logged
/// nor counted as shown.
pub(crate) fn preview_user(
    app: &App,
    user: &str,
    k: usize,
) -> (Vec<RecItem>, ModelRef, Option<ExperimentArm>) {
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let user = live.owner(user);
    let state = live.users.get(user);
    let history = state.map_or(&[][..], |u| &u.history[..]);
    let q = ListQuery::plain(k);
    let rec = |serving: &Serving| {
        recommend(
            app.purchase.as_ref(),
            serving,
            &live,
            &q,
            Some(user),
            history,
            state.map(|u| &u.purchased),
            true,
        )
        .0
    };
    if let Some(spec) = app.online.running(Surface::Recommendations) {
        if spec.mode == Mode::Ab {
            let arm = &spec.arms[spec.assign(user)];
            if let Ok(serving) = app.arm_serving(&arm.model) {
                let exp = ExperimentArm {
                    name: spec.name.clone(),
                    arm: arm.name.clone(),
                    variant: None,
                };
                return (rec(&serving), model_ref(&serving), Some(exp));
            }
        }
    }
    let serving = app.current();
    (rec(&serving), model_ref(&serving), None)
}

/// Items similar to `item` by the serving model, for the console (not
/// logged); None for an unknown item.
pub(crate) fn preview_similar(app: &App, item: &str, k: usize) -> Option<Vec<RecItem>> {
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let &li = live.index.get(item)?;
    Some(similar_items(
        &app.current(),
        &live,
        li,
        item,
        &ListQuery::plain(k),
    ))
}
