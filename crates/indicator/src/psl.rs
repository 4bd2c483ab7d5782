//! The Public Suffix List: where registrations happen, and so where blocking stops.
//!
//! A rule on `github.io` or `co.uk` would block millions of unrelated sites, so the hub
//! must know every public suffix, from both the ICANN and the PRIVATE sections of the
//! list. A copy of the list is compiled in (`data/public_suffix_list.dat`, MPL-2.0,
//! from publicsuffix/list); an operator can load a newer file at run time with
//! [`SuffixList::parse`]. Matching is the `publicsuffix` crate's; this module adds the
//! section of the matching rule and the registrable-domain view over [`Domain`].

use std::sync::OnceLock;

use publicsuffix::{List, Psl, Type};

use crate::Domain;

/// The list as compiled into this build.
pub const BUILTIN_LIST: &str = include_str!("../data/public_suffix_list.dat");

/// Which part of the list a suffix comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Delegated by a registry under ICANN (`com`, `co.uk`).
    Icann,
    /// Submitted by the owner of a shared namespace (`github.io`, `blogspot.com`).
    Private,
    /// Not on the list: the implicit `*` rule made the top label the suffix.
    Unlisted,
}

/// A loaded Public Suffix List.
#[derive(Clone)]
pub struct SuffixList {
    list: List,
}

impl std::fmt::Debug for SuffixList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuffixList")
    }
}

/// A list file that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid public suffix list: {0}")]
pub struct SuffixListError(String);

impl SuffixList {
    /// The list compiled into this build, parsed once.
    pub fn builtin() -> &'static SuffixList {
        static BUILTIN: OnceLock<SuffixList> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            #[allow(clippy::expect_used)]
            SuffixList::parse(BUILTIN_LIST).expect("the compiled-in suffix list parses")
        })
    }

    /// Parses a `public_suffix_list.dat` text (both sections).
    pub fn parse(text: &str) -> Result<SuffixList, SuffixListError> {
        let list: List = text
            .parse()
            .map_err(|e: publicsuffix::Error| SuffixListError(e.to_string()))?;
        Ok(SuffixList { list })
    }

    /// The public suffix of `name` and the section of the rule that made it one.
    pub fn suffix_of<'a>(&self, name: &'a Domain) -> (&'a str, Section) {
        let text = name.as_str();
        match self.list.suffix(text.as_bytes()) {
            Some(s) => {
                let len = s.as_bytes().len();
                let section = match s.typ() {
                    Some(Type::Icann) => Section::Icann,
                    Some(Type::Private) => Section::Private,
                    None => Section::Unlisted,
                };
                (&text[text.len() - len..], section)
            }
            // Only reachable for an empty name, which a Domain never is.
            None => (text, Section::Unlisted),
        }
    }

    /// True when `name` is itself a public suffix (`co.uk`, `github.io`, or an
    /// unlisted single label such as `example`).
    pub fn is_public_suffix(&self, name: &Domain) -> bool {
        self.suffix_of(name).0.len() == name.as_str().len()
    }

    /// The registrable domain ("eTLD+1") of `name`, or `None` when `name` is a
    /// public suffix.
    pub fn registrable_domain(&self, name: &Domain) -> Option<Domain> {
        let text = name.as_str();
        let (suffix, _) = self.suffix_of(name);
        if suffix.len() >= text.len() {
            return None;
        }
        let head = &text[..text.len() - suffix.len() - 1];
        let start = head.rfind('.').map_or(0, |i| i + 1);
        Domain::from_canonical(&text[start..]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn sections() {
        let l = SuffixList::builtin();
        assert_eq!(
            l.suffix_of(&d("www.example.co.uk")),
            ("co.uk", Section::Icann)
        );
        assert_eq!(
            l.suffix_of(&d("x.github.io")),
            ("github.io", Section::Private)
        );
        assert_eq!(
            l.suffix_of(&d("a.b.blogspot.com")),
            ("blogspot.com", Section::Private)
        );
        assert_eq!(
            l.suffix_of(&d("foo.example")),
            ("example", Section::Unlisted)
        );
    }

    #[test]
    fn registrable() {
        let l = SuffixList::builtin();
        let r = |s: &str| l.registrable_domain(&d(s)).map(|d| d.to_string());
        assert_eq!(r("a.b.example.com").as_deref(), Some("example.com"));
        assert_eq!(r("evil.github.io").as_deref(), Some("evil.github.io"));
        assert_eq!(r("github.io"), None);
        assert_eq!(r("gov.uk"), None);
        assert!(l.is_public_suffix(&d("gov.uk")));
        assert!(l.is_public_suffix(&d("nhs.uk")));
        assert!(!l.is_public_suffix(&d("www.nhs.uk")));
    }

    #[test]
    fn rejects_garbage_list() {
        assert!(SuffixList::parse("").is_err());
    }
}
