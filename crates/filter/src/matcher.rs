//! The filter's policy on the compact matcher of the `policy` crate: what
//! `sharedefend filter serve` runs.
//!
//! [`MatcherScreen`] answers the query path's questions ([`Screen`]) from a
//! [`policy::LivePolicy`] (lock-free reads, atomic swaps) and gives verdicts the
//! same meaning as [`crate::ReferenceScreen`], the hash-map oracle it is tested
//! against: zones in order, per-zone overrides, log-only zones reported only when
//! no enforcing zone matches, the allowlist above everything, RPZ-CLIENT-IP before
//! QNAME, each CNAME-chain name checked in order, then the answer's addresses.
//!
//! Besides the rules, a verdict needs what the `policy` crate does not know: each
//! zone's name and SOA for the rewritten answer, and redirect targets and local data
//! in wire form. Those live beside the policy in a [`ZoneMeta`] snapshot, swapped
//! before the rules on a reload; the responses needing wire form are encoded once
//! at load (a rule whose data cannot be encoded is a diagnostic, not a rule), so
//! the blocked path only looks them up. A zone file is read line by line into the
//! [`RuleSetBuilder`] (never a whole `Parsed` of a million records).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use dns::front::{self, LocalData, PolicySoa, PolicyZone, Screen, Verdict};
use formats::readers::rpz;
use indicator::Domain;
use policy::{
    LivePolicy, Matched, Policy, QueryName, Redirect, Response, RuleSet, RuleSetBuilder, Trigger,
    Zone, ZoneOptions, ZoneTrigger,
};

use crate::reference::{ZonePolicy, allowlist_zone};
use crate::state::{OwnerDelta, OwnerRecords};
use crate::zones::{LoadError, LoadReport, ZoneFile};
use crate::{Allowlist, rpz_ip_owner};

/// What verdicts show beside the rules: per zone its name, SOA and mode, and the
/// responses that need wire form.
#[derive(Debug)]
pub struct ZoneMeta {
    zones: Vec<Arc<PolicyZone>>,
    /// Redirects and local data (rules' and overrides'), encoded once.
    encoded: HashMap<Response, front::Policy>,
    allow_zone: Arc<PolicyZone>,
}

impl ZoneMeta {
    /// This snapshot with zone `index` shown as `zone`, and `encoded` added (the
    /// responses of older rules stay, for queries in flight).
    fn with_zone(
        &self,
        index: usize,
        zone: Arc<PolicyZone>,
        encoded: HashMap<Response, front::Policy>,
    ) -> Result<ZoneMeta, String> {
        let mut zones = self.zones.clone();
        *zones
            .get_mut(index)
            .ok_or_else(|| format!("no zone at position {index}"))? = zone;
        let mut all = self.encoded.clone();
        all.extend(encoded);
        Ok(ZoneMeta {
            zones,
            encoded: all,
            allow_zone: self.allow_zone.clone(),
        })
    }
}

/// One zone file read for the matcher.
#[derive(Debug)]
pub struct MatcherZone {
    pub zone: Arc<PolicyZone>,
    pub rules: RuleSet,
    pub report: LoadReport,
    encoded: HashMap<Response, front::Policy>,
}

/// The SOA used when a file has none (plain `name CNAME .` lists).
fn default_soa() -> PolicySoa {
    PolicySoa {
        ttl: 60,
        mname: "localhost".into(),
        rname: "root.localhost".into(),
        serial: 0,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: 60,
    }
}

/// The dns crate's form of a response, when it needs one (redirects, local data).
fn encode(response: &Response) -> Result<Option<front::Policy>, String> {
    Ok(match response {
        Response::Redirect(r) => Some(front::Policy::Redirect(Arc::new(front::Redirect::new(
            &r.to_string(),
        )?))),
        Response::LocalData(rrs) => {
            let rrs: Vec<(String, String)> = rrs
                .iter()
                .map(|r| (r.rtype.to_string(), r.rdata.to_string()))
                .collect();
            Some(front::Policy::Local(Arc::new(LocalData::new(&rrs)?)))
        }
        _ => None,
    })
}

