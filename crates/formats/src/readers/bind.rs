//! BIND blocklists: one `zone "name" { type master; file "null.zone.file"; };` per name.
//!
//! Before RPZ, BIND blocked names by declaring each one a zone of its own, served
//! from a "null" zone file; feeds still publish that flavour (urlhaus-filter's
//! `-bind.conf`). Being authoritative for a zone answers for the name and everything
//! below it, so records carry the subdomains tag ([`SUBDOMAINS_TAG`]).
//!
//! The input is read as named.conf syntax, not line by line: a statement may span
//! lines, and `//`, `#` and `/* … */` comments may appear anywhere. Only `zone`
//! statements of type `master`/`primary` (directly or inside a `view`) are blocks;
//! other zone types (`forward`, `secondary`, `hint` …) and other statements
//! (`options`, `acl` …) are diagnostics, so a whole `named.conf` can be read. An input
//! with no `zone` statement at all is not a BIND zone list: an error.

use indicator::Hint;

use super::dnsmasq::{is_local_name, with_subdomains};
use crate::{Format, Location, Parsed, ReadError, Record};

#[cfg(doc)]
use super::dnsmasq::SUBDOMAINS_TAG;

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut p = Parser {
        text,
        pos: 0,
        line: 1,
        peeked: None,
        first_line: None,
        zones: 0,
        parsed: Parsed::new(Format::BindZones),
    };
    p.parsed.records.reserve(text.len() / 80);
    p.statements(false);
    match p.first_line {
        Some(line) if p.zones == 0 => Err(ReadError::at(
            Location::Line(line),
            "not a BIND zone list: no zone statement",
        )),
        _ => Ok(p.parsed),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// A bare word or a quoted string (without its quotes).
    Word(&'a str),
    Open,
    Close,
    Semi,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    line: u32,
}

/// A streaming reader of named.conf: tokens are made on demand and statements are
/// judged as they end, so nothing but the records is kept.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    peeked: Option<Token<'a>>,
    /// Line of the first token, for the "not this format" error.
    first_line: Option<u32>,
    /// `zone` statements seen, blocks or not.
    zones: usize,
    parsed: Parsed,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Option<Token<'a>> {
        if self.peeked.is_none() {
            self.peeked = self.lex();
        }
        self.peeked
    }

    fn bump(&mut self) -> Option<Token<'a>> {
        self.peek();
        self.peeked.take()
    }

    fn diag(&mut self, line: u32, message: impl Into<String>) {
        self.parsed.diag(Location::Line(line), message);
    }

    /// The next word, string or punctuation, skipping white space and comments. An
    /// unterminated string or comment is a diagnostic and ends the input.
    fn lex(&mut self) -> Option<Token<'a>> {
        let text = self.text;
        let bytes = text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            let rest = &bytes[self.pos..];
            let line = self.line;
            let tok = match b {
                b'\n' => {
                    self.line = self.line.saturating_add(1);
                    self.pos += 1;
                    continue;
                }
                _ if b.is_ascii_whitespace() => {
                    self.pos += 1;
                    continue;
                }
                b'#' => {
                    self.pos += memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    continue;
                }
                b'/' if rest.get(1) == Some(&b'/') => {
                    self.pos += memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    continue;
                }
                b'/' if rest.get(1) == Some(&b'*') => {
                    let Some(end) = memchr::memmem::find(&rest[2..], b"*/") else {
                        self.diag(line, "unterminated /* comment");
                        self.pos = bytes.len();
                        return None;
                    };
                    self.count_lines(&rest[..end + 2]);
                    self.pos += end + 4;
                    continue;
                }
                b'"' => {
                    let Some(end) = memchr::memchr(b'"', &rest[1..]) else {
                        self.diag(line, "unterminated string");
                        self.pos = bytes.len();
                        return None;
                    };
                    // Quotes are ASCII, so both ends are character boundaries.
                    let word = text.get(self.pos + 1..self.pos + 1 + end).unwrap_or("");
                    self.count_lines(&rest[1..1 + end]);
                    self.pos += end + 2;
                    Tok::Word(word)
                }
                b'{' | b'}' | b';' => {
                    self.pos += 1;
                    match b {
                        b'{' => Tok::Open,
                        b'}' => Tok::Close,
                        _ => Tok::Semi,
                    }
                }
                _ => {
                    let len = rest
                        .iter()
                        .enumerate()
                        .position(|(k, &c)| {
                            c.is_ascii_whitespace()
                                || matches!(c, b'{' | b'}' | b';' | b'"' | b'#')
                                || (c == b'/' && matches!(rest.get(k + 1), Some(b'/' | b'*')))
                        })
                        .unwrap_or(rest.len())
                        .max(1);
                    // Delimiters are ASCII, so the word ends on a character boundary.
                    let word = text.get(self.pos..self.pos + len).unwrap_or("");
                    self.pos += len;
                    Tok::Word(word)
                }
            };
            self.first_line.get_or_insert(line);
            return Some(Token { tok, line });
        }
        None
    }

    fn count_lines(&mut self, s: &[u8]) {
        let n = u32::try_from(memchr::memchr_iter(b'\n', s).count()).unwrap_or(u32::MAX);
        self.line = self.line.saturating_add(n);
    }

    /// Statements until the `}` closing the enclosing `view` (left to the caller) or
    /// the end. Only a top-level `view` is entered, so recursion is one level deep.
    fn statements(&mut self, in_view: bool) {
        while let Some(t) = self.peek() {
            match t.tok {
                Tok::Close if in_view => return,
                Tok::Close => {
                    self.bump();
                    self.diag(t.line, "unmatched }");
                }
                Tok::Semi => {
                    self.bump();
                }
                _ => self.statement(t.line, in_view),
            }
        }
    }

    /// One statement: words, then `;` or a `{ … }` body (and its `;`).
    fn statement(&mut self, line: u32, in_view: bool) {
        // Only the keyword and the name matter.
        let mut words: [Option<&'a str>; 2] = [None, None];
        let mut count = 0;
        loop {
            match self.peek().map(|t| t.tok) {
                Some(Tok::Word(w)) => {
                    self.bump();
                    if let Some(slot) = words.get_mut(count) {
                        *slot = Some(w);
                    }
                    count += 1;
                }
                Some(Tok::Semi) => {
                    self.bump();
                    return self.without_body(line, words);
                }
                Some(Tok::Open) => {
                    self.bump();
                    self.with_body(line, words, in_view);
                    // BIND requires the `;` after `}`; its absence is tolerated.
                    if self.peek().map(|t| t.tok) == Some(Tok::Semi) {
                        self.bump();
                    }
                    return;
                }
                Some(Tok::Close) => {
                    self.diag(line, "missing ; before }");
                    return self.without_body(line, words);
                }
                None => {
                    self.diag(line, "statement not terminated by ;");
                    return self.without_body(line, words);
                }
            }
        }
    }

    fn without_body(&mut self, line: u32, [keyword, name]: [Option<&'a str>; 2]) {
        match (keyword, name) {
            (Some("zone"), Some(name)) => {
                self.zones += 1;
                self.diag(line, format!("zone {name:?} has no {{ … }} body"));
            }
            (Some("zone"), None) => {
                self.zones += 1;
                self.diag(line, "zone without a name");
            }
            (Some(other), _) => {
                self.diag(line, format!("statement {other:?} is not a zone, skipped"))
            }
            (None, _) => {}
        }
    }

    /// After the `{` of a statement: reads or skips its body up to the closing `}`.
    fn with_body(&mut self, line: u32, [keyword, name]: [Option<&'a str>; 2], in_view: bool) {
        match keyword {
            Some("zone") => {
                self.zones += 1;
                let kind = self.zone_body(line);
                match name {
                    Some(name) => self.zone(line, name, kind),
                    None => self.diag(line, "zone without a name"),
                }
            }
            Some("view") if !in_view => {
                self.statements(true);
                if self.bump().is_none() {
                    self.diag(line, "unclosed {");
                }
            }
            Some(other) => {
                self.diag(line, format!("statement {other:?} is not a zone, skipped"));
                self.skip_body(line);
            }
            None => {
                self.diag(line, "block without a statement name");
                self.skip_body(line);
            }
        }
    }

    /// Consumes a body through its closing `}`.
    fn skip_body(&mut self, line: u32) {
        let mut depth = 1usize;
        while let Some(t) = self.bump() {
            match t.tok {
                Tok::Open => depth += 1,
                Tok::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
        self.diag(line, "unclosed {");
    }

    /// Consumes a zone body through its closing `}`, returning the value of its
    /// top-level `type` option.
    fn zone_body(&mut self, line: u32) -> Option<&'a str> {
        let (mut depth, mut at_start, mut after_type) = (1usize, true, false);
        let mut kind = None;
        while let Some(t) = self.bump() {
            match t.tok {
                Tok::Word(w) => {
                    if after_type && kind.is_none() {
                        kind = Some(w);
                    }
                    after_type = depth == 1 && at_start && w == "type";
                    at_start = false;
                }
                Tok::Open => {
                    depth += 1;
                    (at_start, after_type) = (true, false);
                }
                Tok::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return kind;
                    }
                    (at_start, after_type) = (true, false);
                }
                Tok::Semi => (at_start, after_type) = (true, false),
            }
        }
        self.diag(line, "unclosed {");
        kind
    }

    /// A `zone "name" { type …; }` statement: a block when the type serves the zone.
    fn zone(&mut self, line: u32, name: &str, kind: Option<&str>) {
        match kind {
            Some("master" | "primary") => {}
            Some(other) => {
                return self.diag(
                    line,
                    format!("zone {name:?} of type {other} does not block it, skipped"),
                );
            }
            None => return self.diag(line, format!("zone {name:?} has no type")),
        }
        if is_local_name(name) {
            return;
        }
        if name == "." {
            return self.diag(line, "the root zone covers every name, skipped");
        }
        let record = Record::new(Location::Line(line), name, Hint::Domain);
        self.parsed.records.push(with_subdomains(record));
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match super::parse(input) {
            Ok(parsed) => parsed.dump(),
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn one_per_line() {
        check(
            "# header\nzone \"a.example\" { type master; notify no; file \"null.zone.file\"; };\nzone \"B.Example.\" IN { type primary; file \"/etc/bind/null\"; };\n",
            expect![[r#"
                domain a.example
                domain b.example
            "#]],
        );
    }

    #[test]
    fn spread_over_lines_with_comments() {
        check(
            "// c++ comment\nzone \"a.example\" /* inline */ {\n  type master; # hash\n  file \"null.zone.file\";\n};\n/* a\n block\n comment */ zone\n\"b.example\" { type master; file \"x\"; allow-query { none; }; };\nzone c.example{type master;file null;};\n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
            "#]],
        );
    }

    #[test]
    fn line_numbers_follow_the_zone_keyword() {
        let parsed = super::parse("/* one\ntwo */\nzone \"a.example\" {\ntype master;\n};\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parsed.records.first().map(|r| r.at.clone()),
            Some(crate::Location::Line(3))
        );
    }

    #[test]
    fn views_and_other_statements() {
        check(
            "options { directory \"/var/cache/bind\"; };\nview \"inside\" {\n  zone \"a.example\" { type master; file \"null\"; };\n  zone \".\" { type hint; file \"root.hints\"; };\n};\nzone \"localhost\" { type master; file \"db.local\"; };\nzone \"corp.example\" { type forward; forwarders { 10.0.0.1; }; };\nzone \"nobody.example\" { file \"x\"; };\nzone { type master; };\nzone \"nobody2.example\";\n",
            expect![[r#"
                domain a.example
                diag line 1: statement "options" is not a zone, skipped
                diag line 4: zone "." of type hint does not block it, skipped
                diag line 7: zone "corp.example" of type forward does not block it, skipped
                diag line 8: zone "nobody.example" has no type
                diag line 9: zone without a name
                diag line 10: zone "nobody2.example" has no { … } body
            "#]],
        );
    }

    #[test]
    fn broken_syntax() {
        check(
            "zone \"a.example\" { type master; file \"x\"; }\n};\nzone \"b.example\" { type master file \"x\"; };\nzone \"c.example\" { type master; \n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
                diag line 2: unmatched }
                diag line 4: unclosed {
            "#]],
        );
        check(
            "zone \"a.example\" { type master; };\nzone \"b.example /* { type master; };\n",
            expect![[r#"
                domain a.example
                diag line 2: unterminated string
                diag line 2: statement not terminated by ;
                diag line 2: zone without a name
            "#]],
        );
        check(
            "zone \"a.example\" { type master; };\n/* open\n",
            expect![[r#"
                domain a.example
                diag line 2: unterminated /* comment
            "#]],
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let input = format!(
            "{}{}\nview v {{ {}{} }};\nzone \"a.example\" {{ type master; }};\n",
            "x {".repeat(100_000),
            "}".repeat(100_000),
            "view w {".repeat(100_000),
            "}".repeat(100_000),
        );
        let parsed = super::parse(&input).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.diagnostics.len(), 2, "{:?}", parsed.diagnostics);
    }

    #[test]
    fn not_bind_is_an_error() {
        check(
            "\n# list\nevil.example\n",
            expect![[r#"
                error line 3: not a BIND zone list: no zone statement
            "#]],
        );
        check("# only comments\n", expect![""]);
    }
}
