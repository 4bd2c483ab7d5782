//! Query names as the matcher reads them, and the one hash every name table shares.
//!
//! A lookup walks from the query name to ever shorter suffixes, one table probe per
//! label. To make that cheap the suffix hashes are chained label by label from the
//! root (`h(a.b.c) = H(H(H(seed, c), b), a)`), so one pass over the name yields the
//! hash of every suffix, and every zone of a policy reuses them: the key is one
//! random seed per process, not per table. The hash is foldhash (hashbrown's default)
//! with that random seed: a table's names come from vetted policy zones and a query
//! name never enters a table, so a name chosen by a client cannot lengthen a probe.
//!
//! [`QueryName`] lives on the stack (no allocation on the query path), takes text or
//! wire labels in any case, and keeps names that no rule can name (bytes outside
//! letter-digit-hyphen-underscore, a `.` inside a wire label) apart from every rule
//! while still matching the wildcards above them.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

use hashbrown::DefaultHashBuilder;

/// Longest name in text form without the trailing dot (255 octets on the wire).
pub const MAX_TEXT_LEN: usize = 253;
/// Most labels a name can have (255 octets on the wire, two per label, root excluded).
pub const MAX_LABELS: usize = 127;

static KEYS: LazyLock<DefaultHashBuilder> = LazyLock::new(DefaultHashBuilder::default);

/// The hash of a name one label longer than the name hashed `parent`.
#[inline]
pub(crate) fn chain(parent: u64, label: &[u8]) -> u64 {
    let mut h = KEYS.build_hasher();
    h.write_u64(parent);
    h.write(label);
    h.finish()
}

/// The chain's start: the hash of the root.
pub(crate) const ROOT_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hash of a stored name (`a.b.c`, lowercase, no trailing dot).
pub(crate) fn hash_name(name: &[u8]) -> u64 {
    name.rsplit(|&b| b == b'.').fold(ROOT_HASH, chain)
}

/// Number of labels of a stored name.
pub(crate) fn label_count(name: &[u8]) -> usize {
    name.iter().filter(|&&b| b == b'.').count() + 1
}

/// Why bytes are not a query name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name longer than 253 characters")]
    TooLong,
    #[error("empty label")]
    EmptyLabel,
    #[error("label longer than 63 characters")]
    LabelTooLong,
    #[error("more than 127 labels")]
    TooManyLabels,
}

/// A query name ready for lookups: lowercase text, where each label starts, and the
/// hash of every suffix. Built once per query, on the stack; the root name has no
/// labels and matches nothing.
#[derive(Clone)]
pub struct QueryName {
    text: [u8; MAX_TEXT_LEN],
    len: u8,
    labels: u8,
    /// `starts[i]`: where the suffix of `labels - i` labels begins (0 = whole name).
    starts: [u8; MAX_LABELS],
    /// `hashes[i]`: hash of the suffix starting at `starts[i]`.
    hashes: [u64; MAX_LABELS],
}

