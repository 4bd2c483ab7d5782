//! Re-fanging of defanged indicators.
//!
//! Analysts write `hxxps://evil[.]example` so that nobody clicks by accident; feeds,
//! tweets and reports carry it that way. The hub accepts the defanged spelling and
//! restores the real one before normalising. Only the conventions in common use are
//! undone (`hxxp`, `hxxps`, `fxp`, `[.]`, `(.)`, `{.}`, `[dot]`, `(dot)`, `[:]`,
//! `[://]`); anything else is left alone for the validator to judge.

use std::borrow::Cow;

/// Returns `text` with defanging undone; borrows when there was nothing to undo.
pub fn refang(text: &str) -> Cow<'_, str> {
    if !needs_refang(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let lower = text.to_ascii_lowercase();
    // Scheme first: only at the start of the text.
    let mut rest = text;
    for (fanged, real) in [
        ("hxxps://", "https://"),
        ("hxxp://", "http://"),
        ("hxxps[://]", "https://"),
        ("hxxp[://]", "http://"),
        ("hxxps[:]//", "https://"),
        ("hxxp[:]//", "http://"),
        ("fxp://", "ftp://"),
    ] {
        if lower.starts_with(fanged) {
            out.push_str(real);
            rest = &text[fanged.len()..];
            break;
        }
    }
    let mut i = 0;
    let bytes = rest.as_bytes();
    while i < bytes.len() {
        let tail = &rest[i..];
        let replaced = [
            ("[.]", "."),
            ("(.)", "."),
            ("{.}", "."),
            ("[dot]", "."),
            ("(dot)", "."),
            ("[DOT]", "."),
            ("[://]", "://"),
            ("[:]", ":"),
        ]
        .iter()
        .find(|(f, _)| tail.starts_with(f));
        match replaced {
            Some((f, r)) => {
                out.push_str(r);
                i += f.len();
            }
            None => {
                let c = tail.chars().next().unwrap_or('\u{fffd}');
                out.push(c);
                i += c.len_utf8().max(1);
            }
        }
    }
    Cow::Owned(out)
}

fn needs_refang(text: &str) -> bool {
    let b = text.as_bytes();
    memchr_any(b, b'[') || memchr_any(b, b'(') || memchr_any(b, b'{') || starts_fanged(b)
}

fn memchr_any(b: &[u8], c: u8) -> bool {
    b.contains(&c)
}

fn starts_fanged(b: &[u8]) -> bool {
    b.len() >= 4 && (b[..4].eq_ignore_ascii_case(b"hxxp") || b[..4].eq_ignore_ascii_case(b"fxp:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions() {
        for (input, want) in [
            ("hxxp://evil[.]example/a", "http://evil.example/a"),
            ("HXXPS://evil(.)example", "https://evil.example"),
            ("evil[dot]example", "evil.example"),
            ("evil{.}example", "evil.example"),
            ("http[:]//evil.example", "http://evil.example"),
            ("hxxps[://]evil[.]example", "https://evil.example"),
            ("1[.]2[.]3[.]4", "1.2.3.4"),
            ("plain.example", "plain.example"),
            ("fxp://files[.]example", "ftp://files.example"),
            ("ünï[.]example", "ünï.example"),
        ] {
            assert_eq!(refang(input), want, "{input}");
        }
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(refang("example.com"), Cow::Borrowed(_)));
    }
}
