//! The tunables of analysis, each with a documented default.
//!
//! Every number here trades missed scams against wrongly blocked sites, so each one is
//! named, defaulted in one place and overridable from the hub's configuration.

use indicator::Category;
use jiff::SignedDuration;

/// How fast evidence about one category of harm goes stale (MISP decaying model:
/// `score(t) = base · (1 − (t/lifetime)^(1/speed))`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decay {
    pub lifetime: SignedDuration,
    /// Above 1 the score falls fast at first; below 1 it holds, then falls near the end.
    pub speed: f64,
}

/// Phishing sites live about a day; three days covers re-use without keeping dead names.
pub const PHISHING_LIFETIME_HOURS: i64 = 72;
/// Scam shops and investment scams stay up longer than credential phishing.
pub const SCAM_LIFETIME_HOURS: i64 = 14 * 24;
/// Malware distribution and C2 infrastructure is re-used for weeks.
pub const MALWARE_LIFETIME_HOURS: i64 = 30 * 24;
pub const C2_LIFETIME_HOURS: i64 = 30 * 24;
pub const BOTNET_LIFETIME_HOURS: i64 = 30 * 24;
pub const SPAM_LIFETIME_HOURS: i64 = 7 * 24;
pub const UNKNOWN_LIFETIME_HOURS: i64 = 7 * 24;
/// Slow start, fast end: a name stays blocked most of its lifetime, then drops.
pub const DEFAULT_SPEED: f64 = 0.5;

/// A decision publishes at or above this score…
pub const PUBLISH_THRESHOLD: f64 = 0.5;
/// …and a published rule is withdrawn only below this one (hysteresis, so a score
/// near the threshold does not flap in and out of the zone).
pub const WITHDRAW_THRESHOLD: f64 = 0.3;
/// Confidence assumed when a feed gives none.
pub const DEFAULT_CONFIDENCE: u8 = 80;
/// A host blocked because of a URL on it (not a report about the host itself) counts
/// this much of the URL's score: a URL is weaker evidence against its whole host.
pub const URL_HOST_WEIGHT: f64 = 0.9;

/// The circuit breaker trips when an import would add more than this share of a feed's
/// rules…
pub const BREAKER_ADD_RATIO: f64 = 0.20;
/// …or remove more than this share…
pub const BREAKER_REMOVE_RATIO: f64 = 0.10;
/// …provided the feed already has at least this many rules (a new feed is built by
/// its first imports; the popularity check still guards it).
pub const BREAKER_MIN_RULES: usize = 100;
/// Names ranked at or above this in the popularity list trip the breaker when a batch
/// names them, and are never published.
pub const POPULAR_TOP: u32 = 10_000;

/// All analysis settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub publish_threshold: f64,
    pub withdraw_threshold: f64,
    pub default_confidence: u8,
    pub url_host_weight: f64,
    pub breaker_add_ratio: f64,
    pub breaker_remove_ratio: f64,
    pub breaker_min_rules: usize,
    pub popular_top: u32,
    decay: [Decay; 7],
    weight: [f64; 7],
}

impl Default for Config {
    fn default() -> Config {
        let d = |hours: i64| Decay {
            lifetime: SignedDuration::from_hours(hours),
            speed: DEFAULT_SPEED,
        };
        Config {
            publish_threshold: PUBLISH_THRESHOLD,
            withdraw_threshold: WITHDRAW_THRESHOLD,
            default_confidence: DEFAULT_CONFIDENCE,
            url_host_weight: URL_HOST_WEIGHT,
            breaker_add_ratio: BREAKER_ADD_RATIO,
            breaker_remove_ratio: BREAKER_REMOVE_RATIO,
            breaker_min_rules: BREAKER_MIN_RULES,
            popular_top: POPULAR_TOP,
            // Order of Category::ALL.
            decay: [
                d(PHISHING_LIFETIME_HOURS),
                d(MALWARE_LIFETIME_HOURS),
                d(C2_LIFETIME_HOURS),
                d(SCAM_LIFETIME_HOURS),
                d(SPAM_LIFETIME_HOURS),
                d(BOTNET_LIFETIME_HOURS),
                d(UNKNOWN_LIFETIME_HOURS),
            ],
            // How much a report of this category says "block it in DNS": spam and
            // unlabelled reports are weaker reasons to stop a lookup.
            weight: [1.0, 1.0, 1.0, 0.95, 0.6, 0.9, 0.7],
        }
    }
}

fn index(c: Category) -> usize {
    Category::ALL.iter().position(|&x| x == c).unwrap_or(6)
}

impl Config {
    pub fn decay(&self, c: Category) -> Decay {
        self.decay[index(c)]
    }

    pub fn set_decay(&mut self, c: Category, decay: Decay) {
        self.decay[index(c)] = decay;
    }

    pub fn weight(&self, c: Category) -> f64 {
        self.weight[index(c)]
    }

    pub fn set_weight(&mut self, c: Category, weight: f64) {
        self.weight[index(c)] = weight.clamp(0.0, 1.0);
    }
}
