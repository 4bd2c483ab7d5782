//! URLs in one canonical spelling.
//!
//! Phishing is reported as URLs; two feeds that report the same page must produce the
//! same indicator, and the hub must know which host a URL lives on to judge its blast
//! radius. The canonical form follows RFC 3986 section 6 on top of the WHATWG parser
//! (`url` crate): scheme and host lower case, host as IDNA A-label, default port,
//! user information and fragment dropped, percent-escapes with upper-case hex and
//! unreserved characters decoded; the path and query are otherwise kept as given.

use std::fmt;
use std::net::IpAddr;

use crate::Domain;

/// A canonical URL with its host. Invariant: `text` is the canonical form and `host`
/// is the validated host of that text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Url {
    text: Box<str>,
    host: Host,
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    Domain(Domain),
    Ip(IpAddr),
}

/// Why a text is not a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Syntax(String),
    #[error("unsupported URL scheme {0:?}")]
    Scheme(String),
    #[error("URL has no host")]
    NoHost,
    #[error("URL host: {0}")]
    Host(#[from] crate::DomainError),
}

/// Schemes whose URLs name a host a DNS filter can act on.
const SCHEMES: &[&str] = &["http", "https", "ftp", "ws", "wss"];

impl Url {
    /// Parses and canonicalises `text`, which must carry a scheme
    /// (`http://`, `https://` …). Defanged input must be re-fanged first.
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let text = text.trim();
        let mut url = url::Url::parse(text).map_err(|e| UrlError::Syntax(e.to_string()))?;
        if !SCHEMES.contains(&url.scheme()) {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => Host::Domain(Domain::parse(d)?),
            Some(url::Host::Ipv4(a)) => Host::Ip(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Host::Ip(IpAddr::V6(a)),
            None => return Err(UrlError::NoHost),
        };
        // Credentials and fragments never reach the server's logic; dropping them
        // makes the same page one indicator (and keeps stolen passwords out of feeds).
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        let path = normalise_escapes(url.path());
        if path != url.path() {
            url.set_path(&path);
        }
        if let Some(q) = url.query() {
            let q2 = normalise_escapes(q);
            if q2 != q {
                url.set_query(Some(&q2));
            }
        }
        Ok(Url {
            text: String::from(url).into_boxed_str(),
            host,
        })
    }

    /// Parses a URL that may lack its scheme (`evil.example/login`): feeds of paths
    /// write them so, and `http://` is what a browser would assume.
    pub fn parse_lenient(text: &str) -> Result<Url, UrlError> {
        // A scheme is letters, digits, `+`, `-`, `.` before the first `://`, with no
        // `/` before it: `archive.org/web/2024/http://x` has a path, not a scheme.
        let has_scheme = text.trim().split_once("://").is_some_and(|(scheme, _)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
        if has_scheme {
            Url::parse(text)
        } else {
            Url::parse(&format!("http://{}", text.trim()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host when it is a name, not an address.
    pub fn domain(&self) -> Option<&Domain> {
        match &self.host {
            Host::Domain(d) => Some(d),
            Host::Ip(_) => None,
        }
    }

    /// True when the URL is only its host: no path beyond `/`, no query. Such a URL
    /// says no more than its host does.
    pub fn is_host_only(&self) -> bool {
        let after_scheme = self.text.split_once("://").map_or("", |(_, r)| r);
        match after_scheme.find('/') {
            None => true,
            Some(i) => &after_scheme[i..] == "/",
        }
    }
}

/// Upper-cases the hex of each `%XX` and decodes escapes of unreserved characters
/// (RFC 3986 2.3 and 6.2.2.2).
fn normalise_escapes(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let (h, l) = (b[i + 1], b[i + 2]);
            if let (Some(hv), Some(lv)) = (hex(h), hex(l)) {
                let byte = hv << 4 | lv;
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                    out.push(byte as char);
                } else {
                    out.push('%');
                    out.push(h.to_ascii_uppercase() as char);
                    out.push(l.to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // A `%` that starts no escape is written `%25`, or decoding could make a new
        // escape of it (`%4%42` -> `%4B`) and normalising again would change the URL.
        if b[i] == b'%' {
            out.push_str("%25");
        } else {
            // `s` comes from the url crate and is ASCII; push byte by byte.
            out.push(b[i] as char);
        }
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({})", self.text)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => d.fmt(f),
            Host::Ip(a) => a.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match Url::parse(input) {
            Ok(u) => format!("{u} host={}", u.host()),
            Err(e) => format!("err {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn lowercases_scheme_and_host() {
        check(
            "HTTP://WWW.Example.COM/Path",
            expect!["http://www.example.com/Path host=www.example.com"],
        );
    }
    #[test]
    fn drops_default_port_userinfo_fragment() {
        check(
            "https://user:pw@evil.example:443/a#frag",
            expect!["https://evil.example/a host=evil.example"],
        );
        check(
            "http://evil.example:8080/",
            expect!["http://evil.example:8080/ host=evil.example"],
        );
    }
    #[test]
    fn percent_escapes() {
        check(
            "http://evil.example/%7euser/%2f%41?q=%3d%62",
            expect!["http://evil.example/~user/%2FA?q=%3Db host=evil.example"],
        );
    }
    #[test]
    fn stray_percent_is_escaped() {
        // Found by the `normalise` fuzz target: decoding `%42` made `%4B` of `%4%42`,
        // so the canonical form was not canonical.
        check(
            "http://a.example/j?%4%42",
            expect!["http://a.example/j?%254B host=a.example"],
        );
        check(
            "http://a.example/j?%254B",
            expect!["http://a.example/j?%254B host=a.example"],
        );
        check(
            "http://a.example/100%/%",
            expect!["http://a.example/100%25/%25 host=a.example"],
        );
    }
    #[test]
    fn idna_host() {
        check(
            "http://bücher.example/",
            expect!["http://xn--bcher-kva.example/ host=xn--bcher-kva.example"],
        );
    }
    #[test]
    fn ip_hosts() {
        check(
            "http://192.0.2.1/x",
            expect!["http://192.0.2.1/x host=192.0.2.1"],
        );
        check(
            "http://[2001:DB8::1]:80/",
            expect!["http://[2001:db8::1]/ host=2001:db8::1"],
        );
    }
    #[test]
    fn rejects() {
        check(
            "mailto:a@b.example",
            expect![[r#"err unsupported URL scheme "mailto""#]],
        );
        check(
            "not a url",
            expect!["err not a URL: relative URL without a base"],
        );
        check(
            "http://exa_mple..com/",
            expect!["err URL host: empty label"],
        );
    }
    #[test]
    fn lenient_adds_scheme() {
        let u = Url::parse_lenient("evil.example/login.php").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.as_str(), "http://evil.example/login.php");
        let archived = Url::parse_lenient("web.archive.org/web/2024/https://evil.example/")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            archived.as_str(),
            "http://web.archive.org/web/2024/https://evil.example/"
        );
        assert!(!u.is_host_only());
        let h = Url::parse("https://evil.example").unwrap_or_else(|e| panic!("{e}"));
        assert!(h.is_host_only());
    }
}
