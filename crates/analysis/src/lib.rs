//! The hub's judgement: what, from the evidence, is safe to block in DNS.
//!
//! The worst failure of a protective DNS service is blocking a legitimate site for
//! millions of people; the second worst is being slow to block a live scam. This crate
//! holds the rules that balance the two, as pure functions over the evidence: a score
//! from source trust, confidence, category and independent corroboration, decaying
//! with time; guard rails in a fixed order (public suffixes, allowlists, blast radius,
//! circuit breaker); and a [`Decision`] that always says why. No I/O.

mod breaker;
mod config;
mod decide;
mod lists;
mod score;

pub use breaker::{FeedChange, Trip, check as check_batch, popular_names};
pub use config::*;
pub use decide::{Context, Decision, Evidence, Outcome, Reason, ReasonCode, decide};
pub use lists::{Entry, Extent, Hit, Lists, Role, is_private_tenant};
pub use score::{GroupScore, Score, Sighting, decay_factor, score};

use indicator::Category;

/// The published feeds a category's rules go to, besides `all`.
pub fn feed_for(category: Category) -> Option<&'static str> {
    match category {
        Category::Phishing => Some("phishing"),
        Category::Malware => Some("malware"),
        Category::C2 | Category::Botnet => Some("c2"),
        Category::Scam => Some("scam"),
        Category::Spam | Category::Unknown => None,
    }
}

/// The default feeds, each with its own zone and serial.
pub const DEFAULT_FEEDS: [&str; 5] = ["phishing", "malware", "c2", "scam", "all"];
