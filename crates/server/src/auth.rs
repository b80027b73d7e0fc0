//! Who may call what, checked in one layer for every route: the table [`ROUTES`] gives each route the access it
//! asks for, and [`authorize`] checks the caller's key against it before any handler runs.
//!
//! Keys travel as `Authorization: Bearer KEY` (read and admin keys, the UI) or as HTTP basic auth with the key
//! as the user name and an empty password (Segment's convention for write keys; any role may use it). The
//! collector also takes `writeKey` in the body, as Segment's libraries send it; that one check is the collector's,
//! because only it reads the body.

use crate::error::{ApiError, ErrorCode};
use crate::routes::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;
use waymark_engine::keys::{Access, Keys, Role, Verdict};

/// Every route, its method and the access it asks for. The router's middleware and the OpenAPI document read
/// this one table; a route missing from it asks for an admin key (closed by default).
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::Public),
    ("GET", "/ui/app.js", Access::Public),
    ("GET", "/ui/app.css", Access::Public),
    ("GET", "/healthz", Access::Public),
    ("GET", "/v1/openapi.json", Access::Public),
    ("GET", "/v1/session", Access::Authenticated),
    ("POST", "/v1/track", Access::Collect),
    ("POST", "/v1/identify", Access::Collect),
    ("POST", "/v1/page", Access::Collect),
    ("POST", "/v1/screen", Access::Collect),
    ("POST", "/v1/group", Access::Collect),
    ("POST", "/v1/alias", Access::Collect),
    ("POST", "/v1/batch", Access::Collect),
    ("POST", "/v1/feedback", Access::Collect),
    ("POST", "/v1/import", Access::Collect),
    ("GET", "/status", Access::Read),
    ("GET", "/metrics", Access::Read),
    ("GET", "/v1/customers/{identifier}", Access::Read),
    ("DELETE", "/v1/customers/{identifier}", Access::Admin),
    ("GET", "/v1/customers/{identifier}/export", Access::Read),
    (
        "GET",
        "/v1/customers/{identifier}/conformance",
        Access::Read,
    ),
    (
        "GET",
        "/v1/customers/{identifier}/next-best-action",
        Access::Read,
    ),
    ("GET", "/v1/catalogue", Access::Read),
    ("PUT", "/v1/catalogue", Access::Admin),
    ("POST", "/v1/catalogue/validate", Access::Read),
    ("GET", "/v1/blueprints", Access::Read),
    ("GET", "/v1/blueprints/{name}", Access::Read),
    ("PUT", "/v1/blueprints/{name}", Access::Admin),
    ("DELETE", "/v1/blueprints/{name}", Access::Admin),
    ("GET", "/v1/models", Access::Read),
    ("GET", "/v1/models/{name}/scores", Access::Read),
    ("GET", "/v1/identity/edges", Access::Read),
    ("POST", "/v1/identity/merge", Access::Admin),
    ("POST", "/v1/identity/unmerge", Access::Admin),
    ("GET", "/v1/rules", Access::Read),
    ("PUT", "/v1/rules", Access::Admin),
    ("POST", "/v1/rules/validate", Access::Read),
    ("POST", "/v1/rules/dry-run", Access::Read),
    ("GET", "/v1/rules/status", Access::Read),
    ("GET", "/v1/rules/log", Access::Read),
    ("POST", "/v1/rules/lift", Access::Read),
    ("GET", "/v1/monitors", Access::Read),
    ("POST", "/v1/rules/dead-letters/{key}/replay", Access::Admin),
    ("GET", "/v1/segments", Access::Read),
    ("PUT", "/v1/segments/{name}", Access::Admin),
    ("GET", "/v1/segments/{name}/members", Access::Read),
    ("GET", "/v1/failed", Access::Read),
    ("GET", "/v1/stats", Access::Read),
    ("GET", "/v1/analyses", Access::Read),
    ("POST", "/v1/analyses/{name}", Access::Read),
    ("GET", "/v1/keys", Access::Admin),
    ("POST", "/v1/keys", Access::Admin),
    ("DELETE", "/v1/keys/{id}", Access::Admin),
];

/// The access `method` on the route pattern `path` asks for; admin for anything not in [`ROUTES`].
pub fn access(method: &Method, path: &str) -> Access {
    // HEAD is GET without the body.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map_or(Access::Admin, |(_, _, access)| *access)
}

/// The route pattern a documented path is served by: the OpenAPI document lists each analysis as its own path
/// (`/v1/analyses/funnel`), the router serves them all as `/v1/analyses/{name}`.
pub fn route_pattern(documented: &str) -> &str {
    match documented.strip_prefix("/v1/analyses/") {
        Some(name) if !name.is_empty() => "/v1/analyses/{name}",
        _ => documented,
    }
}

/// Who is calling, once their key checked out (or the server is open).
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// The key's id; `None` when the server is open (no read or admin key exists).
    pub key_id: Option<String>,
    pub name: String,
}

/// The key in the `Authorization` header: `Bearer KEY`, or `Basic base64(KEY:)` with the key as the user name.
pub(crate) fn presented_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidAuthorization,
            "the Authorization header must be `Bearer KEY` or `Basic base64(KEY:)` (the key as the user name, empty password)",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let (scheme, credentials) = text.split_once(' ').ok_or_else(invalid)?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return if credentials.is_empty() {
            Err(invalid())
        } else {
            Ok(Some(credentials.to_string()))
        };
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    Ok(Some(
        decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user)
            .to_string(),
    ))
}

