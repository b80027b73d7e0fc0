//! Query-string and path parameters. axum's `Query` and `Path` answer a malformed parameter with a plain-text 400;
//! every other error of the API is a JSON body with a code, so these extractors give `invalid_query` naming the
//! parameter and the value it could not read, and `invalid_path` for a path segment that is not UTF-8.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::new(
                ErrorCode::InvalidPath,
                format!(
                    "{}; a path segment must be UTF-8, percent-encoded",
                    rejection.body_text()
                ),
            )),
        }
    }
}

fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|error| {
        let name = error.path().to_string();
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.into_owned());
        let message = match value {
            Some(value) => format!(
                "query parameter {name}={value:?} is not valid: {}; see the parameter's schema in /v1/openapi.json",
                error.inner()
            ),
            None => format!("query string: {}", error.inner()),
        };
        ApiError::new(ErrorCode::InvalidQuery, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Page {
        limit: Option<usize>,
        state: Option<String>,
    }

    #[test]
    fn a_malformed_parameter_is_named_with_its_value() {
        let error = parse::<Page>("state=dead&limit=null").unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidQuery);
        assert!(
            error.message.contains("limit=\"null\""),
            "{}",
            error.message
        );
        let error = parse::<Page>("limit=-1").unwrap_err();
        assert!(error.message.contains("limit=\"-1\""), "{}", error.message);
    }

    #[test]
    fn good_and_absent_parameters_are_read() {
        let page: Page = parse("limit=5&state=dead&other=x").unwrap();
        assert_eq!(page.limit, Some(5));
        assert_eq!(page.state.as_deref(), Some("dead"));
        let page: Page = parse("").unwrap();
        assert!(page.limit.is_none() && page.state.is_none());
    }
}
