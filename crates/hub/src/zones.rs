//! The hub's feeds as DNS zones: the store behind the `dns` crate's [`ZoneSource`].
//!
//! Each feed is the zone `<feed>.rpz.sharedefend.` ([`zone_name`]); its SOA serial is
//! the feed's journal serial and its apex records are those [`ZoneHeader::new`]
//! gives, so a transferred zone and `sharedefend export --format rpz` are the same
//! zone. Rules become records exactly as the RPZ writer makes them
//! ([`formats::write::rpz::owner`]: names a zone cannot hold are left out, the same
//! way). IXFR reads the journal: the entries after the client's serial, condensed so
//! that a rule added and removed again in between is not sent at all. Every call is
//! one read transaction; the store sits behind a mutex, so transfers read one at a
//! time (each read is short: the records are streamed after it).

use std::collections::HashSet;
use std::sync::Mutex;

use dns::{Delta, Snapshot, SoaFields, SourceError, ZoneInfo, ZoneRule, ZoneSource};
use formats::write::rpz::ZoneHeader;
use indicator::{Domain, Indicator};
use store::{RuleText, Store};

use crate::zone_name;

/// The store as a zone source.
#[derive(Debug)]
pub struct StoreZones {
    store: Mutex<Store>,
}

impl StoreZones {
    pub fn new(store: Store) -> StoreZones {
        StoreZones {
            store: Mutex::new(store),
        }
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn store::Tx) -> store::Result<R>,
    ) -> Result<R, SourceError> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| SourceError("the store lock is poisoned".to_owned()))?;
        store.read(f).map_err(|e| SourceError(e.to_string()))
    }
}

/// The zone of `feed` at `serial`, or `None` if the feed's name makes no zone name.
fn info(feed: &str, serial: u32) -> Option<(ZoneInfo, Domain)> {
    let origin = Domain::parse(&zone_name(feed)).ok()?;
    let h = ZoneHeader::new(origin.clone(), serial);
    let info = ZoneInfo {
        feed: feed.to_owned(),
        apex: origin.to_string(),
        serial,
        soa: SoaFields {
            ttl: h.ttl,
            mname: h.mname.to_string(),
            rname: h.rname.to_string(),
            refresh: h.refresh,
            retry: h.retry,
            expire: h.expire,
            minimum: h.minimum,
            ns: h.ns.iter().map(ToString::to_string).collect(),
        },
    };
    Some((info, origin))
}

/// A stored rule as a zone record, as the RPZ writer would write it.
fn zone_rule(rule: &RuleText, origin: &Domain) -> Option<ZoneRule> {
    let indicator = match rule.trigger.strip_prefix("*.") {
        Some(base) => Indicator::Wildcard(Domain::parse(base).ok()?),
        None => Indicator::Domain(Domain::parse(&rule.trigger).ok()?),
    };
    let owner = formats::write::rpz::owner(&indicator, origin)?;
    let action = policy::Action::parse(&rule.action).unwrap_or_default();
    Some(ZoneRule { owner, action })
}

fn serial_of(tx: &mut dyn store::Tx, feed: &str) -> store::Result<Option<u32>> {
    Ok(tx
        .feeds()?
        .into_iter()
        .find(|f| f.name == feed)
        .map(|f| f.serial))
}

/// Condenses journal entries (oldest first) into one difference: a rule removed
/// after being added in the range cancels out, and vice versa.
pub fn condense(entries: &[store::JournalEntry]) -> (Vec<RuleText>, Vec<RuleText>) {
    let mut removed: HashSet<&RuleText> = HashSet::new();
    let mut added: HashSet<&RuleText> = HashSet::new();
    for e in entries {
        for r in &e.removed {
            if !added.remove(r) {
                removed.insert(r);
            }
        }
        for r in &e.added {
            if !removed.remove(r) {
                added.insert(r);
            }
        }
    }
    let mut removed: Vec<RuleText> = removed.into_iter().cloned().collect();
    let mut added: Vec<RuleText> = added.into_iter().cloned().collect();
    removed.sort();
    added.sort();
    (removed, added)
}

/// What changed in a feed after a serial, read from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedDelta {
    /// No such feed.
    NoFeed,
    /// The retained journal does not reach back to the serial asked for (or the serial
    /// is ahead of the feed's): only a full copy can bring the reader up to date.
    Unreachable { serial: u32 },
    /// The condensed difference up to `serial` (empty when the reader is current).
    Changes {
        serial: u32,
        removed: Vec<RuleText>,
        added: Vec<RuleText>,
    },
}

