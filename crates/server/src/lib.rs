//! Waymark's HTTP server: the Segment-compatible collector, the customer and identity API, health and
//! Prometheus metrics, on one port.
//!
//! Entry points: [`router`] builds the axum `Router` over an open engine (used by tests on `127.0.0.1:0`), and
//! [`serve`] binds, serves (with the connection limits, timeouts and TLS of [`transport`]) until shutdown is
//! requested, then flushes the store.

mod auth;
pub mod blueprints;
mod catalogue;
mod error;
mod limits;
mod metrics_names;
pub mod openapi;
mod query;
mod routes;
mod transport;

pub use auth::{route_pattern, Caller, ROUTES};
pub use error::{ApiError, ErrorCode};
pub use limits::RateLimits;
pub use routes::{router, AppState};
pub use transport::{tls_acceptor, HttpLimits, TlsFiles};

/// One self-contained HTML file: the UI's page, style sheet and script inlined, with `data` (the report's analyses)
/// embedded so it renders offline, from an e-mail attachment, without a server.
pub fn report_html(data: &serde_json::Value) -> String {
    // `</` inside an inline script would end it early; JSON allows the escaped form.
    let json = data.to_string().replace("</", "<\\/");
    let script = UI_SCRIPT.replace("</script", "<\\/script");
    include_str!("../ui/index.html")
        .replace(
            r#"<link rel="stylesheet" href="/ui/app.css">"#,
            &format!("<style>\n{}\n</style>", include_str!("../ui/app.css")),
        )
        .replace(
            r#"<script src="/ui/app.js"></script>"#,
            &format!(
                "<script>window.WAYMARK_REPORT = {json};</script>\n<script>\n{script}\n</script>"
            ),
        )
}

use std::net::SocketAddr;
use std::sync::Arc;
use waymark_engine::Engine;

/// The UI's script: the vendored layout engine (dagre, for the process map), the helpers and pages of `app.js`, the moments and attribution pages, the predictions page, the management pages (segments, triggers, monitors), the blueprint and feedback pages, then the start-up.
pub(crate) const UI_SCRIPT: &str = concat!(
    include_str!("../ui/vendor/dagre.js"),
    "\n",
    include_str!("../ui/app.js"),
    "\n",
    include_str!("../ui/moments.js"),
    "\n",
    include_str!("../ui/predictions.js"),
    "\n",
    include_str!("../ui/manage.js"),
    "\n",
    include_str!("../ui/design.js"),
    "\n",
    include_str!("../ui/boot.js")
);

/// What `serve` needs beyond the engine.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Accepted write keys (HTTP basic-auth user, or `writeKey` in the body).
    pub write_keys: Vec<String>,
    /// Build the UI's journey views in the background at start.
    pub warm_up: bool,
    /// Run the rules worker (segments, triggers, deliveries) with these options; `None` leaves the rules idle.
    pub rules: Option<waymark_engine::rules::RulesOptions>,
    /// Connection, header, body and write limits and timeouts.
    pub http: HttpLimits,
    /// Serve HTTPS with this certificate; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Per-key request rates.
    pub rate_limits: RateLimits,
}

impl ServerConfig {
    /// Loopback on a free port, no write key, no rules worker, default limits: what tests start from.
    pub fn local() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            write_keys: Vec::new(),
            warm_up: false,
            rules: None,
            http: HttpLimits::default(),
            tls: None,
            rate_limits: RateLimits::default(),
        }
    }
}

/// Builds, in the background, the journey views the UI's first pages read, so the first visitor does not wait
/// for payloads to be decoded. Queries that arrive meanwhile simply build their own view.
fn warm_up(engine: Arc<Engine>) {
    let spawned = std::thread::Builder::new()
        .name("warm-up".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let built = engine.warm_up();
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                built,
                "journey views warmed up"
            );
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the warm-up thread; views will be built on first use");
    }
}

/// Binds `config.listen`, calls `on_ready` with the bound address, serves until `shutdown` resolves, then stops
/// accepting requests, lets in-flight ones finish, and flushes the store.
pub async fn serve(
    engine: Arc<Engine>,
    config: ServerConfig,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // A bad certificate is found before anything listens.
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let state = AppState::new(Arc::clone(&engine), config.write_keys)
        .map_err(std::io::Error::other)?
        .with_rate_limits(config.rate_limits)
        .with_body_timeout(config.http.body_timeout);
    if !address.ip().is_loopback() && !state.keys().reads_protected() {
        return Err(std::io::Error::other(format!(
            "refusing to listen on {address}: no read or admin key exists, so anyone who reaches the port could read every customer; create one with `waymark keys create --role admin --name NAME`, or listen on 127.0.0.1"
        )));
    }
    engine.prepare_writes();
    if let Err(error) = engine.start_live_scoring() {
        tracing::warn!(%error, "could not start the live scorer; scores are computed when asked for");
    }
    if let Some(options) = config.rules {
        if let Err(error) = engine.start_rules(options) {
            tracing::warn!(%error, "could not start the rules worker; no trigger will fire");
        }
    }
    if config.warm_up {
        warm_up(Arc::clone(&engine));
    }
    on_ready(address);
    transport::run(listener, router(state), config.http, tls, shutdown).await?;
    tracing::info!("server stopped; stopping the rules worker and flushing the store");
    let flush_engine = Arc::clone(&engine);
    tokio::task::spawn_blocking(move || {
        flush_engine.stop_rules();
        flush_engine.flush()
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(std::io::Error::other)?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
