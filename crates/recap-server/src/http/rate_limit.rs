//! Rate limiting: a global per-IP policy on every route but the probes, plus per-route policies.
//!
//! Counters live in this process (governor's GCRA: `limit` requests as a burst, refilled evenly
//! over `period`) or, with `REDIS_URL`, in Redis (a fixed window per key, counted by one atomic
//! script) so every instance shares one budget. If Redis fails mid-request the request is allowed
//! and a warning logged: a cache outage must not take the API down with it.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use super::client_ip::ClientIp;
use crate::{error::ApiError, redis::RedisHandle, state::AppState};

type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The outcome of one check, with everything the response headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is whole again (`X-RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds to wait before retrying (`Retry-After`), meaningful when denied.
    pub retry_after_secs: u64,
}

/// One named budget: `limit` requests per `period` for each key.
pub struct Policy {
    pub name: &'static str,
    pub limit: u32,
    pub period: Duration,
    backend: Backend,
    checks: AtomicU64,
}

enum Backend {
    Memory(KeyedLimiter),
    Redis(Arc<RedisHandle>),
}

/// Atomically counts one request in the key's window and returns `{count, milliseconds left}`.
const FIXED_WINDOW_SCRIPT: &str = r#"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"#;

fn ceil_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

impl Policy {
    /// A policy counted in memory, or in Redis when a handle is given.
    pub fn new(name: &'static str, limit: u32, period: Duration, redis: Option<Arc<RedisHandle>>) -> Arc<Policy> {
        let limit = limit.max(1);
        let backend = match redis {
            Some(handle) => Backend::Redis(handle),
            None => {
                let burst = NonZeroU32::new(limit).expect("limit is at least 1");
                let quota =
                    Quota::with_period(period / limit).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
                Backend::Memory(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
            }
        };
        Arc::new(Policy { name, limit, period, backend, checks: AtomicU64::new(0) })
    }

    pub async fn check(&self, key: &str) -> Decision {
        match &self.backend {
            Backend::Memory(limiter) => self.check_memory(limiter, key),
            Backend::Redis(redis) => match self.check_redis(redis, key).await {
                Ok(decision) => decision,
                Err(e) => {
                    tracing::warn!(
                        policy = self.name,
                        error = format!("{e:#}"),
                        "rate limit check skipped: Redis failed"
                    );
                    Decision {
                        allowed: true,
                        limit: self.limit,
                        remaining: self.limit,
                        reset_secs: 0,
                        retry_after_secs: 0,
                    }
                }
            },
        }
    }

    fn check_memory(&self, limiter: &KeyedLimiter, key: &str) -> Decision {
        // Forget idle keys now and then so a scan from many addresses cannot grow memory forever.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        let interval = self.period / self.limit;
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    reset_secs: ceil_secs(interval * (self.limit - remaining)),
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = ceil_secs(not_until.wait_time_from(limiter.clock().now())).max(1);
                Decision { allowed: false, limit: self.limit, remaining: 0, reset_secs: wait, retry_after_secs: wait }
            }
        }
    }

    async fn check_redis(&self, redis: &RedisHandle, key: &str) -> anyhow::Result<Decision> {
        let mut conn = redis.connection().await?;
        let redis_key = redis.key(&["rl", self.name, key]);
        let period_ms = self.period.as_millis() as u64;
        let (count, ttl_ms): (u64, i64) =
            redis::Script::new(FIXED_WINDOW_SCRIPT).key(redis_key).arg(period_ms).invoke_async(&mut conn).await?;
        let reset = (ttl_ms.max(0) as u64).div_ceil(1000);
        let allowed = count <= self.limit as u64;
        Ok(Decision {
            allowed,
            limit: self.limit,
            remaining: (self.limit as u64).saturating_sub(count) as u32,
            reset_secs: reset,
            retry_after_secs: if allowed { 0 } else { reset.max(1) },
        })
    }
}

/// Writes the `X-RateLimit-*` headers, keeping those of a stricter policy already set by an inner
/// layer (the client should see the budget that will run out first).
pub fn apply_headers(headers: &mut HeaderMap, decision: &Decision) {
    let existing =
        headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u32>().ok());
    if existing.is_some_and(|remaining| remaining <= decision.remaining) {
        return;
    }
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_secs));
}

/// Probes stay reachable for load balancers and monitoring whatever the traffic.
pub const EXEMPT_PATHS: &[&str] = &[
    "/health",
    "/api/health",
    "/api/v1/health",
    "/api/v1/health/live",
    "/api/v1/health/ready",
    "/api/v1/ready",
    "/metrics",
];

async fn enforce(policy: &Policy, key: &str, request: Request, next: Next) -> Response {
    let decision = policy.check(key).await;
    if !decision.allowed {
        let mut response = ApiError::rate_limited(decision.retry_after_secs).into_response();
        apply_headers(response.headers_mut(), &decision);
        return response;
    }
    let mut response = next.run(request).await;
    apply_headers(response.headers_mut(), &decision);
    response
}

fn client_key(request: &Request) -> String {
    request.extensions().get::<ClientIp>().map(|ip| ip.0.to_string()).unwrap_or_else(|| "unknown".into())
}

/// The global policy, applied to the whole router.
pub async fn global(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let exempt_ip = request
        .extensions()
        .get::<ClientIp>()
        .is_some_and(|ip| state.settings.rate_limit_exempt_ips.iter().any(|net| net.contains(&ip.0)));
    if exempt_ip || EXEMPT_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let key = client_key(&request);
    enforce(&state.global_rate_limit, &key, request, next).await
}

/// A per-route policy keyed by client IP: `router.route_layer(from_fn_with_state(policy, per_ip))`.
pub async fn per_ip(State(policy): State<Arc<Policy>>, request: Request, next: Next) -> Response {
    let key = client_key(&request);
    enforce(&policy, &key, request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_policy_counts_down_then_refuses_with_retry_after() {
        let policy = Policy::new("test", 3, Duration::from_secs(60), None);
        let remaining: Vec<u32> = [policy.check("a").await, policy.check("a").await, policy.check("a").await]
            .iter()
            .map(|d| {
                assert!(d.allowed);
                d.remaining
            })
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let denied = policy.check("a").await;
        assert!(!denied.allowed);
        // One request comes back every 20 s.
        assert!((1..=20).contains(&denied.retry_after_secs), "{denied:?}");
        // Another key has its own budget.
        assert!(policy.check("b").await.allowed);
    }

    #[test]
    fn stricter_headers_win() {
        let mut headers = HeaderMap::new();
        let strict = Decision { allowed: true, limit: 5, remaining: 1, reset_secs: 9, retry_after_secs: 0 };
        let loose = Decision { allowed: true, limit: 100, remaining: 90, reset_secs: 6, retry_after_secs: 0 };
        apply_headers(&mut headers, &strict);
        apply_headers(&mut headers, &loose);
        assert_eq!(headers["x-ratelimit-limit"], "5");
        assert_eq!(headers["x-ratelimit-remaining"], "1");
    }
}
