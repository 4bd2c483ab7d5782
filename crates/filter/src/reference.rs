//! The reference policy: RPZ semantics over plain hash maps, written to be obviously
//! right rather than small or fast.
//!
//! It is what the filter runs until the compact matcher of the `policy` crate lands,
//! and afterwards the oracle that matcher is tested against. The semantics are
//! BIND's (ARM, "Response Policy Zones"), checked against `named` where the ARM is
//! silent:
//!
//! - zones are consulted in the configured order and the first zone that matches
//!   wins; within a zone RPZ-CLIENT-IP comes before QNAME, and for a name an exact
//!   trigger beats a wildcard, a longer wildcard a shorter one;
//! - on an upstream answer each name of the CNAME chain is checked in order, then the
//!   addresses of the last name (RPZ-IP, the longest prefix within a zone);
//! - a log-only (shadow) zone's match is reported only when no enforcing zone
//!   matches; it is counted, and the answer is left alone;
//! - the local allowlist overrides everything: an allowed query name is answered as
//!   PASSTHRU, an allowed chain name is not checked;
//! - RPZ-NSDNAME and RPZ-NSIP rules are read and reported as not applied (a
//!   forwarder does not see the delegation).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use dns::front::{Policy, PolicySoa, PolicyZone, Screen, Verdict};
use indicator::IpNet;

use crate::allow::Allowlist;

/// A per-zone override of the rules' actions (BIND's `policy` in `response-policy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ZonePolicy {
    /// The actions the zone states.
    #[default]
    Given,
    /// Log-only (BIND's `disabled`): matches are counted, answers untouched.
    LogOnly,
    Nxdomain,
    Nodata,
    Passthru,
    Drop,
    TcpOnly,
    /// Every match redirected to this name.
    Cname(String),
}

impl ZonePolicy {
    /// `given`, `log-only` (or BIND's `disabled`), `nxdomain`, `nodata`, `passthru`,
    /// `drop`, `tcp-only`, `cname NAME` (or `cname:NAME`).
    pub fn parse(text: &str) -> Option<ZonePolicy> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        Some(match lower.as_str() {
            "given" => ZonePolicy::Given,
            "log-only" | "disabled" | "shadow" => ZonePolicy::LogOnly,
            "nxdomain" => ZonePolicy::Nxdomain,
            "nodata" => ZonePolicy::Nodata,
            "passthru" => ZonePolicy::Passthru,
            "drop" => ZonePolicy::Drop,
            "tcp-only" => ZonePolicy::TcpOnly,
            _ => {
                let target = lower
                    .strip_prefix("cname")
                    .map(|r| r.trim_start_matches([' ', ':']).trim())
                    .filter(|r| !r.is_empty())?;
                ZonePolicy::Cname(target.to_owned())
            }
        })
    }
}

/// One rule as the reference keeps it.
#[derive(Debug, Clone)]
struct RuleData {
    owner: Arc<str>,
    action: Policy,
}

/// One policy zone's rules.
#[derive(Debug)]
pub struct ZoneRules {
    zone: Arc<PolicyZone>,
    shadow: bool,
    /// Exact QNAME triggers, lowercase, no trailing dot.
    exact: HashMap<String, RuleData>,
    /// Wildcard QNAME triggers keyed by the name below which they match.
    wildcard: HashMap<String, RuleData>,
    response_ip: Vec<(IpNet, RuleData)>,
    client_ip: Vec<(IpNet, RuleData)>,
    /// RPZ-NSDNAME / RPZ-NSIP rules read and not applied.
    pub not_applied: usize,
}

impl ZoneRules {
    /// An empty zone.
    pub fn new(zone: Arc<PolicyZone>, policy: &ZonePolicy) -> Result<ZoneRules, String> {
        let _ = policy_action(policy, &Policy::Nxdomain)?;
        Ok(ZoneRules {
            zone,
            shadow: *policy == ZonePolicy::LogOnly,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            response_ip: Vec::new(),
            client_ip: Vec::new(),
            not_applied: 0,
        })
    }

