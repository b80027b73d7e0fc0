//! Routes: the Segment collector (`/v1/track|identify|page|screen|group|alias|batch`), customers, identity,
//! failed events, stats, health, metrics and the status page.

use crate::error::ApiError;
use crate::metrics_names::*;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use waymark_engine::ingest::{parse_batch, parse_single, ParsedRequest};
use waymark_engine::query::{
    self as queries, FlowsRequest, FrictionRequest, FunnelRequest, OverviewRequest,
    ProcessMapRequest, QueryError, RetentionRequest, VariantsRequest,
};
use waymark_model::{EventType, Timestamp, ValidationError, MAX_BATCH_BYTES};
use waymark_store::{LinkOutcome, Store};

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    store: Arc<Store>,
    write_keys: Arc<HashSet<String>>,
    prometheus: PrometheusHandle,
}

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (several servers in one test process): keep ours local then.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

impl AppState {
    /// State over an open store. `write_keys` empty means the collector accepts any key (not recommended).
    pub fn new(store: Arc<Store>, write_keys: Vec<String>) -> AppState {
        AppState {
            store,
            write_keys: Arc::new(write_keys.into_iter().collect()),
            prometheus: prometheus(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ui_index))
        .route("/ui/app.js", get(ui_script))
        .route("/ui/app.css", get(ui_style))
        .route("/status", get(status_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/track", post(track))
        .route("/v1/identify", post(identify))
        .route("/v1/page", post(page))
        .route("/v1/screen", post(screen))
        .route("/v1/group", post(group))
        .route("/v1/alias", post(alias))
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .route("/v1/customers/{identifier}", get(customer))
        .route("/v1/identity/edges", get(identity_edges))
        .route("/v1/identity/merge", post(identity_merge))
        .route("/v1/identity/unmerge", post(identity_unmerge))
        .route("/v1/failed", get(failed_events))
        .route("/v1/stats", get(stats))
        .route("/v1/analyses/process-map", post(process_map))
        .route("/v1/analyses/variants", post(variants))
        .route("/v1/analyses/funnel", post(funnel))
        .route("/v1/analyses/flows", post(flows))
        .route("/v1/analyses/friction", post(friction))
        .route("/v1/analyses/retention", post(retention))
        .route("/v1/analyses/overview", post(overview))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES * 4))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such endpoint; see /v1/track, /v1/batch, /v1/customers/{id}, /healthz, /metrics",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that HTTP method (collector endpoints take POST)",
    )
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let stats = state.store.stats();
    Json(json!({ "status": "ok", "events": stats.events, "customers": stats.customers }))
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let stats = state.store.stats();
    metrics::gauge!(STORE_EVENTS).set(stats.events as f64);
    metrics::gauge!(STORE_CUSTOMERS).set(stats.customers as f64);
    metrics::gauge!(STORE_SEGMENTS).set(stats.segments as f64);
    metrics::gauge!(STORE_SEGMENT_BYTES).set(stats.segment_bytes as f64);
    metrics::gauge!(STORE_WAL_BYTES).set(stats.wal_bytes as f64);
    metrics::gauge!(STORE_FAILED_EVENTS).set(stats.failed_events as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

/// The write key from HTTP basic auth (the user name; the password is ignored, as Segment does).
fn header_write_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_authorization",
            "the Authorization header must be `Basic base64(WRITE_KEY:)`",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let encoded = text
        .strip_prefix("Basic ")
        .or_else(|| text.strip_prefix("basic "))
        .ok_or_else(invalid)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    Ok(Some(
        decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user)
            .to_string(),
    ))
}

fn check_write_key(state: &AppState, key: Option<&str>) -> Result<(), ApiError> {
    if state.write_keys.is_empty() {
        return Ok(());
    }
    match key {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_write_key",
            "send your write key as the HTTP basic-auth user name (empty password) or as `writeKey` in the body",
        )),
        Some(key) if state.write_keys.contains(key) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_write_key",
            "the write key is not one this server accepts; check the key in your SDK settings (`waymark serve --write-key`)",
        )),
    }
}

fn reject_request(error: ApiError) -> ApiError {
    metrics::counter!(REQUESTS_REJECTED, "code" => error.code).increment(1);
    error
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "batch_too_large" } else { "unreadable_body" };
        ApiError::new(status, code, format!("could not read the request body: {rejection}; batches are limited to {MAX_BATCH_BYTES} bytes"))
    })
}