/// A zone's override as the `policy` crate states it.
pub fn zone_options(policy: &ZonePolicy) -> Result<ZoneOptions, String> {
    let response = match policy {
        ZonePolicy::Given | ZonePolicy::LogOnly => None,
        ZonePolicy::Nxdomain => Some(Response::Nxdomain),
        ZonePolicy::Nodata => Some(Response::Nodata),
        ZonePolicy::Passthru => Some(Response::Passthru),
        ZonePolicy::Drop => Some(Response::Drop),
        ZonePolicy::TcpOnly => Some(Response::TcpOnly),
        ZonePolicy::Cname(t) => {
            let t = t.trim_end_matches('.');
            let (prepend_qname, name) = match t.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            let target = Domain::parse(name).map_err(|e| format!("cname target {t:?}: {e}"))?;
            Some(Response::Redirect(Redirect {
                target,
                prepend_qname,
            }))
        }
    };
    Ok(ZoneOptions {
        policy: response,
        log_only: *policy == ZonePolicy::LogOnly,
    })
}

impl MatcherZone {
    /// A zone without rules: a secondary zone before its first transfer (or
    /// dropped at its SOA expire). It holds its place in the order of precedence.
    pub fn empty(name: &str, policy: &ZonePolicy) -> Result<MatcherZone, String> {
        let zone = Arc::new(PolicyZone::new(name, default_soa())?);
        let mut encoded = HashMap::new();
        if let Some(r) = zone_options(policy)?.policy
            && let Some(p) = encode(&r)?
        {
            encoded.insert(r, p);
        }
        Ok(MatcherZone {
            report: LoadReport {
                zone: zone.name().to_owned(),
                rules: 0,
                not_applied: 0,
                diagnostics: Vec::new(),
            },
            zone,
            rules: RuleSetBuilder::new().build(),
            encoded,
        })
    }
}

/// The rule an owner's records state, if any (`None`: the apex, records that are
/// not policy, NSDNAME/NSIP triggers, or records that do not make a rule, which
/// are logged: a full load would report them as diagnostics).
fn owner_rule(owner: &OwnerRecords, apex: &str) -> Option<(policy::ZoneTrigger, Response)> {
    let record = match owner.policy(apex) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(zone = apex, owner = %owner.owner, error = %e, "owner not used");
            return None;
        }
    };
    match policy::rpz::rule_from_record(&record) {
        Ok(rule) => Some(rule),
        Err(policy::rpz::Unused::Invalid(e)) => {
            tracing::warn!(zone = apex, owner = %owner.owner, error = %e, "owner not used");
            None
        }
        Err(_) => None,
    }
}

/// Rules as a zone file's owners come in: the builder, the responses encoded to wire
/// form, and what could not be used.
struct Loader {
    builder: RuleSetBuilder,
    encoded: HashMap<Response, front::Policy>,
    diagnostics: Vec<String>,
    not_applied: usize,
}

impl Loader {
    fn new(rules: usize, name_bytes: usize) -> Loader {
        Loader {
            builder: RuleSetBuilder::with_capacity_and_bytes(rules, name_bytes),
            encoded: HashMap::new(),
            diagnostics: Vec::new(),
            not_applied: 0,
        }
    }

    fn take(&mut self, owner: rpz::OwnerPolicy<'_>) {
        let rule = policy::rpz::rule_from_policy(&owner.value, owner.hint, &owner.policy);
        let (trigger, response) = match rule {
            Ok(rule) => rule,
            Err(policy::rpz::Unused::NotPolicy) => return,
            Err(policy::rpz::Unused::NotApplied(_)) => {
                self.not_applied += 1;
                return;
            }
            Err(e @ policy::rpz::Unused::Invalid(_)) => {
                self.diagnostics.push(format!("line {}: {e}", owner.line));
                return;
            }
        };
        if matches!(response, Response::Redirect(_) | Response::LocalData(_))
            && !self.encoded.contains_key(&response)
        {
            match encode(&response) {
                Ok(Some(p)) => {
                    self.encoded.insert(response.clone(), p);
                }
                Ok(None) => {}
                Err(e) => {
                    self.diagnostics.push(format!(
                        "line {}: {} not loaded: {e}",
                        owner.line, owner.value
                    ));
                    return;
                }
            }
        }
        // An owner whose records are not adjacent comes again (`parse_each`): merged
        // as the reader merges an owner's records.
        let old = match &trigger {
            ZoneTrigger::Qname(t) => self.builder.insert_name(t, response.clone()),
            other => self.builder.insert(other.clone(), response.clone()),
        };
        if let Some(old) = old
            && let Some((kept, problem)) = merged(old, response)
        {
            if let Some(problem) = problem {
                self.diagnostics
                    .push(format!("line {}: {trigger} {problem}", owner.line));
            }
            self.builder.insert(trigger, kept);
        }
    }
}

/// How much of a zone file is read at a time.
const PIECE: usize = 4 << 20;

