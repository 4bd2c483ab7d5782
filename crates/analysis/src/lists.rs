//! The names the hub must never block, and the names that are shared by many.
//!
//! Four roles, because "on a list" means different things:
//! - **Allow** (MISP warninglists of known-good sites, Pi-hole allowlists): the name —
//!   and for `hostname` entries its subdomains within the same registrable domain — is
//!   never a DNS rule. The registrable-domain boundary matters: `blogspot.com` on a
//!   popular list protects Blogspot itself, not every tenant below it.
//! - **Protected** (the operator's own list: `gov.uk`, `nhs.uk`, banks): the name and
//!   everything below it, with no boundary, are never a DNS rule.
//! - **Popular** (Tranco-style ranks): the top N are treated as allowed, and a batch
//!   that names any of the top [`crate::config::POPULAR_TOP`] trips the breaker.
//! - **Shared** infrastructure (URL shorteners, link-in-bio, dynamic DNS, free hosting,
//!   IPFS gateways): the listed name itself is never a DNS rule and URLs on it or below
//!   it stay URL-only; a tenant below it reported as a name may be blocked exactly,
//!   never by wildcard.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use indicator::{Domain, IpNet, Section, SuffixList};

/// What being on a list means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Allow,
    Protected,
    Popular,
    Shared,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Allow => "allow",
            Role::Protected => "protected",
            Role::Popular => "popular",
            Role::Shared => "shared",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Allow, Role::Protected, Role::Popular, Role::Shared]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// The role a MISP warninglist should have by default, from its name: lists of
    /// shared services are not lists of good sites.
    pub fn for_warninglist(name: &str) -> Role {
        let n = name.to_ascii_lowercase();
        let shared = [
            "shortener",
            "link-in-bio",
            "link in bio",
            "dynamic",
            "ipfs",
            "free host",
            "free-host",
        ];
        if shared.iter().any(|s| n.contains(s)) {
            Role::Shared
        } else {
            Role::Allow
        }
    }
}

/// How an entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extent {
    /// The name only (warninglist `string`).
    Exact,
    /// The name and its subdomains (warninglist `hostname`, Tranco entries).
    Subtree,
}

/// One entry of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub list: String,
    pub role: Role,
    pub extent: Extent,
    /// Popularity rank (1 = most popular), for `Popular` entries.
    pub rank: Option<u32>,
}

/// Why a name is protected: which list and entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub list: String,
    pub role: Role,
    /// The listed name that matched (the name itself or an ancestor).
    pub entry: String,
    pub rank: Option<u32>,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} list {:?} entry {}",
            self.role.as_str(),
            self.list,
            self.entry
        )?;
        if let Some(r) = self.rank {
            write!(f, " (rank {r})")?;
        }
        Ok(())
    }
}

/// All loaded lists, indexed for one hash probe per label.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    names: HashMap<Box<str>, Vec<Entry>>,
    /// Names in reversed-label form (`com.example.www`), for "anything listed below
    /// this name?" range queries.
    reversed: BTreeSet<String>,
    cidrs: Vec<(IpNet, String, Role)>,
    substrings: Vec<(String, String, Role)>,
    /// Popular entries are treated as allowed up to this rank.
    pub popular_allow_top: u32,
}

