//! Routes: the Segment collector (`/v1/track|identify|page|screen|group|alias|batch`), customers, identity,
//! failed events, stats, health, metrics and the status page.

use crate::error::{ApiError, ErrorCode};
use crate::metrics_names::*;
use crate::openapi::{
    AnalysesResponse, DryRunRequest, EdgesResponse, FailedResponse, Health, MergeRequest,
    ModelsResponse, ReplayResponse, RulesResponse, ScoresResponse, SegmentMembersResponse,
    TriggerLogResponse, UnmergeRequest, UnmergeResponse,
};
use crate::query::{ApiPath, ApiQuery};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use waymark_engine::ingest::{parse_batch, parse_single, ParsedRequest};
use waymark_engine::keys::{CreatedKey, KeyInfo, Keys, KeysError, Role};
use waymark_engine::rules::{RulesFile, Since};
use waymark_engine::Engine;
use waymark_model::{EventType, Timestamp, ValidationError, MAX_BATCH_BYTES};

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub(crate) engine: Arc<Engine>,
    keys: Arc<Keys>,
    prometheus: PrometheusHandle,
    limiter: Arc<crate::limits::KeyLimiter>,
    /// How long a request body may take to arrive.
    body_timeout: std::time::Duration,
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
                // The rules worker spends microseconds per event: the default buckets would put all of it in the first.
                .set_buckets_for_metric(
                    Matcher::Full(waymark_engine::rules::RULES_EVENT_SECONDS.to_string()),
                    &[
                        2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 0.001, 0.0025, 0.01,
                        0.1,
                    ],
                )
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
    /// State over an open engine, with the keys of its data directory plus `write_keys` configured in plain
    /// text. With no write key at all the collector accepts any; with no read or admin key reading is open
    /// (`serve` then listens on loopback only).
    pub fn new(engine: Arc<Engine>, write_keys: Vec<String>) -> Result<AppState, KeysError> {
        let keys = Keys::open(engine.dir(), write_keys)?;
        Ok(AppState {
            engine,
            keys: Arc::new(keys),
            prometheus: prometheus(),
            limiter: Arc::new(crate::limits::KeyLimiter::new(
                crate::limits::RateLimits::default(),
            )),
            body_timeout: crate::transport::HttpLimits::default().body_timeout,
        })
    }

    /// The same state with these per-key rate limits.
    pub fn with_rate_limits(mut self, limits: crate::limits::RateLimits) -> AppState {
        self.limiter = Arc::new(crate::limits::KeyLimiter::new(limits));
        self
    }

    /// The same state with this deadline for request bodies.
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> AppState {
        self.body_timeout = timeout;
        self
    }

    pub(crate) fn limiter(&self) -> &crate::limits::KeyLimiter {
        &self.limiter
    }

    pub(crate) fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let body_deadline = (state.body_timeout, MAX_BATCH_BYTES * 4);
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
        .route("/v1/feedback", post(crate::blueprints::feedback))
        .route("/v1/import", post(batch))
        .route(
            "/v1/customers/{identifier}",
            get(customer).delete(customer_delete),
        )
        .route("/v1/customers/{identifier}/export", get(customer_export))
        .route(
            "/v1/customers/{identifier}/conformance",
            get(crate::blueprints::customer_conformance),
        )
        .route(
            "/v1/customers/{identifier}/next-best-action",
            get(crate::catalogue::next_best_action),
        )
        .route(
            "/v1/catalogue",
            get(crate::catalogue::get).put(crate::catalogue::put),
        )
        .route("/v1/catalogue/validate", post(crate::catalogue::validate))
        .route("/v1/blueprints", get(crate::blueprints::list))
        .route(
            "/v1/blueprints/{name}",
            get(crate::blueprints::get)
                .put(crate::blueprints::put)
                .delete(crate::blueprints::delete),
        )
        .route("/v1/models", get(models))
        .route("/v1/models/{name}/scores", get(model_scores))
        .route("/v1/identity/edges", get(identity_edges))
        .route("/v1/identity/merge", post(identity_merge))
        .route("/v1/identity/unmerge", post(identity_unmerge))
        .route("/v1/rules", get(rules_get).put(rules_put))
        .route("/v1/rules/validate", post(rules_validate))
        .route("/v1/rules/dry-run", post(rules_dry_run))
        .route("/v1/rules/status", get(rules_status))
        .route("/v1/rules/log", get(rules_log))
        .route("/v1/rules/lift", post(rules_lift))
        .route("/v1/monitors", get(monitors_board))
        .route("/v1/rules/dead-letters/{key}/replay", post(rules_replay))
        .route("/v1/segments", get(segments_list))
        .route("/v1/segments/{name}", put(segment_put))
        .route("/v1/segments/{name}/members", get(segment_members))
        .route("/v1/failed", get(failed_events))
        .route("/v1/stats", get(stats))
        .route("/v1/analyses", get(list_analyses))
        .route("/v1/analyses/{name}", post(analysis))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/session", get(session))
        .route("/v1/keys", get(keys_list).post(keys_create))
        .route("/v1/keys/{id}", delete(keys_revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authorize,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES * 4))
        // Inside the decompression: the deadline and the size limit are on what the handler would read.
        .layer(axum::middleware::from_fn_with_state(
            body_deadline,
            crate::limits::body_deadline,
        ))
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
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that HTTP method (collector endpoints take POST)",
    )
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let stats = state.engine.stats();
    let problem = state.engine.disk_fault().map(|(_, message)| message);
    Json(Health {
        status: if problem.is_some() { "degraded" } else { "ok" }.into(),
        events: stats.events,
        customers: stats.customers,
        problem,
    })
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let stats = state.engine.stats();
    metrics::gauge!(STORE_EVENTS).set(stats.events as f64);
    metrics::gauge!(STORE_CUSTOMERS).set(stats.customers as f64);
    metrics::gauge!(STORE_SEGMENTS).set(stats.segments as f64);
    metrics::gauge!(STORE_SEGMENT_BYTES).set(stats.segment_bytes as f64);
    metrics::gauge!(STORE_WAL_BYTES).set(stats.wal_bytes as f64);
    metrics::gauge!(STORE_FAILED_EVENTS).set(stats.failed_events as f64);
    let (rebuilt, extended) = state.engine.view_builds();
    metrics::counter!(JOURNEY_VIEWS, "how" => "rebuilt").absolute(rebuilt);
    metrics::counter!(JOURNEY_VIEWS, "how" => "extended").absolute(extended);
    metrics::gauge!(STORE_DISK_FAULT).set(if state.engine.disk_fault().is_some() {
        1.0
    } else {
        0.0
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

pub(crate) fn reject_request(error: ApiError) -> ApiError {
    metrics::counter!(REQUESTS_REJECTED, "code" => error.code.code()).increment(1);
    error
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE { ErrorCode::BatchTooLarge } else { ErrorCode::UnreadableBody };
        ApiError::new(code, format!("could not read the request body: {rejection}; batches are limited to {MAX_BATCH_BYTES} bytes"))
    })
}