/// Reads a zone file piece by piece ([`rpz::StreamReader`]): never the whole file in
/// memory beside the rules. `Ok(None)` when the file must be read whole instead
/// (gzip, or no absolute SOA owner in its first piece), decided before any rule is
/// taken.
fn read_pieces(
    path: &std::path::Path,
    piece: usize,
) -> Result<Option<(rpz::ZoneHead, formats::Parsed, Loader)>, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let size = file
        .metadata()
        .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
        .unwrap_or(0);
    let mut buf: Vec<u8> = Vec::with_capacity(piece.min(size.saturating_add(1)));
    // Fills `buf` up to PIECE bytes; true at the end of the file.
    let mut fill = |buf: &mut Vec<u8>| -> Result<bool, String> {
        let want = piece.saturating_sub(buf.len()) as u64;
        let got = (&mut file)
            .take(want)
            .read_to_end(buf)
            .map_err(|e| format!("cannot read: {e}"))?;
        Ok((got as u64) < want || want == 0 && buf.is_empty())
    };
    let mut eof = fill(&mut buf)?;
    if buf.starts_with(&[0x1f, 0x8b]) {
        return Ok(None);
    }
    // Whole lines only; the rest waits for the next piece.
    let cut = |buf: &[u8], eof: bool| {
        if eof {
            buf.len()
        } else {
            memchr::memrchr(b'\n', buf).map_or(0, |i| i + 1)
        }
    };
    let mut end = cut(&buf, eof);
    if end == 0 && !eof {
        // A first "line" of 4 MiB: not a zone file we can read by pieces.
        return Ok(None);
    }
    let first = formats::decode(buf.get(..end).unwrap_or_default()).map_err(|e| e.to_string())?;
    let head = rpz::head(&first);
    if head.soa.is_none() && !eof {
        return Ok(None);
    }
    // One rule per line at most, and a name no longer than the line's first word:
    // counted in the first piece and scaled to the file's size, with 5% to spare for
    // the spread of names over shards. Arenas sized close to what they will hold
    // leave little to free, and an allocator that keeps freed memory (mimalloc does,
    // for a while) little to keep.
    let (lines, words) = first_words(&first);
    let (rules, name_bytes) = if eof {
        (lines, words)
    } else {
        let scale = |n: usize| {
            let n = u128::try_from(n).unwrap_or(u128::MAX);
            let total =
                n * u128::try_from(size).unwrap_or(0) / u128::try_from(end.max(1)).unwrap_or(1);
            usize::try_from(total + total / 20).unwrap_or(usize::MAX)
        };
        (scale(lines), scale(words))
    };
    let mut loader = Loader::new(rules, name_bytes);
    let mut reader = rpz::StreamReader::new();
    reader
        .feed(&first, eof, &mut |o| loader.take(o))
        .map_err(|e| e.to_string())?;
    drop(first);
    if !reader.placed() && !eof {
        return Ok(None);
    }
    while !eof {
        buf.drain(..end);
        eof = fill(&mut buf)?;
        end = cut(&buf, eof);
        if end == 0 && !eof {
            return Err(format!(
                "a line of more than {} MiB after line {}: not a zone file",
                piece >> 20,
                reader.line()
            ));
        }
        let piece = String::from_utf8_lossy(buf.get(..end).unwrap_or_default());
        reader
            .feed(&piece, eof, &mut |o| loader.take(o))
            .map_err(|e| e.to_string())?;
    }
    drop(buf);
    let parsed = reader
        .finish(&mut |o| loader.take(o))
        .map_err(|e| e.to_string())?;
    Ok(Some((head, parsed, loader)))
}

/// Lines of `text`, and the bytes of their first words (a bound of the owners' names).
fn first_words(text: &str) -> (usize, usize) {
    let mut lines = 0;
    let mut bytes = 0;
    for line in text.split('\n') {
        lines += 1;
        let word = line.split([' ', '\t', '\r']).next().unwrap_or_default();
        bytes += word.len();
    }
    (lines, bytes)
}

/// Reads a zone file whole (gzip, or an apex known only at the end).
fn read_whole(path: &std::path::Path) -> Result<(rpz::ZoneHead, formats::Parsed, Loader), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let text = formats::decode(&bytes).map_err(|e| e.to_string())?;
    let head = rpz::head(&text);
    // Sized up front (one rule per line at most, lines counted at memchr speed; the
    // names' bytes at most the file's): the builder then never splits its shards nor
    // grows an arena while loading.
    let lines = memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1;
    let mut loader = Loader::new(lines, text.len());
    let parsed = rpz::parse_each(&text, &mut |o| loader.take(o)).map_err(|e| e.to_string())?;
    Ok((head, parsed, loader))
}

