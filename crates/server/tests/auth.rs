//! Keys and roles (docs/security.md): every endpoint of the OpenAPI document × {no key, write key, read key, admin
//! key, revoked key, wrong key} answers what the document's `x-waymark-access` says, and the server's route table
//! and the document list the same endpoints.

mod common;

use common::{basic_auth, spawn_app_in};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use waymark_engine::keys::{Keys, Role};

struct Pooled {
    agent: ureq::Agent,
}

struct Presented {
    label: &'static str,
    /// The `Authorization` header, if any.
    header: Option<String>,
}

fn call(app: &common::TestApp, method: &str, path: &str, header: Option<&str>) -> (u16, String) {
    let url = app.url(path);
    // One connection per call: a refusal answered before the body is read may close a kept-alive connection,
    // and a pooled client would then race the close.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into();
    let app = &Pooled { agent };
    let mut response = match method {
        "get" => {
            let mut request = app.agent.get(&url);
            if let Some(header) = header {
                request = request.header("Authorization", header);
            }
            request.call()
        }
        "delete" => {
            let mut request = app.agent.delete(&url);
            if let Some(header) = header {
                request = request.header("Authorization", header);
            }
            request.call()
        }
        "post" | "put" => {
            let mut request = if method == "post" {
                app.agent.post(&url)
            } else {
                app.agent.put(&url)
            };
            request = request.header("Content-Type", "application/json");
            if let Some(header) = header {
                request = request.header("Authorization", header);
            }
            // A body each endpoint can read; for the collector, an event without `writeKey`.
            let body = if path.starts_with("/v1/rules") && method == "put" {
                json!({"segments": [], "triggers": []})
            } else if path == "/v1/keys" {
                json!({"role": "read", "name": "made by the matrix"})
            } else {
                json!({"userId": "matrix-user", "event": "Matrix Step", "type": "track"})
            };
            request.send(body.to_string().as_bytes())
        }
        other => panic!("unexpected method {other}"),
    }
    .unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

/// What `access` lets `label` do: `None` means the handler answers (anything but 401/403), else the status and code.
fn expected(access: &str, label: &str) -> Option<(u16, &'static str)> {
    let unauthenticated = |code| Some((401, code));
    match (access, label) {
        ("public", _) => None,
        ("collect", "none") => unauthenticated("missing_write_key"),
        ("collect", "write" | "admin") => None,
        ("collect", "read") => Some((403, "forbidden")),
        ("collect", "wrong") => unauthenticated("invalid_write_key"),
        (_, "revoked") => unauthenticated("revoked_key"),
        (_, "wrong") => unauthenticated("invalid_key"),
        (_, "none") => unauthenticated("missing_key"),
        ("any_key", _) => None,
        ("read", "read" | "admin") => None,
        ("read", "write") => Some((403, "forbidden")),
        ("admin", "admin") => None,
        ("admin", "write" | "read") => Some((403, "forbidden")),
        other => panic!("no expectation for {other:?}"),
    }
}

fn concrete(path: &str) -> String {
    path.replace("/v1/analyses/{name}", "/v1/analyses/process-map")
        .replace("{identifier}", "matrix-user")
        .replace("{name}", "no-such-thing")
        .replace("{key}", "no-such-key")
        .replace("{id}", "no-such-id")
}

#[test]
fn every_endpoint_answers_each_kind_of_key_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::open(dir.path(), vec![]).unwrap();
    let write = keys.create(Role::Write, "Web SDK").unwrap().key;
    let read = keys.create(Role::Read, "CX team").unwrap().key;
    let admin = keys.create(Role::Admin, "ops").unwrap().key;
    let revoked = keys.create(Role::Admin, "leaked").unwrap();
    keys.revoke(&revoked.info.id).unwrap();
    // The right id with a wrong secret, and a key of no record at all.
    let mut forged = read.clone();
    forged.replace_range(forged.len() - 6.., "000000");
    let app = spawn_app_in(dir);

    let bearer = |key: &str| Some(format!("Bearer {key}"));
    let presented = [
        Presented {
            label: "none",
            header: None,
        },
        // Write keys travel as Segment sends them: the basic-auth user name.
        Presented {
            label: "write",
            header: Some(basic_auth(&write)),
        },
        Presented {
            label: "read",
            header: bearer(&read),
        },
        Presented {
            label: "admin",
            header: bearer(&admin),
        },
        Presented {
            label: "revoked",
            header: bearer(&revoked.key),
        },
        Presented {
            label: "wrong",
            header: bearer(&forged),
        },
    ];

    let (status, document) = app.get_json("/v1/openapi.json");
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((
                method.to_uppercase(),
                waymark_server::route_pattern(path).to_string(),
            ));
            let access = operation["x-waymark-access"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} documents no access"));
            // Revoking the admin key would end the matrix early: revoke a key no one holds instead.
            let target = concrete(path);
            for key in &presented {
                let (status, body) = call(&app, method, &target, key.header.as_deref());
                let what = format!(
                    "{} {target} with {} key → {status} {body}",
                    method.to_uppercase(),
                    key.label
                );
                match expected(access, key.label) {
                    None => assert!(
                        status != 401 && status != 403 && status < 500,
                        "{what}: the {access} endpoint should let this key through"
                    ),
                    Some((want, code)) => {
                        assert_eq!(status, want, "{what}");
                        let body: Value = serde_json::from_str(&body).unwrap();
                        assert_eq!(body["code"], code, "{what}");
                        assert!(
                            body["message"].as_str().unwrap().len() > 20,
                            "{what}: say what to do"
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked} calls");
    let routed: BTreeSet<(String, String)> = waymark_server::ROUTES
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        routed, documented,
        "the route table and the OpenAPI document list different endpoints"
    );
}

#[test]
fn an_open_server_lets_anyone_on_loopback_read_and_a_new_key_closes_it_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir);
    let (status, session) = app.get_json("/v1/session");
    assert_eq!(status, 200);
    assert_eq!(session["open"], true);
    assert_eq!(app.get("/v1/stats").0, 200);

    // An admin (anyone, while open) creates an admin key over the API: from now on reading needs a key.
    let (status, created) = app.post_with(
        "/v1/keys",
        json!({"role": "admin", "name": "first admin"}).to_string(),
        None,
        None,
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    assert!(created.get("hash").is_none());
    let (status, body) = app.get_json("/v1/stats");
    assert_eq!((status, body["code"].as_str()), (401, Some("missing_key")));
    let mut response = app
        .agent
        .get(&app.url("/v1/session"))
        .header("Authorization", &format!("Bearer {key}"))
        .call()
        .unwrap();
    let session: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        (session["role"].as_str(), session["open"].as_bool()),
        (Some("admin"), Some(false))
    );

    // A bad request to the keys API names the field.
    let (status, body) = app.post_with(
        "/v1/keys",
        json!({"role": "owner", "name": "x"}).to_string(),
        Some(&key),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("role"), "{body}");
    // A malformed Authorization header is refused as such.
    let mut response = app
        .agent
        .get(&app.url("/v1/stats"))
        .header("Authorization", "Token abc")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().get("www-authenticate").is_some());
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["code"], "invalid_authorization");
}