pub(crate) async fn ingest(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: &'static str,
    parse: impl FnOnce(&[u8], Timestamp) -> Result<ParsedRequest, ValidationError>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    // A key in the header was checked by the authorization layer; one in the body is checked here.
    let header_key = crate::auth::presented_key(&headers).map_err(reject_request)?;
    let body = body_bytes(body).map_err(reject_request)?;
    let parsed = match parse(&body, Timestamp::now()) {
        Ok(parsed) => parsed,
        Err(error) if header_key.is_none() && state.keys.collect_protected() => {
            // Without a header key we cannot authenticate an unreadable body: say what is missing first.
            let key_error = crate::auth::check_body_write_key(&state.keys, None)
                .await
                .err();
            return Err(reject_request(key_error.unwrap_or_else(|| error.into())));
        }
        Err(error) => return Err(reject_request(error.into())),
    };
    if header_key.is_none() {
        let caller = crate::auth::check_body_write_key(&state.keys, parsed.write_key.as_deref())
            .await
            .map_err(reject_request)?;
        if let Some(caller) = caller {
            state
                .limiter
                .check(&caller)
                .map_err(crate::auth::rate_limited)?;
        }
    }
    for failed in &parsed.failed {
        metrics::counter!(EVENTS_REJECTED, "reason" => failed.code.clone()).increment(1);
    }
    let engine = Arc::clone(&state.engine);
    let outcome = blocking(move || Ok(engine.ingest(parsed)?)).await?;
    metrics::counter!(EVENTS_INGESTED).increment(outcome.accepted as u64);
    metrics::counter!(EVENTS_DUPLICATE).increment(outcome.duplicates as u64);
    metrics::histogram!(INGEST_LATENCY, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    Ok(Json(
        serde_json::to_value(outcome).expect("outcomes serialise"),
    ))
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

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?
}

async fn customer(
    State(state): State<AppState>,
    ApiPath(identifier): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let lookup = identifier.clone();
    let doc = blocking(move || Ok(engine.customer(&lookup)?)).await?;
    let doc = doc.ok_or_else(|| {
        ApiError::not_found(format!(
            "no customer has the identifier {identifier:?}; use a userId or anonymousId (optionally prefixed user: or anon:)"
        ))
    })?;
    Ok(Json(
        serde_json::to_value(doc).expect("customers serialise"),
    ))
}

pub(crate) fn no_customer(identifier: &str) -> ApiError {
    ApiError::not_found(format!(
        "no customer has the identifier {identifier:?}; use a userId or anonymousId (optionally prefixed user: or anon:)"
    ))
}

/// `GET /v1/customers/{id}/export`: everything held about the customer (the right of access and portability).
async fn customer_export(
    State(state): State<AppState>,
    ApiPath(identifier): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let lookup = identifier.clone();
    let export = blocking(move || Ok(engine.export_customer(&lookup)?)).await?;
    let export = export.ok_or_else(|| no_customer(&identifier))?;
    Ok(Json(
        serde_json::to_value(export).expect("exports serialise"),
    ))
}

/// `DELETE /v1/customers/{id}`: the customer deleted everywhere (the right to erasure).
async fn customer_delete(
    State(state): State<AppState>,
    ApiPath(identifier): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let lookup = identifier.clone();
    let deletion = blocking(move || Ok(engine.delete_customer(&lookup)?)).await?;
    let deletion = deletion.ok_or_else(|| no_customer(&identifier))?;
    Ok(Json(
        serde_json::to_value(deletion).expect("deletions serialise"),
    ))
}

async fn models(State(state): State<AppState>) -> Result<Json<ModelsResponse>, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        Ok(Json(ModelsResponse {
            models: waymark_engine::live::infos(&engine.current_models()?),
            live: engine.live_status()?,
        }))
    })
    .await
}

