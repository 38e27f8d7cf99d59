//! The adaptive write rate: how fast the token bucket in `transport.rs` refills.
//!
//! Graph tells a client it is nearing a quota before it throttles: once an app uses more than
//! 80 % of an identity limit, responses carry `x-ms-throttle-limit-percentage` (0.8–1.8,
//! graph.md §4.1). [`RateController`] slows down on that signal, harder the closer to the
//! limit, halves on a 429, holds still for a while after either, and then recovers linearly
//! to the configured rate. The aim is to settle just under the quota *before* Graph starts
//! rejecting (rejected writes still count against the quota), and to go back to full speed
//! when the pressure is gone.
//!
//! Pure logic over explicit instants, so it is unit-tested without a clock.

use std::time::{Duration, Instant};

/// No speed-up for this long after a pressure signal or a 429.
const HOLD: Duration = Duration::from_secs(2);
/// At most one pressure cut per this interval: many responses of the same moment carry the
/// header, and one cut must be allowed to take effect before the next.
const CUT_INTERVAL: Duration = Duration::from_millis(250);
/// Recovery speed: this fraction of the configured rate per second.
const RECOVERY_PER_SEC: f64 = 0.1;
/// The rate never drops below this fraction of the configured rate.
const FLOOR: f64 = 0.1;

/// The current write rate, between a floor and the configured maximum.
#[derive(Debug, Clone)]
pub(crate) struct RateController {
    max: f64,
    rate: f64,
    hold_until: Option<Instant>,
    last_cut: Option<Instant>,
    last_recovery: Instant,
}

impl RateController {
    pub(crate) fn new(max: f64, now: Instant) -> Self {
        let max = if max.is_finite() { max.max(0.1) } else { 0.1 };
        RateController {
            max,
            rate: max,
            hold_until: None,
            last_cut: None,
            last_recovery: now,
        }
    }

    /// Writes per second now.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    fn floor(&self) -> f64 {
        (self.max * FLOOR).max(0.1)
    }

    /// A response said the app is at `percentage` (0.8–1.8) of a limit.
    pub(crate) fn pressure(&mut self, percentage: f64, now: Instant) {
        if !percentage.is_finite() || percentage < 0.8 {
            return;
        }
        self.hold_until = Some(now + HOLD);
        self.last_recovery = now;
        if self
            .last_cut
            .is_some_and(|t| now.duration_since(t) < CUT_INTERVAL)
        {
            return;
        }
        // Near the limit: ease off; at or over it: back off hard.
        let factor = if percentage < 0.9 {
            0.9
        } else if percentage < 1.0 {
            0.75
        } else {
            0.5
        };
        self.rate = (self.rate * factor).max(self.floor());
        self.last_cut = Some(now);
    }

    /// A 429: halve the rate (once per throttling episode; the caller decides what an
    /// episode is) and hold.
    pub(crate) fn throttled(&mut self, now: Instant) {
        self.rate = (self.rate * 0.5).max(self.floor());
        self.hold_until = Some(now + HOLD);
        self.last_cut = Some(now);
        self.last_recovery = now;
    }

    /// A write went through without a pressure signal: recover linearly with time, unless
    /// a recent signal holds the rate.
    pub(crate) fn succeeded(&mut self, now: Instant) {
        if self.hold_until.is_some_and(|h| now < h) {
            self.last_recovery = now;
            return;
        }
        // Recovery counts from the end of the hold, not from the signal.
        let from = match self.hold_until {
            Some(h) if h > self.last_recovery => h,
            _ => self.last_recovery,
        };
        let elapsed = now.saturating_duration_since(from).as_secs_f64();
        self.rate = (self.rate + self.max * RECOVERY_PER_SEC * elapsed).min(self.max);
        self.last_recovery = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn pressure_slows_down_harder_near_the_limit_and_not_below_the_floor() {
        let t0 = Instant::now();
        let mut c = RateController::new(100.0, t0);
        c.pressure(0.7, t0);
        assert_eq!(c.rate(), 100.0, "below 80 % is not a signal");
        c.pressure(0.8, t0);
        assert!((c.rate() - 90.0).abs() < 1e-9);
        // A second signal of the same moment does not cut again.
        c.pressure(0.8, at(t0, 100));
        assert!((c.rate() - 90.0).abs() < 1e-9);
        c.pressure(0.95, at(t0, 300));
        assert!((c.rate() - 67.5).abs() < 1e-9);
        c.pressure(1.2, at(t0, 600));
        assert!((c.rate() - 33.75).abs() < 1e-9);
        for i in 1..40 {
            c.pressure(1.8, at(t0, 600 + i * 300));
        }
        assert!((c.rate() - 10.0).abs() < 1e-9, "floor: {}", c.rate());
        c.pressure(f64::NAN, at(t0, 20_000));
        assert!((c.rate() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn recovery_waits_for_the_hold_then_is_linear_and_capped() {
        let t0 = Instant::now();
        let mut c = RateController::new(100.0, t0);
        c.throttled(t0);
        assert_eq!(c.rate(), 50.0);
        c.succeeded(at(t0, 1_000));
        assert_eq!(c.rate(), 50.0, "held");
        c.succeeded(at(t0, 2_000));
        assert_eq!(c.rate(), 50.0, "hold ends; recovery counts from here");
        c.succeeded(at(t0, 3_000));
        assert!((c.rate() - 60.0).abs() < 1e-9, "{}", c.rate());
        c.succeeded(at(t0, 5_000));
        assert!((c.rate() - 80.0).abs() < 1e-9, "{}", c.rate());
        c.succeeded(at(t0, 60_000));
        assert_eq!(c.rate(), 100.0, "never above the configured rate");
    }

    /// A client configured at three times the quota against a Graph-like write bucket that
    /// reports its use above 80 %: the client settles under the quota without a single 429
    /// and still uses it (the bucket stays nearly drained, so no quota is wasted).
    #[test]
    fn settles_under_the_quota_without_being_throttled() {
        let (capacity, refill) = (3_000.0_f64, 20.0_f64);
        let t0 = Instant::now();
        let mut c = RateController::new(60.0, t0);
        let mut tokens = capacity;
        let mut sent = 0.0_f64;
        let mut credit = 0.0_f64;
        let step = Duration::from_millis(10);
        let mut now = t0;
        let mut throttled = 0;
        for _ in 0..(600 * 100) {
            now += step;
            tokens = (tokens + refill * step.as_secs_f64()).min(capacity);
            credit += c.rate() * step.as_secs_f64();
            while credit >= 1.0 {
                credit -= 1.0;
                if tokens < 1.0 {
                    throttled += 1;
                    c.throttled(now);
                    continue;
                }
                tokens -= 1.0;
                sent += 1.0;
                let used = 1.0 - tokens / capacity;
                if used > 0.8 {
                    c.pressure((used * 10.0).floor() / 10.0 + 0.05, now);
                } else {
                    c.succeeded(now);
                }
            }
        }
        assert_eq!(throttled, 0);
        // 600 s at 20/s plus the initial bucket down to the 80 % mark, where Graph starts
        // warning and the client stops drawing it down.
        let best = refill * 600.0 + capacity * 0.8;
        assert!(sent > 0.97 * best, "sent {sent} of {best}");
    }
}
