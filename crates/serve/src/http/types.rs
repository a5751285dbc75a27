//! The response bodies, as types: what each route answers is written down
//! once here (and is what the OpenAPI document will be generated from).

use serde::Serialize;

/// The model that answered: its name and version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

/// One recommended item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecItem {
    pub item_id: String,
    pub score: f32,
    /// What produced it: a model name, `popularity`, `content`, or
    /// `MODEL+ranker` when the purchase model re-ranked it.
    pub source: String,
    /// A sentence a shopper can read.
    pub reason: String,
    /// Set when the purchase model re-ranked the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_probability: Option<f64>,
}

/// The experiment arm that served a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExperimentArm {
    /// The experiment's name.
    pub name: String,
    /// The arm's name; `interleaved` when the list merges both arms.
    pub arm: String,
    /// The legacy `?experiment=` flag's half: `model` or `popularity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
}

/// `GET /v1/users/{id}/recommendations`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserRecs {
    /// Identifies this list: send it back with the clicks, carts and
    /// purchases it leads to (`POST /v1/events`, `request_id`).
    pub request_id: String,
    pub items: Vec<RecItem>,
    pub model: ModelRef,
    pub user_known: bool,
    pub history_items_unknown_to_model: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentArm>,
}

/// `POST /v1/sessions/recommendations`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionRecs {
    pub request_id: String,
    pub items: Vec<RecItem>,
    pub model: ModelRef,
    /// Session items the shop or the model does not know.
    pub unknown_items: usize,
}

/// `GET /v1/popular`, `GET /v1/items/{id}/similar`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemList {
    pub request_id: String,
    pub items: Vec<RecItem>,
    pub model: ModelRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentArm>,
}

/// `GET /v1/items/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub item_id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    pub in_stock: bool,
    /// Interactions counted for popularity.
    pub interactions: f32,
}

/// `PUT /v1/items/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemStored {
    pub item_id: String,
    pub stored: bool,
}

/// `DELETE /v1/items/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemDeleted {
    pub item_id: String,
    pub deleted: bool,
}

/// `DELETE /v1/users/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserErased {
    pub user_id: String,
    pub deleted_events: u64,
    pub erased: crate::Erased,
}

/// `POST /v1/users/{id}/aliases`, `DELETE /v1/users/{id}/aliases/{alias}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AliasLinked {
    pub user_id: String,
    pub alias: String,
    /// Whether the alias is linked to the user now.
    pub linked: bool,
    /// Whether this call changed anything (false: it was already so).
    pub changed: bool,
    /// Items in the user's history now (the user's and every alias's events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_items: Option<usize>,
}

/// `GET /v1/users/{id}/aliases`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAliases {
    pub user_id: String,
    pub aliases: Vec<String>,
}

/// `POST /v1/events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsAccepted {
    pub accepted: usize,
    pub inserted: usize,
    pub duplicates: usize,
    /// Clicks, carts and purchases joined to a list shown (by `request_id`,
    /// else the latest list that showed the item to the user within the
    /// attribution window).
    pub attributed: usize,
    /// Clicks, carts and purchases joined to no list (kept and counted).
    pub unattributed: usize,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// `ok`, or `degraded` when the promoted model was refused or, over a
    /// shared store, the change feed from the other replicas is down.
    pub status: &'static str,
    /// `api`, `worker` or `all` (`aisle serve --role`).
    pub role: crate::Role,
    pub model: ModelRef,
    /// `connected` or `down` when the server was given `--redis` (down:
    /// rate limits count per replica until it returns); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/admin/models/reload` and `/promote`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Serving {
    pub serving: ModelRef,
}

/// `POST /v1/admin/jobs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobQueued {
    pub queued: bool,
    pub job_id: u64,
    pub kind: &'static str,
}

/// One autocomplete suggestion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub text: String,
    /// `query` (a past search) or `title` (a catalog title).
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// `GET /v1/search/suggest`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suggestions {
    pub suggestions: Vec<Suggestion>,
}

/// One artifact in the registry (`GET /v1/admin/models`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelVersion {
    /// The file name, e.g. `sasrec-1764300000.safetensors`.
    pub version: String,
    pub model: String,
    pub bytes: u64,
    pub promoted: bool,
    /// Metadata written at training time (dataset, users, items, created_at...).
    #[schema(value_type = Object)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl From<aisle_train::Entry> for ModelVersion {
    fn from(e: aisle_train::Entry) -> ModelVersion {
        ModelVersion {
            version: e.version,
            model: e.model,
            bytes: e.bytes,
            promoted: e.promoted,
            meta: e.meta,
        }
    }
}

/// `GET /v1/admin/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Models {
    pub serving: ModelRef,
    /// Every artifact, oldest first.
    pub versions: Vec<ModelVersion>,
}

/// Every error: `{"error": {"code", "message"}}`, `code` from the `Code` enum.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`bad_k`, `unauthorized`, ...).
    pub code: String,
    pub message: String,
}
