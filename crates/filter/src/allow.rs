//! The local allowlist: names the operator never wants filtered, whatever a policy
//! zone says.
//!
//! An entry covers the name and every name below it (an operator who allows
//! `bank.example` means the bank's whole site). Entries are read from flags, the
//! config file, or files of one name per line (`#` comments); a name that is not a
//! valid domain is an error naming where it was, never silently skipped.

use std::collections::HashSet;

use indicator::Domain;

/// A set of allowed names, each covering its subtree.
#[derive(Debug, Default, Clone)]
pub struct Allowlist {
    names: HashSet<String>,
}

impl Allowlist {
    /// From names as an operator writes them (Unicode or A-label, any case).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Allowlist, String> {
        let mut list = Allowlist::default();
        for n in names {
            list.add(n)?;
        }
        Ok(list)
    }

    pub fn add(&mut self, name: &str) -> Result<(), String> {
        let d = Domain::parse(name.trim().trim_end_matches('.'))
            .map_err(|e| format!("allowlist name {name:?}: {e}"))?;
        self.names.insert(d.as_str().to_owned());
        Ok(())
    }

    /// Adds the names of a file's text (one per line, `#` comments); errors name the
    /// line.
    pub fn add_text(&mut self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            self.add(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        }
        Ok(())
    }

    /// The allowed names (lowercase A-labels), each covering its subtree.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// True when `name` (lowercase, no trailing dot) or a name above it is allowed.
    pub fn covers(&self, name: &str) -> bool {
        if self.names.is_empty() {
            return false;
        }
        let mut rest = name;
        loop {
            if self.names.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => rest = parent,
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_subtree_only() {
        let mut a = Allowlist::from_names(["Bank.Example."]).unwrap_or_else(|e| panic!("{e}"));
        a.add_text("# mine\nshop.example # the shop\n\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.covers("bank.example"));
        assert!(a.covers("www.bank.example"));
        assert!(!a.covers("notbank.example"));
        assert!(!a.covers("example"));
        assert!(a.covers("a.b.shop.example"));
        assert_eq!(a.len(), 2);
        let err = a
            .add_text("ok.example\nbad..name\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("line 2: allowlist name \"bad..name\""),
            "{err}"
        );
    }
}
