//! Waymark's HTTP server: the Segment-compatible collector, the customer and identity API, health and
//! Prometheus metrics, on one port.
//!
//! Entry points: [`router`] builds the axum `Router` over an open store (used by tests on `127.0.0.1:0`), and
//! [`serve`] binds, serves until shutdown is requested, then flushes the store.

mod error;
mod metrics_names;
mod routes;

pub use error::ApiError;
pub use routes::{router, AppState};

use std::net::SocketAddr;
use std::sync::Arc;
use waymark_store::Store;

/// What `serve` needs beyond the store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Accepted write keys (HTTP basic-auth user, or `writeKey` in the body).
    pub write_keys: Vec<String>,
}

/// Binds `config.listen`, calls `on_ready` with the bound address, serves until `shutdown` resolves, then stops
/// accepting requests, lets in-flight ones finish, and flushes the store.
pub async fn serve(
    store: Arc<Store>,
    config: ServerConfig,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let state = AppState::new(Arc::clone(&store), config.write_keys);
    on_ready(address);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("server stopped; flushing the store");
    let flush_store = Arc::clone(&store);
    tokio::task::spawn_blocking(move || flush_store.flush())
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
