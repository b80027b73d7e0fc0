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
    /// The disk refused a write (full, or read-only). Nothing of the refused request was kept, nothing held
    /// before is harmed, and the store takes writes again by itself once the cause is gone.
    #[error("{detail}: {}; nothing of this request was stored, and writes resume by themselves once {}", fault.what(), fault.remedy())]
    Disk { fault: DiskFault, detail: String },
}

/// Why the data directory's disk refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// No space (or quota, or file-size limit) left.
    Full,
    /// The file system is mounted read-only, or the directory may not be written.
    ReadOnly,
}

impl DiskFault {
    /// The fault an IO error stands for, if it is one the store recovers from by waiting.
    pub fn of(error: &std::io::Error) -> Option<DiskFault> {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
                Some(DiskFault::Full)
            }
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => {
                Some(DiskFault::ReadOnly)
            }
            _ => None,
        }
    }

    fn what(self) -> &'static str {
        match self {
            DiskFault::Full => "the data directory's disk is full",
            DiskFault::ReadOnly => "the data directory is read-only",
        }
    }

    fn remedy(self) -> &'static str {
        match self {
            DiskFault::Full => "space is freed",
            DiskFault::ReadOnly => "it is writable again",
        }
    }
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }

    /// The disk fault behind this error, if it is one: the store recovers from those without a restart.
    pub fn disk_fault(&self) -> Option<DiskFault> {
        match self {
            StoreError::Io { source, .. } => DiskFault::of(source),
            StoreError::Disk { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// A copy to answer a second request with (IO errors are not `Clone`): a disk fault stays a disk fault.
    pub(crate) fn for_another(&self) -> StoreError {
        match (self, self.disk_fault()) {
            (StoreError::Disk { fault, detail }, _) => StoreError::Disk {
                fault: *fault,
                detail: detail.clone(),
            },
            (StoreError::Io { path, source }, Some(fault)) => StoreError::Disk {
                fault,
                detail: format!("{}: {source}", path.display()),
            },
            _ => StoreError::WriterStopped(self.to_string()),
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn full_and_read_only_disks_are_told_apart_from_other_failures() {
        let io = |kind| StoreError::Io {
            path: "wal/1.log".into(),
            source: Error::from(kind),
        };
        assert_eq!(
            io(ErrorKind::StorageFull).disk_fault(),
            Some(DiskFault::Full)
        );
        assert_eq!(
            io(ErrorKind::QuotaExceeded).disk_fault(),
            Some(DiskFault::Full)
        );
        assert_eq!(
            io(ErrorKind::ReadOnlyFilesystem).disk_fault(),
            Some(DiskFault::ReadOnly)
        );
        assert_eq!(
            io(ErrorKind::PermissionDenied).disk_fault(),
            Some(DiskFault::ReadOnly)
        );
        assert_eq!(io(ErrorKind::InvalidData).disk_fault(), None);
        assert_eq!(
            StoreError::Io {
                path: "x".into(),
                source: Error::from_raw_os_error(30)
            }
            .disk_fault(),
            Some(DiskFault::ReadOnly),
            "EROFS"
        );
        let copy = io(ErrorKind::ReadOnlyFilesystem).for_another();
        assert_eq!(copy.disk_fault(), Some(DiskFault::ReadOnly));
        let text = copy.to_string();
        assert!(
            text.contains("wal/1.log") && text.contains("read-only"),
            "{text}"
        );
        assert!(
            text.contains("nothing of this request was stored"),
            "{text}"
        );
        assert!(matches!(
            io(ErrorKind::InvalidData).for_another(),
            StoreError::WriterStopped(_)
        ));
    }
}
