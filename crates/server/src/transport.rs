//! The listener: accepts connections up to a limit, times out slow and idle clients, and speaks TLS (rustls)
//! when a certificate is configured. `axum::serve` has none of these; a server that customers' browsers and SDKs
//! reach must, or a few hundred connections that send a byte a second (slow loris) hold it.
//!
//! What bounds a client:
//! - the connection count ([`HttpLimits::max_connections`]): past it a connection is answered `503` at once and
//!   closed, so the kernel's backlog never fills with clients that wait forever;
//! - the request head ([`HttpLimits::header_timeout`], enforced by hyper): a head not complete in time, or an
//!   idle kept-alive connection that sends no next request in time, is closed; heads are at most
//!   [`HttpLimits::max_header_bytes`] (larger ones get `431`);
//! - the request body ([`HttpLimits::body_timeout`], enforced by the router's body layer): a body not complete
//!   in time gets `408`;
//! - the TLS handshake (the header timeout again), and every write of a response
//!   ([`HttpLimits::write_timeout`]: a client that stops reading is dropped) and any silence on the socket
//!   ([`HttpLimits::idle_timeout`], which also ends idle HTTP/2 connections).

use crate::metrics_names::{HTTP_CONNECTIONS_OPEN, HTTP_CONNECTIONS_REFUSED};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Limits on connections and on how slowly a client may talk. The defaults suit a collector that browsers and
/// SDKs reach over the internet; every one is a `serve` option.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections served at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// Time to send a complete request head (and, on a kept-alive connection, to start the next request).
    pub header_timeout: Duration,
    /// Time to send a complete request body.
    pub body_timeout: Duration,
    /// Time a connection may stay silent (no byte read) before it is closed.
    pub idle_timeout: Duration,
    /// Time one write of a response may wait for the client to read.
    pub write_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// Reads the certificate chain and key and builds the TLS acceptor (TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`). Errors name the file and what is wrong with it.
pub fn tls_acceptor(files: &TlsFiles) -> std::io::Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certificate = files.certificate.display();
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certificates| certificates.collect::<Result<_, _>>())
        .map_err(|error| {
            std::io::Error::other(format!(
                "{certificate}: not a readable PEM certificate chain ({error}); pass the server's certificate, then its intermediates, as `-----BEGIN CERTIFICATE-----` blocks"
            ))
        })?;
    if certificates.is_empty() {
        return Err(std::io::Error::other(format!(
            "{certificate}: holds no `-----BEGIN CERTIFICATE-----` block"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|error| {
        std::io::Error::other(format!(
            "{}: not a readable PEM private key ({error}); pass the key of the certificate as a PKCS#8, PKCS#1 or SEC1 `-----BEGIN … PRIVATE KEY-----` block",
            files.private_key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|error| {
            std::io::Error::other(format!(
                "{certificate} and {}: {error} (is the key the certificate's own?)",
                files.private_key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The answer to a connection over the limit, written before it is closed.
fn refusal(max_connections: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "code": "too_many_connections",
        "message": format!("the server already serves {max_connections} connections (its limit, `serve --max-connections`); retry in a moment"),
        "type": "internal",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers `503` to a connection over the limit (plain HTTP only: a TLS client would need a handshake first,
/// which is what the limit saves) and closes it, giving up after a second.
async fn refuse(mut stream: TcpStream, plain: bool, max_connections: usize) {
    metrics::counter!(HTTP_CONNECTIONS_REFUSED).increment(1);
    if plain {
        let answer = refusal(max_connections);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (for up to 30 s).
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(limits.max_header_bytes as u32);
    let builder = Arc::new(builder);
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted: wait a little
                    // rather than spin, and go on.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tokio::spawn(refuse(stream, tls.is_none(), limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let service = service.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            metrics::gauge!(HTTP_CONNECTIONS_OPEN).increment(1.0);
            let served = async {
                match tls {
                    None => serve_io(stream, &builder, service, watcher, &limits).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => {
                                serve_io(stream, &builder, service, watcher, &limits).await
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            served.await;
            metrics::gauge!(HTTP_CONNECTIONS_OPEN).decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still open 30 s after shutdown was asked for; closing them");
        }
    }
    Ok(())
}

/// One connection, plain or TLS, with the socket's read and write timeouts, until it ends.
async fn serve_io<I>(
    io: I,
    builder: &Builder<TokioExecutor>,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
    limits: &HttpLimits,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut timed = TimeoutStream::new(io);
    timed.set_read_timeout(Some(limits.idle_timeout));
    timed.set_write_timeout(Some(limits.write_timeout));
    let io = TokioIo::new(Box::pin(timed));
    let connection = builder.serve_connection_with_upgrades(io, service);
    if let Err(error) = watcher.watch(connection.into_owned()).await {
        // Timeouts, resets and malformed requests end connections all the time; none is the server's fault.
        tracing::debug!(%error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = String::from_utf8(refusal(7)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["code"], "too_many_connections");
        assert!(parsed["message"]
            .as_str()
            .unwrap()
            .contains("7 connections"));
    }

    #[test]
    fn unreadable_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let certificate = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&certificate, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let error = tls_acceptor(&TlsFiles {
            certificate: certificate.clone(),
            private_key: key,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("cert.pem"), "{error}");
        assert!(error.contains("BEGIN CERTIFICATE"), "{error}");
    }
}