async fn ingest(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: &'static str,
    parse: impl FnOnce(&[u8], Timestamp) -> Result<ParsedRequest, ValidationError>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let header_key = header_write_key(&headers).map_err(reject_request)?;
    if header_key.is_some() {
        check_write_key(&state, header_key.as_deref()).map_err(reject_request)?;
    }
    let body = body_bytes(body).map_err(reject_request)?;
    let parsed = match parse(&body, Timestamp::now()) {
        Ok(parsed) => parsed,
        Err(error) if header_key.is_none() && !state.write_keys.is_empty() => {
            // Without a header key we cannot authenticate an unreadable body: say what is missing first.
            let key_error = check_write_key(&state, None).err();
            return Err(reject_request(key_error.unwrap_or_else(|| error.into())));
        }
        Err(error) => return Err(reject_request(error.into())),
    };
    if header_key.is_none() {
        check_write_key(&state, parsed.write_key.as_deref()).map_err(reject_request)?;
    }
    for failed in &parsed.failed {
        metrics::counter!(EVENTS_REJECTED, "reason" => failed.code.clone()).increment(1);
    }
    let errors: Vec<Value> = parsed
        .failed
        .iter()
        .take(20)
        .map(|failed| json!({ "code": failed.code, "message": failed.message }))
        .collect();
    let store = Arc::clone(&state.store);
    let outcome = tokio::task::spawn_blocking(move || store.append(parsed.events, parsed.failed))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            )
        })??;
    metrics::counter!(EVENTS_INGESTED).increment(outcome.accepted as u64);
    metrics::counter!(EVENTS_DUPLICATE).increment(outcome.duplicates as u64);
    metrics::histogram!(INGEST_LATENCY, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    Ok(Json(json!({
        "success": true,
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "failed": outcome.failed,
        "errors": errors,
    })))
}

macro_rules! single_endpoint {
    ($name:ident, $kind:expr, $endpoint:literal) => {
        async fn $name(
            State(state): State<AppState>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Json<Value>, ApiError> {
            ingest(state, headers, body, $endpoint, |bytes, now| {
                parse_single(bytes, $kind, now)
            })
            .await
        }
    };
}

single_endpoint!(track, EventType::Track, "track");
single_endpoint!(identify, EventType::Identify, "identify");
single_endpoint!(page, EventType::Page, "page");
single_endpoint!(screen, EventType::Screen, "screen");
single_endpoint!(group, EventType::Group, "group");
single_endpoint!(alias, EventType::Alias, "alias");

async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    ingest(state, headers, body, "batch", parse_batch).await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    })?
}

async fn customer(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = Arc::clone(&state.store);
    let lookup = identifier.clone();
    let view = blocking(move || Ok(store.customer(&lookup)?)).await?;
    let view = view.ok_or_else(|| {
        ApiError::not_found(format!(
            "no customer has the identifier {identifier:?}; use a userId or anonymousId (optionally prefixed user: or anon:)"
        ))
    })?;
    let events: Vec<Value> = view
        .events
        .iter()
        .map(|entry| {
            json!({
                "time": entry.time,
                "channel": entry.channel,
                "device": entry.device,
                "step": entry.step,
                "identifier": entry.identifier,
                "type": entry.event.event_type,
                "messageId": entry.event.message_id,
                "properties": entry.event.properties,
                "traits": entry.event.traits,
            })
        })
        .collect();
    Ok(Json(json!({
        "customer_id": view.customer_id,
        "identifiers": view.identifiers,
        "merges": view.merges,
        "warnings": view.warnings,
        "n_events": events.len(),
        "events": events,
    })))
}

async fn identity_edges(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "edges": state.store.merge_edges() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeRequest {
    a: String,
    b: String,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body must look like {example}: {error}"),
        )
    })
}

