//! `/v1/blueprints`: the saved designed journeys (read by anyone with a read key, changed with an admin key), and
//! `/v1/customers/{identifier}/conformance`: one customer's journey against one of them.

use crate::error::{ApiError, ErrorCode};
use crate::query::{ApiPath, ApiQuery};
use crate::routes::{blocking, body_bytes, no_customer, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waymark_engine::blueprints::{
    blueprint_toml, parse_blueprint, Blueprint, BlueprintSummary, CustomerConformance,
    SavedBlueprint,
};

/// `GET /v1/blueprints`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BlueprintsResponse {
    pub blueprints: Vec<BlueprintSummary>,
}

/// `GET /v1/blueprints/{name}`: the blueprint, and its file as TOML.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BlueprintResponse {
    pub blueprint: Blueprint,
    pub toml: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConformanceQuery {
    blueprint: String,
}

/// A blueprint the caller sent that cannot be saved: 422 naming the field (or the line).
fn invalid(error: waymark_engine::Error) -> ApiError {
    match error {
        waymark_engine::Error::Analysis(_) | waymark_engine::Error::Malformed(_) => {
            ApiError::new(ErrorCode::InvalidBlueprint, error.to_string())
        }
        other => other.into(),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<BlueprintsResponse>, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        Ok(Json(BlueprintsResponse {
            blueprints: engine.blueprints()?,
        }))
    })
    .await
}

pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<BlueprintResponse>, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        let blueprint = engine.blueprint(&name)?;
        Ok(Json(BlueprintResponse {
            toml: blueprint_toml(&blueprint),
            blueprint,
        }))
    })
    .await
}

/// `PUT /v1/blueprints/{name}`: JSON, or TOML as `application/toml`; the path names it.
pub(crate) async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SavedBlueprint>), ApiError> {
    let body = body_bytes(body)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::UnreadableBody, "the body is not UTF-8"))?;
    let mut blueprint = match media.as_str() {
        "application/json" | "" => serde_json::from_str::<Blueprint>(text).map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidBlueprint,
                format!(
                    "the blueprint: line {}, column {}: {error}",
                    error.line(),
                    error.column()
                ),
            )
        })?,
        "application/toml" | "text/toml" | "text/x-toml" => {
            parse_blueprint(text, "the blueprint").map_err(invalid)?
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("a blueprint is sent as application/json or application/toml, not {other}"),
            ))
        }
    };
    if !blueprint.name.is_empty() && blueprint.name != name {
        return Err(ApiError::new(
            ErrorCode::InvalidBlueprint,
            format!(
                "name: the body names the blueprint {:?} but the path {name:?}; leave name out or make them equal",
                blueprint.name
            ),
        ));
    }
    blueprint.name = name;
    let engine = Arc::clone(&state.engine);
    let saved = blocking(move || engine.save_blueprint(&blueprint).map_err(invalid)).await?;
    let status = if saved.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(saved)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(engine.delete_blueprint(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn customer_conformance(
    State(state): State<AppState>,
    ApiPath(identifier): ApiPath<String>,
    ApiQuery(query): ApiQuery<ConformanceQuery>,
) -> Result<Json<CustomerConformance>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let lookup = identifier.clone();
    let found =
        blocking(move || Ok(engine.customer_conformance(&lookup, &query.blueprint)?)).await?;
    found.map(Json).ok_or_else(|| no_customer(&identifier))
}
