//! `DELETE /v1/users/{id}`: erasure.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;

use super::error::{path_id, ApiError, ApiResult};
use super::types::UserErased;
use crate::App;

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
