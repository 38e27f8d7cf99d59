//! Throttling modelled on Graph's identity limits: token buckets for resource units per app
//! and tenant (sized by tenant class), writes per app and tenant, writes per tenant, and
//! invitations per tenant. Windows are divided by the configured time scale.

use std::collections::HashMap;
use std::time::Instant;

use crate::config::{RetryAfterMode, ThrottleConfig};

/// What one request costs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Charge {
    pub resource_units: u32,
    pub write: bool,
    pub invitation: bool,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Outcome of a throttling check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Allowed {
        /// `x-ms-throttle-limit-percentage`, once above 80 % of the RU quota.
        limit_percentage: Option<f64>,
    },
    Throttled {
        retry_after_secs: f64,
        scope: String,
        information: &'static str,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Throttler {
    buckets: HashMap<String, Bucket>,
}

impl Throttler {
    pub(crate) fn reset(&mut self) {
        self.buckets.clear();
    }

    /// Checks and charges one request. `users` is the tenant's user count (size class).
    pub(crate) fn check(
        &mut self,
        cfg: &ThrottleConfig,
        app: &str,
        tenant: &str,
        users: usize,
        charge: Charge,
    ) -> Verdict {
        if !cfg.enabled {
            return Verdict::Allowed {
                limit_percentage: None,
            };
        }
        let scale = if cfg.time_scale > 0.0 {
            cfg.time_scale
        } else {
            1.0
        };
        let ru_limit = match users {
            0..=49 => cfg.resource_units_per_10s[0],
            50..=500 => cfg.resource_units_per_10s[1],
            _ => cfg.resource_units_per_10s[2],
        };
        // (key, capacity, window, cost, scope, information)
        let mut wanted: Vec<(String, f64, f64, f64, String, &'static str)> = Vec::new();
        wanted.push((
            format!("ru/{app}/{tenant}"),
            ru_limit as f64,
            10.0 / scale,
            charge.resource_units.max(1) as f64,
            format!(
                "Tenant_Application/{}/{app}/{tenant}",
                if charge.write { "ReadWrite" } else { "Read" }
            ),
            "ResourceUnitLimitExceeded",
        ));
        wanted.push((
            format!("app-ru/{app}"),
            cfg.app_resource_units_per_20s as f64,
            20.0 / scale,
            charge.resource_units.max(1) as f64,
            format!(
                "Application/{}/{app}/{tenant}",
                if charge.write { "ReadWrite" } else { "Read" }
            ),
            "ResourceUnitLimitExceeded",
        ));
        if charge.write {
            wanted.push((
                format!("app-w/{app}"),
                cfg.app_all_tenants_write_limit as f64,
                300.0 / scale,
                1.0,
                format!("Application/Write/{app}/{tenant}"),
                "WriteLimitExceeded",
            ));
            wanted.push((
                format!("w/{app}/{tenant}"),
                cfg.app_write_limit as f64,
                cfg.app_write_window_secs / scale,
                1.0,
                format!("Tenant_Application/Write/{app}/{tenant}"),
                "WriteLimitExceeded",
            ));
            wanted.push((
                format!("tw/{tenant}"),
                cfg.tenant_write_limit as f64,
                cfg.tenant_write_window_secs / scale,
                1.0,
                format!("Tenant/Write/{app}/{tenant}"),
                "WriteLimitExceeded",
            ));
        }
        if charge.invitation {
            wanted.push((
                format!("inv/{tenant}"),
                cfg.invitation_limit as f64,
                cfg.invitation_window_secs / scale,
                1.0,
                format!("Tenant/Write/{app}/{tenant}"),
                "WriteLimitExceeded",
            ));
        }
        let now = Instant::now();
        // Refill, then find the bucket that cannot pay with the longest wait.
        let mut worst: Option<(f64, String, &'static str)> = None;
        for (key, cap, window, cost, scope, info) in &wanted {
            let rate = cap / window.max(1e-9);
            let b = self.buckets.entry(key.clone()).or_insert(Bucket {
                tokens: *cap,
                last: now,
            });
            let elapsed = now.duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(*cap);
            b.last = now;
            if b.tokens < *cost {
                if cfg.charge_while_throttled {
                    b.tokens = (b.tokens - cost).max(-cap);
                }
                let wait = (cost - b.tokens) / rate;
                if worst.as_ref().map_or(true, |(w, _, _)| *w < wait) {
                    worst = Some((wait, scope.clone(), *info));
                }
            }
        }
        if let Some((wait, scope, information)) = worst {
            return Verdict::Throttled {
                retry_after_secs: wait,
                scope,
                information,
            };
        }
        // `x-ms-throttle-limit-percentage`: the use of the most-used limit this request
        // counts against (resource units or writes), once above 80 %.
        let mut limit_percentage: Option<f64> = None;
        for (key, cap, _, cost, _, _) in &wanted {
            if let Some(b) = self.buckets.get_mut(key) {
                b.tokens -= cost;
                let used = 1.0 - b.tokens / cap;
                if used > 0.8 && limit_percentage.is_none_or(|p| p < used) {
                    limit_percentage = Some(used.min(1.8));
                }
            }
        }
        if !cfg.limit_percentage_header {
            limit_percentage = None;
        }
        Verdict::Allowed { limit_percentage }
    }
}

/// Formats a `Retry-After` value.
pub(crate) fn format_retry_after(secs: f64, mode: RetryAfterMode) -> String {
    match mode {
        RetryAfterMode::Integer => format!("{}", secs.ceil().max(1.0) as u64),
        RetryAfterMode::Fractional => format!("{:.3}", secs.max(0.001)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_quota_holds_and_recovers() {
        let cfg = ThrottleConfig {
            app_write_limit: 5,
            app_write_window_secs: 0.05,
            ..ThrottleConfig::default()
        };
        let mut t = Throttler::default();
        let w = Charge {
            resource_units: 1,
            write: true,
            invitation: false,
        };
        for _ in 0..5 {
            assert!(matches!(
                t.check(&cfg, "a", "t", 1, w),
                Verdict::Allowed { .. }
            ));
        }
        match t.check(&cfg, "a", "t", 1, w) {
            Verdict::Throttled {
                retry_after_secs,
                information,
                ..
            } => {
                assert_eq!(information, "WriteLimitExceeded");
                std::thread::sleep(std::time::Duration::from_secs_f64(retry_after_secs + 0.005));
            }
            v => panic!("not throttled: {v:?}"),
        }
        assert!(matches!(
            t.check(&cfg, "a", "t", 1, w),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn resource_units_and_app_wide_quotas() {
        let cfg = ThrottleConfig {
            resource_units_per_10s: [4, 5, 8],
            app_all_tenants_write_limit: 2,
            ..ThrottleConfig::default()
        };
        let mut t = Throttler::default();
        let read = Charge {
            resource_units: 2,
            ..Charge::default()
        };
        assert!(matches!(
            t.check(&cfg, "a", "t", 1, read),
            Verdict::Allowed { .. }
        ));
        // 2 of 4 RU left: the next 2-RU read pushes usage to 100 % and reports it.
        match t.check(&cfg, "a", "t", 1, read) {
            Verdict::Allowed {
                limit_percentage: Some(p),
            } => assert!(p > 0.99 && p <= 1.0, "{p}"),
            v => panic!("expected a limit percentage: {v:?}"),
        }
        assert!(matches!(
            t.check(&cfg, "a", "t", 1, read),
            Verdict::Throttled {
                information: "ResourceUnitLimitExceeded",
                ..
            }
        ));
        let write = Charge {
            resource_units: 1,
            write: true,
            invitation: false,
        };
        for tenant in ["t1", "t2"] {
            assert!(matches!(
                t.check(&cfg, "b", tenant, 1, write),
                Verdict::Allowed { .. }
            ));
        }
        match t.check(&cfg, "b", "t3", 1, write) {
            Verdict::Throttled { scope, .. } => assert!(scope.starts_with("Application/Write/b/")),
            v => panic!("not throttled: {v:?}"),
        }
    }

    #[test]
    fn the_limit_percentage_reports_the_write_quota_too() {
        let cfg = ThrottleConfig {
            app_write_limit: 10,
            ..ThrottleConfig::default()
        };
        let mut t = Throttler::default();
        let w = Charge {
            resource_units: 1,
            write: true,
            invitation: false,
        };
        let mut seen = Vec::new();
        for _ in 0..10 {
            match t.check(&cfg, "a", "t", 1, w) {
                Verdict::Allowed { limit_percentage } => seen.push(limit_percentage),
                v => panic!("throttled early: {v:?}"),
            }
        }
        // Quiet up to 80 % of the 10-write quota, then 0.9 and 1.0.
        assert!(seen[..8].iter().all(Option::is_none), "{seen:?}");
        assert!(seen[8].is_some_and(|p| (p - 0.9).abs() < 0.01), "{seen:?}");
        assert!(seen[9].is_some_and(|p| (p - 1.0).abs() < 0.01), "{seen:?}");
        let quiet = ThrottleConfig {
            app_write_limit: 10,
            limit_percentage_header: false,
            ..ThrottleConfig::default()
        };
        let mut t = Throttler::default();
        for _ in 0..10 {
            assert_eq!(
                t.check(&quiet, "a", "t", 1, w),
                Verdict::Allowed {
                    limit_percentage: None
                }
            );
        }
    }

    #[test]
    fn retry_after_formats() {
        assert_eq!(format_retry_after(2.128, RetryAfterMode::Integer), "3");
        assert_eq!(format_retry_after(0.1, RetryAfterMode::Integer), "1");
        assert_eq!(
            format_retry_after(2.1281, RetryAfterMode::Fractional),
            "2.128"
        );
    }
}