/// Reads one zone file into the matcher's rules.
pub fn load_matcher_zone(spec: &ZoneFile) -> Result<MatcherZone, LoadError> {
    let err = |message: String| LoadError {
        path: spec.path.clone(),
        message,
    };
    let (head, read, loader) = match read_pieces(&spec.path, PIECE).map_err(err)? {
        Some(done) => done,
        None => read_whole(&spec.path).map_err(err)?,
    };
    let zone = Arc::new(crate::zones::policy_zone(spec, head).map_err(err)?);
    let options = zone_options(&spec.policy).map_err(err)?;
    let Loader {
        builder,
        mut encoded,
        diagnostics,
        not_applied,
    } = loader;
    if let Some(r) = &options.policy
        && let Some(p) = encode(r).map_err(err)?
    {
        encoded.insert(r.clone(), p);
    }
    let mut all: Vec<String> = read.diagnostics.iter().map(ToString::to_string).collect();
    all.extend(diagnostics);
    let rules = builder.build();
    Ok(MatcherZone {
        report: LoadReport {
            zone: zone.name().to_owned(),
            rules: rules.len(),
            not_applied,
            diagnostics: all,
        },
        zone,
        rules,
        encoded,
    })
}

/// What a trigger keeps when a later record of its owner says `new` and it has
/// `old`: local data adds up; anything else keeps the first (and says so, unless the
/// two agree). `None` when `new` may stand.
fn merged(old: Response, new: Response) -> Option<(Response, Option<String>)> {
    match (old, new) {
        (old, new) if old == new => None,
        (Response::LocalData(old), Response::LocalData(new)) => {
            let mut all = old.into_vec();
            for rr in new {
                if !all.contains(&rr) {
                    all.push(rr);
                }
            }
            Some((Response::LocalData(all.into_boxed_slice()), None))
        }
        (old, new) => {
            let problem = format!("already has {old}: {new} ignored");
            Some((old, Some(problem)))
        }
    }
}

/// The allowlist as a rule set: every name and everything below it answers PASSTHRU.
pub fn allowlist_rules(allow: &Allowlist) -> RuleSet {
    let mut builder = RuleSetBuilder::with_capacity(allow.len() * 2);
    for name in allow.names() {
        // Checked on entry into the allowlist.
        if let Ok(d) = Domain::parse(name) {
            builder.insert_name(&Trigger::Exact(d.clone()), Response::Passthru);
            builder.insert_name(&Trigger::Wildcard(d), Response::Passthru);
        }
    }
    builder.build()
}

/// A policy and what verdicts show beside it, built from loaded zones.
pub fn build(
    zones: Vec<(MatcherZone, ZonePolicy)>,
    allow: &Allowlist,
) -> Result<(Policy, ZoneMeta), String> {
    let mut meta = ZoneMeta {
        zones: Vec::with_capacity(zones.len()),
        encoded: HashMap::new(),
        allow_zone: allowlist_zone(),
    };
    let mut policy_zones = Vec::with_capacity(zones.len());
    for (z, spec) in zones {
        let options = zone_options(&spec)?;
        policy_zones.push(Zone::new(z.zone.name(), options, z.rules));
        meta.zones.push(z.zone);
        meta.encoded.extend(z.encoded);
    }
    let policy = Policy::new(policy_zones, allowlist_rules(allow)).map_err(|e| e.to_string())?;
    Ok((policy, meta))
}

/// The filter's policy on the compact matcher.
#[derive(Debug)]
pub struct MatcherScreen {
    live: LivePolicy,
    meta: ArcSwap<ZoneMeta>,
    /// Serialises writers of `meta` and `live` together (readers take no lock).
    writer: Mutex<()>,
}

/// Longest name a query can carry, in bytes of labels.
const MAX_WIRE: usize = 255;

/// Reads a name as the front shows it (lowercase presentation form, `\DDD` and `\X`
/// escapes) into `out`. `None` when it cannot be a name.
fn query_name(text: &str, out: &mut QueryName) -> Option<()> {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'\\') {
        return out.set_text(bytes).ok();
    }
    let mut buf = [0u8; MAX_WIRE];
    let mut ends = [0usize; 128];
    let (mut len, mut labels, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = bytes.get(i) {
        let (byte, step) = match b {
            b'.' => {
                *ends.get_mut(labels)? = len;
                labels += 1;
                i += 1;
                continue;
            }
            b'\\' => {
                let digits = bytes
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                match digits {
                    Some(d) => {
                        let v = d.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
                        (u8::try_from(v).ok()?, 4)
                    }
                    None => (*bytes.get(i + 1)?, 2),
                }
            }
            _ => (b, 1),
        };
        *buf.get_mut(len)? = byte;
        len += 1;
        i += step;
    }
    if len > 0 && !text.ends_with('.') {
        *ends.get_mut(labels)? = len;
        labels += 1;
    }
    let mut start = 0;
    let parts = ends.get(..labels)?.iter().map(|&end| {
        let label = buf.get(start..end).unwrap_or_default();
        start = end;
        label
    });
    out.set_labels(parts).ok()
}

