//! Store errors: what went wrong opening, writing or reading a data directory.

use std::path::PathBuf;
use thiserror::Error;

/// A failure of the journey store. IO errors keep the path they happened on.
#[derive(Debug, Error)]
pub enum StoreError {
    /// An operating-system error on a file of the data directory.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("the data directory {0} is in use by another Waymark process; stop it, or use its HTTP API instead")]
    Locked(PathBuf),
    /// The directory was written by a newer or unknown format.
    #[error("{path}: format version {found} is not supported (this build reads version {supported}); upgrade Waymark")]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A file failed its checksum or structure check somewhere other than a torn log tail.
    #[error("{path}: corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// The background writer has stopped (after an IO failure or at shutdown); nothing more can be appended.
    #[error("the store's writer has stopped: {0}")]
    WriterStopped(String),
    /// A background merge was abandoned because the store is closing (its segments stay as they were).
    #[error(
        "the store is closing: the merge in progress was abandoned, its segments stay as they were"
    )]
    Closing,
    /// An identity operation named something that does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
