//! One source's report of one indicator, and the vocabulary it is reported in.
//!
//! Feeds label their data in many dialects (`botnet_cc`, `#phishing`, `malware_download`,
//! `TLP:AMBER+STRICT`, `tlp:white`); analysis needs one set of categories, one TLP
//! scale (TLP 2.0) and one confidence scale (0–100). The mapping from dialect to these
//! lives here so every reader maps the same way.

use std::fmt;

use jiff::Timestamp;

use crate::Indicator;

/// What kind of harm an indicator is reported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Phishing,
    Malware,
    C2,
    Scam,
    Spam,
    Botnet,
    Unknown,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Phishing,
        Category::Malware,
        Category::C2,
        Category::Scam,
        Category::Spam,
        Category::Botnet,
        Category::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Phishing => "phishing",
            Category::Malware => "malware",
            Category::C2 => "c2",
            Category::Scam => "scam",
            Category::Spam => "spam",
            Category::Botnet => "botnet",
            Category::Unknown => "unknown",
        }
    }

    /// Maps the labels feeds use (STIX `indicator_types`, ThreatFox `threat_type`,
    /// URLhaus `threat`, TweetFeed hashtags, MISP tags) to a category. Unrecognised
    /// labels give `None` so a caller can try the next label.
    pub fn from_label(label: &str) -> Option<Category> {
        let l = label.trim().trim_start_matches('#').to_ascii_lowercase();
        let l = l.as_str();
        let c = match l {
            "phishing" | "phish" | "credential-phishing" | "credential_phishing" => {
                Category::Phishing
            }
            "malware" | "malicious-activity" | "malware_download" | "payload_delivery"
            | "payload" | "ransomware" | "stealer" | "infostealer" | "loader" | "rat"
            | "trojan" | "exploit" => Category::Malware,
            "c2" | "cc" | "c&c" | "botnet_cc" | "command-and-control" | "c2_panel" => Category::C2,
            "scam" | "fraud" | "fake-shop" | "fakeshop" | "tech-support-scam"
            | "investment-scam" | "smishing" | "browser_locker" => Category::Scam,
            "spam" | "spammer" => Category::Spam,
            "botnet" | "compromised" => Category::Botnet,
            "unknown" | "anomalous-activity" | "anonymization" | "benign" | "attribution" => {
                Category::Unknown
            }
            _ => return None,
        };
        Some(c)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown category {s:?}"))
    }
}

/// Traffic Light Protocol 2.0. Ordered from least to most restricted, so a
/// clearance check is `tlp <= clearance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }

    /// Reads `TLP:AMBER+STRICT`, `tlp:white` (TLP 1.0 WHITE is 2.0 CLEAR), `amber` …
    pub fn from_label(label: &str) -> Option<Tlp> {
        let l = label.trim().to_ascii_lowercase();
        let l = l.strip_prefix("tlp:").unwrap_or(&l).trim();
        Some(match l {
            "clear" | "white" => Tlp::Clear,
            "green" => Tlp::Green,
            "amber" => Tlp::Amber,
            "amber+strict" | "amber-strict" | "amber_strict" => Tlp::AmberStrict,
            "red" => Tlp::Red,
            _ => return None,
        })
    }

    /// The TLP of a STIX marking-definition id: the well-known TLP 1.0 and 2.0 ids
    /// from the STIX 2.1 specification (section 7.2.1.4) and its TLP 2.0 extension.
    pub fn from_stix_marking_id(id: &str) -> Option<Tlp> {
        Some(match id {
            // TLP 1.0 markings defined in STIX 2.1
            "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9" => Tlp::Clear,
            "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da" => Tlp::Green,
            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82" => Tlp::Amber,
            "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed" => Tlp::Red,
            // TLP 2.0 markings (OASIS extension)
            "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487" => Tlp::Clear,
            "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb" => Tlp::Green,
            "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421" => Tlp::Amber,
            "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003" => Tlp::AmberStrict,
            "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1" => Tlp::Red,
            _ => return None,
        })
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tlp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tlp::from_label(s).ok_or_else(|| format!("unknown TLP {s:?}"))
    }
}

/// Confidence 0–100 (STIX 2.1 scale). Construction clamps, so the invariant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Confidence(u8);

impl Confidence {
    pub const MAX: Confidence = Confidence(100);

    /// Values above 100 are clamped to 100.
    pub fn new(value: u32) -> Confidence {
        Confidence(value.min(100) as u8)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One source's report of one indicator (DESIGN.md vocabulary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub indicator: Indicator,
    /// Name of the source (feed or partner) that reported it.
    pub source: Box<str>,
    pub category: Category,
    pub confidence: Confidence,
    pub tlp: Tlp,
    pub tags: Vec<Box<str>>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The source's own end of validity (STIX `valid_until`), if it gave one.
    pub valid_until: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlp_order_and_labels() {
        assert!(
            Tlp::Clear < Tlp::Green && Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red
        );
        assert_eq!(Tlp::from_label("TLP:WHITE"), Some(Tlp::Clear));
        assert_eq!(Tlp::from_label("tlp:amber+strict"), Some(Tlp::AmberStrict));
        assert_eq!(Tlp::from_label("tlp:ex:chr"), None);
        assert_eq!("red".parse::<Tlp>(), Ok(Tlp::Red));
    }

    #[test]
    fn categories() {
        assert_eq!(Category::from_label("#phishing"), Some(Category::Phishing));
        assert_eq!(Category::from_label("botnet_cc"), Some(Category::C2));
        assert_eq!(
            Category::from_label("malware_download"),
            Some(Category::Malware)
        );
        assert_eq!(Category::from_label("whatever"), None);
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
    }

    #[test]
    fn confidence_clamps() {
        assert_eq!(Confidence::new(250).get(), 100);
        assert_eq!(Confidence::new(42).get(), 42);
    }
}
