//! How strongly the evidence says "block this", and how that fades with time.
//!
//! Each sighting counts as `trust × confidence × category weight`. Sightings from
//! sources in one independence group count once (the strongest): feeds that re-publish
//! each other are one witness, not two. Independent groups combine as a noisy-OR,
//! `1 − Π(1 − s_g)`, so corroboration raises the score without ever passing 1. The
//! result then decays with time since the indicator was last seen, by the polynomial
//! of MISP's decaying models; a new sighting re-arms it.

use indicator::Category;
use jiff::{SignedDuration, Timestamp};

use crate::Config;

/// One observation as analysis sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub source: String,
    /// Trust in the source, 0–1.
    pub trust: f64,
    /// Sources in one group count once; `None` means the source is its own group.
    pub group: Option<String>,
    pub category: Category,
    /// 0–100; `None` takes the configured default.
    pub confidence: Option<u8>,
    pub last_seen: Timestamp,
    /// The source's own expiry: past it, the sighting no longer counts.
    pub valid_until: Option<Timestamp>,
}

impl Sighting {
    fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.source)
    }
}

/// One independence group's contribution.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScore {
    pub group: String,
    /// The source whose sighting counted for the group.
    pub source: String,
    pub value: f64,
}

/// A score with its breakdown, for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The decayed score, 0–1.
    pub value: f64,
    /// The score before decay.
    pub base: f64,
    /// The decay factor applied, 0–1.
    pub decay: f64,
    pub groups: Vec<GroupScore>,
    /// The category that decides lifetime and feed (the strongest sighting's).
    pub category: Category,
    /// Time since last seen.
    pub age: SignedDuration,
    /// Sightings ignored because their `valid_until` has passed.
    pub expired_sightings: usize,
}

impl Score {
    pub fn zero() -> Score {
        Score {
            value: 0.0,
            base: 0.0,
            decay: 0.0,
            groups: Vec::new(),
            category: Category::Unknown,
            age: SignedDuration::ZERO,
            expired_sightings: 0,
        }
    }
}

/// The MISP decaying-model factor: `1 − (age/lifetime)^(1/speed)`, clamped to 0–1.
pub fn decay_factor(age: SignedDuration, lifetime: SignedDuration, speed: f64) -> f64 {
    let lifetime = lifetime.as_secs_f64();
    if lifetime <= 0.0 || speed <= 0.0 {
        return 0.0;
    }
    let t = age.as_secs_f64().max(0.0);
    if t >= lifetime {
        return 0.0;
    }
    (1.0 - (t / lifetime).powf(1.0 / speed)).clamp(0.0, 1.0)
}

/// Scores the sightings of one indicator at time `now`.
pub fn score(sightings: &[Sighting], now: Timestamp, config: &Config) -> Score {
    let mut groups: Vec<GroupScore> = Vec::new();
    let mut best: Option<(f64, Category)> = None;
    let mut last_seen: Option<Timestamp> = None;
    let mut expired = 0;
    for s in sightings {
        if s.valid_until.is_some_and(|v| v <= now) {
            expired += 1;
            continue;
        }
        let confidence =
            f64::from(s.confidence.unwrap_or(config.default_confidence).min(100)) / 100.0;
        let value = s.trust.clamp(0.0, 1.0) * confidence * config.weight(s.category);
        if best.is_none_or(|(v, _)| value > v) {
            best = Some((value, s.category));
        }
        last_seen = Some(last_seen.map_or(s.last_seen, |l: Timestamp| l.max(s.last_seen)));
        match groups.iter_mut().find(|g| g.group == s.group()) {
            Some(g) if g.value >= value => {}
            Some(g) => {
                g.value = value;
                g.source = s.source.clone();
            }
            None => groups.push(GroupScore {
                group: s.group().to_owned(),
                source: s.source.clone(),
                value,
            }),
        }
    }
    let (Some((_, category)), Some(last_seen)) = (best, last_seen) else {
        return Score {
            expired_sightings: expired,
            ..Score::zero()
        };
    };
    let base = 1.0 - groups.iter().map(|g| 1.0 - g.value).product::<f64>();
    let age = now.duration_since(last_seen).max(SignedDuration::ZERO);
    let d = config.decay(category);
    let decay = decay_factor(age, d.lifetime, d.speed);
    groups.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then_with(|| a.group.cmp(&b.group))
    });
    Score {
        value: base * decay,
        base,
        decay,
        groups,
        category,
        age,
        expired_sightings: expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn sighting(source: &str, group: Option<&str>, last_seen: &str) -> Sighting {
        Sighting {
            source: source.into(),
            trust: 0.8,
            group: group.map(Into::into),
            category: Category::Phishing,
            confidence: Some(80),
            last_seen: t(last_seen),
            valid_until: None,
        }
    }

    #[test]
    fn one_group_counts_once() {
        let now = t("2026-01-01T00:00:00Z");
        let c = Config::default();
        let one = score(
            &[sighting("a", Some("abuse.ch"), "2026-01-01T00:00:00Z")],
            now,
            &c,
        );
        let same_group = score(
            &[
                sighting("a", Some("abuse.ch"), "2026-01-01T00:00:00Z"),
                sighting("b", Some("abuse.ch"), "2026-01-01T00:00:00Z"),
            ],
            now,
            &c,
        );
        let independent = score(
            &[
                sighting("a", Some("abuse.ch"), "2026-01-01T00:00:00Z"),
                sighting("c", None, "2026-01-01T00:00:00Z"),
            ],
            now,
            &c,
        );
        assert!((one.value - 0.64).abs() < 1e-9, "{one:?}");
        assert_eq!(one.value, same_group.value);
        assert!(
            (independent.value - (1.0 - 0.36 * 0.36)).abs() < 1e-9,
            "{independent:?}"
        );
        assert_eq!(independent.groups.len(), 2);
    }

    #[test]
    fn decays_to_zero_at_lifetime() {
        let c = Config::default();
        let s = [sighting("a", None, "2026-01-01T00:00:00Z")];
        let fresh = score(&s, t("2026-01-01T00:00:00Z"), &c);
        let day = score(&s, t("2026-01-02T00:00:00Z"), &c);
        let end = score(&s, t("2026-01-04T00:00:00Z"), &c);
        assert!(fresh.value > day.value && day.value > 0.0);
        // speed 0.5: 1 - (1/3)^2 = 8/9 after one day of three.
        assert!((day.decay - 8.0 / 9.0).abs() < 1e-9, "{day:?}");
        assert_eq!(end.value, 0.0);
    }

    #[test]
    fn expired_sightings_do_not_count() {
        let c = Config::default();
        let mut s = sighting("a", None, "2026-01-01T00:00:00Z");
        s.valid_until = Some(t("2026-01-01T06:00:00Z"));
        let r = score(&[s], t("2026-01-01T07:00:00Z"), &c);
        assert_eq!(r.value, 0.0);
        assert_eq!(r.expired_sightings, 1);
    }

    #[test]
    fn decay_factor_edges() {
        let l = SignedDuration::from_hours(10);
        assert_eq!(decay_factor(SignedDuration::ZERO, l, 0.5), 1.0);
        assert_eq!(decay_factor(SignedDuration::from_hours(10), l, 0.5), 0.0);
        assert_eq!(decay_factor(SignedDuration::from_hours(-3), l, 0.5), 1.0);
        assert_eq!(
            decay_factor(SignedDuration::from_hours(1), SignedDuration::ZERO, 0.5),
            0.0
        );
    }
}