/// A numeric query parameter: `default` when absent, else within `range` or a 400 naming it.
fn bounded(
    name: &str,
    value: Option<usize>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ApiError> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!(
                "{name} must be between {} and {}, not {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

#[derive(Deserialize)]
struct ScoresQuery {
    top: Option<usize>,
}

async fn model_scores(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScoresQuery>,
) -> Result<Json<ScoresResponse>, ApiError> {
    let top = bounded("top", query.top, 20, 1..=1000)?;
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        let model = engine.load_model(&name)?.info;
        Ok(Json(ScoresResponse {
            scores: engine.top_scores(&name, top)?,
            model,
        }))
    })
    .await
}

async fn identity_edges(State(state): State<AppState>) -> Json<EdgesResponse> {
    Json(EdgesResponse {
        edges: state.engine.merge_edges(),
    })
}

/// The one JSON body extractor: every handler that takes JSON rejects a body the same way (`invalid_json`, with
/// what the body must look like). An empty body is JSON `null`, which requests with defaults read as `{}`.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<JsonBody, ApiError> {
        let body = body_bytes(Bytes::from_request(request, state).await)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|error| {
                ApiError::new(
                    ErrorCode::InvalidJson,
                    format!("the body is not JSON: {error}"),
                )
            })
    }
}

/// A typed request read from a [`JsonBody`]; `example` shows the shape in the error.
fn typed<T: serde::de::DeserializeOwned>(body: Value, example: &str) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body must look like {example}: {error}"),
        )
    })
}

