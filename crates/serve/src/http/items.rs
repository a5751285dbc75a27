//! The catalog: `GET|PUT|DELETE /v1/items/{id}`.

use std::sync::Arc;

use aisle_core::CatalogItem;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::error::{body_as, path_id, ApiError, ApiResult, Code};
use super::types::{ItemDeleted, ItemStored, ItemView};
use super::write;
use crate::App;

pub(super) async fn get_item(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    match live.index.get(&id) {
        Some(&i) if !live.deleted[i as usize] => {
            let c = live.catalog[i as usize].clone().unwrap_or(CatalogItem {
                id: id.clone(),
                in_stock: true,
                ..CatalogItem::default()
            });
            Ok(Json(ItemView {
                item_id: c.id,
                title: c.title,
                description: c.description,
                category: c.category,
                price: c.price,
                in_stock: c.in_stock,
                interactions: live.popularity[i as usize],
            })
            .into_response())
        }
        _ => Err(ApiError::not_found(format!("unknown item {id:?}"))),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ItemBody {
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
    price: Option<f64>,
    in_stock: Option<bool>,
}

pub(super) async fn put_item(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    if id.trim().is_empty() {
        return Err(ApiError::new(
            Code::BadItem,
            "item id must be 1 to 256 bytes",
        ));
    }
    let b: ItemBody = body_as(body, Code::BadItem)?;
    if b.price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(ApiError::new(
            Code::BadItem,
            "price must be a non-negative number",
        ));
    }
    let item = CatalogItem {
        id: id.clone(),
        title: b.title,
        description: b.description,
        category: b.category,
        price: b.price,
        in_stock: b.in_stock.unwrap_or(true),
    };
    upsert(&app, item).await?;
    Ok((
        StatusCode::OK,
        Json(ItemStored {
            item_id: id,
            stored: true,
        }),
    )
        .into_response())
}

pub(super) async fn upsert(app: &Arc<App>, item: CatalogItem) -> Result<(), ApiError> {
    write(
        app,
        {
            let app = app.clone();
            move |store| {
                store.upsert_items(std::slice::from_ref(&item))?;
                app.search.item_changed(&item, false);
                Ok(item)
            }
        },
        |live, item| {
            live.upsert_item(item);
        },
    )
    .await
}

pub(super) async fn delete_item(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    let existing = {
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        match live.index.get(&id) {
            Some(&i) if !live.deleted[i as usize] => live.catalog[i as usize].clone(),
            _ => return Err(ApiError::not_found(format!("unknown item {id:?}"))),
        }
    };
    // Stored as out of stock (the store keeps its events); never recommended.
    let item = CatalogItem {
        in_stock: false,
        ..existing.unwrap_or(CatalogItem {
            id: id.clone(),
            ..CatalogItem::default()
        })
    };
    let app2 = app.clone();
    write(
        &app,
        move |store| {
            store.upsert_items(std::slice::from_ref(&item))?;
            // (The store tells other replicas of the upsert, not of the deletion.)
            store.publish(&aisle_store::Change::ItemDeleted(item.id.clone()))?;
            app2.search.item_changed(&item, true);
            Ok(item)
        },
        |live, item| {
            let i = live.upsert_item(item);
            live.deleted[i as usize] = true;
        },
    )
    .await?;
    Ok(Json(ItemDeleted {
        item_id: id,
        deleted: true,
    })
    .into_response())
}
