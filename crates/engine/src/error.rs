//! The engine's one error type: every failure a caller of [`crate::Engine`] can see, the user's faults apart from
//! the system's, each with a stable code.

use crate::demo::DemoError;
use crate::import::ImportError;
use waymark_analytics::AnalyticsError;
use waymark_model::ValidationError;
use waymark_store::StoreError;

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An analysis request whose values cannot be used (a bad duration, an unknown step pattern's regex).
    #[error(transparent)]
    Analysis(#[from] AnalyticsError),
    /// A request that is not the shape its type needs (missing or unknown fields, wrong types).
    #[error("{0}")]
    Malformed(String),
    /// No analysis has this name.
    #[error("{0}")]
    UnknownAnalysis(String),
    /// The thing asked for does not exist (a customer, a merge edge).
    #[error("{0}")]
    NotFound(String),
    /// An event or request body that fails validation.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A saved model that cannot be read or written.
    #[error("{0}")]
    Model(String),
    /// Rule definitions with problems (each names its field and, in a condition, its position).
    #[error("{0}")]
    Rules(waymark_rules::DefinitionErrors),
    /// A catalogue with problems (each names its field and, in a condition, its position).
    #[error("{0}")]
    Catalogue(waymark_rules::DefinitionErrors),
}

impl Error {
    /// A stable code for the failure (`invalid_query`, `invalid_json`, `unknown_analysis`, `not_found`, the
    /// validation codes, `store_unavailable`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Analysis(_) => "invalid_query",
            Error::Malformed(_) => "invalid_json",
            Error::UnknownAnalysis(_) => "unknown_analysis",
            Error::NotFound(_) | Error::Store(StoreError::NotFound(_)) => "not_found",
            Error::Validation(error) => error.code(),
            Error::Import(ImportError::Store(error)) | Error::Store(error)
                if error.disk_fault() == Some(waymark_store::DiskFault::Full) =>
            {
                "store_full"
            }
            Error::Import(ImportError::Store(error)) | Error::Store(error)
                if error.disk_fault() == Some(waymark_store::DiskFault::ReadOnly) =>
            {
                "store_read_only"
            }
            Error::Import(ImportError::Store(_)) | Error::Demo(_) | Error::Store(_) => {
                "store_unavailable"
            }
            Error::Model(_) => "model_unavailable",
            Error::Rules(_) => "invalid_rules",
            Error::Catalogue(_) => "invalid_catalogue",
            Error::Import(_) => "invalid_import",
        }
    }

    /// Whether the caller's input caused it (HTTP 4xx, exit code 2) rather than the system (5xx, exit 1).
    pub fn is_user_fault(&self) -> bool {
        match self {
            Error::Analysis(_)
            | Error::Malformed(_)
            | Error::UnknownAnalysis(_)
            | Error::NotFound(_)
            | Error::Validation(_)
            | Error::Rules(_)
            | Error::Catalogue(_) => true,
            Error::Import(ImportError::Store(_)) => false,
            Error::Import(_) => true,
            Error::Store(error) => matches!(
                error,
                StoreError::NotFound(_)
                    | StoreError::Locked(_)
                    | StoreError::UnsupportedFormat { .. }
            ),
            Error::Demo(_) | Error::Model(_) => false,
        }
    }
}
