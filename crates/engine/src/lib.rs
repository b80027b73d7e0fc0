//! Waymark's engine: turns what arrives (HTTP bodies, files, the demo generator) into validated events and
//! appends them to the journey store.
//!
//! - [`ingest`]: Segment wire-format bodies → accepted events plus failed-event records with reasons.
//! - [`import`]: CSV, JSON Lines, Parquet and XES files (optionally gzip-compressed), streamed in constant memory.
//! - [`demo`]: a seeded smart-home retailer with planted friction, documented in `docs/demo.md`.
//! - [`query`]: analyses over the store's journeys, on every core.

pub mod demo;
pub mod import;
pub mod ingest;
pub mod query;
pub mod synthetic;

pub use waymark_store::{Store, StoreOptions};

/// A gzip writer at the default compression level, for generated files named `*.gz`.
pub fn gzip_writer<W: std::io::Write>(inner: W) -> impl std::io::Write {
    flate2::write::GzEncoder::new(inner, flate2::Compression::default())
}