async fn identity_merge(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: MergeRequest = json_body(
        &body_bytes(body)?,
        r#"{"a": "user:ann", "b": "anon:device-1"}"#,
    )?;
    let store = Arc::clone(&state.store);
    let outcome = blocking(move || Ok(store.merge(&request.a, &request.b)?)).await?;
    Ok(Json(match outcome {
        LinkOutcome::Merged(edge) => json!({ "merged": true, "edge": edge }),
        LinkOutcome::AlreadyLinked => json!({ "merged": false, "reason": "already one customer" }),
        LinkOutcome::Refused { warning, .. } => {
            json!({ "merged": false, "reason": warning.message })
        }
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmergeRequest {
    edge: u32,
}

async fn identity_unmerge(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: UnmergeRequest = json_body(&body_bytes(body)?, r#"{"edge": 12}"#)?;
    let store = Arc::clone(&state.store);
    let done = blocking(move || Ok(store.unmerge(request.edge)?)).await?;
    if !done {
        return Err(ApiError::not_found(format!(
            "there is no active merge edge {}; list them with GET /v1/identity/edges",
            request.edge
        )));
    }
    Ok(Json(json!({ "unmerged": true, "edge": request.edge })))
}

#[derive(Deserialize)]
struct FailedQuery {
    limit: Option<usize>,
}

async fn failed_events(
    State(state): State<AppState>,
    Query(query): Query<FailedQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = Arc::clone(&state.store);
    let limit = query.limit.unwrap_or(100).min(10_000);
    let failed = blocking(move || Ok(store.failed_events(limit)?)).await?;
    Ok(Json(json!({ "failed": failed })))
}

/// An analysis request body: empty means defaults.
fn analysis_options<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    example: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(body, example)
}

/// Runs a query on a blocking thread; an invalid request is a 400 that says what to change.
async fn run_query<R: serde::Serialize + Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&waymark_store::Store) -> Result<R, QueryError> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    let store = Arc::clone(&state.store);
    let report = blocking(move || Ok(query(&store)?)).await?;
    Ok(Json(
        serde_json::to_value(report).expect("reports serialise"),
    ))
}

async fn process_map(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: ProcessMapRequest =
        analysis_options(&body_bytes(body)?, r#"{"filter": {"channels": ["web"]}}"#)?;
    run_query(&state, move |store| queries::process_map(store, &request)).await
}

async fn variants(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: VariantsRequest = analysis_options(&body_bytes(body)?, r#"{"top": 20}"#)?;
    run_query(&state, move |store| queries::variants(store, &request)).await
}

async fn funnel(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: FunnelRequest = json_body(
        &body_bytes(body)?,
        r#"{"steps": ["Added to Cart", "Checkout Started", "Order Completed"], "window": "7d"}"#,
    )?;
    run_query(&state, move |store| queries::funnel(store, &request)).await
}

async fn flows(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: FlowsRequest = json_body(
        &body_bytes(body)?,
        r#"{"anchor": "Login Attempted", "direction": "forward", "depth": 4, "top": 6}"#,
    )?;
    run_query(&state, move |store| queries::flows(store, &request)).await
}

async fn friction(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: FrictionRequest = analysis_options(
        &body_bytes(body)?,
        r#"{"goals": ["Order Completed"], "standard_times": {"Installation Scheduled": "72h"}, "top": 10}"#,
    )?;
    run_query(&state, move |store| queries::friction(store, &request)).await
}

async fn overview(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: OverviewRequest =
        analysis_options(&body_bytes(body)?, r#"{"goals": ["Order Completed"]}"#)?;
    run_query(&state, move |store| queries::overview(store, &request)).await
}

async fn retention(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: RetentionRequest = json_body(
        &body_bytes(body)?,
        r#"{"start": "Order Completed", "return": "page:Home", "period": "week", "periods": 8}"#,
    )?;
    run_query(&state, move |store| queries::retention(store, &request)).await
}

/// The OpenAPI 3.1 description of this API.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn stats(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(state.store.stats()).expect("stats serialise"))
}

/// `1667009` → `1,667,009`.
fn with_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The web UI: one page, one script, one style sheet, all built into the binary (no CDN, works offline).
async fn ui_index() -> Html<&'static str> {
    Html(include_str!("../ui/index.html"))
}

async fn ui_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../ui/app.js"),
    )
        .into_response()
}

async fn ui_style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../ui/app.css"),
    )
        .into_response()
}

async fn status_page(State(state): State<AppState>) -> Html<String> {
    let stats = state.store.stats();
    let mut page = include_str!("status.html").to_string();
    for (placeholder, value) in [
        ("{{events}}", stats.events),
        ("{{customers}}", stats.customers),
        ("{{identifiers}}", stats.identifiers),
        ("{{channels}}", stats.channels),
        ("{{steps}}", stats.steps),
        ("{{failed}}", stats.failed_events),
    ] {
        page = page.replace(placeholder, &with_thousands(value));
    }
    Html(page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(super::with_thousands(1_667_009), "1,667,009");
        assert_eq!(super::with_thousands(999), "999");
        assert_eq!(super::with_thousands(1_000), "1,000");
        assert_eq!(super::with_thousands(0), "0");
    }
}
