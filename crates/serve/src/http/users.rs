//! `DELETE /v1/users/{id}`: erasure; `/v1/users/{id}/aliases`: identity links.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::error::{body_as, path_id, ApiError, ApiResult, Code};
use super::types::{AliasLinked, UserAliases, UserErased};
use crate::App;
use aisle_store::Link;

/// `DELETE /v1/users/{id}`: erases the user everywhere (see
/// [`App::erase_user`]) and says what was removed.
pub(super) async fn delete_user(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    let app2 = app.clone();
    let id2 = id.clone();
    let erased = tokio::task::spawn_blocking(move || app2.erase_user(&id2))
        .await
        .map_err(ApiError::task)??;
    Ok(Json(UserErased {
        user_id: id,
        deleted_events: erased.events,
        erased,
    })
    .into_response())
}

/// `POST /v1/users/{id}/aliases`: `{"alias": "..."}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AliasBody {
    /// An anonymous, device or other id of the same shopper.
    alias: String,
}

/// Links an alias to the user: 201 when new, 200 when it already was;
/// 409 `alias_conflict` when the alias is another user's (or the link
/// would chain); 400 `bad_alias` for an id that cannot be one.
pub(super) async fn post_alias(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let user = path_id(id)?;
    let AliasBody { alias } = body_as(body, Code::BadAlias)?;
    if let Some(why) = aisle_core::id_problem(&alias) {
        return Err(ApiError::new(Code::BadAlias, format!("the alias {why}")));
    }
    let (u, a) = (user.clone(), alias.clone());
    let done = tokio::task::spawn_blocking(move || app.link_alias(&u, &a))
        .await
        .map_err(ApiError::task)??;
    let status = match &done.link {
        Link::Linked => StatusCode::CREATED,
        Link::Already => StatusCode::OK,
        Link::Refused(why) => {
            let code = match why {
                aisle_store::LinkRefusal::SameId => Code::BadAlias,
                _ => Code::AliasConflict,
            };
            return Err(ApiError::new(code, why.message(&user, &alias)));
        }
    };
    let body = AliasLinked {
        user_id: user,
        alias,
        linked: true,
        changed: done.link == Link::Linked,
        history_items: Some(done.history_items),
    };
    Ok((status, Json(body)).into_response())
}

/// Removes the link (each id keeps its own events); 404 `unknown_alias`
/// when the alias is not linked to this user.
pub(super) async fn delete_alias(
    State(app): State<Arc<App>>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let Path((user, alias)) = ids?;
    for (what, id) in [("user id", &user), ("alias", &alias)] {
        if let Some(why) = aisle_core::id_problem(id) {
            return Err(ApiError::new(Code::BadId, format!("the {what} {why}")));
        }
    }
    let (u, a) = (user.clone(), alias.clone());
    let removed = tokio::task::spawn_blocking(move || app.unlink_alias(&u, &a))
        .await
        .map_err(ApiError::task)??;
    if !removed {
        return Err(ApiError::new(
            Code::UnknownAlias,
            format!("`{alias}` is not an alias of `{user}`"),
        ));
    }
    Ok(Json(AliasLinked {
        user_id: user,
        alias,
        linked: false,
        changed: true,
        history_items: None,
    })
    .into_response())
}

/// `GET /v1/users/{id}/aliases`: the aliases linked to the user.
pub(super) async fn get_aliases(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let user = path_id(id)?;
    let u = user.clone();
    let aliases = tokio::task::spawn_blocking(move || app.aliases_of(&u))
        .await
        .map_err(ApiError::task)??;
    Ok(Json(UserAliases {
        user_id: user,
        aliases,
    })
    .into_response())
}
