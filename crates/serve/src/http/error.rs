//! The one place an error becomes a response: every failure carries a
//! [`Code`], the code decides the status, and the body is always
//! `{"error":{"code","message"}}`. A 500's own text goes to the log under a
//! reference; the client gets only the reference.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::ServeError;

macro_rules! codes {
    ($($variant:ident = $name:literal => $status:ident),+ $(,)?) => {
        /// Every error code the API answers with: a stable name (the JSON
        /// `code`) and its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant),+
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The stable name clients match on.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name),+
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status),+
                }
            }
        }
    };
}

codes! {
    BadArtifact = "bad_artifact" => UNPROCESSABLE_ENTITY,
    BadBody = "bad_body" => BAD_REQUEST,
    BadEvent = "bad_event" => BAD_REQUEST,
    BadEvents = "bad_events" => BAD_REQUEST,
    BadId = "bad_id" => BAD_REQUEST,
    BadItem = "bad_item" => BAD_REQUEST,
    BadK = "bad_k" => BAD_REQUEST,
    BadPath = "bad_path" => BAD_REQUEST,
    BadPrice = "bad_price" => BAD_REQUEST,
    BadQuery = "bad_query" => BAD_REQUEST,
    BadRequest = "bad_request" => BAD_REQUEST,
    BadSession = "bad_session" => BAD_REQUEST,
    BadShop = "bad_shop" => BAD_REQUEST,
    BadAlias = "bad_alias" => BAD_REQUEST,
    AliasConflict = "alias_conflict" => CONFLICT,
    UnknownAlias = "unknown_alias" => NOT_FOUND,
    UnknownShop = "unknown_shop" => NOT_FOUND,
    ShopUnavailable = "shop_unavailable" => SERVICE_UNAVAILABLE,
    BatchTooLarge = "batch_too_large" => PAYLOAD_TOO_LARGE,
    EmptyQuery = "empty_query" => BAD_REQUEST,
    BadExperiment = "bad_experiment" => BAD_REQUEST,
    ExperimentExists = "experiment_exists" => CONFLICT,
    ExperimentStopped = "experiment_stopped" => CONFLICT,
    SurfaceBusy = "surface_busy" => CONFLICT,
    UnknownArm = "unknown_arm" => BAD_REQUEST,
    UnknownExperiment = "unknown_experiment" => NOT_FOUND,
    OnlineLogUnavailable = "online_log_unavailable" => SERVICE_UNAVAILABLE,
    Forbidden = "forbidden" => FORBIDDEN,
    ForbiddenHost = "forbidden_host" => FORBIDDEN,
    ForbiddenOrigin = "forbidden_origin" => FORBIDDEN,
    Internal = "internal" => INTERNAL_SERVER_ERROR,
    JobRunning = "job_running" => CONFLICT,
    MalformedJson = "malformed_json" => BAD_REQUEST,
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    NoEvaluation = "no_evaluation" => NOT_FOUND,
    NoRegistry = "no_registry" => BAD_REQUEST,
    NotFound = "not_found" => NOT_FOUND,
    NothingPromoted = "nothing_promoted" => BAD_REQUEST,
    NothingToRollBack = "nothing_to_roll_back" => CONFLICT,
    PayloadTooLarge = "payload_too_large" => PAYLOAD_TOO_LARGE,
    QueryTooLong = "query_too_long" => BAD_REQUEST,
    RateLimited = "rate_limited" => TOO_MANY_REQUESTS,
    RequestTimeout = "request_timeout" => REQUEST_TIMEOUT,
    RetrainingNotConfigured = "retraining_not_configured" => CONFLICT,
    SearchUnavailable = "search_unavailable" => SERVICE_UNAVAILABLE,
    SemanticUnavailable = "semantic_unavailable" => CONFLICT,
    StoreUnavailable = "store_unavailable" => SERVICE_UNAVAILABLE,
    Unauthorized = "unauthorized" => UNAUTHORIZED,
    UnsupportedMediaType = "unsupported_media_type" => UNSUPPORTED_MEDIA_TYPE,
}

