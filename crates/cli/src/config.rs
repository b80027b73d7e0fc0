//! Configuration: one serde struct read from TOML, overlaid by `WAYMARK_*` environment variables and flags.

use crate::{ServeArgs, UsageError};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use waymark_engine::rules::RulesClock;
use waymark_engine::StoreOptions;

/// The TOML configuration file (`waymark.toml`). Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the server listens on (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Write keys the collector accepts.
    pub write_keys: Option<Vec<String>>,
    /// Events held in memory (and in the log) before they are written as a segment (default 1,000,000).
    pub flush_rows: Option<usize>,
    /// Segments allowed before compaction merges them (default 8).
    pub max_segments: Option<usize>,
    /// PEM certificate chain: with `tls_private_key`, the server speaks HTTPS.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of `tls_certificate`.
    pub tls_private_key: Option<PathBuf>,
    /// Connections served at once (default 1024).
    pub max_connections: Option<usize>,
    /// Requests a second per read key (default 100; 0 is unlimited).
    pub rate_limit_read: Option<u32>,
    /// Requests a second per admin key (default 50; 0 is unlimited).
    pub rate_limit_admin: Option<u32>,
    /// Requests a second per write key (default unlimited).
    pub rate_limit_write: Option<u32>,
}

/// Reads `path`, or `waymark.toml` in the data directory when no path is given and it exists.
pub fn load(path: Option<&Path>, data: &Path) -> Result<FileConfig> {
    let (path, required) = match path {
        Some(path) => (path.to_path_buf(), true),
        None => (data.join("waymark.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|error| UsageError(format!("{}: {error}", path.display())).into()),
        Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(error) => {
            Err(error).with_context(|| format!("reading the configuration file {}", path.display()))
        }
    }
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Effective {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub write_keys: Vec<String>,
    /// True when no key was configured and one was generated for this run.
    pub generated_key: bool,
    pub flush_rows: usize,
    pub max_segments: usize,
    pub rules_clock: RulesClock,
    pub http: waymark_server::HttpLimits,
    pub tls: Option<waymark_server::TlsFiles>,
    pub rate_limits: waymark_server::RateLimits,
}

#[derive(Serialize)]
pub struct Redacted {
    data: String,
    listen: String,
    write_keys: Vec<String>,
    flush_rows: usize,
    max_segments: usize,
}

impl Effective {
    /// Defaults, then the file, then environment and flags (clap has already merged those two).
    pub fn resolve(data: &Path, file: &FileConfig, args: &ServeArgs) -> Result<Effective> {
        let listen_text = args
            .listen
            .clone()
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            UsageError(format!(
                "listen address {listen_text:?} is not HOST:PORT, e.g. 127.0.0.1:8080"
            ))
        })?;
        let mut write_keys: Vec<String> = if args.write_keys.is_empty() {
            file.write_keys.clone().unwrap_or_default()
        } else {
            args.write_keys.clone()
        };
        write_keys.retain(|key| !key.trim().is_empty());
        let generated_key = write_keys.is_empty();
        if generated_key {
            use std::hash::BuildHasher;
            let random = std::collections::hash_map::RandomState::new()
                .hash_one((std::process::id(), std::time::SystemTime::now()));
            write_keys.push(format!("wk_{random:016x}"));
        }
        let flush_rows = file
            .flush_rows
            .unwrap_or(StoreOptions::default().flush_rows);
        let max_segments = file
            .max_segments
            .unwrap_or(StoreOptions::default().max_segments);
        if flush_rows == 0 || max_segments == 0 {
            return Err(UsageError("flush_rows and max_segments must be at least 1".into()).into());
        }
        let rules_clock = match args.rules_clock.as_str() {
            "event-time" => RulesClock::EventTime,
            _ => RulesClock::Wall,
        };
        let tls = match (
            args.tls_cert.clone().or_else(|| file.tls_certificate.clone()),
            args.tls_key.clone().or_else(|| file.tls_private_key.clone()),
        ) {
            (Some(certificate), Some(private_key)) => Some(waymark_server::TlsFiles {
                certificate,
                private_key,
            }),
            (None, None) => None,
            _ => {
                return Err(UsageError(
                    "TLS needs both a certificate and its key: set tls_certificate and tls_private_key (or --tls-cert and --tls-key)".into(),
                )
                .into())
            }
        };
        let defaults = waymark_server::HttpLimits::default();
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err(UsageError("max_connections must be at least 1".into()).into());
        }
        let http = waymark_server::HttpLimits {
            max_connections,
            header_timeout: args.header_timeout,
            body_timeout: args.body_timeout,
            ..defaults
        };
        let default_rates = waymark_server::RateLimits::default();
        let rate = |flag: Option<u32>, file: Option<u32>, default: Option<std::num::NonZeroU32>| {
            match flag.or(file) {
                Some(rate) => std::num::NonZeroU32::new(rate),
                None => default,
            }
        };
        let rate_limits = waymark_server::RateLimits {
            read: rate(
                args.rate_limit_read,
                file.rate_limit_read,
                default_rates.read,
            ),
            admin: rate(
                args.rate_limit_admin,
                file.rate_limit_admin,
                default_rates.admin,
            ),
            write: rate(
                args.rate_limit_write,
                file.rate_limit_write,
                default_rates.write,
            ),
        };
        Ok(Effective {
            http,
            tls,
            rate_limits,
            rules_clock,
            data: data.to_path_buf(),
            listen,
            write_keys,
            generated_key,
            flush_rows,
            max_segments,
        })
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            flush_rows: self.flush_rows,
            max_segments: self.max_segments,
            ..StoreOptions::default()
        }
    }

    pub fn redacted(&self) -> Redacted {
        Redacted {
            data: self.data.display().to_string(),
            listen: self.listen.to_string(),
            write_keys: self
                .write_keys
                .iter()
                .map(|key| {
                    if self.generated_key {
                        "(generated at start)".into()
                    } else {
                        format!("{}…({} chars)", &key[..key.len().min(3)], key.len())
                    }
                })
                .collect(),
            flush_rows: self.flush_rows,
            max_segments: self.max_segments,
        }
    }
}
