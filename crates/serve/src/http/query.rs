//! The query parameters list endpoints share.

use axum::extract::Query;

use axum::extract::rejection::QueryRejection;

use super::error::{ApiError, Code};
use crate::state::Live;
use crate::App;

/// Query parameters, one struct per endpoint family. Values arrive as text
/// and are checked here, so each bad value gets its own code (`bad_k`,
/// `bad_price`, `bad_query`); an unknown or repeated parameter is refused
/// by the extractor (400 `bad_query` naming it and the known ones).
macro_rules! params {
    ($(#[$doc:meta])* $name:ident { $($field:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub(super) struct $name {
            $(pub(super) $field: Option<String>,)+
        }
    };
}

params! {
    /// `GET /v1/popular`, `GET /v1/items/{id}/similar`,
    /// `POST /v1/sessions/recommendations` (`user` and `session` identify
    /// who was shown the list, for the impression log and experiments).
    FilterParams { k, category, price_min, price_max, user, session }
}

params! {
    /// `GET /v1/users/{id}/recommendations`.
    UserRecsParams { k, category, price_min, price_max, exclude_purchased, experiment, rerank }
}

params! {
    /// `GET /v1/search`.
    SearchParams { q, user, k, category, price_min, price_max, personal, mode }
}

params! {
    /// `GET /v1/admin/kpis`: `from`, `to` (Unix seconds or RFC 3339; the
    /// last 24 hours by default), `surface`.
    KpiParams { from, to, surface }
}

params! {
    /// `GET /v1/admin/search/queries`: `from`, `to` (as for KPIs; the last 7
    /// days by default), `limit` (queries per list, 1 to 1,000; 20).
    QueryStatsParams { from, to, limit }
}

params! {
    /// `GET /v1/search/suggest`.
    SuggestParams { q, k }
}

/// `from` and `to` (Unix seconds or RFC 3339) as Unix milliseconds: `to`
/// defaults to now, `from` to `span_ms` before `to`.
pub(super) fn time_range(
    from: &Option<String>,
    to: &Option<String>,
    span_ms: i64,
) -> Result<(i64, i64), ApiError> {
    let time = |v: &Option<String>, name: &str, default: i64| -> Result<i64, ApiError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .or_else(|| aisle_core::time::parse_datetime(s))
                .map(|secs| secs.saturating_mul(1000))
                .ok_or_else(|| {
                    ApiError::new(
                        Code::BadQuery,
                        format!("{name} must be Unix seconds or an RFC 3339 time, not {s:?}"),
                    )
                }),
        }
    };
    let to = time(to, "to", aisle_core::time::unix_now_ms())?;
    let from = time(from, "from", to - span_ms)?;
    if from > to {
        return Err(ApiError::new(Code::BadQuery, "from is after to"));
    }
    Ok((from, to))
}

/// A query string that parsed into `T`, or the extractor's refusal.
pub(super) type Params<T> = Result<Query<T>, QueryRejection>;

/// The list parameters every list endpoint shares, checked.
#[derive(Clone)]
pub(crate) struct ListQuery {
    pub(super) k: usize,
    pub(super) category: Option<String>,
    pub(super) price_min: Option<f64>,
    pub(super) price_max: Option<f64>,
    pub(super) exclude_purchased: bool,
    pub(super) experiment: Option<String>,
    /// Re-rank model candidates by the purchase model (when one is loaded).
    pub(super) rerank: bool,
    /// Who the list is for (`user`, `session` parameters of the lists that
    /// have no user in their path).
    pub(super) user: Option<String>,
    pub(super) session: Option<String>,
}

/// A boolean query parameter: absent = `default`; `true`, `1` or empty (a
/// bare `?name`) = true; `false` or `0` = false; anything else is a 400.
pub(super) fn flag(value: Option<&str>, name: &str, default: bool) -> Result<bool, ApiError> {
    match value {
        None => Ok(default),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(ApiError::new(
            Code::BadQuery,
            format!("{name} must be true or false, not {other:?}"),
        )),
    }
}

/// `k`: 10 when absent, else an integer from 1 to the server's `max_k`.
pub(super) fn parse_k(app: &App, k: Option<&str>) -> Result<usize, ApiError> {
    match k {
        None => Ok(10),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(k) if k >= 1 && k as usize <= app.cfg.max_k => Ok(k as usize),
            _ => Err(ApiError::new(
                Code::BadK,
                format!("k must be an integer from 1 to {}", app.cfg.max_k),
            )),
        },
    }
}

fn price(value: Option<&str>, name: &str) -> Result<Option<f64>, ApiError> {
    match value {
        None => Ok(None),
        Some(s) => match s.trim().parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => Ok(Some(p)),
            _ => Err(ApiError::new(
                Code::BadPrice,
                format!("{name} must be a non-negative number"),
            )),
        },
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|c| !c.is_empty()).cloned()
}

impl ListQuery {
    /// The shared filters: `k`, `category`, `price_min`, `price_max`.
    pub(super) fn filters(
        app: &App,
        k: &Option<String>,
        category: &Option<String>,
        price_min: &Option<String>,
        price_max: &Option<String>,
    ) -> Result<ListQuery, ApiError> {
        Ok(ListQuery {
            k: parse_k(app, k.as_deref())?,
            category: non_empty(category),
            price_min: price(price_min.as_deref(), "price_min")?,
            price_max: price(price_max.as_deref(), "price_max")?,
            exclude_purchased: false,
            experiment: None,
            rerank: true,
            user: None,
            session: None,
        })
    }

    pub(super) fn of_filters(app: &App, q: Params<FilterParams>) -> Result<ListQuery, ApiError> {
        let Query(p) = q?;
        let id = |v: &Option<String>, name: &str| -> Result<Option<String>, ApiError> {
            match non_empty(v) {
                Some(s) => match aisle_core::id_problem(&s) {
                    Some(why) => Err(ApiError::new(Code::BadId, format!("{name} {why}"))),
                    None => Ok(Some(s)),
                },
                None => Ok(None),
            }
        };
        Ok(ListQuery {
            user: id(&p.user, "user")?,
            session: id(&p.session, "session")?,
            ..ListQuery::filters(app, &p.k, &p.category, &p.price_min, &p.price_max)?
        })
    }

    pub(super) fn of_user(app: &App, q: Params<UserRecsParams>) -> Result<ListQuery, ApiError> {
        let Query(p) = q?;
        Ok(ListQuery {
            exclude_purchased: flag(p.exclude_purchased.as_deref(), "exclude_purchased", false)?,
            experiment: non_empty(&p.experiment),
            rerank: flag(p.rerank.as_deref(), "rerank", true)?,
            ..ListQuery::filters(app, &p.k, &p.category, &p.price_min, &p.price_max)?
        })
    }

    /// A list of `k` with no filter and no re-ranking (what off-policy
    /// replay asks a candidate for).
    pub(crate) fn plain(k: usize) -> ListQuery {
        ListQuery {
            k,
            category: None,
            price_min: None,
            price_max: None,
            exclude_purchased: false,
            experiment: None,
            rerank: false,
            user: None,
            session: None,
        }
    }

    pub(super) fn allows(
        &self,
        live: &Live,
        i: u32,
        purchased: Option<&std::collections::HashSet<u32>>,
    ) -> bool {
        if !live.passes(i, self.category.as_deref(), self.price_min, self.price_max) {
            return false;
        }
        if self.exclude_purchased && purchased.is_some_and(|s| s.contains(&i)) {
            return false;
        }
        true
    }
}