impl MatcherScreen {
    pub fn new(policy: Policy, meta: ZoneMeta) -> MatcherScreen {
        MatcherScreen {
            live: LivePolicy::new(policy),
            meta: ArcSwap::from_pointee(meta),
            writer: Mutex::new(()),
        }
    }

    fn write(&self) -> std::sync::MutexGuard<'_, ()> {
        // A writer that panicked left consistent snapshots behind: go on.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces zone `index` alone (a full transfer, a zone file changed): its
    /// rules, SOA and encoded responses (its override stays as built). The other
    /// zones' rules are shared, not rebuilt.
    pub fn set_zone(&self, index: usize, zone: MatcherZone) -> Result<(), String> {
        let _writing = self.write();
        let meta = self.meta.load().with_zone(index, zone.zone, zone.encoded)?;
        self.meta.store(Arc::new(meta));
        self.live
            .replace_zone(index, zone.rules)
            .map_err(|e| e.to_string())
    }

    /// Applies an incremental transfer to zone `index` owner by owner, without
    /// rebuilding the zone (the `policy` crate's overlays), and shows the new
    /// serial in rewritten answers' SOA. All or nothing: an error leaves the
    /// zone as it was (the caller then hands over the whole zone). Returns the
    /// rules removed and added.
    pub fn apply_owner_delta(
        &self,
        index: usize,
        apex: &str,
        delta: &OwnerDelta,
    ) -> Result<(usize, usize), String> {
        let mut change = policy::Delta::default();
        let mut encoded = HashMap::new();
        change.removed = delta
            .removed
            .iter()
            .filter_map(|o| owner_rule(o, apex))
            .map(|(t, _)| t)
            .collect();
        for o in &delta.added {
            let Some((trigger, response)) = owner_rule(o, apex) else {
                continue;
            };
            if matches!(response, Response::Redirect(_) | Response::LocalData(_))
                && !encoded.contains_key(&response)
            {
                match encode(&response) {
                    Ok(Some(p)) => {
                        encoded.insert(response.clone(), p);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(zone = apex, owner = %o.owner, error = %e, "owner not used");
                        continue;
                    }
                }
            }
            change.added.push((trigger, response));
        }
        let _writing = self.write();
        let meta = self.meta.load_full();
        let zone = meta
            .zones
            .get(index)
            .ok_or_else(|| format!("no zone at position {index}"))?
            .clone();
        if !encoded.is_empty() {
            // Before the rules: a query that sees a new rule finds its response.
            self.meta
                .store(Arc::new(meta.with_zone(index, zone.clone(), encoded)?));
        }
        self.live
            .apply_delta(index, &change)
            .map_err(|e| e.to_string())?;
        let mut soa = zone.soa().clone();
        soa.serial = delta.to;
        let zone = Arc::new(PolicyZone::new(zone.name(), soa)?);
        let meta = self.meta.load().with_zone(index, zone, HashMap::new())?;
        self.meta.store(Arc::new(meta));
        Ok((change.removed.len(), change.added.len()))
    }

    /// Each zone's name and the serial of the copy in force, in order.
    pub fn zone_serials(&self) -> Vec<(String, u32)> {
        self.meta
            .load()
            .zones
            .iter()
            .map(|z| (z.name().to_owned(), z.soa().serial))
            .collect()
    }

    /// Replaces the allowlist alone.
    pub fn set_allowlist(&self, allow: &Allowlist) {
        let _writing = self.write();
        self.live.set_allowlist(allowlist_rules(allow));
    }

    /// The live policy (for zone transfers: `replace_zone`, `apply_delta`).
    pub fn live(&self) -> &LivePolicy {
        &self.live
    }

