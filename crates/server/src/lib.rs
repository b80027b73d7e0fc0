//! Waymark's HTTP server (work in progress in this commit).
