//! Test helpers: a real server on 127.0.0.1:0 over a store in a temporary directory, and an HTTP client that
//! returns 4xx/5xx responses instead of errors.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use waymark_engine::{Engine, StoreOptions};

pub const WRITE_KEY: &str = "test_write_key";

pub struct TestApp {
    pub address: SocketAddr,
    pub store: Arc<Engine>,
    pub agent: ureq::Agent,
    server: Running,
    dir: Option<tempfile::TempDir>,
}

/// `serve` on a thread of its own (a two-worker runtime) until stopped or dropped.
pub struct Running {
    pub address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `serve` over `engine` with `config` and waits until it listens.
    pub fn start(engine: Arc<Engine>, config: waymark_server::ServerConfig) -> Running {
        let (ready_sender, ready) = std::sync::mpsc::channel();
        let (shutdown, shutdown_receiver) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime
                .block_on(waymark_server::serve(
                    engine,
                    config,
                    move |address| ready_sender.send(address).unwrap(),
                    async {
                        let _ = shutdown_receiver.await;
                    },
                ))
                .unwrap();
        });
        Running {
            address: ready.recv().unwrap(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Asks the server to stop and waits until it has (the store flushed).
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn spawn_app() -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap())
}

/// A server over the store in `dir` (an earlier server's, for restarts).
pub fn spawn_app_in(dir: tempfile::TempDir) -> TestApp {
    let store = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    let config = waymark_server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        write_keys: vec![WRITE_KEY.into()],
        warm_up: true,
        rules: Some(waymark_engine::rules::RulesOptions {
            min_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(200),
            max_attempts: 3,
            ..Default::default()
        }),
        // The key-matrix tests send dozens of requests per key at once; the limits have their own test.
        rate_limits: waymark_server::RateLimits::unlimited(),
        ..waymark_server::ServerConfig::local()
    };
    let server = Running::start(Arc::clone(&store), config);
    let address = server.address;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    TestApp {
        address,
        store,
        agent,
        server,
        dir: Some(dir),
    }
}

pub fn basic_auth(key: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// POSTs `body` with the test write key; returns (status, JSON body).
    pub fn post(&self, path: &str, body: impl AsRef<[u8]>) -> (u16, serde_json::Value) {
        self.post_with(path, body, Some(WRITE_KEY), None)
    }

    pub fn post_with(
        &self,
        path: &str,
        body: impl AsRef<[u8]>,
        key: Option<&str>,
        encoding: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .agent
            .post(&self.url(path))
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Authorization", &basic_auth(key));
        }
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let mut response = request.send(body.as_ref()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }

    /// PUTs `body` as `content_type`; returns (status, JSON body).
    pub fn put(&self, path: &str, content_type: &str, body: &str) -> (u16, serde_json::Value) {
        let mut response = self
            .agent
            .put(&self.url(path))
            .header("Content-Type", content_type)
            .send(body.as_bytes())
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }

    /// DELETEs `path`; returns the status.
    #[allow(dead_code)]
    pub fn delete(&self, path: &str) -> u16 {
        self.agent
            .delete(&self.url(path))
            .call()
            .unwrap()
            .status()
            .as_u16()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = self.agent.get(&self.url(path)).call().unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.get(path);
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }
}

impl TestApp {
    /// Shuts the server down (the store flushed and closed) and hands back its data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shut_down();
        let dir = self.dir.take().expect("a running app has its directory");
        // The test's handle is the last one: dropping the app closes the store; the directory lives on.
        drop(self);
        dir
    }

    fn shut_down(&mut self) {
        self.server.stop();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shut_down();
    }
}
