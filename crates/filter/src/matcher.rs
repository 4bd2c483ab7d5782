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
use std::sync::Arc;

use arc_swap::ArcSwap;
use dns::front::{self, LocalData, PolicySoa, PolicyZone, Screen, Verdict};
use formats::readers::rpz;
use indicator::Domain;
use policy::{
    LivePolicy, Matched, Policy, QueryName, Redirect, Response, RuleSet, RuleSetBuilder, Trigger,
    Zone, ZoneOptions, ZoneTrigger,
};

use crate::reference::{ZonePolicy, allowlist_zone};
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

/// Reads one zone file into the matcher's rules.
pub fn load_matcher_zone(spec: &ZoneFile) -> Result<MatcherZone, LoadError> {
    let err = |message: String| LoadError {
        path: spec.path.clone(),
        message,
    };
    let bytes = std::fs::read(&spec.path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = formats::decode(&bytes).map_err(|e| err(e.to_string()))?;
    let head = rpz::head(&text);
    let name = spec.name.clone().or(head.apex).ok_or_else(|| {
        err(
            "the file does not name its zone (no absolute SOA owner or $ORIGIN): give name=NAME"
                .into(),
        )
    })?;
    let soa = head.soa.map_or_else(default_soa, |s| PolicySoa {
        ttl: s.ttl,
        mname: s.mname,
        rname: s.rname,
        serial: s.serial,
        refresh: s.refresh,
        retry: s.retry,
        expire: s.expire,
        minimum: s.minimum,
    });
    let zone = Arc::new(PolicyZone::new(&name, soa).map_err(err)?);
    let options = zone_options(&spec.policy).map_err(err)?;
    let mut encoded = HashMap::new();
    if let Some(r) = &options.policy
        && let Some(p) = encode(r).map_err(err)?
    {
        encoded.insert(r.clone(), p);
    }
    // Sized up front (one rule per line at most, lines counted at memchr speed): the
    // builder then never splits its shards while loading.
    let lines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
    let mut builder = RuleSetBuilder::with_capacity(lines);
    let mut diagnostics = Vec::new();
    let mut not_applied = 0;
    let mut sink = |owner: rpz::OwnerPolicy<'_>| match policy::rpz::rule_from_policy(
        &owner.value,
        owner.hint,
        &owner.policy,
    ) {
        Ok((trigger, response)) => {
            if matches!(response, Response::Redirect(_) | Response::LocalData(_))
                && !encoded.contains_key(&response)
            {
                match encode(&response) {
                    Ok(Some(p)) => {
                        encoded.insert(response.clone(), p);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        diagnostics.push(format!(
                            "line {}: {} not loaded: {e}",
                            owner.line, owner.value
                        ));
                        return;
                    }
                }
            }
            // An owner whose records are not adjacent comes again (`parse_each`):
            // merged as the reader merges an owner's records.
            let old = match &trigger {
                ZoneTrigger::Qname(t) => builder.insert_name(t, response.clone()),
                other => builder.insert(other.clone(), response.clone()),
            };
            if let Some(old) = old
                && let Some((kept, problem)) = merged(old, response)
            {
                if let Some(problem) = problem {
                    diagnostics.push(format!("line {}: {trigger} {problem}", owner.line));
                }
                builder.insert(trigger, kept);
            }
        }
        Err(policy::rpz::Unused::NotPolicy) => {}
        Err(policy::rpz::Unused::NotApplied(_)) => not_applied += 1,
        Err(e @ policy::rpz::Unused::Invalid(_)) => {
            diagnostics.push(format!("line {}: {e}", owner.line));
        }
    };
    let read = rpz::parse_each(&text, &mut sink).map_err(|e| err(e.to_string()))?;
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
        }
    }

    /// The live policy (for zone transfers: `replace_zone`, `apply_delta`).
    pub fn live(&self) -> &LivePolicy {
        &self.live
    }

    /// Replaces everything (a reload). The wire-form data goes first: a query that
    /// sees the new rules also sees their zone's SOA and encoded responses.
    pub fn replace(&self, policy: Policy, meta: ZoneMeta) {
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
