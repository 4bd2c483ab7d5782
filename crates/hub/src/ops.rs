//! Operator actions: the decay sweep, allowlist loads, delisting, and review of held
//! batches. Each is one transaction ending in a recompute, and each leaves an audit
//! record saying who did it and why.

use analysis::Role;
use formats::{Format, Parsed};
use indicator::{Domain, Indicator, Timestamp};
use store::{AllowRow, AuditEntry, BatchStatus, StoreError};

use crate::Hub;
use crate::engine::{Applied, recompute, unique_ids};

/// What a sweep withdrew.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub examined: usize,
    pub applied: Applied,
}

/// What an allowlist load did.
#[derive(Debug, Clone, Default)]
pub struct AllowlistReport {
    pub list: String,
    pub role: String,
    pub entries: usize,
    pub skipped: usize,
    /// Rules withdrawn because the list now protects their names.
    pub applied: Applied,
}

/// How to take an allowlist file.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowlistOptions<'a> {
    /// List name (default: the warninglist's own name, else the format's).
    pub list: Option<&'a str>,
    /// Role (default: by the list's kind, see [`Role::for_warninglist`]).
    pub role: Option<Role>,
    /// Plain-list entries cover their subdomains too.
    pub subdomains: bool,
    /// Popularity lists: keep the top N (default [`DEFAULT_POPULAR_TOP`]).
    pub popular_top: Option<u32>,
}

/// Default cut-off for popularity lists loaded as allowlists.
pub const DEFAULT_POPULAR_TOP: u32 = 10_000;

fn tag_value<'a>(tags: &'a [String], prefix: &str) -> Option<&'a str> {
    tags.iter().find_map(|t| t.strip_prefix(prefix))
}

impl Hub {
    /// Re-decides every indicator that is published or kept (URL-only, address-only),
    /// withdrawing what has decayed or expired.
    pub fn sweep(&mut self, now: Timestamp, who: &str) -> store::Result<SweepReport> {
        let (psl, lists, config) = (&self.psl, &self.lists, &self.config);
        self.store.write(|tx| {
            let mut ids = tx.published_indicator_ids()?;
            for state in [store::STATE_URL_ONLY, store::STATE_ADDRESS_ONLY] {
                ids.extend(tx.decisions_in_state(state)?.into_iter().map(|(i, _)| i.id));
            }
            let ids = unique_ids(ids);
            let cx = analysis::Context { psl, lists, config };
            let applied = recompute(tx, &ids, &cx, now, None)?;
            if applied.rules_removed() + applied.rules_added() > 0 {
                tx.audit(&AuditEntry {
                    at: now,
                    who: who.to_owned(),
                    action: "sweep".to_owned(),
                    target: "all feeds".to_owned(),
                    reason: format!(
                        "{} rules withdrawn as evidence aged",
                        applied.rules_removed()
                    ),
                })?;
            }
            Ok(SweepReport {
                examined: ids.len(),
                applied,
            })
        })
    }

    /// Loads (replaces) the allowlist `list` from a parsed file, then withdraws any
    /// published rule the list now protects.
    pub fn load_allowlist(
        &mut self,
        options: &AllowlistOptions<'_>,
        parsed: &Parsed,
        now: Timestamp,
        who: &str,
    ) -> store::Result<AllowlistReport> {
        let AllowlistOptions {
            list,
            role,
            subdomains,
            popular_top,
        } = *options;
        let list_name = list
            .map(str::to_owned)
            .or_else(|| {
                parsed
                    .records
                    .iter()
                    .find_map(|r| r.meta.as_deref().and_then(|m| m.description.clone()))
            })
            .unwrap_or_else(|| parsed.format.name().to_owned());
        let role = role.unwrap_or(match parsed.format {
            Format::Warninglist => Role::for_warninglist(&list_name),
            Format::TrancoCsv => Role::Popular,
            _ => Role::Allow,
        });
        let top = popular_top.unwrap_or(DEFAULT_POPULAR_TOP);
        let mut rows = Vec::with_capacity(parsed.records.len());
        let mut skipped = 0;
        for r in &parsed.records {
            let tags: &[String] = r.meta.as_deref().map_or(&[], |m| &m.tags);
            let rank = tag_value(tags, "rank:").and_then(|s| s.parse::<u32>().ok());
            if role == Role::Popular && rank.is_some_and(|n| n > top) {
                continue;
            }
            let wl_type = tag_value(tags, "warninglist-type:");
            let extent = match wl_type {
                Some("regex") => {
                    skipped += 1;
                    continue;
                }
                Some("substring") => {
                    rows.push(AllowRow {
                        list: list_name.clone(),
                        role: role.as_str().to_owned(),
                        extent: "substring".to_owned(),
                        value: r.value.trim().to_ascii_lowercase(),
                        rank,
                    });
                    continue;
                }
                Some("hostname") => "subtree",
                Some(_) => "exact",
                None if role == Role::Popular
                    || subdomains
                    || tags.iter().any(|t| t == "subdomains") =>
                {
                    "subtree"
                }
                None => "exact",
            };
            let (value, extent) = match r.normalise() {
                Ok(Indicator::Domain(d)) => (d.to_string(), extent),
                Ok(Indicator::Wildcard(d)) => (d.to_string(), "subtree"),
                Ok(Indicator::Url(u)) => match u.domain() {
                    Some(d) => (d.to_string(), "exact"),
                    None => {
                        skipped += 1;
                        continue;
                    }
                },
                Ok(Indicator::Ip(ip)) => (ip.to_string(), "cidr"),
                Ok(Indicator::Cidr(net)) => (net.to_string(), "cidr"),
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            };
            rows.push(AllowRow {
                list: list_name.clone(),
                role: role.as_str().to_owned(),
                extent: extent.to_owned(),
                value,
                rank,
            });
        }
        let entries = rows.len();
        self.store.write(|tx| {
            tx.allow_replace_list(&list_name, &rows)?;
            tx.audit(&AuditEntry {
                at: now,
                who: who.to_owned(),
                action: "allowlist-load".to_owned(),
                target: list_name.clone(),
                reason: format!("{entries} entries, role {}", role.as_str()),
            })
        })?;
        self.reload_lists()?;
        let swept = self.sweep(now, who)?;
        Ok(AllowlistReport {
            list: list_name,
            role: role.as_str().to_owned(),
            entries,
            skipped,
            applied: swept.applied,
        })
    }