/// An API error: a code (which fixes the status) and a message.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, message)
    }

    /// A blocking task that panicked or was cancelled.
    pub fn task(e: tokio::task::JoinError) -> ApiError {
        ApiError::new(Code::Internal, format!("a worker task failed: {e}"))
    }

    /// What the client is told. A 500's message (an internal error's own
    /// text: paths, SQL, library messages) goes to the log under a
    /// reference, and the client gets only the reference.
    fn client_message(self) -> String {
        let status = self.code.status();
        if !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE {
            return self.message;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let reference = format!("{:016x}", aisle_core::hash::mix(nanos ^ n.rotate_left(40)));
        tracing::error!(%reference, code = self.code.as_str(), error = %self.message, "internal error");
        format!("internal error (reference {reference}); the details are in the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.code.status(), self.code.as_str());
        let message = self.client_message();
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

impl From<aisle_store::StoreError> for ApiError {
    fn from(e: aisle_store::StoreError) -> ApiError {
        ServeError::Store(e).into()
    }
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> ApiError {
        match e {
            ServeError::BadRequest(m) => ApiError::new(Code::BadRequest, m),
            ServeError::NotFound(m) => ApiError::not_found(m),
            ServeError::Unauthorized(m) => ApiError::new(Code::Unauthorized, m),
            ServeError::Train(e) => e.into(),
            ServeError::Store(e) => {
                tracing::error!(error = %e, "store error");
                ApiError::new(
                    Code::StoreUnavailable,
                    "the store could not complete the request (see the server log); nothing was acknowledged",
                )
            }
            // Logged (with the reference the client sees) by `client_message`.
            other => ApiError::new(Code::Internal, other.to_string()),
        }
    }
}

impl From<aisle_train::TrainError> for ApiError {
    fn from(e: aisle_train::TrainError) -> ApiError {
        use aisle_train::TrainError as T;
        match e {
            T::BadVersion(_) | T::NoEarlierPromotion => {
                ApiError::new(Code::BadRequest, e.to_string())
            }
            T::NotPromotable { .. } | T::Artifact { .. } => {
                ApiError::new(Code::BadArtifact, e.to_string())
            }
            T::Store(e) => ServeError::Store(e).into(),
            // Logged (with the reference the client sees) by `client_message`.
            other => ApiError::new(Code::Internal, other.to_string()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Code::PayloadTooLarge
        } else {
            Code::BadBody
        };
        ApiError::new(code, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::new(Code::BadQuery, e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::new(Code::BadPath, e.body_text())
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A user or item id from the path: at most 256 bytes, no control
/// characters (400 `bad_id` otherwise).
pub fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id?;
    match aisle_core::id_problem(&id) {
        None => Ok(id),
        Some(why) => Err(ApiError::new(
            Code::BadId,
            format!("the id in the path {why}"),
        )),
    }
}

/// A JSON body as `T` (a typed body that refuses unknown fields): invalid
/// JSON is `malformed_json`; JSON of the wrong shape is `code`, with serde's
/// message naming the field.
pub fn body_as<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, BytesRejection>,
    code: Code,
) -> Result<T, ApiError> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(code, e.to_string()),
        _ => ApiError::new(Code::MalformedJson, e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_errors_text_stays_in_the_log() {
        let e = ApiError::new(
            Code::Internal,
            "cannot open /srv/secret/aisle.db: permission denied",
        );
        let m = e.client_message();
        assert!(!m.contains("secret"), "{m}");
        assert!(m.starts_with("internal error (reference "), "{m}");
    }

    #[test]
    fn client_errors_and_unavailability_keep_their_message() {
        let m = ApiError::new(Code::BadId, "the id in the path is empty").client_message();
        assert_eq!(m, "the id in the path is empty");
        let m = ApiError::new(Code::StoreUnavailable, "busy").client_message();
        assert_eq!(m, "busy");
    }

    #[test]
    fn every_code_has_a_distinct_snake_case_name_and_an_error_status() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert!(Code::ALL
            .iter()
            .all(|c| c.status().is_client_error() || c.status().is_server_error()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }
}