    /// Replaces everything (a reload). The wire-form data goes first: a query that
    /// sees the new rules also sees their zone's SOA and encoded responses.
    pub fn replace(&self, policy: Policy, meta: ZoneMeta) {
        let _writing = self.write();
        let mut merged = meta;
        // Responses of the old rules stay encodable for a query in flight.
        for (k, v) in &self.meta.load().encoded {
            merged.encoded.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.meta.store(Arc::new(merged));
        self.live.replace(policy);
    }

    fn verdict(
        &self,
        meta: &ZoneMeta,
        zone: Option<usize>,
        trigger: Matched<'_>,
        response: &Response,
        shadow: bool,
    ) -> Option<Verdict> {
        let (zone, rule): (Arc<PolicyZone>, Arc<str>) = match zone {
            None => (meta.allow_zone.clone(), "allowlist".into()),
            Some(i) => {
                let rule: Arc<str> = match trigger {
                    Matched::Qname { name, wildcard } if wildcard => format!("*.{name}").into(),
                    Matched::Qname { name, .. } => name.into(),
                    Matched::ClientIp(net) => rpz_ip_owner(net, "rpz-client-ip").into(),
                    Matched::ResponseIp { net, .. } => rpz_ip_owner(net, "rpz-ip").into(),
                };
                (meta.zones.get(i)?.clone(), rule)
            }
        };
        let action = match response {
            Response::Nxdomain => front::Policy::Nxdomain,
            Response::Nodata => front::Policy::Nodata,
            Response::Passthru => front::Policy::Passthru,
            Response::Drop => front::Policy::Drop,
            Response::TcpOnly => front::Policy::TcpOnly,
            other => match meta.encoded.get(other) {
                Some(p) => p.clone(),
                // Not encoded at load (cannot happen for loaded rules): encode now.
                None => encode(other).ok().flatten()?,
            },
        };
        Some(Verdict {
            action,
            zone,
            rule,
            shadow,
        })
    }

    /// The first log-only zone's match on a name (and the client's address), for a
    /// shadow verdict.
    fn shadow_name(
        &self,
        policy: &Policy,
        meta: &ZoneMeta,
        logged: u64,
        client: Option<IpAddr>,
        name: &QueryName,
    ) -> Option<Verdict> {
        let i = first_bit(logged)?;
        let zone = policy.zones().get(i)?;
        let (trigger, rule_response) = client
            .and_then(|c| zone.rules.lookup_client_ip(c))
            .map(|m| (Matched::ClientIp(m.net), m.response))
            .or_else(|| {
                zone.rules.lookup_qname(name).map(|m| {
                    let t = Matched::Qname {
                        name: m.name,
                        wildcard: m.wildcard,
                    };
                    (t, m.response)
                })
            })?;
        let response = zone.options.policy.as_ref().unwrap_or(rule_response);
        self.verdict(meta, Some(i), trigger, response, true)
    }
}

fn first_bit(bits: u64) -> Option<usize> {
    (bits != 0).then(|| bits.trailing_zeros() as usize)
}

impl Screen for MatcherScreen {
    fn qname(&self, qname: &str, client: IpAddr) -> Option<Verdict> {
        let mut name = QueryName::root();
        query_name(qname, &mut name)?;
        let policy = self.live.load();
        let v = policy.check_query(Some(client), &name);
        if v.hit.is_none() && v.logged == 0 {
            return None;
        }
        let meta = self.meta.load();
        match v.hit {
            Some(hit) => self.verdict(&meta, hit.zone, hit.trigger, hit.response, false),
            None => self.shadow_name(&policy, &meta, v.logged, Some(client), &name),
        }
    }

