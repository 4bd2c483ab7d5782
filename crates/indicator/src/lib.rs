//! The indicator model: what the hub knows about, in one normalised spelling.
//!
//! Feeds speak in raw text; everything downstream (store, analysis, publication)
//! compares values. This crate turns text into typed, validated values — domains,
//! wildcard domains, URLs, IP addresses and prefixes — and describes one source's
//! report of one of them (an [`Observation`]). It does no I/O and never panics on
//! input; a value that cannot be normalised is a [`Reject`] with a reason code.

mod defang;
mod domain;
mod observation;
mod psl;
mod url;

use std::fmt;
use std::net::IpAddr;

pub use defang::refang;
pub use domain::{Domain, DomainError, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use ipnet::IpNet;
pub use jiff::Timestamp;
pub use observation::{Category, Confidence, Observation, Tlp};
pub use psl::{BUILTIN_LIST as BUILTIN_SUFFIX_LIST, Section, SuffixList, SuffixListError};
pub use url::{Host, Url, UrlError};

/// A normalised indicator value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Indicator {
    /// One exact name.
    Domain(Domain),
    /// Every name strictly below the domain (`*.example.com`; not the apex itself,
    /// as in RPZ and DNS wildcards).
    Wildcard(Domain),
    Url(Url),
    Ip(IpAddr),
    /// An address prefix; a host route (`/32`, `/128`) is normalised to [`Indicator::Ip`].
    Cidr(IpNet),
}

/// The four kinds that summaries count (a wildcard counts as a domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Domain,
    Url,
    Ip,
    Cidr,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Domain, Kind::Url, Kind::Ip, Kind::Cidr];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Ip => "ip",
            Kind::Cidr => "cidr",
        }
    }
}

impl Indicator {
    pub fn kind(&self) -> Kind {
        match self {
            Indicator::Domain(_) | Indicator::Wildcard(_) => Kind::Domain,
            Indicator::Url(_) => Kind::Url,
            Indicator::Ip(_) => Kind::Ip,
            Indicator::Cidr(_) => Kind::Cidr,
        }
    }

    /// Parses any indicator text, guided by what the format says it is.
    pub fn parse(text: &str, hint: Hint) -> Result<Indicator, Reject> {
        parse_indicator(text, hint)
    }
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Indicator::Domain(d) => d.fmt(f),
            Indicator::Wildcard(d) => write!(f, "*.{d}"),
            Indicator::Url(u) => u.fmt(f),
            Indicator::Ip(a) => a.fmt(f),
            Indicator::Cidr(n) => n.fmt(f),
        }
    }
}

/// What a feed format says a value is. `Any` lets the text decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Hint {
    #[default]
    Any,
    Domain,
    Wildcard,
    Url,
    Ip,
    Cidr,
}

/// Why a value was not accepted; `code` is stable for counting and for scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: RejectCode,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    Empty,
    InvalidDomain,
    InvalidUrl,
    InvalidIp,
    InvalidCidr,
    /// A path or pattern without a host (`/admin.php`, `.xyz`).
    NoHost,
    /// A value of a kind the hub does not handle (hash, e-mail, port).
    Unsupported,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Empty => "empty",
            RejectCode::InvalidDomain => "invalid-domain",
            RejectCode::InvalidUrl => "invalid-url",
            RejectCode::InvalidIp => "invalid-ip",
            RejectCode::InvalidCidr => "invalid-cidr",
            RejectCode::NoHost => "no-host",
            RejectCode::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl Reject {
    fn new(code: RejectCode, detail: impl fmt::Display) -> Reject {
        Reject {
            code,
            detail: detail.to_string(),
        }
    }
}

fn parse_indicator(text: &str, hint: Hint) -> Result<Indicator, Reject> {
    let refanged = refang(text.trim());
    let t: &str = refanged.as_ref();
    if t.is_empty() {
        return Err(Reject::new(RejectCode::Empty, "empty value"));
    }
    match hint {
        Hint::Domain => parse_name(t),
        Hint::Wildcard => parse_wildcard(t),
        Hint::Url => parse_url(t),
        Hint::Ip => parse_ip(t),
        Hint::Cidr => parse_cidr(t),
        Hint::Any => parse_any(t),
    }
}

fn parse_any(t: &str) -> Result<Indicator, Reject> {
    if t.contains("://") {
        return parse_url(t);
    }
    if t.starts_with("*.") {
        return parse_wildcard(t);
    }
    if t.starts_with('/') || t.starts_with('.') && !t[1..].contains('.') {
        return Err(Reject::new(
            RejectCode::NoHost,
            format!("{t:?} names no host"),
        ));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Indicator::Ip(ip));
    }
    if t.contains('/') {
        if let Ok(net) = t.parse::<IpNet>() {
            return Ok(cidr(net));
        }
        return parse_url(t);
    }
    // `host:port` (maltrail, ThreatFox): the host is the indicator.
    if let Some((host, port)) = t.rsplit_once(':')
        && !host.contains(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return parse_any(host);
    }
    if t.contains('?') || t.contains('#') {
        return parse_url(t);
    }
    parse_name(t)
}

