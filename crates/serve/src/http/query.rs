//! The query parameters list endpoints share.

use axum::extract::Query;

use super::error::{ApiError, Code, Q};
use crate::state::Live;
use crate::App;
use std::collections::HashMap;

/// Common query parameters of list endpoints.
pub(super) struct ListQuery {
    pub(super) k: usize,
    pub(super) category: Option<String>,
    pub(super) price_min: Option<f64>,
    pub(super) price_max: Option<f64>,
    pub(super) exclude_purchased: bool,
    pub(super) experiment: Option<String>,
    /// Re-rank model candidates by the purchase model (when one is loaded).
    pub(super) rerank: bool,
}

/// A boolean query parameter: absent = `default`; `true`, `1` or empty (a
/// bare `?name`) = true; `false` or `0` = false; anything else is a 400.
pub(super) fn flag(
    q: &HashMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(ApiError::new(
            Code::BadQuery,
            format!("{name} must be true or false, not {other:?}"),
        )),
    }
}

pub(super) fn list_query(app: &App, q: Q, allowed: &[&str]) -> Result<ListQuery, ApiError> {
    let Query(q) = q?;
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::new(
                Code::BadQuery,
                format!("unknown parameter `{k}` (known: {})", allowed.join(", ")),
            ));
        }
    }
    let k = match q.get("k") {
        None => 10,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(k) if k >= 1 && k as usize <= app.cfg.max_k => k as usize,
            _ => {
                return Err(ApiError::new(
                    Code::BadK,
                    format!("k must be an integer from 1 to {}", app.cfg.max_k),
                ))
            }
        },
    };
    let price = |name: &str| -> Result<Option<f64>, ApiError> {
        match q.get(name) {
            None => Ok(None),
            Some(s) => match s.trim().parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Ok(Some(p)),
                _ => Err(ApiError::new(
                    Code::BadPrice,
                    format!("{name} must be a non-negative number"),
                )),
            },
        }
    };
    let exclude_purchased = flag(&q, "exclude_purchased", false)?;
    Ok(ListQuery {
        k,
        category: q.get("category").filter(|c| !c.is_empty()).cloned(),
        price_min: price("price_min")?,
        price_max: price("price_max")?,
        exclude_purchased,
        experiment: q.get("experiment").filter(|c| !c.is_empty()).cloned(),
        rerank: flag(&q, "rerank", true)?,
    })
}

impl ListQuery {
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