impl std::fmt::Debug for QueryName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QueryName({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

impl Default for QueryName {
    fn default() -> QueryName {
        QueryName::root()
    }
}

impl QueryName {
    /// The root name (no labels; matches nothing). A buffer to fill with
    /// [`QueryName::set_text`] or [`QueryName::set_labels`]: a resolver keeps one per
    /// worker and refills it for each query, so nothing is allocated or moved.
    pub fn root() -> QueryName {
        QueryName {
            text: [0; MAX_TEXT_LEN],
            len: 0,
            labels: 0,
            starts: [0; MAX_LABELS],
            hashes: [0; MAX_LABELS],
        }
    }

    /// A name in text form (`www.Example.com` or `www.example.com.`). ASCII letters
    /// are lowercased; escapes (`\.`) are not interpreted: pass wire labels to
    /// [`QueryName::from_labels`] instead.
    pub fn from_text(text: &[u8]) -> Result<QueryName, NameError> {
        let mut name = QueryName::root();
        name.set_text(text)?;
        Ok(name)
    }

    /// A name from its labels, leftmost first, without the root label (what a DNS
    /// message holds). A `.` inside a label is kept apart from the label separator,
    /// so such a label matches no rule but the wildcards above it still apply.
    pub fn from_labels<'l>(
        labels: impl IntoIterator<Item = &'l [u8]>,
    ) -> Result<QueryName, NameError> {
        let mut name = QueryName::root();
        name.set_labels(labels)?;
        Ok(name)
    }

    /// Refills this buffer with a name in text form (see [`QueryName::from_text`]).
    /// On error the buffer holds the root name.
    pub fn set_text(&mut self, text: &[u8]) -> Result<(), NameError> {
        let text = text.strip_suffix(b".").unwrap_or(text);
        if text.is_empty() {
            return self.set_labels(std::iter::empty::<&[u8]>());
        }
        self.set_labels(text.split(|&b| b == b'.'))
    }

    /// Refills this buffer with a name's labels (see [`QueryName::from_labels`]).
    /// On error the buffer holds the root name.
    pub fn set_labels<'l>(
        &mut self,
        labels: impl IntoIterator<Item = &'l [u8]>,
    ) -> Result<(), NameError> {
        let result = self.fill(labels);
        if result.is_err() {
            self.len = 0;
            self.labels = 0;
        }
        result
    }

    fn fill<'l>(&mut self, labels: impl IntoIterator<Item = &'l [u8]>) -> Result<(), NameError> {
        self.len = 0;
        self.labels = 0;
        let mut pos = 0usize;
        let mut labels_seen = 0usize;
        for (i, label) in labels.into_iter().enumerate() {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if label.len() > 63 {
                return Err(NameError::LabelTooLong);
            }
            if i >= MAX_LABELS {
                return Err(NameError::TooManyLabels);
            }
            let dot = usize::from(i > 0);
            let end = pos + dot + label.len();
            if end > MAX_TEXT_LEN {
                return Err(NameError::TooLong);
            }
            if dot == 1
                && let Some(slot) = self.text.get_mut(pos)
            {
                *slot = b'.';
            }
            let start = pos + dot;
            if let Some(dest) = self.text.get_mut(start..end) {
                for (d, &b) in dest.iter_mut().zip(label) {
                    // No rule holds a NUL, and a `.` here would read as a separator.
                    *d = if b == b'.' { 0 } else { b.to_ascii_lowercase() };
                }
            }
            if let Some(slot) = self.starts.get_mut(i) {
                *slot = start as u8;
            }
            pos = end;
            labels_seen = i + 1;
        }
        let labels = labels_seen;
        self.len = pos as u8;
        self.labels = labels as u8;
        // Hash suffixes from the root: the last label first.
        let keys = &*KEYS;
        let mut h = ROOT_HASH;
        let mut end = pos;
        for i in (0..labels).rev() {
            let start = usize::from(self.starts.get(i).copied().unwrap_or(0));
            let label = self.text.get(start..end).unwrap_or_default();
            let mut hasher = keys.build_hasher();
            hasher.write_u64(h);
            hasher.write(label);
            h = hasher.finish();
            if let Some(slot) = self.hashes.get_mut(i) {
                *slot = h;
            }
            end = start.saturating_sub(1);
        }
        Ok(())
    }

    /// The name as lowercase text without the trailing dot (`""` for the root).
    pub fn as_bytes(&self) -> &[u8] {
        self.text.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub fn label_count(&self) -> usize {
        usize::from(self.labels)
    }

    /// The suffix that drops the first `i` labels, and its hash (`i = 0`: the name).
    #[inline]
    pub(crate) fn suffix(&self, i: usize) -> (&[u8], u64) {
        if i >= usize::from(self.labels) {
            return (&[], 0);
        }
        let start = usize::from(self.starts.get(i).copied().unwrap_or(0));
        let text = self
            .text
            .get(start..usize::from(self.len))
            .unwrap_or_default();
        (text, self.hashes.get(i).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> QueryName {
        QueryName::from_text(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn suffix_hashes_agree_with_stored_names() {
        let name = q("WWW.Evil.Example.");
        assert_eq!(name.as_bytes(), b"www.evil.example");
        assert_eq!(name.label_count(), 3);
        for (i, want) in ["www.evil.example", "evil.example", "example"]
            .into_iter()
            .enumerate()
        {
            let (text, hash) = name.suffix(i);
            assert_eq!(text, want.as_bytes());
            assert_eq!(hash, hash_name(want.as_bytes()));
        }
    }

    #[test]
    fn wire_labels_with_dots_stay_apart() {
        let odd =
            QueryName::from_labels([&b"a.b"[..], b"example"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(odd.label_count(), 2);
        assert_eq!(odd.as_bytes(), b"a\0b.example");
        assert_ne!(odd.suffix(0).1, hash_name(b"a.b.example"));
        assert_eq!(odd.suffix(1).1, hash_name(b"example"));
    }

    #[test]
    fn limits() {
        assert_eq!(q(".").label_count(), 0);
        assert_eq!(q("").label_count(), 0);
        let long = "a".repeat(64);
        assert_eq!(
            QueryName::from_text(long.as_bytes()).err(),
            Some(NameError::LabelTooLong)
        );
        assert_eq!(
            QueryName::from_text(b"a..b").err(),
            Some(NameError::EmptyLabel)
        );
        let too_long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(
            QueryName::from_text(too_long.as_bytes()).err(),
            Some(NameError::TooLong)
        );
        let deepest = vec!["a"; 127].join(".");
        assert_eq!(q(&deepest).label_count(), 127);
    }
}