    pub fn name(&self) -> &str {
        self.zone.name()
    }

    /// The serial of the zone's SOA as loaded.
    pub fn serial(&self) -> u32 {
        self.zone.soa().serial
    }

    /// Rules held (applied ones).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len() + self.response_ip.len() + self.client_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a QNAME rule for `owner` (`name` or `*.name`).
    pub fn add_qname(&mut self, owner: &str, action: Policy) {
        let owner = owner.trim_end_matches('.').to_ascii_lowercase();
        let rule = RuleData {
            owner: owner.as_str().into(),
            action,
        };
        match owner.strip_prefix("*.") {
            Some(below) => self.wildcard.insert(below.to_owned(), rule),
            None => self.exact.insert(owner, rule),
        };
    }

    /// Adds an RPZ-IP rule (an address in the answer).
    pub fn add_response_ip(&mut self, net: IpNet, action: Policy) {
        let owner = rpz_ip_owner(net, "rpz-ip");
        self.response_ip.push((
            net,
            RuleData {
                owner: owner.into(),
                action,
            },
        ));
    }

    /// Adds an RPZ-CLIENT-IP rule.
    pub fn add_client_ip(&mut self, net: IpNet, action: Policy) {
        let owner = rpz_ip_owner(net, "rpz-client-ip");
        self.client_ip.push((
            net,
            RuleData {
                owner: owner.into(),
                action,
            },
        ));
    }

    fn verdict(&self, rule: &RuleData, policy: &ZonePolicy) -> Verdict {
        Verdict {
            // Checked in `new`: the override parses.
            action: policy_action(policy, &rule.action).unwrap_or_else(|_| rule.action.clone()),
            zone: self.zone.clone(),
            rule: rule.owner.clone(),
            shadow: self.shadow,
        }
    }

    fn match_name(&self, name: &str) -> Option<&RuleData> {
        if let Some(r) = self.exact.get(name) {
            return Some(r);
        }
        // The longest wildcard: strip one label at a time from the left.
        let mut rest = name;
        while let Some((_, parent)) = split_label(rest) {
            if let Some(r) = self.wildcard.get(parent) {
                return Some(r);
            }
            rest = parent;
        }
        None
    }

    fn match_ip(rules: &[(IpNet, RuleData)], addr: IpAddr) -> Option<(IpNet, &RuleData)> {
        rules
            .iter()
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(net, r)| (*net, r))
    }
}

/// Splits off the first label (escapes respected: `a\046b` is one label).
fn split_label(name: &str) -> Option<(&str, &str)> {
    if name.is_empty() {
        return None;
    }
    let bytes = name.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'.' => return Some((name.get(..i)?, name.get(i + 1..)?)),
            _ => i += 1,
        }
    }
    Some((name, ""))
}

/// The action a zone's override gives a rule.
fn policy_action(policy: &ZonePolicy, given: &Policy) -> Result<Policy, String> {
    Ok(match policy {
        ZonePolicy::Given | ZonePolicy::LogOnly => given.clone(),
        ZonePolicy::Nxdomain => Policy::Nxdomain,
        ZonePolicy::Nodata => Policy::Nodata,
        ZonePolicy::Passthru => Policy::Passthru,
        ZonePolicy::Drop => Policy::Drop,
        ZonePolicy::TcpOnly => Policy::TcpOnly,
        ZonePolicy::Cname(t) => Policy::Redirect(Arc::new(dns::front::Redirect::new(t)?)),
    })
}