    /// Withdraws `name` at once: an allowlist entry in the `delisted` list, a
    /// recompute of every indicator on that name, and an audit record.
    pub fn delist(
        &mut self,
        name: &str,
        reason: &str,
        now: Timestamp,
        who: &str,
    ) -> store::Result<Applied> {
        let domain = Domain::parse(name).map_err(|e| {
            StoreError::Invalid(format!("delist takes a domain name: {name:?}: {e}"))
        })?;
        let row = AllowRow {
            list: "delisted".to_owned(),
            role: Role::Protected.as_str().to_owned(),
            extent: "exact".to_owned(),
            value: domain.to_string(),
            rank: None,
        };
        self.store
            .write(|tx| tx.allow_add(std::slice::from_ref(&row)))?;
        self.reload_lists()?;
        let (psl, lists, config) = (&self.psl, &self.lists, &self.config);
        self.store.write(|tx| {
            let ids: Vec<i64> = tx
                .indicators_by_host(domain.as_str())?
                .into_iter()
                .map(|i| i.id)
                .collect();
            let cx = analysis::Context { psl, lists, config };
            let applied = recompute(tx, &unique_ids(ids), &cx, now, None)?;
            tx.audit(&AuditEntry {
                at: now,
                who: who.to_owned(),
                action: "delist".to_owned(),
                target: domain.to_string(),
                reason: reason.to_owned(),
            })?;
            Ok(applied)
        })
    }

    /// Approves a held batch: its observations join the evidence and the changes are
    /// published, bypassing the breaker (a person looked). A held snapshot also
    /// withdraws the source's observations of what it no longer lists, unless a newer
    /// batch of that source came since (then it is refused: reject it).
    pub fn approve(
        &mut self,
        batch_id: i64,
        note: &str,
        now: Timestamp,
        who: &str,
    ) -> store::Result<Applied> {
        let (psl, lists, config) = (&self.psl, &self.lists, &self.config);
        self.store.write(|tx| {
            let batch = tx
                .batch(batch_id)?
                .ok_or_else(|| StoreError::Invalid(format!("no batch {batch_id}")))?;
            if batch.status != BatchStatus::Held {
                return Err(StoreError::Invalid(format!(
                    "batch {batch_id} is {}, not held",
                    batch.status.as_str()
                )));
            }
            let rows = tx.held_take(batch_id)?;
            tx.observations_merge(&rows)?;
            let mut ids: Vec<i64> = rows.iter().map(|r| r.indicator_id).collect();
            if tx.batch_is_snapshot(batch_id)? {
                // A full snapshot: what the source no longer lists goes too. Only the
                // source's newest batch can say what it lists now.
                if let Some(newer) = tx.batches(None)?.into_iter().find(|b| {
                    b.source_id == batch.source_id
                        && b.id > batch_id
                        && b.status != BatchStatus::Rejected
                }) {
                    return Err(StoreError::Invalid(format!(
                        "batch {batch_id} is a snapshot superseded by batch {} of the same \
                         source; reject it",
                        newer.id
                    )));
                }
                let unlisted = crate::ingest::unlisted_by(tx, batch.source_id, &ids)?;
                tx.observations_delete(batch.source_id, &unlisted)?;
                ids.extend(unlisted);
            }
            let ids = unique_ids(ids);
            let cx = analysis::Context { psl, lists, config };
            let applied = recompute(tx, &ids, &cx, now, Some(batch_id))?;
            tx.batch_set_status(batch_id, BatchStatus::Approved, note)?;
            tx.audit(&AuditEntry {
                at: now,
                who: who.to_owned(),
                action: "approve".to_owned(),
                target: format!("batch {batch_id}"),
                reason: note.to_owned(),
            })?;
            Ok(applied)
        })
    }

    /// Rejects a held batch: its observations are discarded.
    pub fn reject(
        &mut self,
        batch_id: i64,
        note: &str,
        now: Timestamp,
        who: &str,
    ) -> store::Result<usize> {
        self.store.write(|tx| {
            let batch = tx
                .batch(batch_id)?
                .ok_or_else(|| StoreError::Invalid(format!("no batch {batch_id}")))?;
            if batch.status != BatchStatus::Held {
                return Err(StoreError::Invalid(format!(
                    "batch {batch_id} is {}, not held",
                    batch.status.as_str()
                )));
            }
            let dropped = tx.held_take(batch_id)?.len();
            tx.batch_set_status(batch_id, BatchStatus::Rejected, note)?;
            tx.audit(&AuditEntry {
                at: now,
                who: who.to_owned(),
                action: "reject".to_owned(),
                target: format!("batch {batch_id}"),
                reason: note.to_owned(),
            })?;
            Ok(dropped)
        })
    }
}