async fn identity_merge(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let request: MergeRequest = typed(body, r#"{"a": "user:ann", "b": "anon:device-1"}"#)?;
    let engine = Arc::clone(&state.engine);
    let outcome = blocking(move || Ok(engine.merge(&request.a, &request.b)?)).await?;
    Ok(Json(
        serde_json::to_value(outcome).expect("outcomes serialise"),
    ))
}

async fn identity_unmerge(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<UnmergeResponse>, ApiError> {
    let request: UnmergeRequest = typed(body, r#"{"edge": 12}"#)?;
    let engine = Arc::clone(&state.engine);
    let edge = request.edge;
    blocking(move || Ok(engine.unmerge(edge)?)).await?;
    Ok(Json(UnmergeResponse {
        unmerged: true,
        edge,
    }))
}

#[derive(Deserialize)]
struct FailedQuery {
    limit: Option<usize>,
}

async fn failed_events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<FailedQuery>,
) -> Result<Json<FailedResponse>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let limit = query.limit.unwrap_or(100).min(10_000);
    let failed = blocking(move || Ok(engine.failed_events(limit)?)).await?;
    Ok(Json(FailedResponse { failed }))
}

/// A definition set from a request body: JSON (`application/json`, the default) or TOML (`application/toml`),
/// a syntax or type error answered 422 with its line and column.
/// The body's media type without parameters, lower-cased (`application/json` when none is given).
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn rules_body(headers: &HeaderMap, body: &[u8]) -> Result<RulesFile, ApiError> {
    let media = media_type(headers);
    match media.as_str() {
        "application/json" | "" => RulesFile::from_json(body).map_err(ApiError::invalid_rules),
        "application/toml" | "text/toml" | "text/x-toml" => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::new(ErrorCode::UnreadableBody, "the TOML body is not UTF-8")
            })?;
            RulesFile::from_toml(text).map_err(ApiError::invalid_rules)
        }
        other => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("definitions are sent as application/json or application/toml, not {other}"),
        )),
    }
}

async fn rules_get(State(state): State<AppState>) -> Result<Json<RulesResponse>, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        let definitions = engine.rules_file()?;
        Ok(Json(RulesResponse {
            toml: definitions.to_toml(),
            definitions,
            versions: engine.rules_versions(),
            status: engine.rules_status(),
        }))
    })
    .await
}

/// `PUT /v1/rules`: the whole set replaced, or nothing changed (422 with every problem).
async fn rules_put(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<waymark_engine::rules::SavedRules>, ApiError> {
    let file = rules_body(&headers, &body_bytes(body)?)?;
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.save_rules(&file)?))).await
}

/// `POST /v1/rules/validate`: what `PUT` would say, without saving.
async fn rules_validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<waymark_engine::rules::SavedRules>, ApiError> {
    let file = rules_body(&headers, &body_bytes(body)?)?;
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.check_rules(&file)?))).await
}

async fn rules_dry_run(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<waymark_engine::rules::DryRun>, ApiError> {
    let request: DryRunRequest = if body.is_null() {
        DryRunRequest::default()
    } else {
        typed(
            body,
            r#"{"since": "7d", "definitions": {"triggers": [...]}}"#,
        )?
    };
    let since = request
        .since
        .as_deref()
        .map(Since::parse)
        .transpose()
        .map_err(|message| ApiError::new(ErrorCode::InvalidQuery, format!("since: {message}")))?;
    let until = request
        .until
        .as_deref()
        .map(|text| {
            Timestamp::parse(text).map(|at| at.0).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("until: '{text}' is not an RFC 3339 instant (2026-03-08T00:00:00Z)"),
                )
            })
        })
        .transpose()?;
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        let file = match (request.definitions, request.toml) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    "give the definitions once: `definitions` (JSON) or `toml`, not both",
                ))
            }
            (Some(file), None) => file,
            (None, Some(text)) => RulesFile::from_toml(&text).map_err(ApiError::invalid_rules)?,
            (None, None) => engine.rules_file()?,
        };
        Ok(Json(engine.dry_run(&file, since, until)?))
    })
    .await
}

/// `POST /v1/rules/lift`: each trigger version's treated customers against its holdout (empty body: defaults).
async fn rules_lift(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<waymark_engine::lift::LiftReport>, ApiError> {
    let request: waymark_engine::lift::LiftRequest = if body.is_null() {
        Default::default()
    } else {
        typed(
            body,
            r#"{"goals": ["Order Completed"], "window": "7d", "trigger": "checkout-reminder"}"#,
        )?
    };
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.rules_lift(&request)?))).await
}

