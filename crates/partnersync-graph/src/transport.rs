//! The one transport layer every Graph request goes through: write-rate token bucket
//! (its rate adapted by `limiter.rs`: slowed by `x-ms-throttle-limit-percentage` before Graph
//! throttles and by 429s, recovering afterwards), bounded concurrency, `Retry-After` (fractional
//! seconds included), exponential backoff with jitter for 5xx / timeouts / dropped connections,
//! a per-request attempt cap and a shared retry budget so a dead tenant fails fast.
//!
//! graph-rs-sdk's own `retry`, `wait_for_retry_after_headers` and `concurrency_limit` are not
//! used (graph.md §5.7): they retry without backoff, ignore fractional `Retry-After`, never
//! give up on 429, and limit concurrency per request rather than per client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use graph_http::api_impl::RequestHandler;
use graph_rs_sdk::header::{HeaderMap, RETRY_AFTER};
use graph_rs_sdk::GraphFailure;
use partnersync_target::{ErrorCategory, TargetError};
use tokio::sync::Semaphore;

use crate::auth::TokenSource;
use crate::config::TransportConfig;
use crate::limiter::RateController;

/// What the transport of a [`crate::GraphTarget`] has seen so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransportStats {
    /// The write rate now (writes per second), after adapting to Graph's signals.
    pub write_rate: f64,
    /// The configured write rate.
    pub max_write_rate: f64,
    /// 429 answers received (`$batch` items included); each was waited out and retried
    /// unless the attempts ran out.
    pub throttled: u64,
    /// Responses (or `$batch` items) carrying `x-ms-throttle-limit-percentage`.
    pub pressure_signals: u64,
    /// Retries of requests or `$batch` items, for any cause.
    pub retries: u64,
}

/// The name of Graph's early-warning header.
const LIMIT_PERCENTAGE: &str = "x-ms-throttle-limit-percentage";

/// Whether a request spends the write quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Reads: only concurrency and throttling pauses apply.
    Read,
    /// Writes: also one token of the write bucket.
    Write,
    /// A `$batch` of this many writes: as many tokens.
    Writes(usize),
}

/// A completed HTTP exchange (any status).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// An earlier attempt of this request may have reached Graph (dropped connection or
    /// timeout), so a non-idempotent write may already have happened.
    pub ambiguous: bool,
    /// Why no further attempt was made, when the status was retryable.
    pub gave_up: Option<String>,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

