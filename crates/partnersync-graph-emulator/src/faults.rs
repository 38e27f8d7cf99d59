//! Fault injection: per-route rules that fire with a (seeded) probability or follow a script,
//! so a storm of 429s, 5xx, dropped connections and latency can be replayed exactly.

use serde::{Deserialize, Serialize};

use crate::util::{glob_match, SplitMix64};

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (429, 500, 503, 504, …) and Graph's error body for it.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` in seconds (written per the configured mode); 429 defaults to 1.
        #[serde(default)]
        retry_after: Option<f64>,
    },
    /// Close the connection without a complete response.
    Drop,
    /// Delay the request, then handle it normally.
    Latency {
        /// Added latency in milliseconds.
        ms: u64,
    },
}

/// How a rule decides to fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Fire `fault` with this probability on each matching request.
    Random {
        /// Probability in [0, 1].
        probability: f64,
        /// The fault to inject.
        fault: Fault,
    },
    /// Consume one step per matching request; `None` lets the request through. After the last
    /// step the rule is exhausted.
    Script(Vec<Option<Fault>>),
}

/// A fault-injection rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Only requests with this method (any if `None`).
    #[serde(default)]
    pub method: Option<String>,
    /// Glob over the request path (`*` matches anything), e.g. `/v1.0/users*`. Batch items are
    /// matched with their path under `/v1.0`.
    pub path: String,
    /// When to fire.
    #[serde(flatten)]
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule that fires `fault` with `probability` on `path` (glob) for any method.
    pub fn random(path: &str, probability: f64, fault: Fault) -> Self {
        FaultRule {
            method: None,
            path: path.to_string(),
            action: FaultAction::Random { probability, fault },
        }
    }

    /// A rule that plays `steps` in order on `path` (glob) for any method.
    pub fn script(path: &str, steps: Vec<Option<Fault>>) -> Self {
        FaultRule {
            method: None,
            path: path.to_string(),
            action: FaultAction::Script(steps),
        }
    }

    /// Restricts the rule to one HTTP method.
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }
}

#[derive(Debug)]
pub(crate) struct FaultInjector {
    rules: Vec<(FaultRule, usize)>,
    rng: SplitMix64,
    seed: u64,
}

impl FaultInjector {
    pub(crate) fn new(seed: u64) -> Self {
        FaultInjector {
            rules: Vec::new(),
            rng: SplitMix64::new(seed),
            seed,
        }
    }

    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|(r, _)| r.clone()).collect()
    }

    /// Replaces all rules and restarts the random sequence from the seed.
    pub(crate) fn set(&mut self, rules: Vec<FaultRule>) {
        self.rules = rules.into_iter().map(|r| (r, 0)).collect();
        self.rng = SplitMix64::new(self.seed);
    }

    pub(crate) fn add(&mut self, rule: FaultRule) {
        self.rules.push((rule, 0));
    }

    pub(crate) fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = SplitMix64::new(seed);
    }

    /// The faults for one request: any latencies, then at most one terminal fault.
    pub(crate) fn decide(&mut self, method: &str, path: &str) -> Vec<Fault> {
        let mut out = Vec::new();
        for (rule, pos) in self.rules.iter_mut() {
            if rule
                .method
                .as_ref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || !glob_match(&rule.path, path)
            {
                continue;
            }
            let fired = match &rule.action {
                FaultAction::Random { probability, fault } => {
                    (self.rng.next_f64() < *probability).then(|| fault.clone())
                }
                FaultAction::Script(steps) => {
                    let step = steps.get(*pos).cloned().flatten();
                    if *pos < steps.len() {
                        *pos += 1;
                    }
                    step
                }
            };
            if let Some(f) = fired {
                let terminal = !matches!(f, Fault::Latency { .. });
                out.push(f);
                if terminal {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_play_in_order_and_seeds_repeat() {
        let mut f = FaultInjector::new(1);
        f.set(vec![FaultRule::script(
            "/v1.0/users*",
            vec![
                Some(Fault::Drop),
                None,
                Some(Fault::Status {
                    status: 503,
                    retry_after: None,
                }),
            ],
        )]);
        assert_eq!(f.decide("GET", "/v1.0/users"), vec![Fault::Drop]);
        assert!(f.decide("GET", "/v1.0/users").is_empty());
        assert_eq!(f.decide("GET", "/v1.0/users/x").len(), 1);
        assert!(f.decide("GET", "/v1.0/users").is_empty());

        let run = |seed| {
            let mut f = FaultInjector::new(seed);
            f.set(vec![FaultRule::random("*", 0.5, Fault::Drop)]);
            (0..64)
                .map(|_| f.decide("GET", "/x").len())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}
