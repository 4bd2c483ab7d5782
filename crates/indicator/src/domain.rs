//! Domain names as the hub stores and publishes them.
//!
//! Every feed writes names its own way: upper case, trailing dots, Unicode, defanged
//! brackets. A `Domain` is the one spelling the rest of the system compares: the
//! UTS 46 A-label, lower case, no trailing dot, with RFC 1035 length rules and
//! RFC 1123 letter-digit-hyphen labels. Downstream code takes `&Domain` and never
//! re-validates.
//!
//! Deliberate leniency: the underscore is accepted inside a label. It is legal DNS
//! (`_dmarc`, SRV owners) and real malicious host names carry it, so a blocklist that
//! refused it would let those hosts through. Nothing else outside letter-digit-hyphen
//! is accepted.

use std::fmt;

/// Longest name in presentation form without the trailing dot (RFC 1035: 255 octets
/// on the wire, which is 253 characters of text).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// A validated domain name.
///
/// Invariant: ASCII (A-label form), lowercase, no trailing dot, 1..=253 bytes, every
/// label 1..=63 bytes of `[a-z0-9_-]` not starting or ending with `-`, not an IP
/// address literal, and a top-level label that is not all digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(Box<str>);

/// Why a text is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty name")]
    Empty,
    #[error("empty label")]
    EmptyLabel,
    #[error("name longer than 253 characters")]
    TooLong,
    #[error("label longer than 63 characters")]
    LabelTooLong,
    #[error("invalid character {0:?} in name")]
    InvalidChar(char),
    #[error("label starts or ends with a hyphen")]
    Hyphen,
    #[error("an IP address is not a domain name")]
    IpLiteral,
    #[error("top-level label is all digits")]
    NumericTld,
    #[error("wildcard label not allowed here")]
    Wildcard,
    #[error("invalid internationalised name (UTS 46)")]
    Idna,
}

impl Domain {
    /// Parses and normalises a name: trims white space, drops one trailing dot, maps
    /// Unicode and `xn--` labels through UTS 46 to their A-label, lowercases, checks.
    pub fn parse(text: &str) -> Result<Domain, DomainError> {
        let text = text.trim();
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(DomainError::Empty);
        }
        if text.starts_with("*.") || text == "*" {
            return Err(DomainError::Wildcard);
        }
        let needs_idna = !text.is_ascii() || has_ace_label(text);
        let ascii: String = if needs_idna {
            let mapped = idna::domain_to_ascii(text).map_err(|_| DomainError::Idna)?;
            let mapped = mapped
                .strip_suffix('.')
                .map(str::to_owned)
                .unwrap_or(mapped);
            if mapped.is_empty() {
                return Err(DomainError::Empty);
            }
            mapped
        } else {
            text.to_ascii_lowercase()
        };
        check_ascii(&ascii)?;
        Ok(Domain(ascii.into_boxed_str()))
    }

    /// The name as text: ASCII, lowercase, no trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Labels from left to right.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('.')
    }

    /// Number of labels.
    pub fn label_count(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'.').count() + 1
    }

    /// The name one label up (`a.b.c` → `b.c`), `None` for a single label.
    pub fn parent(&self) -> Option<Domain> {
        self.0
            .split_once('.')
            .map(|(_, rest)| Domain(rest.to_owned().into_boxed_str()))
    }

    /// This name and every ancestor, longest first, as string slices of `self`.
    pub fn suffixes(&self) -> impl Iterator<Item = &str> {
        let s: &str = &self.0;
        std::iter::once(s).chain(s.match_indices('.').map(move |(i, _)| &s[i + 1..]))
    }

    /// True when `self` equals `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &Domain) -> bool {
        let (me, other) = (self.as_str(), ancestor.as_str());
        me == other
            || (me.len() > other.len()
                && me.ends_with(other)
                && me.as_bytes()[me.len() - other.len() - 1] == b'.')
    }

    /// The Unicode (U-label) form for display; the A-label form if it cannot be decoded.
    pub fn to_unicode(&self) -> String {
        let (text, result) = idna::domain_to_unicode(&self.0);
        if result.is_ok() {
            text
        } else {
            self.0.to_string()
        }
    }

    /// Builds a `Domain` from text already in canonical form, checking it.
    pub(crate) fn from_canonical(text: &str) -> Result<Domain, DomainError> {
        check_ascii(text)?;
        Ok(Domain(text.into()))
    }
}