struct Bucket {
    control: RateController,
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

struct Budget {
    tokens: f64,
}

/// Shared by every request of one [`crate::GraphTarget`].
pub(crate) struct Transport {
    config: TransportConfig,
    bucket: Mutex<Bucket>,
    budget: Mutex<Budget>,
    permits: Semaphore,
    tokens: TokenSource,
    throttled_count: AtomicU64,
    pressure_count: AtomicU64,
    retry_count: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Transport {
    pub(crate) fn new(config: TransportConfig, tokens: TokenSource) -> Self {
        let rate = config.writes_per_second.max(0.1);
        Transport {
            bucket: Mutex::new(Bucket {
                control: RateController::new(rate, Instant::now()),
                tokens: rate.max(1.0),
                last: Instant::now(),
                paused_until: None,
            }),
            budget: Mutex::new(Budget {
                tokens: config.retry_budget,
            }),
            permits: Semaphore::new(config.max_concurrency.max(1)),
            config,
            tokens,
            throttled_count: AtomicU64::new(0),
            pressure_count: AtomicU64::new(0),
            retry_count: AtomicU64::new(0),
        }
    }

    /// The token source (for `check`).
    pub(crate) fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    pub(crate) fn stats(&self) -> TransportStats {
        TransportStats {
            write_rate: lock(&self.bucket).control.rate(),
            max_write_rate: self.config.writes_per_second.max(0.1),
            throttled: self.throttled_count.load(Ordering::Relaxed),
            pressure_signals: self.pressure_count.load(Ordering::Relaxed),
            retries: self.retry_count.load(Ordering::Relaxed),
        }
    }

    /// Counts one retry (of a request or a `$batch` item).
    pub(crate) fn note_retry(&self) {
        self.retry_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Graph reported the app at `percentage` of a limit (`x-ms-throttle-limit-percentage`).
    pub(crate) fn pressure(&self, percentage: f64) {
        self.pressure_count.fetch_add(1, Ordering::Relaxed);
        lock(&self.bucket)
            .control
            .pressure(percentage, Instant::now());
    }

    /// Waits until the request may go: throttling pause, then (writes) a bucket token.
    async fn admit(&self, cost: Cost) {
        loop {
            let wait = {
                let mut b = lock(&self.bucket);
                let now = Instant::now();
                match b.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        b.paused_until = None;
                        let needed = match cost {
                            Cost::Read => return,
                            Cost::Write => 1.0,
                            Cost::Writes(n) => n.max(1) as f64,
                        };
                        let capacity = self.config.writes_per_second.max(1.0);
                        let elapsed = now.duration_since(b.last).as_secs_f64();
                        let rate = b.control.rate();
                        b.tokens = (b.tokens + elapsed * rate).min(capacity);
                        b.last = now;
                        // A batch larger than the bucket goes when the bucket is full and
                        // leaves it in debt, so the average rate still holds.
                        let threshold = needed.min(capacity);
                        if b.tokens >= threshold {
                            b.tokens -= needed;
                            return;
                        }
                        Duration::from_secs_f64((threshold - b.tokens) / rate)
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A 429: pause everyone for `delay` and lower the write rate (multiplicative decrease).
    pub(crate) fn throttled(&self, delay: Duration) {
        self.throttled_count.fetch_add(1, Ordering::Relaxed);
        let mut b = lock(&self.bucket);
        let now = Instant::now();
        let until = now + delay;
        // One decrease per throttling episode, not one per 429 of the same burst.
        let already_paused = b.paused_until.is_some_and(|p| p > now);
        if !already_paused {
            b.control.throttled(now);
            b.tokens = b.tokens.min(0.0);
        }
        if b.paused_until.is_none_or(|p| p < until) {
            b.paused_until = Some(until);
        }
    }

    /// A success without a pressure signal: recover the write rate and earn retry budget.
    fn succeeded(&self, pressure: Option<f64>) {
        match pressure {
            Some(p) => self.pressure(p),
            None => lock(&self.bucket).control.succeeded(Instant::now()),
        }
        let mut budget = lock(&self.budget);
        budget.tokens =
            (budget.tokens + self.config.retry_budget_refill).min(self.config.retry_budget);
    }

    /// Takes one retry from the budget; `false` when it is empty.
    pub(crate) fn spend_retry(&self) -> bool {
        let mut budget = lock(&self.budget);
        if budget.tokens >= 1.0 {
            budget.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub(crate) fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.backoff_base.as_secs_f64();
        let max = self.config.backoff_max.as_secs_f64();
        let exp = (base * 2f64.powi(attempt.min(30) as i32)).min(max);
        // "Equal jitter": half fixed, half random, so retries of a burst spread out.
        Duration::from_secs_f64(exp / 2.0 + fastrand::f64() * exp / 2.0)
    }

    /// Sends the request `build` makes (called again for each attempt) until it succeeds,
    /// fails for good, or the attempts or the retry budget run out. Non-success statuses are
    /// returned as `Ok(Reply)` once no retry is due; transport failures as `Err`.
    pub(crate) async fn send<F>(&self, cost: Cost, build: F) -> Result<Reply, TargetError>
    where
        F: Fn() -> RequestHandler,
    {
        let mut attempt: u32 = 0;
        let mut ambiguous = false;
        let mut refreshed_token = false;
        loop {
            self.admit(cost).await;
            // Make sure a fresh token is cached before graph-rs-sdk asks for one, so token
            // failures come back categorised.
            self.tokens.token().await?;
            let outcome = {
                let _permit = self.permits.acquire().await.map_err(|_| {
                    TargetError::new(ErrorCategory::Other, "closed", "the transport is closed")
                })?;
                match build().send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry_after = retry_after(resp.headers());
                        let pressure = limit_percentage(resp.headers());
                        match resp.bytes().await {
                            Ok(body) => Ok((status, retry_after, pressure, body.to_vec())),
                            Err(e) => Err(transport_error(&GraphFailure::ReqwestError(e))),
                        }
                    }
                    Err(e) => Err(transport_error(&e)),
                }
            };
            attempt += 1;
            let delay = match outcome {
                Ok((status, retry_after, pressure, body)) => {
                    let retryable = matches!(status, 429 | 500 | 502 | 503 | 504);
                    if status == 401 && !refreshed_token {
                        // An expired or revoked token: fetch a new one once.
                        refreshed_token = true;
                        self.tokens.invalidate().await;
                        continue;
                    }
                    if !retryable {
                        if (200..300).contains(&status) {
                            self.succeeded(pressure);
                        } else if let Some(p) = pressure {
                            self.pressure(p);
                        }
                        return Ok(Reply {
                            status,
                            body,
                            ambiguous,
                            gave_up: None,
                        });
                    }
                    let delay = match retry_after {
                        Some(d) => d.min(self.config.backoff_max),
                        None => self.backoff(attempt - 1),
                    };
                    if status == 429 {
                        self.throttled(delay);
                    }
                    let gave_up = if attempt >= self.config.max_attempts {
                        Some(format!("gave up after {attempt} attempts"))
                    } else if !self.spend_retry() {
                        Some(
                            "retry budget exhausted: Graph keeps failing, giving up without \
                             further attempts"
                                .to_string(),
                        )
                    } else {
                        None
                    };
                    if gave_up.is_some() {
                        return Ok(Reply {
                            status,
                            body,
                            ambiguous,
                            gave_up,
                        });
                    }
                    delay
                }
                Err(err) => {
                    // The request may have reached Graph before the connection went away.
                    ambiguous = true;
                    if attempt >= self.config.max_attempts {
                        return Err(TargetError::new(
                            err.category,
                            err.code,
                            format!("{} (gave up after {attempt} attempts)", err.message),
                        ));
                    }
                    if !self.spend_retry() {
                        return Err(TargetError::new(
                            err.category,
                            "retry_budget_exhausted",
                            format!(
                                "Graph keeps failing and the retry budget is spent, giving up \
                                 without further attempts; last failure: {}",
                                err.message
                            ),
                        ));
                    }
                    self.backoff(attempt - 1)
                }
            };
            self.note_retry();
            tokio::time::sleep(delay).await;
        }
    }
}

/// `x-ms-throttle-limit-percentage` as a number (0.8–1.8).
fn limit_percentage(headers: &HeaderMap) -> Option<f64> {
    parse_limit_percentage(headers.get(LIMIT_PERCENTAGE)?.to_str().ok()?)
}

pub(crate) fn parse_limit_percentage(text: &str) -> Option<f64> {
    let p: f64 = text.trim().trim_end_matches('%').trim().parse().ok()?;
    // Documented as a fraction (0.8–1.8); accept a percentage (80–180) too.
    let p = if p > 10.0 { p / 100.0 } else { p };
    (p.is_finite() && p > 0.0).then_some(p)
}

/// `Retry-After` as seconds (fractions allowed, e.g. `0.249`) or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(text)
}

pub(crate) fn parse_retry_after(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(3_600.0)));
        }
        return None;
    }
    let when = httpdate(text)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(text: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    if hms.len() != 3 || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + hms[0] * 3_600 + hms[1] * 60 + hms[2];
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

fn transport_error(err: &GraphFailure) -> TargetError {
    // Never format request details that could hold a token; reqwest errors carry the URL only.
    let text = match err {
        GraphFailure::ReqwestError(e) => e.to_string(),
        GraphFailure::Other(e) => e.to_string(),
        other => format!("{other}"),
    };
    let code = if text.contains("timed out") || text.contains("timeout") {
        "timeout"
    } else {
        "connection_failed"
    };
    let text: String = text.chars().take(300).collect();
    TargetError::new(ErrorCategory::Transient, code, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_percentage_forms() {
        assert_eq!(parse_limit_percentage("0.8"), Some(0.8));
        assert_eq!(parse_limit_percentage(" 1.25 "), Some(1.25));
        assert_eq!(parse_limit_percentage("95%"), Some(0.95));
        assert_eq!(parse_limit_percentage("high"), None);
        assert_eq!(parse_limit_percentage("-1"), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.249"), Some(Duration::from_millis(249)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
    }
}