/// The RPZ owner of an address trigger: prefix length, then the address labels
/// least significant first (`32.7.100.51.198.rpz-ip`, `128.1.zz.db8.2001.rpz-ip`).
pub fn rpz_ip_owner(net: IpNet, kind: &str) -> String {
    let prefix = net.prefix_len();
    match net.addr() {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{prefix}.{}.{}.{}.{}.{kind}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let groups = a.segments();
            // The longest run of zero groups (two or more) becomes `zz`.
            let (mut best, mut best_len, mut run_start, mut run_len) = (0, 0, 0, 0);
            for (i, g) in groups.iter().enumerate() {
                if *g == 0 {
                    if run_len == 0 {
                        run_start = i;
                    }
                    run_len += 1;
                    if run_len > best_len {
                        best = run_start;
                        best_len = run_len;
                    }
                } else {
                    run_len = 0;
                }
            }
            let mut labels: Vec<String> = Vec::new();
            let mut i = 0;
            while i < 8 {
                if best_len >= 2 && i == best {
                    labels.push("zz".to_owned());
                    i += best_len;
                } else {
                    labels.push(format!("{:x}", groups.get(i).copied().unwrap_or(0)));
                    i += 1;
                }
            }
            labels.reverse();
            format!("{prefix}.{}.{kind}", labels.join("."))
        }
    }
}

/// The whole policy: zones in order and the allowlist.
#[derive(Debug)]
pub struct ReferenceScreen {
    zones: Vec<(ZoneRules, ZonePolicy)>,
    allow: Allowlist,
    allow_zone: Arc<PolicyZone>,
}

impl ReferenceScreen {
    pub fn new(zones: Vec<(ZoneRules, ZonePolicy)>, allow: Allowlist) -> ReferenceScreen {
        ReferenceScreen {
            zones,
            allow,
            allow_zone: allowlist_zone(),
        }
    }

    pub fn zones(&self) -> impl Iterator<Item = &ZoneRules> {
        self.zones.iter().map(|(z, _)| z)
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allow
    }

    /// The first enforcing match over the zones in order, else the first log-only one.
    fn first(&self, mut find: impl FnMut(&ZoneRules) -> Option<&RuleData>) -> Option<Verdict> {
        let mut shadow = None;
        for (zone, policy) in &self.zones {
            if let Some(rule) = find(zone) {
                let v = zone.verdict(rule, policy);
                if !v.shadow {
                    return Some(v);
                }
                shadow.get_or_insert(v);
            }
        }
        shadow
    }
}

/// The pseudo-zone an allowlist PASSTHRU names (never shown: PASSTHRU rewrites
/// nothing).
pub(crate) fn allowlist_zone() -> Arc<PolicyZone> {
    let soa = PolicySoa {
        ttl: 0,
        mname: "localhost".into(),
        rname: "localhost".into(),
        serial: 0,
        refresh: 0,
        retry: 0,
        expire: 0,
        minimum: 0,
    };
    match PolicyZone::new("allowlist.local", soa) {
        Ok(z) => Arc::new(z),
        // Static valid names: cannot fail.
        Err(e) => unreachable!("{e}"),
    }
}

impl Screen for ReferenceScreen {
    fn qname(&self, qname: &str, client: IpAddr) -> Option<Verdict> {
        if self.allow.covers(qname) {
            return Some(Verdict {
                action: Policy::Passthru,
                zone: self.allow_zone.clone(),
                rule: "allowlist".into(),
                shadow: false,
            });
        }
        self.first(|z| {
            ZoneRules::match_ip(&z.client_ip, client)
                .map(|(_, r)| r)
                .or_else(|| z.match_name(qname))
        })
    }