    fn answer(&self, names: &[Box<str>], addrs: &[IpAddr]) -> Option<(usize, Verdict)> {
        let policy = self.live.load();
        let mut shadow: Option<(usize, Verdict)> = None;
        let mut qn = QueryName::root();
        for (i, text) in names.iter().enumerate() {
            if query_name(text, &mut qn).is_none() {
                continue;
            }
            let v = policy.check_query(None, &qn);
            match v.hit {
                // An allowed name of the chain is not checked.
                Some(hit) if hit.zone.is_none() => continue,
                Some(hit) => {
                    let meta = self.meta.load();
                    return self
                        .verdict(&meta, hit.zone, hit.trigger, hit.response, false)
                        .map(|v| (i + 1, v));
                }
                None if v.logged != 0 && shadow.is_none() => {
                    let meta = self.meta.load();
                    shadow = self
                        .shadow_name(&policy, &meta, v.logged, None, &qn)
                        .map(|v| (i + 1, v));
                }
                None => {}
            }
        }
        if !addrs.is_empty() {
            let v = policy.check_answer(policy::Verdict::default(), addrs);
            if let Some(hit) = v.hit {
                let meta = self.meta.load();
                return self
                    .verdict(&meta, hit.zone, hit.trigger, hit.response, false)
                    .map(|v| (names.len(), v));
            }
            if shadow.is_none()
                && let Some(i) = first_bit(v.logged)
                && let Some(zone) = policy.zones().get(i)
            {
                let best = policy::Policy::best_response_ip(&zone.rules, addrs);
                if let Some((address, m)) = best {
                    let meta = self.meta.load();
                    let response = zone.options.policy.as_ref().unwrap_or(m.response);
                    let trigger = Matched::ResponseIp {
                        net: m.net,
                        address,
                    };
                    shadow = self
                        .verdict(&meta, Some(i), trigger, response, true)
                        .map(|v| (names.len(), v));
                }
            }
        }
        shadow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_names_read_as_labels() {
        let mut q = QueryName::root();
        assert!(query_name("www.example.com", &mut q).is_some());
        assert_eq!(q.label_count(), 3);
        assert!(query_name("a\\046b.example", &mut q).is_some());
        assert_eq!(q.label_count(), 2);
        assert!(query_name("x\\255y.example.", &mut q).is_some());
        assert_eq!(q.label_count(), 2);
        assert!(query_name("bad\\999.example", &mut q).is_none());
        assert!(query_name("", &mut q).is_some());
        assert_eq!(q.label_count(), 0);
    }

    fn owner(name: &str, records: &[(&str, &str)]) -> OwnerRecords {
        OwnerRecords {
            owner: name.into(),
            records: records
                .iter()
                .map(|(t, d)| dns::secondary::ZoneRecord {
                    owner: name.into(),
                    ttl: 300,
                    rtype: (*t).into(),
                    data: (*d).into(),
                })
                .collect(),
        }
    }

    /// What the screen says about `name`: action, zone serial and rule, or `-`.
    fn seen(m: &MatcherScreen, name: &str) -> String {
        match m.qname(name, IpAddr::from([192, 0, 2, 9])) {
            None => "-".into(),
            Some(v) => format!("{} {} {}", v.action.name(), v.zone.soa().serial, v.rule),
        }
    }

    #[test]
    fn owner_deltas_change_one_zone_in_place() {
        let apex = "feed.rpz";
        let zones = vec![
            (
                MatcherZone::empty("local.rpz", &ZonePolicy::Given)
                    .unwrap_or_else(|e| panic!("{e}")),
                ZonePolicy::Given,
            ),
            (
                MatcherZone::empty(apex, &ZonePolicy::Given).unwrap_or_else(|e| panic!("{e}")),
                ZonePolicy::Given,
            ),
        ];
        let (policy, meta) = build(zones, &Allowlist::default()).unwrap_or_else(|e| panic!("{e}"));
        let m = MatcherScreen::new(policy, meta);
        let delta = |from, to, removed, added| OwnerDelta {
            from,
            to,
            removed,
            added,
        };
        let added = vec![
            owner("evil.example", &[("CNAME", ".")]),
            owner("*.evil.example", &[("CNAME", ".")]),
            owner("garden.example", &[("A", "192.0.2.80")]),
            owner("@", &[("NS", "localhost.")]),
        ];
        let applied = m.apply_owner_delta(1, apex, &delta(0, 1, vec![], added));
        assert_eq!(applied, Ok((0, 3)));
        assert_eq!(seen(&m, "evil.example"), "nxdomain 1 evil.example");
        assert_eq!(seen(&m, "a.evil.example"), "nxdomain 1 *.evil.example");
        assert_eq!(seen(&m, "garden.example"), "local-data 1 garden.example");

        // A changed owner is removed with its old records and added with its new.
        let changed = delta(
            1,
            2,
            vec![
                owner("evil.example", &[("CNAME", ".")]),
                owner("*.evil.example", &[("CNAME", ".")]),
            ],
            vec![owner("evil.example", &[("CNAME", "*.")])],
        );
        assert_eq!(m.apply_owner_delta(1, apex, &changed), Ok((2, 1)));
        assert_eq!(seen(&m, "evil.example"), "nodata 2 evil.example");
        assert_eq!(seen(&m, "a.evil.example"), "-");

        // A delta that does not fit the zone changes nothing, serial included.
        let drifted = delta(
            2,
            3,
            vec![owner("never.example", &[("CNAME", ".")])],
            vec![],
        );
        assert!(m.apply_owner_delta(1, apex, &drifted).is_err());
        assert_eq!(seen(&m, "evil.example"), "nodata 2 evil.example");
        assert!(m.apply_owner_delta(5, apex, &changed).is_err());

        // The other zone was never touched; replacing it leaves this one alone.
        let local =
            MatcherZone::empty("local.rpz", &ZonePolicy::Given).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.set_zone(0, local).is_ok());
        assert_eq!(seen(&m, "garden.example"), "local-data 2 garden.example");
        assert_eq!(
            m.zone_serials(),
            [("local.rpz".to_owned(), 0), (apex.to_owned(), 2)]
        );
    }