fn has_ace_label(text: &str) -> bool {
    text.split('.')
        .any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"))
}

/// Checks the invariant on an ASCII, already lowercased name.
fn check_ascii(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::TooLong);
    }
    let mut last_label = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong);
        }
        for b in label.bytes() {
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
                return Err(DomainError::InvalidChar(b as char));
            }
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen);
        }
        last_label = label;
    }
    if last_label.bytes().all(|b| b.is_ascii_digit()) {
        // `1.2.3.4` and `example.123` alike: a numeric TLD is an address or nonsense.
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(DomainError::IpLiteral);
        }
        return Err(DomainError::NumericTld);
    }
    Ok(())
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

impl std::str::FromStr for Domain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match Domain::parse(input) {
            Ok(d) => format!("ok {d}"),
            Err(e) => format!("err {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn lowercases_and_drops_trailing_dot() {
        check("WWW.Example.COM.", expect!["ok www.example.com"]);
    }
    #[test]
    fn trims_space() {
        check("  example.org\t", expect!["ok example.org"]);
    }
    #[test]
    fn unicode_to_a_label() {
        check("bücher.example", expect!["ok xn--bcher-kva.example"]);
    }
    #[test]
    fn uppercase_unicode() {
        check("BÜCHER.de", expect!["ok xn--bcher-kva.de"]);
    }
    #[test]
    fn ace_label_kept() {
        check("XN--BCHER-KVA.example", expect!["ok xn--bcher-kva.example"]);
    }
    #[test]
    fn bad_ace_label() {
        check(
            "xn--a.example",
            expect!["err invalid internationalised name (UTS 46)"],
        );
    }
    #[test]
    fn empty() {
        check("", expect!["err empty name"]);
        check(".", expect!["err empty name"]);
    }
    #[test]
    fn empty_label() {
        check("a..b", expect!["err empty label"]);
        check(".a.b", expect!["err empty label"]);
    }
    #[test]
    fn ip_literal() {
        check(
            "192.0.2.1",
            expect!["err an IP address is not a domain name"],
        );
        check("1.2.3", expect!["err top-level label is all digits"]);
    }
    #[test]
    fn ipv6_literal() {
        check("::1", expect![[r#"err invalid character ':' in name"#]]);
    }
    #[test]
    fn hyphens() {
        check(
            "-a.example",
            expect!["err label starts or ends with a hyphen"],
        );
        check(
            "a-.example",
            expect!["err label starts or ends with a hyphen"],
        );
        check("a-b.example", expect!["ok a-b.example"]);
    }
    #[test]
    fn underscore_allowed() {
        check("_dmarc.example.com", expect!["ok _dmarc.example.com"]);
    }
    #[test]
    fn bad_chars() {
        check(
            "exa mple.com",
            expect![[r#"err invalid character ' ' in name"#]],
        );
        check("a/b.com", expect![[r#"err invalid character '/' in name"#]]);
        check(
            "example.com?",
            expect![[r#"err invalid character '?' in name"#]],
        );
    }
    #[test]
    fn wildcard_is_not_a_domain() {
        check(
            "*.example.com",
            expect!["err wildcard label not allowed here"],
        );
    }
    #[test]
    fn lengths() {
        let label = "a".repeat(63);
        check(
            &format!("{label}.com"),
            expect!["ok aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"],
        );
        check(
            &format!("{label}a.com"),
            expect!["err label longer than 63 characters"],
        );
        let long = vec!["a".repeat(62); 4].join(".");
        assert_eq!(long.len(), 251);
        assert_eq!(
            Domain::parse(&format!("{long}.co")),
            Err(DomainError::TooLong)
        );
        assert!(Domain::parse(&format!("{long}.c")).is_ok());
        assert!(Domain::parse(&format!("{long}.c.")).is_ok());
    }
    #[test]
    fn single_label_is_a_domain() {
        check("com", expect!["ok com"]);
    }
    #[test]
    fn suffixes_and_within() {
        let d = Domain::parse("a.b.example.com").unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<_> = d.suffixes().collect();
        assert_eq!(
            all,
            ["a.b.example.com", "b.example.com", "example.com", "com"]
        );
        let p = Domain::parse("example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(d.is_within(&p));
        assert!(p.is_within(&p));
        let q = Domain::parse("ample.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.is_within(&q));
        assert_eq!(
            d.parent().map(|p| p.to_string()).as_deref(),
            Some("b.example.com")
        );
        assert_eq!(d.label_count(), 4);
    }
}
