//! Per-key rate limits (a token bucket per key, through `governor`) and the deadline on request bodies.

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;
use waymark_engine::keys::Role;

/// Requests a second each key of a role may make (a burst of twice that is allowed); `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Write keys. Unlimited by default: one write key ships inside every copy of a web page or app, so its
    /// traffic is all the customers' traffic, and refusing it would lose events.
    pub write: Option<NonZeroU32>,
    /// Read keys (analyses, customers, the UI).
    pub read: Option<NonZeroU32>,
    /// Admin keys.
    pub admin: Option<NonZeroU32>,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            write: None,
            // A UI page asks for a dozen analyses at once; a script polling a customer's timeline asks far less.
            read: NonZeroU32::new(100),
            admin: NonZeroU32::new(50),
        }
    }
}

impl RateLimits {
    /// No limit for any key.
    pub fn unlimited() -> RateLimits {
        RateLimits {
            write: None,
            read: None,
            admin: None,
        }
    }
}

impl RateLimits {
    fn of(&self, role: Role) -> Option<NonZeroU32> {
        match role {
            Role::Write => self.write,
            Role::Read => self.read,
            Role::Admin => self.admin,
        }
    }
}

/// One token bucket per key and role.
pub(crate) struct KeyLimiter {
    limits: RateLimits,
    write: Option<DefaultKeyedRateLimiter<String>>,
    read: Option<DefaultKeyedRateLimiter<String>>,
    admin: Option<DefaultKeyedRateLimiter<String>>,
}

fn bucket(rate: Option<NonZeroU32>) -> Option<DefaultKeyedRateLimiter<String>> {
    rate.map(|rate| {
        let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not zero"));
        RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
    })
}

impl KeyLimiter {
    pub(crate) fn new(limits: RateLimits) -> KeyLimiter {
        KeyLimiter {
            limits,
            write: bucket(limits.write),
            read: bucket(limits.read),
            admin: bucket(limits.admin),
        }
    }

    /// Takes one request from the caller's bucket, or says how long to wait. Callers of an open server (no key)
    /// are not limited.
    pub(crate) fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(key_id) = &caller.key_id else {
            return Ok(());
        };
        let limiter = match caller.role {
            Role::Write => &self.write,
            Role::Read => &self.read,
            Role::Admin => &self.admin,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        match limiter.check_key(key_id) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let rate = self.limits.of(caller.role).map_or(0, NonZeroU32::get);
                Err(rate_limited(&caller.name, rate, wait))
            }
        }
    }
}

fn rate_limited(name: &str, rate: u32, wait: Duration) -> ApiError {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError {
        retry_after: Some(seconds),
        ..ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "the key `{name}` may make {rate} requests a second (bursts of {}); retry after {seconds} s (the Retry-After header), or have an admin raise the limit (`serve --rate-limit-read|--rate-limit-admin|--rate-limit-write`)",
                rate.saturating_mul(2)
            ),
        )
    }
}

/// Reads the whole request body within `timeout` (and at most `limit` bytes), then hands the handler the
/// buffered body: a client that trickles its body (a slow-loris upload) gets `408` instead of holding a
/// connection and a handler. Requests without a body pass straight through.
pub(crate) async fn body_deadline(
    State((timeout, limit)): State<(Duration, usize)>,
    request: Request,
    next: Next,
) -> Response {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            let error = if too_large {
                ApiError::new(
                    ErrorCode::BatchTooLarge,
                    format!("the request body is larger than {limit} bytes; send smaller batches"),
                )
            } else {
                ApiError::new(
                    ErrorCode::UnreadableBody,
                    format!("could not read the request body: {error}"),
                )
            };
            return crate::routes::reject_request(error).into_response();
        }
        Err(_) => {
            let error = ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s; send it at once (`serve --body-timeout` sets the limit)",
                    timeout.as_secs()
                ),
            );
            let mut response = crate::routes::reject_request(error).into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Adds `Retry-After` to a 429 or 503 answer that knows when to come back.
pub(crate) fn retry_after(response: &mut Response, seconds: u64) {
    if matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, id: Option<&str>) -> Caller {
        Caller {
            role,
            key_id: id.map(str::to_string),
            name: "test".into(),
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_and_other_keys_are_untouched() {
        let limiter = KeyLimiter::new(RateLimits {
            write: None,
            read: NonZeroU32::new(5),
            admin: NonZeroU32::new(1),
        });
        let reader = caller(Role::Read, Some("k1"));
        for _ in 0..10 {
            limiter.check(&reader).expect("a burst of twice the rate");
        }
        let refused = limiter.check(&reader).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.retry_after.unwrap() >= 1);
        assert!(
            refused.message.contains("5 requests a second"),
            "{}",
            refused.message
        );
        // Another read key has its own bucket; write keys are unlimited; an open server's caller too.
        limiter.check(&caller(Role::Read, Some("k2"))).unwrap();
        for _ in 0..1000 {
            limiter.check(&caller(Role::Write, Some("w"))).unwrap();
            limiter.check(&caller(Role::Admin, None)).unwrap();
        }
    }
}
