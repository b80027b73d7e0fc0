//! `/v1/blueprints`: the saved designed journeys (read by anyone with a read key, changed with an admin key), and
//! `/v1/customers/{identifier}/conformance`: one customer's journey against one of them.

use crate::error::{ApiError, ErrorCode};
use crate::query::{ApiPath, ApiQuery};
use crate::routes::{blocking, body_bytes, no_customer, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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
    let media = crate::routes::media_type(&headers);
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

/// The event name `POST /v1/feedback` records (unless the body names another with `event`).
pub const FEEDBACK_EVENT: &str = "Feedback Submitted";

/// `POST /v1/feedback`: a Segment track call for an answer to "was this helpful?", a rating or a comment, on the
/// step it rates. `properties.rated_message_id` names the rated event (its step is written to
/// `properties.rated_step`); without it the answer rates `properties.rated_step`, else the customer's previous
/// step. Collected with a write key, as every tracking call.
pub(crate) async fn feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = body_bytes(body)?;
    // Who is calling comes before what is wrong with the body (as on every collector endpoint).
    if crate::auth::presented_key(&headers)?.is_none() {
        let body_key = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("writeKey")
                    .and_then(|k| k.as_str())
                    .map(str::to_string)
            });
        crate::auth::check_body_write_key(state.keys(), body_key.as_deref()).await?;
    }
    let invalid = |field: &str, message: String| {
        ApiError::new(ErrorCode::InvalidFeedback, format!("{field}: {message}"))
    };
    let mut call: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not JSON: {error}"),
        )
    })?;
    let Some(object) = call.as_object_mut() else {
        return Err(ApiError::new(
            ErrorCode::WrongType,
            "the body must be a JSON object: a Segment track call with the answer in properties",
        ));
    };
    object
        .entry("event")
        .or_insert_with(|| FEEDBACK_EVENT.into());
    object.insert("type".into(), "track".into());
    let properties = object
        .entry("properties")
        .or_insert_with(|| serde_json::json!({}));
    let Some(properties) = properties.as_object_mut() else {
        return Err(invalid(
            "properties",
            "must be an object holding helpful, rating or comment".into(),
        ));
    };
    match properties.get("helpful") {
        None | Some(serde_json::Value::Bool(_)) => {}
        Some(other) => {
            return Err(invalid(
                "properties.helpful",
                format!("must be true or false, not {other}"),
            ))
        }
    }
    match properties.get("rating") {
        None => {}
        Some(value) if value.as_f64().is_some_and(|r| (0.0..=10.0).contains(&r)) => {}
        Some(other) => {
            return Err(invalid(
                "properties.rating",
                format!("must be a number from 0 to 10 (e.g. 1–5 stars), not {other}"),
            ))
        }
    }
    match properties.get("comment") {
        None => {}
        Some(serde_json::Value::String(text)) if text.chars().count() <= 4_000 => {}
        Some(serde_json::Value::String(_)) => {
            return Err(invalid(
                "properties.comment",
                "is longer than 4000 characters".into(),
            ))
        }
        Some(other) => {
            return Err(invalid(
                "properties.comment",
                format!("must be text, not {other}"),
            ))
        }
    }
    if !["helpful", "rating", "comment"]
        .iter()
        .any(|f| properties.contains_key(*f))
    {
        return Err(invalid(
            "properties",
            "give the answer: helpful (true/false), rating (a number) or comment (text)".into(),
        ));
    }
    if let Some(rated) = properties.get("rated_message_id").cloned() {
        let Some(rated) = rated.as_str().map(str::to_string) else {
            return Err(invalid(
                "properties.rated_message_id",
                format!("must be the rated event's messageId, not {rated}"),
            ));
        };
        let identifier = ["userId", "anonymousId"].iter().find_map(|field| {
            object
                .get(*field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
        if let Some(identifier) = identifier {
            let engine = Arc::clone(&state.engine);
            let step = blocking(move || {
                Ok(engine.customer(&identifier)?.and_then(|customer| {
                    customer
                        .events
                        .into_iter()
                        .find(|event| event.message_id == rated)
                        .map(|event| event.step)
                }))
            })
            .await?;
            let Some(step) = step else {
                return Err(invalid(
                    "properties.rated_message_id",
                    "is not the messageId of an event this customer sent; send the rated event first, or name the step with rated_step".into(),
                ));
            };
            let properties = object
                .get_mut("properties")
                .and_then(|p| p.as_object_mut())
                .expect("checked above");
            properties
                .entry("rated_step")
                .or_insert(serde_json::Value::String(step));
        }
    }
    let body = serde_json::to_vec(&call).expect("JSON values serialise");
    crate::routes::ingest(
        state,
        headers,
        Ok(Bytes::from(body)),
        "feedback",
        |bytes, now| {
            waymark_engine::ingest::parse_single(bytes, waymark_model::EventType::Track, now)
        },
    )
    .await
}