/// The condensed changes of `feed` from serial `from` to its current serial, in one
/// read: the journal must hold every serial from `from + 1` on.
pub fn feed_delta(tx: &mut dyn store::Tx, feed: &str, from: u32) -> store::Result<FeedDelta> {
    let Some(serial) = serial_of(tx, feed)? else {
        return Ok(FeedDelta::NoFeed);
    };
    if from > serial {
        return Ok(FeedDelta::Unreachable { serial });
    }
    if from == serial {
        return Ok(FeedDelta::Changes {
            serial,
            removed: Vec::new(),
            added: Vec::new(),
        });
    }
    let entries = tx.journal_since(feed, from)?;
    let contiguous = entries
        .iter()
        .zip(from.saturating_add(1)..)
        .all(|(e, s)| e.serial == s);
    if !contiguous || entries.last().map(|e| e.serial) != Some(serial) {
        return Ok(FeedDelta::Unreachable { serial });
    }
    let (removed, added) = condense(&entries);
    Ok(FeedDelta::Changes {
        serial,
        removed,
        added,
    })
}

impl ZoneSource for StoreZones {
    fn zones(&self) -> Result<Vec<ZoneInfo>, SourceError> {
        let feeds = self.read(|tx| tx.feeds())?;
        Ok(feeds
            .iter()
            .filter_map(|f| info(&f.name, f.serial).map(|(i, _)| i))
            .collect())
    }

    fn snapshot(&self, feed: &str) -> Result<Option<Snapshot>, SourceError> {
        let Some((serial, rules)) = self.read(|tx| {
            let Some(serial) = serial_of(tx, feed)? else {
                return Ok(None);
            };
            Ok(Some((serial, tx.feed_rules(feed)?)))
        })?
        else {
            return Ok(None);
        };
        let Some((info, origin)) = info(feed, serial) else {
            return Ok(None);
        };
        let rules = rules.iter().filter_map(|r| zone_rule(r, &origin)).collect();
        Ok(Some(Snapshot { info, rules }))
    }

    fn delta(&self, feed: &str, from: u32) -> Result<Option<Delta>, SourceError> {
        let Some((serial, entries)) = self.read(|tx| {
            let Some(serial) = serial_of(tx, feed)? else {
                return Ok(None);
            };
            // A client at or past the current serial needs no journal.
            let entries = if from >= serial {
                Vec::new()
            } else {
                tx.journal_since(feed, from)?
            };
            Ok(Some((serial, entries)))
        })?
        else {
            return Ok(None);
        };
        let Some((info, origin)) = info(feed, serial) else {
            return Ok(None);
        };
        if from < serial {
            // The journal must hold every serial from `from + 1` to the current one.
            let contiguous = entries
                .iter()
                .zip(from.saturating_add(1)..)
                .all(|(e, s)| e.serial == s);
            if !contiguous || entries.last().map(|e| e.serial) != Some(serial) {
                return Ok(None);
            }
        }
        let (removed, added) = condense(&entries);
        let conv = |rs: Vec<RuleText>| -> Vec<ZoneRule> {
            rs.iter().filter_map(|r| zone_rule(r, &origin)).collect()
        };
        Ok(Some(Delta {
            info,
            from,
            removed: conv(removed),
            added: conv(added),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(t: &str) -> RuleText {
        RuleText {
            trigger: t.to_owned(),
            action: "nxdomain".to_owned(),
        }
    }

    fn entry(serial: u32, added: &[&str], removed: &[&str]) -> store::JournalEntry {
        store::JournalEntry {
            feed: "phishing".to_owned(),
            serial,
            at: indicator::Timestamp::UNIX_EPOCH,
            batch_id: None,
            added: added.iter().map(|t| rule(t)).collect(),
            removed: removed.iter().map(|t| rule(t)).collect(),
        }
    }

    fn names(rs: &[RuleText]) -> Vec<&str> {
        rs.iter().map(|r| r.trigger.as_str()).collect()
    }

    #[test]
    fn condense_cancels_add_then_remove_and_remove_then_add() {
        let (removed, added) = condense(&[
            entry(2, &["a.example", "b.example"], &["old.example"]),
            entry(3, &["old.example", "c.example"], &["a.example"]),
            entry(4, &[], &["c.example", "gone.example"]),
        ]);
        assert_eq!(names(&removed), ["gone.example"]);
        assert_eq!(names(&added), ["b.example"]);
    }

    #[test]
    fn zone_rule_follows_the_rpz_writer() {
        let origin = Domain::parse("phishing.rpz.sharedefend").unwrap_or_else(|e| panic!("{e}"));
        let r = zone_rule(&rule("*.evil.example"), &origin);
        assert_eq!(
            r,
            Some(ZoneRule {
                owner: "*.evil.example".to_owned(),
                action: policy::Action::Nxdomain
            })
        );
        // A name ending in an rpz-* label would be read as another trigger type.
        assert_eq!(zone_rule(&rule("x.rpz-ip"), &origin), None);
    }
}
