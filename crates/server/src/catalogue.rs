//! `/v1/catalogue`: the content and offers next best action ranks (read with a read key, replaced with an admin
//! key), and `/v1/customers/{identifier}/next-best-action`: the ranked items for one customer, with reasons.

use crate::error::{ApiError, ErrorCode};
use crate::query::{ApiPath, ApiQuery};
use crate::routes::{blocking, body_bytes, media_type, no_customer, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use std::sync::Arc;
use waymark_engine::nba::{
    CatalogueFile, CatalogueView, NbaRequest, NextBestAction, SavedCatalogue,
};

/// A catalogue from a request body: JSON (the default) or TOML (`application/toml`); a syntax or type error is
/// answered 422 with its line and column.
fn catalogue_body(headers: &HeaderMap, body: &[u8]) -> Result<CatalogueFile, ApiError> {
    let invalid =
        |errors| ApiError::invalid_definitions(ErrorCode::InvalidCatalogue, "catalogue", errors);
    match media_type(headers).as_str() {
        "application/json" | "" => CatalogueFile::from_json(body).map_err(invalid),
        "application/toml" | "text/toml" | "text/x-toml" => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::new(ErrorCode::UnreadableBody, "the TOML body is not UTF-8")
            })?;
            CatalogueFile::from_toml(text).map_err(invalid)
        }
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("a catalogue is sent as application/json or application/toml, not {other}"),
        )),
    }
}

pub(crate) async fn get(State(state): State<AppState>) -> Result<Json<CatalogueView>, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.catalogue_view()?))).await
}

/// `PUT /v1/catalogue`: the whole catalogue replaced, or nothing changed (422 with every problem).
pub(crate) async fn put(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SavedCatalogue>, ApiError> {
    let file = catalogue_body(&headers, &body_bytes(body)?)?;
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.save_catalogue(&file)?))).await
}

/// `POST /v1/catalogue/validate`: what `PUT` would say, without saving.
pub(crate) async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SavedCatalogue>, ApiError> {
    let file = catalogue_body(&headers, &body_bytes(body)?)?;
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.check_catalogue(&file)?))).await
}

/// `GET /v1/customers/{identifier}/next-best-action?placement=&limit=&explain=`.
pub(crate) async fn next_best_action(
    State(state): State<AppState>,
    ApiPath(identifier): ApiPath<String>,
    ApiQuery(request): ApiQuery<NbaRequest>,
) -> Result<Json<NextBestAction>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let lookup = identifier.clone();
    let found = blocking(move || Ok(engine.next_best_action(&lookup, &request)?)).await?;
    found.map(Json).ok_or_else(|| no_customer(&identifier))
}