fn parse_name(t: &str) -> Result<Indicator, Reject> {
    if let Some(rest) = t.strip_prefix("*.") {
        return parse_wildcard_rest(rest);
    }
    match Domain::parse(t) {
        Ok(d) => Ok(Indicator::Domain(d)),
        Err(DomainError::IpLiteral) => parse_ip(t),
        Err(e) => Err(Reject::new(
            RejectCode::InvalidDomain,
            format!("{t:?}: {e}"),
        )),
    }
}

fn parse_wildcard(t: &str) -> Result<Indicator, Reject> {
    match t.strip_prefix("*.") {
        Some(rest) => parse_wildcard_rest(rest),
        None => parse_name(t).map(|i| match i {
            Indicator::Domain(d) => Indicator::Wildcard(d),
            other => other,
        }),
    }
}

fn parse_wildcard_rest(rest: &str) -> Result<Indicator, Reject> {
    Domain::parse(rest)
        .map(Indicator::Wildcard)
        .map_err(|e| Reject::new(RejectCode::InvalidDomain, format!("\"*.{rest}\": {e}")))
}

fn parse_url(t: &str) -> Result<Indicator, Reject> {
    Url::parse_lenient(t)
        .map(Indicator::Url)
        .map_err(|e| Reject::new(RejectCode::InvalidUrl, format!("{t:?}: {e}")))
}

fn parse_ip(t: &str) -> Result<Indicator, Reject> {
    let host = t
        .strip_prefix('[')
        .and_then(|s| s.split_once(']').map(|(h, _)| h))
        .unwrap_or(t);
    if let Ok(a) = host.parse::<IpAddr>() {
        return Ok(Indicator::Ip(a));
    }
    if let Some((h, port)) = host.rsplit_once(':')
        && port.bytes().all(|b| b.is_ascii_digit())
        && let Ok(a) = h.parse::<IpAddr>()
    {
        return Ok(Indicator::Ip(a));
    }
    Err(Reject::new(
        RejectCode::InvalidIp,
        format!("{t:?} is not an IP address"),
    ))
}

fn parse_cidr(t: &str) -> Result<Indicator, Reject> {
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(cidr(net));
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(Indicator::Ip(a));
    }
    Err(Reject::new(
        RejectCode::InvalidCidr,
        format!("{t:?} is not an address prefix"),
    ))
}

/// A prefix with host bits set is taken as its network (`10.1.2.3/8` → `10.0.0.0/8`),
/// as routers and firewalls do; a full-length prefix is the address itself.
fn cidr(net: IpNet) -> Indicator {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        Indicator::Ip(net.addr())
    } else {
        Indicator::Cidr(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(input: &str, hint: Hint, expect: Expect) {
        let actual = match Indicator::parse(input, hint) {
            Ok(i) => format!("{} {i}", i.kind().as_str()),
            Err(r) => format!("reject {r}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn any_text() {
        check("Evil.Example.", Hint::Any, expect!["domain evil.example"]);
        check(
            "*.evil.example",
            Hint::Any,
            expect!["domain *.evil.example"],
        );
        check(
            "hxxp://evil[.]example/a",
            Hint::Any,
            expect!["url http://evil.example/a"],
        );
        check(
            "evil.example/login.php",
            Hint::Any,
            expect!["url http://evil.example/login.php"],
        );
        check("192.0.2.7", Hint::Any, expect!["ip 192.0.2.7"]);
        check("192.0.2.7:443", Hint::Any, expect!["ip 192.0.2.7"]);
        check(
            "evil.example:8080",
            Hint::Any,
            expect!["domain evil.example"],
        );
        check("2001:db8::1", Hint::Any, expect!["ip 2001:db8::1"]);
        check("10.1.2.3/8", Hint::Any, expect!["cidr 10.0.0.0/8"]);
        check("192.0.2.7/32", Hint::Any, expect!["ip 192.0.2.7"]);
        check(
            "/adin/admin.php",
            Hint::Any,
            expect![[r#"reject no-host: "/adin/admin.php" names no host"#]],
        );
        check(
            ".xyz",
            Hint::Any,
            expect![[r#"reject no-host: ".xyz" names no host"#]],
        );
        check("", Hint::Any, expect!["reject empty: empty value"]);
        check(
            "a b",
            Hint::Any,
            expect![[r#"reject invalid-domain: "a b": invalid character ' ' in name"#]],
        );
    }

    #[test]
    fn hinted() {
        check(
            "evil.example",
            Hint::Wildcard,
            expect!["domain *.evil.example"],
        );
        check("[2001:db8::1]:53", Hint::Ip, expect!["ip 2001:db8::1"]);
        check(
            "evil.example",
            Hint::Ip,
            expect![[r#"reject invalid-ip: "evil.example" is not an IP address"#]],
        );
        check("192.0.2.1", Hint::Domain, expect!["ip 192.0.2.1"]);
        check(
            "evil.example",
            Hint::Url,
            expect!["url http://evil.example/"],
        );
    }
}
