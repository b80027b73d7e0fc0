//! The listener's limits, as a client meets them: HTTPS with a configured certificate, the connection limit,
//! slow heads and bodies cut off, oversized heads refused, and per-key rate limits with `Retry-After`.

mod common;

use common::Running;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_engine::keys::{Keys, Role};
use waymark_engine::{Engine, StoreOptions};
use waymark_server::{HttpLimits, RateLimits, ServerConfig};

struct Server {
    address: SocketAddr,
    _running: Running,
    _dir: tempfile::TempDir,
}

/// A server over an empty store; `prepare` may create keys in the data directory before it starts.
fn start(config: ServerConfig, prepare: impl FnOnce(&std::path::Path)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    let running = Running::start(engine, config);
    Server {
        address: running.address,
        _running: running,
        _dir: dir,
    }
}

fn limits(change: impl FnOnce(&mut HttpLimits)) -> ServerConfig {
    let mut config = ServerConfig::local();
    change(&mut config.http);
    config
}

/// Reads what the server sends until it closes the connection (or `within` passes: then `None`).
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&text).into_owned()),
            Ok(n) => text.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&text).into_owned())
            }
            Err(_) => return None,
        }
    }
}

fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://{address}{path}"))
        .call()
        .unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let certificate = dir.path().join("cert.pem");
    let private_key = dir.path().join("key.pem");
    std::fs::write(&certificate, generated.cert.pem()).unwrap();
    std::fs::write(&private_key, generated.signing_key.serialize_pem()).unwrap();
    let mut config = ServerConfig::local();
    config.tls = Some(waymark_server::TlsFiles {
        certificate,
        private_key,
    });
    let server = start(config, |_| {});

    let root = ureq::tls::Certificate::from_der(generated.cert.der()).to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
                .build(),
        )
        .build()
        .into();
    let url = format!("https://localhost:{}/healthz", server.address.port());
    let mut response = agent.get(&url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");

    // A client that does not trust the certificate is refused by its own TLS stack, and plain HTTP to the
    // TLS port gets no HTTP answer.
    let untrusting: ureq::Agent = ureq::Agent::config_builder().build().into();
    assert!(untrusting.get(&url).call().is_err());
    let mut plain = TcpStream::connect(server.address).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut plain, Duration::from_secs(5)).unwrap_or_default();
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_bad_certificate_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = dir.path().join("cert.pem");
    std::fs::write(&certificate, "-----BEGIN NOTHING-----\n").unwrap();
    let mut config = ServerConfig::local();
    config.tls = Some(waymark_server::TlsFiles {
        certificate,
        private_key: dir.path().join("missing-key.pem"),
    });
    let engine = Arc::new(Engine::open(dir.path().join("data"), StoreOptions::default()).unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(waymark_server::serve(
            engine,
            config,
            |_| panic!("must not listen"),
            async {},
        ))
        .unwrap_err()
        .to_string();
    assert!(error.contains("cert.pem"), "{error}");
}

#[test]
fn a_slow_request_head_and_an_idle_connection_are_closed() {
    let server = start(
        limits(|limits| limits.header_timeout = Duration::from_millis(400)),
        |_| {},
    );
    // Half a request line, then silence.
    let mut slow = TcpStream::connect(server.address).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost:").unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5));
    assert!(answer.is_some(), "the server kept a slow head open");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A kept-alive connection that sends no next request is closed too.
    let mut idle = TcpStream::connect(server.address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(5)).expect("closed when idle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_trickled_body_gets_408() {
    let server = start(
        limits(|limits| limits.body_timeout = Duration::from_millis(400)),
        |_| {},
    );
    let mut slow = TcpStream::connect(server.address).unwrap();
    slow.write_all(
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"userId\"",
    )
    .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    // Nothing of it was stored; a prompt request on a new connection is served.
    let (status, body) = get(server.address, "/healthz");
    assert_eq!(status, 200);
    assert!(body.contains("\"events\":0"), "{body}");
}

#[test]
fn an_oversized_head_is_refused() {
    let server = start(limits(|limits| limits.max_header_bytes = 16 * 1024), |_| {});
    let mut stream = TcpStream::connect(server.address).unwrap();
    let huge = "a".repeat(64 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).unwrap_or_default();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(get(server.address, "/healthz").0, 200);
}

#[test]
fn connections_past_the_limit_get_503_until_one_closes() {
    let server = start(
        limits(|limits| {
            limits.max_connections = 3;
            limits.header_timeout = Duration::from_secs(30);
        }),
        |_| {},
    );
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    // Give the server the moment it needs to accept them.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(server.address).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = read_until_closed(&mut extra, Duration::from_secs(5)).expect("answered at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = get(server.address, "/healthz");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the held connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_key_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let keys = std::sync::Mutex::new(Vec::new());
    let mut config = ServerConfig::local();
    config.rate_limits = RateLimits {
        read: std::num::NonZeroU32::new(2),
        ..RateLimits::unlimited()
    };
    let server = start(config, |dir| {
        let store = Keys::open(dir, Vec::new()).unwrap();
        let mut keys = keys.lock().unwrap();
        keys.push(store.create(Role::Read, "dashboard").unwrap().key);
        keys.push(store.create(Role::Read, "analyst").unwrap().key);
    });
    let keys = keys.into_inner().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let call = |key: &str| {
        let mut response = agent
            .get(&format!("http://{}/v1/stats", server.address))
            .header("Authorization", &format!("Bearer {key}"))
            .call()
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_string());
        (
            response.status().as_u16(),
            retry_after,
            response.body_mut().read_to_string().unwrap(),
        )
    };
    let statuses: Vec<u16> = (0..6).map(|_| call(&keys[0]).0).collect();
    assert_eq!(
        &statuses[..4],
        &[200, 200, 200, 200],
        "a burst of twice the rate"
    );
    let (status, retry_after, body) = call(&keys[0]);
    assert_eq!(status, 429, "{body}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&seconds));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("`dashboard`"));
    // Another key has its own bucket; the first is served again once its bucket refills.
    assert_eq!(call(&keys[1]).0, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(call(&keys[0]).0, 200);
}
