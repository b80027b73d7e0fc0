//! Why an analysis cannot run: one variant per kind of fault, every one the request's (running a valid,
//! prepared analysis cannot fail).

/// A request the analyses cannot answer as written; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyticsError {
    /// A request field holds a value the analysis cannot use (a duration that is not one, an empty step list, a
    /// depth out of range).
    #[error("{message}")]
    Field {
        /// The field, as the request names it (`window`, `steps`, `filter.split_gap`).
        field: String,
        message: String,
    },
    /// A condition or step rule that cannot be compiled against the journeys (an invalid regular expression, a
    /// property column that was not loaded).
    #[error("{0}")]
    Condition(String),
}

impl AnalyticsError {
    /// A bad value of `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> AnalyticsError {
        AnalyticsError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A condition or rule that does not compile.
    pub fn condition(message: impl Into<String>) -> AnalyticsError {
        AnalyticsError::Condition(message.into())
    }
}