/// `GET /v1/monitors`: the KPI board, every monitor read along the stored history with the moments it fired.
async fn monitors_board(
    State(state): State<AppState>,
) -> Result<Json<waymark_engine::monitors::MonitorsReport>, ApiError> {
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.monitors_report(None)?))).await
}

async fn rules_status(State(state): State<AppState>) -> Json<waymark_engine::rules::RulesStatus> {
    Json(state.engine.rules_status())
}

#[derive(Deserialize)]
struct SegmentsQuery {
    sample: Option<usize>,
}

/// `GET /v1/segments`: every segment with its members now and its size per day.
async fn segments_list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SegmentsQuery>,
) -> Result<Json<waymark_engine::rules::SegmentsReport>, ApiError> {
    let sample = bounded("sample", query.sample, 20, 0..=1000)?;
    let engine = Arc::clone(&state.engine);
    blocking(move || Ok(Json(engine.segments_report(sample)?))).await
}

/// `PUT /v1/segments/{name}` body: one segment's definition (the body of a `[[segments]]` entry; the path names it).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    /// Must equal the path's, when given.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    /// A CEL condition over the customer and their journey, as in rules.toml.
    pub condition: String,
    /// Steps the condition names that no stored event has yet.
    #[serde(default)]
    pub expect_steps: Vec<String>,
}

/// What `PUT /v1/segments/{name}` did.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SavedSegment {
    pub segment: String,
    /// A segment of that name was replaced (200) rather than added (201).
    pub replaced: bool,
}

/// `PUT /v1/segments/{name}`: adds or replaces one segment of the definitions in force (validated with the
/// whole set: 422 `invalid_rules` with every problem, and nothing changes).
async fn segment_put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<SavedSegment>), ApiError> {
    let body: SegmentBody = typed(
        body,
        r#"{"condition": "did(\"Device Not Working\")", "description": "Persona 3"}"#,
    )?;
    if body.name.as_ref().is_some_and(|given| *given != name) {
        return Err(ApiError::new(
            ErrorCode::InvalidRules,
            format!(
                "name: the body names the segment {:?} but the path {name:?}; leave name out or make them equal",
                body.name.unwrap_or_default()
            ),
        ));
    }
    let spec = waymark_engine::rules::SegmentSpec {
        name: name.clone(),
        description: body.description,
        condition: body.condition,
        expect_steps: body.expect_steps,
    };
    let engine = Arc::clone(&state.engine);
    let replaced = blocking(move || Ok(engine.save_segment(spec)?)).await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(SavedSegment {
            segment: name,
            replaced,
        }),
    ))
}