    fn answer(&self, names: &[Box<str>], addrs: &[IpAddr]) -> Option<(usize, Verdict)> {
        let mut shadow = None;
        for (i, name) in names.iter().enumerate() {
            if self.allow.covers(name) {
                continue;
            }
            match self.first(|z| z.match_name(name)) {
                Some(v) if !v.shadow => return Some((i + 1, v)),
                Some(v) => {
                    shadow.get_or_insert((i + 1, v));
                }
                None => {}
            }
        }
        if !addrs.is_empty() {
            // Over all addresses of the answer: the longest prefix, then the
            // smallest address (IPv4 compared as IPv4-mapped IPv6), as BIND does.
            let found = self.first(|z| {
                addrs
                    .iter()
                    .filter_map(|a| {
                        let (net, r) = ZoneRules::match_ip(&z.response_ip, *a)?;
                        Some((*a, net, r))
                    })
                    .min_by_key(|(a, net, _)| {
                        let len = u16::from(net.prefix_len());
                        match a {
                            IpAddr::V4(v4) => (std::cmp::Reverse(len + 96), v4.to_ipv6_mapped()),
                            IpAddr::V6(v6) => (std::cmp::Reverse(len), *v6),
                        }
                    })
                    .map(|(_, _, r)| r)
            });
            match found {
                Some(v) if !v.shadow => return Some((names.len(), v)),
                Some(v) => {
                    shadow.get_or_insert((names.len(), v));
                }
                None => {}
            }
        }
        shadow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Arc<PolicyZone> {
        let soa = PolicySoa {
            ttl: 60,
            mname: "localhost".into(),
            rname: "root.localhost".into(),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 60,
        };
        Arc::new(PolicyZone::new(name, soa).unwrap_or_else(|e| panic!("{e}")))
    }

    fn rules(name: &str, policy: ZonePolicy, qnames: &[(&str, Policy)]) -> (ZoneRules, ZonePolicy) {
        let mut z = ZoneRules::new(zone(name), &policy).unwrap_or_else(|e| panic!("{e}"));
        for (owner, action) in qnames {
            z.add_qname(owner, action.clone());
        }
        (z, policy)
    }

    fn show(v: Option<Verdict>) -> String {
        match v {
            None => "-".to_owned(),
            Some(v) => format!(
                "{} {} {}{}",
                v.zone.name(),
                v.rule,
                v.action.name(),
                if v.shadow { " (log-only)" } else { "" }
            ),
        }
    }

    fn client() -> IpAddr {
        [192, 0, 2, 55].into()
    }

    #[test]
    fn precedence_table() {
        let first = rules(
            "first.rpz",
            ZonePolicy::Given,
            &[
                ("evil.example", Policy::Nxdomain),
                ("*.evil.example", Policy::Nodata),
                ("*.deep.evil.example", Policy::Drop),
                ("ok.evil.example", Policy::Passthru),
            ],
        );
        let second = rules(
            "second.rpz",
            ZonePolicy::Given,
            &[
                ("other.example", Policy::Nxdomain),
                ("evil.example", Policy::Drop),
                ("ok.evil.example", Policy::Nxdomain),
            ],
        );
        let shadow = rules(
            "shadow.rpz",
            ZonePolicy::LogOnly,
            &[
                ("new.example", Policy::Nxdomain),
                ("other.example", Policy::Nodata),
            ],
        );
        let forced = rules(
            "forced.rpz",
            ZonePolicy::Nodata,
            &[("forced.example", Policy::Nxdomain)],
        );
        let allow =
            Allowlist::from_names(["allowed.evil.example"]).unwrap_or_else(|e| panic!("{e}"));
        let screen = ReferenceScreen::new(vec![first, shadow, second, forced], allow);
        let table = [
            // exact beats wildcard; the wildcard does not match its own apex
            ("evil.example", "first.rpz evil.example nxdomain"),
            ("a.evil.example", "first.rpz *.evil.example nodata"),
            ("b.a.evil.example", "first.rpz *.evil.example nodata"),
            // the longer wildcard wins
            ("x.deep.evil.example", "first.rpz *.deep.evil.example drop"),
            ("deep.evil.example", "first.rpz *.evil.example nodata"),
            // PASSTHRU in an earlier zone beats a block in a later one
            ("ok.evil.example", "first.rpz ok.evil.example passthru"),
            // a later enforcing zone beats an earlier log-only one
            ("other.example", "second.rpz other.example nxdomain"),
            ("new.example", "shadow.rpz new.example nxdomain (log-only)"),
            // the zone's override replaces the action
            ("forced.example", "forced.rpz forced.example nodata"),
            // the allowlist overrides everything, subdomains included
            ("allowed.evil.example", "allowlist.local allowlist passthru"),
            (
                "x.allowed.evil.example",
                "allowlist.local allowlist passthru",
            ),
            ("notevil.example", "-"),
            ("example", "-"),
            ("", "-"),
        ];
        let mut failures = Vec::new();
        for (name, want) in table {
            let got = show(screen.qname(name, client()));
            if got != want {
                failures.push(format!("{name}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn chain_and_addresses() {
        let mut one = rules(
            "one.rpz",
            ZonePolicy::Given,
            &[("bad.example", Policy::Nxdomain)],
        );
        one.0.add_response_ip(
            "198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            Policy::Nodata,
        );
        one.0.add_response_ip(
            "198.51.100.7/32".parse().unwrap_or_else(|e| panic!("{e}")),
            Policy::Nxdomain,
        );
        one.0.add_client_ip(
            "192.0.2.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
            Policy::Passthru,
        );
        let allow = Allowlist::from_names(["fine.example"]).unwrap_or_else(|e| panic!("{e}"));
        let screen = ReferenceScreen::new(vec![one], allow);
        let names = |n: &[&str]| n.iter().map(|s| Box::<str>::from(*s)).collect::<Vec<_>>();
        let addr = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        let at = |r: Option<(usize, Verdict)>| r.map(|(d, v)| format!("{d} {}", show(Some(v))));
        assert_eq!(
            at(screen.answer(&names(&["a.example", "bad.example", "c.example"]), &[])).as_deref(),
            Some("2 one.rpz bad.example nxdomain")
        );
        assert_eq!(
            at(screen.answer(&names(&["a.example"]), &[addr("198.51.100.7")])).as_deref(),
            Some("1 one.rpz 32.7.100.51.198.rpz-ip nxdomain")
        );
        assert_eq!(
            at(screen.answer(&[], &[addr("198.51.100.9")])).as_deref(),
            Some("0 one.rpz 24.0.100.51.198.rpz-ip nodata")
        );
        assert_eq!(
            at(screen.answer(&names(&["fine.example"]), &[addr("192.0.2.1")])),
            None
        );
        // The client's address: a PASSTHRU for the whole lab network.
        assert_eq!(
            show(screen.qname("bad.example", client())),
            "one.rpz 24.0.2.0.192.rpz-client-ip passthru"
        );
        assert_eq!(
            show(screen.qname("bad.example", addr("203.0.113.1"))),
            "one.rpz bad.example nxdomain"
        );
    }

    #[test]
    fn ipv6_owners_compress_zeros() {
        let net = |s: &str| s.parse::<IpNet>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rpz_ip_owner(net("2001:db8::1/128"), "rpz-ip"),
            "128.1.zz.db8.2001.rpz-ip"
        );
        assert_eq!(
            rpz_ip_owner(net("2001:db8::/48"), "rpz-ip"),
            "48.zz.db8.2001.rpz-ip"
        );
        assert_eq!(
            rpz_ip_owner(net("10.0.0.0/8"), "rpz-client-ip"),
            "8.0.0.0.10.rpz-client-ip"
        );
    }

    #[test]
    fn zone_policies_parse() {
        assert_eq!(ZonePolicy::parse("disabled"), Some(ZonePolicy::LogOnly));
        assert_eq!(
            ZonePolicy::parse("cname walled.example"),
            Some(ZonePolicy::Cname("walled.example".into()))
        );
        assert_eq!(
            ZonePolicy::parse("cname:walled.example"),
            Some(ZonePolicy::Cname("walled.example".into()))
        );
        assert_eq!(ZonePolicy::parse("cname"), None);
        assert_eq!(ZonePolicy::parse("block"), None);
    }
}