/// Verifies `key` off the async workers when it costs an Argon2 hash (the first time a key is seen).
async fn verify(keys: &Arc<Keys>, key: String) -> Verdict {
    if let Some(verdict) = keys.verify_remembered(&key) {
        return verdict;
    }
    let keys = Arc::clone(keys);
    tokio::task::spawn_blocking(move || keys.verify(&key))
        .await
        .unwrap_or(Verdict::Unknown)
}

fn role_article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin",
        Role::Read => "a read",
        Role::Write => "a write",
    }
}

fn needed(access: Access) -> &'static str {
    match access {
        Access::Collect => "a write key",
        Access::Read => "a read key",
        Access::Admin => "an admin key",
        Access::Public | Access::Authenticated => "a key",
    }
}

/// Checks a presented key (already known to be there) against `access`.
pub(crate) async fn check_key(
    keys: &Arc<Keys>,
    key: String,
    access: Access,
) -> Result<Caller, ApiError> {
    match verify(keys, key).await {
        Verdict::Valid { role, id, name } if role.grants(access) => Ok(Caller {
            role,
            key_id: Some(id),
            name,
        }),
        Verdict::Valid { role, name, .. } => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "this endpoint needs {}; the key presented is {} key (`{name}`): ask an admin for one (`waymark keys create --role {}`)",
                needed(access),
                role_article(role),
                match access { Access::Admin => "admin", Access::Collect => "write", _ => "read" },
            ),
        )),
        Verdict::Revoked { id } => Err(ApiError::new(
            ErrorCode::RevokedKey,
            format!("the key `{id}` was revoked; ask an admin for a new one (`waymark keys create`)"),
        )),
        Verdict::Unknown if access == Access::Collect => Err(ApiError::new(
            ErrorCode::InvalidWriteKey,
            "the write key is not one this server accepts; check the key in your SDK settings (`waymark keys list` shows the server's keys)",
        )),
        Verdict::Unknown => Err(ApiError::new(
            ErrorCode::InvalidKey,
            "the key is not one this server accepts; check it, or ask an admin for one (`waymark keys create --role read`)",
        )),
    }
}

/// The caller of a server with no read or admin key: whoever reaches it (it listens on loopback only).
fn open_caller() -> Caller {
    Caller {
        role: Role::Admin,
        key_id: None,
        name: "anyone on this machine (no read or admin key exists)".into(),
    }
}

/// The one authorization layer: looks up the route's access in [`ROUTES`], checks the key, and hands the handler
/// a [`Caller`] (as a request extension) or answers 401/403 itself.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(request).await;
    };
    let access = access(request.method(), &path);
    let keys = state.keys();
    let presented = match presented_key(request.headers()) {
        Ok(presented) => presented,
        Err(error) => return crate::routes::reject_request(error).into_response(),
    };
    let caller = match access {
        Access::Public => None,
        // Without a header the collector checks `writeKey` in the body; an open collector takes anything.
        Access::Collect if presented.is_none() || !keys.collect_protected() => None,
        Access::Collect => match check_key(keys, presented.expect("checked above"), access).await {
            Ok(caller) => Some(caller),
            Err(error) => return crate::routes::reject_request(error).into_response(),
        },
        Access::Read | Access::Admin | Access::Authenticated if !keys.reads_protected() => {
            Some(open_caller())
        }
        Access::Read | Access::Admin | Access::Authenticated => {
            let Some(key) = presented else {
                let error = ApiError::new(
                    ErrorCode::MissingKey,
                    format!(
                        "this endpoint needs {}: send it as `Authorization: Bearer KEY` (an admin creates one with `waymark keys create --role read`)",
                        needed(access)
                    ),
                );
                return crate::routes::reject_request(error).into_response();
            };
            match check_key(keys, key, access).await {
                Ok(caller) => Some(caller),
                Err(error) => return crate::routes::reject_request(error).into_response(),
            }
        }
    };
    if let Some(caller) = caller {
        if let Err(error) = state.limiter().check(&caller) {
            return rate_limited(error).into_response();
        }
        request.extensions_mut().insert(caller);
    }
    next.run(request).await
}

/// Counts a request refused by its key's rate limit.
pub(crate) fn rate_limited(error: ApiError) -> ApiError {
    metrics::counter!(crate::metrics_names::REQUESTS_RATE_LIMITED).increment(1);
    crate::routes::reject_request(error)
}

/// The collector's own check of a `writeKey` sent in the body (no `Authorization` header).
pub(crate) async fn check_body_write_key(
    keys: &Arc<Keys>,
    key: Option<&str>,
) -> Result<Option<Caller>, ApiError> {
    if !keys.collect_protected() {
        return Ok(None);
    }
    match key {
        None => Err(ApiError::new(
            ErrorCode::MissingWriteKey,
            "send your write key as the HTTP basic-auth user name (empty password) or as `writeKey` in the body",
        )),
        Some(key) => check_key(keys, key.to_string(), Access::Collect).await.map(Some),
    }
}