fn reversed(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

impl Lists {
    pub fn new() -> Lists {
        Lists {
            popular_allow_top: crate::config::POPULAR_TOP,
            ..Default::default()
        }
    }

    pub fn add_name(&mut self, name: &Domain, entry: Entry) {
        self.reversed.insert(reversed(name.as_str()));
        self.names
            .entry(name.as_str().into())
            .or_default()
            .push(entry);
    }

    pub fn add_cidr(&mut self, net: IpNet, list: &str, role: Role) {
        self.cidrs.push((net, list.to_owned(), role));
    }

    pub fn add_substring(&mut self, text: &str, list: &str, role: Role) {
        if !text.is_empty() {
            self.substrings
                .push((text.to_ascii_lowercase(), list.to_owned(), role));
        }
    }

    pub fn len(&self) -> usize {
        self.names.values().map(Vec::len).sum::<usize>() + self.cidrs.len() + self.substrings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn counts(&self, e: &Entry) -> bool {
        match e.role {
            Role::Popular => e.rank.is_none_or(|r| r <= self.popular_allow_top),
            _ => true,
        }
    }

    /// The first entry that keeps `name` from being a DNS rule (Allow, Protected,
    /// Popular within the top N, or the exact name of a Shared service), if any.
    pub fn protecting(&self, name: &Domain, psl: &SuffixList) -> Option<Hit> {
        let registrable_len = psl
            .registrable_domain(name)
            .map_or(name.as_str().len(), |r| r.as_str().len());
        for ancestor in name.suffixes() {
            let is_self = ancestor.len() == name.as_str().len();
            let within_registrable = ancestor.len() >= registrable_len;
            let Some(entries) = self.names.get(ancestor) else {
                continue;
            };
            for e in entries {
                let applies = match (e.role, e.extent) {
                    (Role::Shared, _) => is_self,
                    (Role::Protected, Extent::Subtree) => true,
                    (_, Extent::Subtree) => within_registrable,
                    (_, Extent::Exact) => is_self,
                };
                if applies && self.counts(e) {
                    return Some(hit(ancestor, e));
                }
            }
        }
        self.substrings
            .iter()
            .find(|(s, _, _)| name.as_str().contains(s.as_str()))
            .map(|(s, list, role)| Hit {
                list: list.clone(),
                role: *role,
                entry: format!("*{s}*"),
                rank: None,
            })
    }

    /// The Shared entry at or above `name`, if `name` lives on shared infrastructure.
    pub fn shared(&self, name: &Domain) -> Option<Hit> {
        name.suffixes().find_map(|a| {
            self.names
                .get(a)?
                .iter()
                .find(|e| e.role == Role::Shared)
                .map(|e| hit(a, e))
        })
    }

    /// The popularity rank of `name` or of its registrable domain.
    pub fn popularity(&self, name: &Domain, psl: &SuffixList) -> Option<Hit> {
        let registrable = psl.registrable_domain(name);
        let candidates =
            std::iter::once(name.as_str()).chain(registrable.as_ref().map(Domain::as_str));
        candidates
            .filter_map(|n| {
                self.names
                    .get(n)?
                    .iter()
                    .filter(|e| e.role == Role::Popular)
                    .filter_map(|e| e.rank.map(|r| (r, n, e)))
                    .min_by_key(|(r, _, _)| *r)
            })
            .min_by_key(|(r, _, _)| *r)
            .map(|(_, n, e)| hit(n, e))
    }

    /// A listed name strictly below `name` that a wildcard on `name` would block.
    pub fn protected_below(&self, name: &Domain, psl: &SuffixList) -> Option<Hit> {
        let prefix = format!("{}.", reversed(name.as_str()));
        for rev in self.reversed.range(prefix.clone()..) {
            if !rev.starts_with(&prefix) {
                break;
            }
            let forward = reversed(rev);
            if let Ok(d) = Domain::parse(&forward)
                && let Some(h) = self.protecting(&d, psl)
            {
                return Some(h);
            }
        }
        None
    }

    /// The entry covering an address, if any.
    pub fn protecting_ip(&self, ip: IpAddr) -> Option<Hit> {
        self.cidrs
            .iter()
            .find(|(net, _, role)| *role != Role::Shared && net.contains(&ip))
            .map(|(net, list, role)| Hit {
                list: list.clone(),
                role: *role,
                entry: net.to_string(),
                rank: None,
            })
    }
}

fn hit(name: &str, e: &Entry) -> Hit {
    Hit {
        list: e.list.clone(),
        role: e.role,
        entry: name.to_owned(),
        rank: e.rank,
    }
}

/// True when `name` is a tenant of a private Public Suffix List suffix
/// (`evil.github.io`, `x.blogspot.com`): a namespace someone else hands out.
pub fn is_private_tenant(name: &Domain, psl: &SuffixList) -> bool {
    !psl.is_public_suffix(name) && psl.suffix_of(name).1 == Section::Private
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn lists() -> Lists {
        let mut l = Lists::new();
        let e = |list: &str, role, extent, rank| Entry {
            list: list.into(),
            role,
            extent,
            rank,
        };
        l.add_name(
            &d("google.com"),
            e("tranco", Role::Popular, Extent::Subtree, Some(1)),
        );
        l.add_name(
            &d("blogspot.com"),
            e("alexa", Role::Allow, Extent::Subtree, None),
        );
        l.add_name(
            &d("gov.uk"),
            e("protected", Role::Protected, Extent::Subtree, None),
        );
        l.add_name(
            &d("duckdns.org"),
            e("dynamic-dns", Role::Shared, Extent::Subtree, None),
        );
        l.add_name(
            &d("exact.example"),
            e("cisco", Role::Allow, Extent::Exact, None),
        );
        l.add_name(
            &d("deep.rare.example"),
            e("allow", Role::Allow, Extent::Exact, None),
        );
        l.add_name(
            &d("rank-50k.example"),
            e("tranco", Role::Popular, Extent::Subtree, Some(50_000)),
        );
        l
    }

    #[test]
    fn protection_rules() {
        let l = lists();
        let psl = SuffixList::builtin();
        let p = |n: &str| l.protecting(&d(n), psl).map(|h| h.entry);
        assert_eq!(p("mail.google.com").as_deref(), Some("google.com"));
        assert_eq!(p("blogspot.com").as_deref(), Some("blogspot.com"));
        // A tenant of a private suffix is its own registrable domain: not protected.
        assert_eq!(p("evil.blogspot.com"), None);
        assert_eq!(p("www.nhs.gov.uk").as_deref(), Some("gov.uk"));
        assert_eq!(p("duckdns.org").as_deref(), Some("duckdns.org"));
        assert_eq!(p("evil.duckdns.org"), None);
        assert_eq!(p("exact.example").as_deref(), Some("exact.example"));
        assert_eq!(p("sub.exact.example"), None);
        // Popular beyond the allow cut-off does not protect.
        assert_eq!(p("rank-50k.example"), None);
        assert_eq!(
            l.shared(&d("x.duckdns.org")).map(|h| h.list).as_deref(),
            Some("dynamic-dns")
        );
        assert_eq!(
            l.popularity(&d("www.google.com"), psl).and_then(|h| h.rank),
            Some(1)
        );
        assert_eq!(
            l.protected_below(&d("rare.example"), psl)
                .map(|h| h.entry)
                .as_deref(),
            Some("deep.rare.example")
        );
        assert_eq!(l.protected_below(&d("other.example"), psl), None);
        assert!(is_private_tenant(&d("evil.github.io"), psl));
        assert!(!is_private_tenant(&d("github.io"), psl));
        assert!(!is_private_tenant(&d("evil.example.com"), psl));
    }

    #[test]
    fn warninglist_roles() {
        assert_eq!(
            Role::for_warninglist("List of known URL Shorteners domains"),
            Role::Shared
        );
        assert_eq!(
            Role::for_warninglist("List of known dynamic DNS domains"),
            Role::Shared
        );
        assert_eq!(
            Role::for_warninglist("Top 1000 website from Alexa"),
            Role::Allow
        );
    }
}
