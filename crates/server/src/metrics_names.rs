//! Metric names, in one place so dashboards and code agree.

/// Events made durable (counter).
pub const EVENTS_INGESTED: &str = "waymark_events_ingested_total";
/// Events refused, labelled by `reason` (counter).
pub const EVENTS_REJECTED: &str = "waymark_events_rejected_total";
/// Events already stored, ignored by `messageId` (counter).
pub const EVENTS_DUPLICATE: &str = "waymark_events_duplicate_total";
/// Requests refused as a whole, labelled by `code` (counter).
pub const REQUESTS_REJECTED: &str = "waymark_requests_rejected_total";
/// Time from request to durable acknowledgement, labelled by `endpoint` (histogram, seconds).
pub const INGEST_LATENCY: &str = "waymark_ingest_request_duration_seconds";
/// Store gauges, refreshed at every scrape.
pub const STORE_EVENTS: &str = "waymark_store_events";
pub const STORE_CUSTOMERS: &str = "waymark_store_customers";
pub const STORE_SEGMENTS: &str = "waymark_store_segments";
pub const STORE_SEGMENT_BYTES: &str = "waymark_store_segment_bytes";
pub const STORE_WAL_BYTES: &str = "waymark_store_wal_bytes";
pub const STORE_FAILED_EVENTS: &str = "waymark_store_failed_events";
/// Connections being served (gauge).
pub const HTTP_CONNECTIONS_OPEN: &str = "waymark_http_connections_open";
/// Connections answered `503` and closed because the connection limit was reached (counter).
pub const HTTP_CONNECTIONS_REFUSED: &str = "waymark_http_connections_refused_total";
/// Requests refused by a key's rate limit, labelled by `role` (counter).
pub const REQUESTS_RATE_LIMITED: &str = "waymark_requests_rate_limited_total";
/// 1 while the disk refuses writes (full or read-only), else 0 (gauge).
pub const STORE_DISK_FAULT: &str = "waymark_store_disk_fault";
/// Journey views built for analyses, labelled by `how`: `rebuilt` from every segment, or `extended` with the
/// events appended since the last one (counter).
pub const JOURNEY_VIEWS: &str = "waymark_journey_views_total";