    /// A zone file read line by line (owners emitted as they end, a returning owner
    /// merged into the rule set) gives the rules of the zone read whole.
    #[test]
    fn returning_owners_merge_as_in_a_whole_read() {
        let text = "$ORIGIN rpz.example.\n\
            @ SOA ns. hostmaster. 1 2 3 4 5\n\
            @ NS ns.\n\
            a.example A 192.0.2.1\n\
            b.example CNAME .\n\
            a.example AAAA 2001:db8::1\n\
            c.example CNAME rpz-drop.\n\
            b.example CNAME *.\n\
            a.example A 192.0.2.1\n\
            *.c.example CNAME walled.garden.example.\n\
            C.Example CNAME rpz-drop.\n";
        let path = std::env::temp_dir().join(format!(
            "sharedefend-matcher-merge-{}.rpz",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let spec = ZoneFile {
            path: path.clone(),
            name: None,
            policy: ZonePolicy::Given,
        };
        let loaded = load_matcher_zone(&spec);
        let _ = std::fs::remove_file(&path);
        let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
        let show = |rules: &RuleSet| {
            let mut all: Vec<String> = rules.rules().map(|(t, r)| format!("{t} {r}")).collect();
            all.sort();
            all.join("\n")
        };
        let whole = rpz::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            show(&loaded.rules),
            show(&policy::rpz::load_rpz(&whole).rules)
        );
        expect_test::expect![[r#"
            *.c.example cname walled.garden.example
            a.example local [A 192.0.2.1] [AAAA 2001:db8::1]
            b.example nxdomain
            c.example drop"#]]
        .assert_eq(&show(&loaded.rules));
        expect_test::expect![[r#"
            ["line 8: b.example already has nxdomain: nodata ignored"]"#]]
        .assert_eq(&format!("{:?}", loaded.report.diagnostics));
    }

    /// A zone read by pieces (cut inside an owner's records and inside parentheses)
    /// gives the rules and diagnostics of the zone read whole.
    #[test]
    fn pieces_read_as_the_whole_file() {
        let mut text =
            String::from("$ORIGIN rpz.example.\n@ SOA ( ns. hostmaster.\n 1 2 3 4 5 )\n@ NS ns.\n");
        for i in 0..300 {
            text.push_str(&format!("n{i}.example CNAME .\n"));
            if i % 7 == 0 {
                text.push_str(&format!("*.n{i}.example CNAME rpz-drop.\n"));
            }
            if i % 11 == 0 {
                text.push_str(&format!(
                    "l{i}.example A 192.0.2.{}\n\tTXT ( \"x\"\n \"y\" )\n",
                    i % 250
                ));
            }
            if i % 13 == 0 {
                text.push_str(&format!("n{}.example CNAME *.\nbad..{i} CNAME .\n", i / 2));
            }
        }
        let path = std::env::temp_dir().join(format!(
            "sharedefend-matcher-pieces-{}.rpz",
            std::process::id()
        ));
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        let show = |(head, parsed, loader): (rpz::ZoneHead, formats::Parsed, Loader)| {
            let rules = loader.builder.build();
            let mut all: Vec<String> = rules.rules().map(|(t, r)| format!("{t} {r}")).collect();
            all.sort();
            let diags: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
            format!(
                "{head:?}\n{}\n{diags:?}\n{:?}",
                all.join("\n"),
                loader.diagnostics
            )
        };
        let whole = read_whole(&path).map(show);
        // A first piece without the whole SOA: read whole instead.
        assert!(matches!(read_pieces(&path, 40), Ok(None)));
        for piece in [64, 100, 1000, 1 << 20] {
            let pieces = read_pieces(&path, piece).map(|r| r.map(show));
            assert_eq!(
                pieces.as_ref().ok().and_then(Option::as_ref),
                whole.as_ref().ok(),
                "piece {piece}"
            );
        }
        let _ = std::fs::remove_file(&path);
        assert!(whole.is_ok_and(|w| w.contains("n9.example nxdomain") && w.contains("bad..13")));
    }

    #[test]
    fn zone_options_follow_the_override() {
        let o = zone_options(&ZonePolicy::Cname("*.garden.example".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            o.policy.map(|r| r.to_string()).as_deref(),
            Some("cname *.garden.example")
        );
        assert!(zone_options(&ZonePolicy::LogOnly).is_ok_and(|o| o.log_only && o.policy.is_none()));
        assert!(zone_options(&ZonePolicy::Cname("bad..name".into())).is_err());
    }
}