#[derive(Deserialize)]
struct MembersQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /v1/segments/{name}/members`: the members now, sorted, a page at a time.
async fn segment_members(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<MembersQuery>,
) -> Result<Json<SegmentMembersResponse>, ApiError> {
    let limit = bounded("limit", query.limit, 100, 1..=10_000)?;
    let offset = query.offset.unwrap_or(0);
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        let Some((total, customers)) = engine.segment_members_of(&name, offset, limit)? else {
            let known: Vec<String> = engine
                .rules_file()?
                .segments
                .into_iter()
                .map(|s| s.name)
                .collect();
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "no segment is named {name:?}; the segments are: {}",
                    if known.is_empty() {
                        "none yet".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        Ok(Json(SegmentMembersResponse {
            segment: name,
            total,
            offset,
            customers,
        }))
    })
    .await
}

#[derive(Deserialize)]
struct LogQuery {
    trigger: Option<String>,
    limit: Option<usize>,
    /// `dead`: only instances with an action in the dead letters; `pending`: with one not yet delivered.
    state: Option<String>,
}

async fn rules_log(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<TriggerLogResponse>, ApiError> {
    let limit = bounded("limit", query.limit, 100, 1..=10_000)?;
    if let Some(other) = query
        .state
        .as_deref()
        .filter(|s| !matches!(*s, "dead" | "pending" | "delivered" | "simulated"))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("state must be dead, pending, delivered or simulated, not {other:?}"),
        ));
    }
    let engine = Arc::clone(&state.engine);
    blocking(move || {
        let instances =
            engine.trigger_log(query.trigger.as_deref(), query.state.as_deref(), limit)?;
        Ok(Json(TriggerLogResponse { instances }))
    })
    .await
}

/// `POST /v1/rules/dead-letters/{key}/replay`: every dead action of the instance `key` goes out again.
async fn rules_replay(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<ReplayResponse>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let lookup = key.clone();
    let replayed = blocking(move || Ok(engine.replay_dead_letter(&lookup)?)).await?;
    if !replayed {
        return Err(ApiError::not_found(format!(
            "no dead letter has the key {key:?}; see GET /v1/rules/log?state=dead"
        )));
    }
    Ok(Json(ReplayResponse { replayed, key }))
}

/// Every analysis of the registry: name, help and the CLI example (what the UI and `--help` list).
async fn list_analyses() -> Json<AnalysesResponse> {
    Json(crate::openapi::analyses())
}

/// `POST /v1/analyses/{name}`: any analysis of the registry, its request as JSON (empty: defaults), answered on a
/// blocking thread; an invalid request is a 400 that says what to change.
async fn analysis(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let ran = blocking(move || Ok(engine.analyse_json(&name, body, None)?)).await?;
    Ok(Json(ran.json))
}

/// The OpenAPI 3.1 description of this API, generated from the types.
async fn openapi() -> Json<Value> {
    Json(crate::openapi::document().clone())
}

async fn stats(State(state): State<AppState>) -> Json<waymark_engine::StoreStats> {
    Json(state.engine.stats())
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
        crate::UI_SCRIPT,
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
    let stats = state.engine.stats();
    let mut page = include_str!("status.html").to_string();
    for (placeholder, value) in [
        ("{{events}}", stats.events),
        ("{{customers}}", stats.customers),
        ("{{identifiers}}", stats.identifiers),
        ("{{channels}}", stats.channels),
        ("{{steps}}", stats.steps),
        ("{{failed}}", stats.failed_events),
    ] {
        page = page.replace(placeholder, &waymark_engine::thousands(value));
    }
    Html(page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(waymark_engine::thousands(1_667_009), "1,667,009");
        assert_eq!(waymark_engine::thousands(999), "999");
        assert_eq!(waymark_engine::thousands(1_000), "1,000");
        assert_eq!(waymark_engine::thousands(0), "0");
    }
}

/// Who the presented key belongs to: the UI asks once after login, to hide what the role may not do.
async fn session(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
) -> Json<crate::openapi::SessionResponse> {
    Json(crate::openapi::SessionResponse {
        role: caller.role,
        key_id: caller.key_id.clone(),
        name: caller.name,
        open: caller.key_id.is_none(),
        reads_protected: state.keys.reads_protected(),
    })
}

async fn keys_list(State(state): State<AppState>) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    let keys = Arc::clone(&state.keys);
    blocking(move || Ok(keys.list())).await.map(Json)
}

/// `{"role": "read", "name": "CX team"}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// `write` (collect only; public), `read` (analyses, customers, UI) or `admin` (everything).
    pub role: Role,
    /// Who or what the key is for ("Web SDK", "CX team"); 1 to 100 characters.
    pub name: String,
}

async fn keys_create(
    State(state): State<AppState>,
    body: Result<Json<CreateKeyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let Json(request) = body.map_err(|rejection| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!(
                "{}; send {{\"role\": \"write\" | \"read\" | \"admin\", \"name\": \"…\"}}",
                rejection.body_text()
            ),
        )
    })?;
    let keys = Arc::clone(&state.keys);
    let created =
        blocking(move || keys.create(request.role, &request.name).map_err(key_error)).await?;
    tracing::info!(id = %created.info.id, role = created.info.role.as_str(), "key created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn keys_revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyInfo>, ApiError> {
    let keys = Arc::clone(&state.keys);
    let revoked = blocking(move || keys.revoke(&id).map_err(key_error)).await?;
    tracing::info!(id = %revoked.id, "key revoked");
    Ok(Json(revoked))
}

fn key_error(error: KeysError) -> ApiError {
    match error {
        KeysError::NotFound(_) => ApiError::not_found(error.to_string()),
        KeysError::InvalidName => {
            ApiError::new(ErrorCode::InvalidQuery, format!("`name`: {error}"))
        }
        KeysError::Io { .. } | KeysError::Corrupt { .. } => {
            ApiError::new(ErrorCode::StoreUnavailable, error.to_string())
        }
    }
}
