//! Waymark's engine (work in progress in this commit).
