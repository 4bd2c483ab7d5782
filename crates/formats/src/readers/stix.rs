//! STIX 2.0 and 2.1: bundles, TAXII 2.1 envelopes and bare arrays of objects.
//!
//! CERTs, vendors (Talos, TweetFeed) and TAXII servers share indicators as STIX
//! `indicator` objects whose `pattern` says what to match. A DNS hub can use the
//! patterns that name a domain, a URL or an address (`[domain-name:value = 'x']`, ORed
//! together); everything else in a pattern (file hashes, `AND`, `MATCHES`, `FOLLOWEDBY`
//! …) is reported as a diagnostic naming the object, never dropped silently. What the
//! producer says about the indicator (validity, confidence, labels, TLP marking,
//! creator identity) goes into [`Meta`].
//!
//! The wire types are private serde structs for the subset read, deserialized one
//! object at a time from a parsed [`Value`], so one malformed object is one diagnostic.

use std::collections::HashMap;

use indicator::{Category, Confidence, Hint, Timestamp, Tlp};
use serde::Deserialize;
use serde_json::Value;

use crate::{Format, Location, Meta, Parsed, ReadError, Record};

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ReadError::json(&e))?;
    let objects = Objects::of(&root)?;
    let mut parsed = Parsed::new(Format::Stix);
    let context = Context::collect(&objects);
    // Diagnostics in object order, including those found while collecting the context.
    for (i, (path, object)) in objects.iter().enumerate() {
        if !object.is_object() {
            parsed.diag(
                Location::Path(path),
                "not a STIX object (expected a JSON object)",
            );
            continue;
        }
        match object.get("type").and_then(Value::as_str) {
            None => parsed.diag(Location::Path(path), "STIX object without a type"),
            Some("indicator") => read_indicator(&path, object, &context, &mut parsed),
            Some(_) => {
                if let Some(problem) = context.problems.get(&i) {
                    parsed.diag(Location::Path(path), problem.clone());
                }
            }
        }
    }
    Ok(parsed)
}

/// The STIX objects of an input, and how to name each one's JSON path.
struct Objects<'a> {
    items: &'a [Value],
    /// `$.objects` for a bundle or envelope, `$` for a bare array, `None` for a lone
    /// object at the root.
    base: Option<&'static str>,
}

impl<'a> Objects<'a> {
    fn of(root: &'a Value) -> Result<Objects<'a>, ReadError> {
        const EXPECTED: &str =
            "not STIX: expected a bundle, a TAXII envelope or an array of STIX objects";
        match root {
            // A bare array is STIX only if something in it looks like a STIX object.
            Value::Array(items)
                if !items.is_empty()
                    && !items
                        .iter()
                        .any(|i| i.get("type").is_some_and(Value::is_string)) =>
            {
                Err(ReadError::at(Location::File, EXPECTED))
            }
            Value::Array(items) => Ok(Objects {
                items,
                base: Some("$"),
            }),
            Value::Object(map) => {
                let ty = map.get("type").and_then(Value::as_str);
                let envelope =
                    ty.is_none() && (map.contains_key("objects") || map.contains_key("more"));
                if ty == Some("bundle") || envelope {
                    return match map.get("objects") {
                        // Both a bundle and an envelope may omit `objects` when empty.
                        None => Ok(Objects {
                            items: &[],
                            base: Some("$.objects"),
                        }),
                        Some(Value::Array(items)) => Ok(Objects {
                            items,
                            base: Some("$.objects"),
                        }),
                        Some(_) => Err(ReadError::at(
                            Location::Path("$.objects".into()),
                            "expected an array of STIX objects",
                        )),
                    };
                }
                // A lone object (`{"type":"indicator","id":"indicator--…",…}`).
                let id = map.get("id").and_then(Value::as_str).unwrap_or("");
                if ty.is_some() && id.contains("--") {
                    return Ok(Objects {
                        items: std::slice::from_ref(root),
                        base: None,
                    });
                }
                Err(ReadError::at(Location::File, EXPECTED))
            }
            _ => Err(ReadError::at(Location::File, EXPECTED)),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (String, &'a Value)> + '_ {
        self.items.iter().enumerate().map(|(i, v)| {
            let path = match self.base {
                Some(base) => format!("{base}[{i}]"),
                None => "$".to_owned(),
            };
            (path, v)
        })
    }
}

/// What other objects of the input say about indicators: who an identity is, which
/// TLP a marking definition stands for.
#[derive(Default)]
struct Context<'a> {
    identities: HashMap<&'a str, &'a str>,
    markings: HashMap<&'a str, Tlp>,
    /// Why an identity or marking definition could not be read, by object index.
    problems: HashMap<usize, String>,
}

impl<'a> Context<'a> {
    fn collect(objects: &Objects<'a>) -> Context<'a> {
        let mut context = Context::default();
        for (i, (_, object)) in objects.iter().enumerate() {
            match object.get("type").and_then(Value::as_str) {
                Some("identity") => match WireIdentity::deserialize(object) {
                    Ok(WireIdentity {
                        id,
                        name: Some(name),
                    }) => {
                        context.identities.insert(id, name);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        context.problems.insert(i, format!("invalid identity: {e}"));
                    }
                },
                Some("marking-definition") => match WireMarking::deserialize(object) {
                    Ok(marking) => {
                        if let Some(tlp) = marking.tlp() {
                            context.markings.insert(marking.id, tlp);
                        }
                    }
                    Err(e) => {
                        context
                            .problems
                            .insert(i, format!("invalid marking-definition: {e}"));
                    }
                },
                _ => {}
            }
        }
        context
    }

    /// The most restrictive TLP among the marking references.
    fn tlp(&self, refs: &[&str]) -> Option<Tlp> {
        refs.iter()
            .filter_map(|r| Tlp::from_stix_marking_id(r).or_else(|| self.markings.get(r).copied()))
            .max()
    }
}

#[derive(Deserialize)]
struct WireIdentity<'a> {
    id: &'a str,
    name: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireMarking<'a> {
    id: &'a str,
    /// TLP 1.0 style (STIX 2.0 and 2.1): `"definition_type": "tlp"`.
    definition_type: Option<&'a str>,
    definition: Option<WireTlpDefinition<'a>>,
    /// TLP 2.0 style (STIX 2.1 extension): `{"extension-definition--…": {"tlp_2_0": "clear"}}`.
    #[serde(default)]
    extensions: HashMap<&'a str, WireTlpExtension<'a>>,
}

#[derive(Deserialize)]
struct WireTlpDefinition<'a> {
    tlp: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireTlpExtension<'a> {
    tlp_2_0: Option<&'a str>,
}

impl WireMarking<'_> {
    fn tlp(&self) -> Option<Tlp> {
        if self.definition_type == Some("tlp")
            && let Some(tlp) = self.definition.as_ref().and_then(|d| d.tlp)
        {
            return Tlp::from_label(tlp);
        }
        self.extensions
            .values()
            .find_map(|e| e.tlp_2_0.and_then(Tlp::from_label))
    }
}

#[derive(Deserialize)]
struct WireIndicator<'a> {
    id: Option<&'a str>,
    pattern: &'a str,
    /// Required in 2.1, absent in 2.0 (where every pattern is STIX patterning).
    pattern_type: Option<&'a str>,
    name: Option<&'a str>,
    description: Option<&'a str>,
    valid_from: Option<&'a str>,
    valid_until: Option<&'a str>,
    #[serde(default)]
    revoked: bool,
    confidence: Option<u64>,
    #[serde(default)]
    labels: Vec<&'a str>,
    #[serde(default)]
    indicator_types: Vec<&'a str>,
    #[serde(default)]
    object_marking_refs: Vec<&'a str>,
    created_by_ref: Option<&'a str>,
}

fn read_indicator(path: &str, object: &Value, context: &Context<'_>, parsed: &mut Parsed) {
    let indicator = match WireIndicator::deserialize(object) {
        Ok(i) => i,
        Err(e) => {
            parsed.diag(
                Location::Path(path.to_owned()),
                format!("invalid indicator: {e}"),
            );
            return;
        }
    };
    let pattern_path = format!("{path}.pattern");
    match indicator.pattern_type {
        None | Some("stix") => {}
        Some(other) => {
            parsed.diag(
                Location::Path(format!("{path}.pattern_type")),
                format!("unsupported pattern type {other:?}"),
            );
            return;
        }
    }
    let tree = match pattern::parse(indicator.pattern) {
        Ok(tree) => tree,
        Err(e) => {
            parsed.diag(
                Location::Path(pattern_path),
                format!("invalid pattern: {e}"),
            );
            return;
        }
    };
    let mut found = Vec::new();
    let mut unsupported = Vec::new();
    pattern::values(&tree, &mut found, &mut unsupported);
    if !unsupported.is_empty() {
        let mut reasons: Vec<&str> = Vec::with_capacity(unsupported.len());
        for reason in &unsupported {
            if !reasons.contains(&reason.as_str()) {
                reasons.push(reason);
            }
        }
        parsed.diag(
            Location::Path(pattern_path.clone()),
            format!("unsupported pattern: {}", reasons.join("; ")),
        );
    }
    if found.is_empty() {
        return;
    }
    let meta = meta(path, &indicator, context, parsed);
    for (value, hint) in found {
        parsed.records.push(
            Record::new(Location::Path(pattern_path.clone()), value, hint).with_meta(meta.clone()),
        );
    }
}

fn meta(path: &str, i: &WireIndicator<'_>, context: &Context<'_>, parsed: &mut Parsed) -> Meta {
    let mut meta = Meta {
        first_seen: timestamp(path, "valid_from", i.valid_from, parsed),
        valid_until: timestamp(path, "valid_until", i.valid_until, parsed),
        revoked: i.revoked,
        confidence: i
            .confidence
            .map(|c| Confidence::new(u32::try_from(c).unwrap_or(u32::MAX))),
        tlp: context.tlp(&i.object_marking_refs),
        reference: i.id.map(str::to_owned),
        reporter: i
            .created_by_ref
            .and_then(|r| context.identities.get(r))
            .map(|name| (*name).to_owned()),
        description: i.description.or(i.name).map(str::to_owned),
        ..Meta::default()
    };
    // Labels come first: in 2.1 they are the producer's own words (`phishing`), more
    // specific than the open vocabulary of `indicator_types` (`malicious-activity`).
    for label in i.labels.iter().chain(&i.indicator_types) {
        let label = label.trim();
        if label.is_empty() {
            continue;
        }
        // MISP's STIX export states `to_ids` as a label.
        if let Some(flag) = label.strip_prefix("misp:to_ids=") {
            meta.to_ids = Some(flag.trim_matches('"').eq_ignore_ascii_case("true"));
        }
        if label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("tlp:"))
        {
            meta.tlp = meta.tlp.or_else(|| Tlp::from_label(label));
            continue;
        }
        if meta.category.is_none() {
            meta.category = Category::from_label(label);
        }
        if !meta.tags.iter().any(|t| t == label) {
            meta.tags.push(label.to_owned());
        }
    }
    meta
}

fn timestamp(
    path: &str,
    field: &str,
    value: Option<&str>,
    parsed: &mut Parsed,
) -> Option<Timestamp> {
    let text = value?;
    match text.parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(e) => {
            parsed.diag(
                Location::Path(format!("{path}.{field}")),
                format!("invalid timestamp {text:?}: {e}"),
            );
            None
        }
    }
}

/// The hint for an address value: a prefix when it has a length.
fn ip_hint(value: &str) -> Hint {
    if value.contains('/') {
        Hint::Cidr
    } else {
        Hint::Ip
    }
}

/// A small parser for STIX patterning (STIX 2.1 section 9), enough to find the
/// comparisons a DNS hub can use and to name precisely what it cannot.
mod pattern {
    use std::borrow::Cow;
    use std::fmt;

    use indicator::Hint;

    /// Bracket and parenthesis nesting limit: a crafted pattern must not exhaust the
    /// stack.
    const MAX_DEPTH: usize = 32;

    #[derive(Debug)]
    pub(super) enum Node<'a> {
        /// `a OR b`, inside one bracket or between observations: each alternative
        /// matches on its own.
        Or(Vec<Node<'a>>),
        /// `a AND b` inside one bracket (one object must satisfy both).
        And(Vec<Node<'a>>),
        /// `[a] AND [b]`: two observations must both be seen.
        AndObservations,
        FollowedBy,
        /// An observation with `WITHIN`, `REPEATS` or `START … STOP`.
        Qualified(&'static str),
        Exists(String),
        Test(Test<'a>),
    }

    #[derive(Debug)]
    pub(super) struct Test<'a> {
        /// The object path without whitespace, e.g. `file:hashes.'SHA-256'`.
        pub(super) path: String,
        pub(super) negated: bool,
        pub(super) op: &'static str,
        /// One literal, or the members of an `IN (…)` set.
        pub(super) values: Vec<Literal<'a>>,
    }

    #[derive(Debug)]
    pub(super) enum Literal<'a> {
        Str(Cow<'a, str>),
        /// Numbers, booleans, `t'…'`, `h'…'`, `b'…'`.
        Other,
    }

    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Error {
        offset: usize,
        what: &'static str,
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} at offset {}", self.what, self.offset)
        }
    }

    pub(super) fn parse(text: &str) -> Result<Node<'_>, Error> {
        let mut p = Parser {
            text,
            pos: 0,
            depth: 0,
        };
        let node = p.observations()?;
        p.skip_ws();
        if p.pos < text.len() {
            return Err(p.error("unexpected text after the pattern"));
        }
        Ok(node)
    }

    /// Collects the values a hub can use, with their hints, and a reason for each
    /// part it cannot.
    pub(super) fn values<'a>(
        node: &Node<'a>,
        found: &mut Vec<(Cow<'a, str>, Hint)>,
        unsupported: &mut Vec<String>,
    ) {
        match node {
            Node::Or(alternatives) => {
                for a in alternatives {
                    values(a, found, unsupported);
                }
            }
            Node::Test(test) => test_values(test, found, unsupported),
            Node::And(terms) => match address_pair(terms) {
                Some(value) => found.push(value),
                None => unsupported.push("AND of comparisons".to_owned()),
            },
            Node::AndObservations => unsupported.push("AND of observations".to_owned()),
            Node::FollowedBy => unsupported.push("FOLLOWEDBY".to_owned()),
            Node::Qualified(q) => unsupported.push(format!("{q} qualifier")),
            Node::Exists(path) => unsupported.push(format!("EXISTS {path}")),
        }
    }

    fn test_values<'a>(
        test: &Test<'a>,
        found: &mut Vec<(Cow<'a, str>, Hint)>,
        unsupported: &mut Vec<String>,
    ) {
        let path = test.path.as_str();
        let hint: fn(&str) -> Hint = match path {
            "domain-name:value" => |_| Hint::Domain,
            "url:value" => |_| Hint::Url,
            "ipv4-addr:value" | "ipv6-addr:value" => super::ip_hint,
            _ => {
                unsupported.push(format!("{path} (not a domain, URL or address value)"));
                return;
            }
        };
        if test.negated || !matches!(test.op, "=" | "IN") {
            let not = if test.negated { "NOT " } else { "" };
            unsupported.push(format!("operator {not}{} on {path}", test.op));
            return;
        }
        for value in &test.values {
            match value {
                Literal::Str(s) => found.push((s.clone(), hint(s))),
                Literal::Other => unsupported.push(format!("non-string value for {path}")),
            }
        }
    }

    /// MISP's STIX export writes an address as
    /// `network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '…'`
    /// (or `src_ref`): one value, so it is read like `[ipv4-addr:value = '…']`.
    fn address_pair<'a>(terms: &[Node<'a>]) -> Option<(Cow<'a, str>, Hint)> {
        let [Node::Test(a), Node::Test(b)] = terms else {
            return None;
        };
        let single = |t: &Test<'a>| match (t.negated, t.op, t.values.as_slice()) {
            (false, "=", [Literal::Str(s)]) => Some(s.clone()),
            _ => None,
        };
        for (ty, value) in [(a, b), (b, a)] {
            for reference in ["network-traffic:dst_ref", "network-traffic:src_ref"] {
                if ty.path.strip_prefix(reference) == Some(".type")
                    && value.path.strip_prefix(reference) == Some(".value")
                {
                    let value = single(value)?;
                    let hint = match single(ty)?.as_ref() {
                        "ipv4-addr" | "ipv6-addr" => super::ip_hint(&value),
                        "domain-name" => Hint::Domain,
                        _ => return None,
                    };
                    return Some((value, hint));
                }
            }
        }
        None
    }

    struct Parser<'a> {
        text: &'a str,
        pos: usize,
        depth: usize,
    }

    impl<'a> Parser<'a> {
        fn error(&self, what: &'static str) -> Error {
            Error {
                offset: self.pos,
                what,
            }
        }

        fn rest(&self) -> &'a [u8] {
            self.text.as_bytes().get(self.pos..).unwrap_or_default()
        }

        fn peek(&self) -> Option<u8> {
            self.rest().first().copied()
        }

        fn skip_ws(&mut self) {
            let n = self
                .rest()
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            self.pos += n;
        }

        fn eat(&mut self, c: u8) -> bool {
            self.skip_ws();
            if self.peek() == Some(c) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        fn expect(&mut self, c: u8, what: &'static str) -> Result<(), Error> {
            if self.eat(c) {
                Ok(())
            } else {
                Err(self.error(what))
            }
        }

        /// The next word (letters, digits, `_`, `-`), without consuming it.
        fn word(&mut self) -> &'a str {
            self.skip_ws();
            let n = self
                .rest()
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                .count();
            self.text.get(self.pos..self.pos + n).unwrap_or_default()
        }

        /// Consumes `kw` if it is the next word (keywords are matched without case).
        fn keyword(&mut self, kw: &str) -> bool {
            if self.word().eq_ignore_ascii_case(kw) {
                self.pos += kw.len();
                true
            } else {
                false
            }
        }

        fn enter(&mut self) -> Result<(), Error> {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error("nesting too deep"));
            }
            Ok(())
        }

        /// `a FOLLOWEDBY b`, the loosest binding operator.
        fn observations(&mut self) -> Result<Node<'a>, Error> {
            let first = self.observation_or()?;
            let mut followed = false;
            while self.keyword("FOLLOWEDBY") {
                self.observation_or()?;
                followed = true;
            }
            Ok(if followed { Node::FollowedBy } else { first })
        }

        fn observation_or(&mut self) -> Result<Node<'a>, Error> {
            let mut items = vec![self.observation_and()?];
            while self.keyword("OR") {
                items.push(self.observation_and()?);
            }
            Ok(one_or(items, Node::Or))
        }

        fn observation_and(&mut self) -> Result<Node<'a>, Error> {
            let first = self.observation()?;
            let mut and = false;
            while self.keyword("AND") {
                self.observation()?;
                and = true;
            }
            Ok(if and { Node::AndObservations } else { first })
        }

        /// `[comparisons]` or `(observations)`, then any qualifiers.
        fn observation(&mut self) -> Result<Node<'a>, Error> {
            self.enter()?;
            let mut node = if self.eat(b'[') {
                let node = self.comparison_or()?;
                self.expect(b']', "expected ']'")?;
                node
            } else if self.eat(b'(') {
                let node = self.observations()?;
                self.expect(b')', "expected ')'")?;
                node
            } else {
                return Err(self.error("expected '[' or '('"));
            };
            loop {
                if self.keyword("WITHIN") {
                    self.number()?;
                    if !self.keyword("SECONDS") {
                        return Err(self.error("expected SECONDS"));
                    }
                    node = Node::Qualified("WITHIN");
                } else if self.keyword("REPEATS") {
                    self.number()?;
                    if !self.keyword("TIMES") {
                        return Err(self.error("expected TIMES"));
                    }
                    node = Node::Qualified("REPEATS");
                } else if self.keyword("START") {
                    self.literal()?;
                    if !self.keyword("STOP") {
                        return Err(self.error("expected STOP"));
                    }
                    self.literal()?;
                    node = Node::Qualified("START/STOP");
                } else {
                    break;
                }
            }
            self.depth -= 1;
            Ok(node)
        }

        fn comparison_or(&mut self) -> Result<Node<'a>, Error> {
            let mut items = vec![self.comparison_and()?];
            while self.keyword("OR") {
                items.push(self.comparison_and()?);
            }
            Ok(one_or(items, Node::Or))
        }

        fn comparison_and(&mut self) -> Result<Node<'a>, Error> {
            let mut items = vec![self.property_test()?];
            while self.keyword("AND") {
                items.push(self.property_test()?);
            }
            Ok(one_or(items, Node::And))
        }

        fn property_test(&mut self) -> Result<Node<'a>, Error> {
            if self.eat(b'(') {
                self.enter()?;
                let node = self.comparison_or()?;
                self.expect(b')', "expected ')'")?;
                self.depth -= 1;
                return Ok(node);
            }
            if self.keyword("EXISTS") {
                return Ok(Node::Exists(self.object_path()?));
            }
            let path = self.object_path()?;
            let negated = self.keyword("NOT");
            let op = self.operator()?;
            let values = if op == "IN" {
                self.set()?
            } else {
                vec![self.literal()?]
            };
            Ok(Node::Test(Test {
                path,
                negated,
                op,
                values,
            }))
        }

        fn operator(&mut self) -> Result<&'static str, Error> {
            self.skip_ws();
            for op in ["!=", "<=", ">=", "=", "<", ">"] {
                if self.rest().starts_with(op.as_bytes()) {
                    self.pos += op.len();
                    return Ok(op);
                }
            }
            for op in ["IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"] {
                if self.keyword(op) {
                    return Ok(op);
                }
            }
            Err(self.error("expected a comparison operator"))
        }

        /// `type:property(.property|[n]|[*])*`, returned without whitespace.
        fn object_path(&mut self) -> Result<String, Error> {
            let ty = self.word();
            if ty.is_empty() || !ty.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
                return Err(self.error("expected an object path"));
            }
            self.pos += ty.len();
            self.expect(b':', "expected ':' after the object type")?;
            let mut path = format!("{ty}:");
            self.component(&mut path)?;
            loop {
                if self.rest().starts_with(b".") {
                    self.pos += 1;
                    path.push('.');
                    self.component(&mut path)?;
                } else if self.rest().starts_with(b"[") {
                    self.pos += 1;
                    let index = self.word();
                    let index = if index.is_empty() && self.eat(b'*') {
                        "*"
                    } else if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) {
                        self.pos += index.len();
                        index
                    } else {
                        return Err(self.error("expected an index or '*'"));
                    };
                    self.expect(b']', "expected ']' after an index")?;
                    path.push('[');
                    path.push_str(index);
                    path.push(']');
                } else {
                    return Ok(path);
                }
            }
        }

        /// A property name, bare or quoted (`hashes.'SHA-256'`), appended as written.
        fn component(&mut self, path: &mut String) -> Result<(), Error> {
            if self.peek() == Some(b'\'') {
                let start = self.pos;
                self.string()?;
                path.push_str(self.text.get(start..self.pos).unwrap_or_default());
                return Ok(());
            }
            let name = self.word();
            if name.is_empty() {
                return Err(self.error("expected a property name"));
            }
            self.pos += name.len();
            path.push_str(name);
            Ok(())
        }

        /// `(lit, lit, …)` after `IN`.
        fn set(&mut self) -> Result<Vec<Literal<'a>>, Error> {
            self.expect(b'(', "expected '(' after IN")?;
            let mut items = vec![self.literal()?];
            while self.eat(b',') {
                items.push(self.literal()?);
            }
            self.expect(b')', "expected ')' after the set")?;
            Ok(items)
        }

        fn literal(&mut self) -> Result<Literal<'a>, Error> {
            self.skip_ws();
            match self.rest() {
                [b'\'', ..] => self.string().map(Literal::Str),
                [b't' | b'h' | b'b', b'\'', ..] => {
                    self.pos += 1;
                    self.string().map(|_| Literal::Other)
                }
                [b'-' | b'+' | b'0'..=b'9', ..] => self.number().map(|()| Literal::Other),
                _ if self.keyword("true") || self.keyword("false") => Ok(Literal::Other),
                _ => Err(self.error("expected a value")),
            }
        }

        fn number(&mut self) -> Result<(), Error> {
            self.skip_ws();
            if matches!(self.peek(), Some(b'-' | b'+')) {
                self.pos += 1;
            }
            let n = self
                .rest()
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .count();
            if n == 0 {
                return Err(self.error("expected a number"));
            }
            self.pos += n;
            Ok(())
        }

        /// A quoted string; `\'` and `\\` are the only escapes.
        fn string(&mut self) -> Result<Cow<'a, str>, Error> {
            if self.peek() != Some(b'\'') {
                return Err(self.error("expected a quoted string"));
            }
            self.pos += 1;
            let start = self.pos;
            let mut owned: Option<String> = None;
            let mut run = start;
            loop {
                match self.peek() {
                    None => return Err(self.error("unterminated string")),
                    Some(b'\'') => {
                        let tail = self.text.get(run..self.pos).unwrap_or_default();
                        self.pos += 1;
                        return Ok(match owned {
                            None => Cow::Borrowed(tail),
                            Some(mut s) => {
                                s.push_str(tail);
                                Cow::Owned(s)
                            }
                        });
                    }
                    Some(b'\\') => {
                        let escaped = match self.rest().get(1) {
                            Some(b'\'') => '\'',
                            Some(b'\\') => '\\',
                            _ => return Err(self.error("invalid escape (only \\' and \\\\)")),
                        };
                        let s = owned.get_or_insert_with(String::new);
                        s.push_str(self.text.get(run..self.pos).unwrap_or_default());
                        s.push(escaped);
                        self.pos += 2;
                        run = self.pos;
                    }
                    Some(_) => self.pos += 1,
                }
            }
        }
    }

    /// The single item itself, or the items joined by `many`.
    fn one_or<'a>(mut items: Vec<Node<'a>>, many: fn(Vec<Node<'a>>) -> Node<'a>) -> Node<'a> {
        if items.len() == 1
            && let Some(item) = items.pop()
        {
            return item;
        }
        many(items)
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

    /// One 2.1 indicator with this pattern, in a bundle.
    #[track_caller]
    fn check_pattern(pattern: &str, expect: Expect) {
        let bundle = serde_json::json!({
            "type": "bundle",
            "id": "bundle--1",
            "objects": [{
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--1",
                "pattern": pattern,
                "pattern_type": "stix",
            }],
        });
        check(&bundle.to_string(), expect);
    }

    #[test]
    fn one_value_of_each_kind() {
        check_pattern(
            "[domain-name:value = 'Evil.Example']",
            expect![[r#"
                domain evil.example
            "#]],
        );
        check_pattern(
            "[url:value = 'http://evil.example/a?b=c']",
            expect![[r#"
                url http://evil.example/a?b=c
            "#]],
        );
        check_pattern(
            "[ipv4-addr:value = '192.0.2.1']",
            expect![[r#"
                ip 192.0.2.1
            "#]],
        );
        check_pattern(
            "[ipv4-addr:value = '198.51.100.0/24']",
            expect![[r#"
                cidr 198.51.100.0/24
            "#]],
        );
        check_pattern(
            "[ipv6-addr:value = '2001:db8::1']",
            expect![[r#"
                ip 2001:db8::1
            "#]],
        );
        check_pattern(
            "[ipv6-addr:value = '2001:db8::/32']",
            expect![[r#"
                cidr 2001:db8::/32
            "#]],
        );
    }

    #[test]
    fn or_inside_and_across_brackets() {
        check_pattern(
            "[domain-name:value = 'a.example' OR domain-name:value = 'b.example'] OR [url:value = 'http://c.example/'] OR ([ipv4-addr:value = '192.0.2.9'])",
            expect![[r#"
                domain a.example
                domain b.example
                url http://c.example/
                ip 192.0.2.9
            "#]],
        );
        check_pattern(
            "[(domain-name:value = 'a.example' OR (domain-name:value = 'b.example'))]",
            expect![[r#"
                domain a.example
                domain b.example
            "#]],
        );
        check_pattern(
            "[domain-name:value IN ('a.example', 'b.example')]",
            expect![[r#"
                domain a.example
                domain b.example
            "#]],
        );
    }

    #[test]
    fn escapes_and_whitespace() {
        check_pattern(
            r"[url:value = 'http://evil.example/it\'s']",
            expect![[r#"
                url http://evil.example/it's
            "#]],
        );
        check_pattern(
            r"[url:value = 'http://evil.example/a\\b']",
            expect![[r#"
                url http://evil.example/a/b
            "#]],
        );
        check_pattern(
            "  [\n\tdomain-name : value='a.example'   or\r\n domain-name:value =  'b.example' ]  ",
            expect![[r#"
                domain a.example
                domain b.example
            "#]],
        );
    }

    #[test]
    fn unsupported_parts_are_named() {
        check_pattern(
            "[file:hashes.'SHA-256' = 'ef53']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: file:hashes.'SHA-256' (not a domain, URL or address value)
            "#]],
        );
        check_pattern(
            "[email-addr:value = 'x@evil.example']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: email-addr:value (not a domain, URL or address value)
            "#]],
        );
        check_pattern(
            "[url:value MATCHES '^http://evil'] OR [domain-name:value LIKE '%.evil.example'] OR [domain-name:value != 'a.example'] OR [domain-name:value NOT = 'b.example']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: operator MATCHES on url:value; operator LIKE on domain-name:value; operator != on domain-name:value; operator NOT = on domain-name:value
            "#]],
        );
        check_pattern(
            "[domain-name:value = 'a.example' AND domain-name:value = 'b.example']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: AND of comparisons
            "#]],
        );
        check_pattern(
            "[domain-name:value = 'a.example'] AND [url:value = 'http://b.example/']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: AND of observations
            "#]],
        );
        check_pattern(
            "[domain-name:value = 'a.example'] FOLLOWEDBY [url:value = 'http://b.example/']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: FOLLOWEDBY
            "#]],
        );
        check_pattern(
            "[domain-name:value = 'a.example'] REPEATS 5 TIMES WITHIN 10 SECONDS OR [domain-name:value = 'b.example'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: WITHIN qualifier; START/STOP qualifier
            "#]],
        );
        check_pattern(
            "[EXISTS domain-name:resolves_to_refs[*].value] OR [ipv4-addr:value = 42]",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: EXISTS domain-name:resolves_to_refs[*].value; non-string value for ipv4-addr:value
            "#]],
        );
    }

    #[test]
    fn usable_alternatives_are_kept_beside_unsupported_ones() {
        check_pattern(
            "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e'] OR [domain-name:value = 'a.example'] OR [file:hashes.MD5 = 'ffff']",
            expect![[r#"
                domain a.example
                diag $.objects[0].pattern: unsupported pattern: file:hashes.MD5 (not a domain, URL or address value)
            "#]],
        );
    }

    #[test]
    fn misp_network_traffic_address() {
        check_pattern(
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '192.0.2.5']",
            expect![[r#"
                ip 192.0.2.5
            "#]],
        );
        check_pattern(
            "[network-traffic:src_ref.value = '2001:db8::/48' AND network-traffic:src_ref.type = 'ipv6-addr']",
            expect![[r#"
                cidr 2001:db8::/48
            "#]],
        );
        check_pattern(
            "[network-traffic:dst_ref.type = 'mac-addr' AND network-traffic:dst_ref.value = '00:00:5e:00:53:00']",
            expect![[r#"
                diag $.objects[0].pattern: unsupported pattern: AND of comparisons
            "#]],
        );
    }

    #[test]
    fn malformed_patterns() {
        for pattern in [
            "[domain-name:value = 'a.example'",
            "domain-name:value = 'a.example'",
            "[domain-name:value = 'a.example']]",
            "[domain-name:value = 'a.example]",
            "[]",
            "[domain-name:value 'a.example']",
            "[domain-name = 'a.example']",
            r"[url:value = 'http://a.example/\n']",
            "[domain-name:value = 'a.example'] OR",
            "[domain-name:value = 'a.example'] WITHIN SECONDS",
            "[domain-name:values[x] = 'a']",
            "",
        ] {
            let parsed = super::parse(
                &serde_json::json!([{"type": "indicator", "id": "indicator--1", "pattern": pattern}])
                    .to_string(),
            );
            let diagnostics = parsed.map(|p| (p.records.len(), p.diagnostics));
            assert!(
                matches!(&diagnostics, Ok((0, d)) if d.len() == 1 && d[0].message.starts_with("invalid pattern: ")),
                "{pattern:?}: {diagnostics:?}"
            );
        }
        check_pattern(
            "[domain-name:value = 'a.example'",
            expect![[r#"
                diag $.objects[0].pattern: invalid pattern: expected ']' at offset 32
            "#]],
        );
        check_pattern(
            r"[url:value = 'http://a.example/\n']",
            expect![[r#"
                diag $.objects[0].pattern: invalid pattern: invalid escape (only \' and \\) at offset 31
            "#]],
        );
        check_pattern(
            &format!(
                "{}[domain-name:value = 'a.example']{}",
                "(".repeat(200),
                ")".repeat(200)
            ),
            expect![[r#"
                diag $.objects[0].pattern: invalid pattern: nesting too deep at offset 32
            "#]],
        );
    }

    #[test]
    fn bad_objects_are_diagnostics() {
        check(
            r#"{"type":"bundle","id":"bundle--1","objects":[
                42,
                {"id":"indicator--0"},
                {"type":"indicator","id":"indicator--1"},
                {"type":"indicator","id":"indicator--2","pattern":7},
                {"type":"indicator","id":"indicator--3","pattern":"rule x {}","pattern_type":"yara"},
                {"type":"indicator","id":"indicator--4","pattern":"[domain-name:value = 'ok.example']","valid_from":"yesterday"},
                {"type":"malware","id":"malware--5","name":"not an indicator"},
                {"type":"identity","id":7,"name":"bad id"},
                {"type":"marking-definition","id":"marking-definition--x","definition_type":"tlp","definition":"amber"}
            ]}"#,
            expect![[r#"
                domain ok.example
                diag $.objects[0]: not a STIX object (expected a JSON object)
                diag $.objects[1]: STIX object without a type
                diag $.objects[2]: invalid indicator: missing field `pattern`
                diag $.objects[3]: invalid indicator: invalid type: integer `7`, expected a borrowed string
                diag $.objects[4].pattern_type: unsupported pattern type "yara"
                diag $.objects[5].valid_from: invalid timestamp "yesterday": failed to parse four digit integer as year: invalid digit, expected 0-9 but got y
                diag $.objects[7]: invalid identity: invalid type: integer `7`, expected a borrowed string
                diag $.objects[8]: invalid marking-definition: invalid type: string "amber", expected struct WireTlpDefinition
            "#]],
        );
    }

    #[test]
    fn containers() {
        let indicator = r#"{"type":"indicator","id":"indicator--1","pattern":"[domain-name:value = 'a.example']"}"#;
        check(
            &format!(r#"{{"more":false,"objects":[{indicator}]}}"#),
            expect![[r#"
                domain a.example
            "#]],
        );
        check(
            &format!("[{indicator}]"),
            expect![[r#"
                domain a.example
            "#]],
        );
        check(
            indicator,
            expect![[r#"
                domain a.example
            "#]],
        );
        check(r#"{"type":"bundle","id":"bundle--1"}"#, expect![""]);
        check(r#"{"more":false}"#, expect![""]);
        check("[]", expect![""]);
        check(
            r#"[{"type":"indicator"},"x"]"#,
            expect![[r#"
                diag $[0]: invalid indicator: missing field `pattern`
                diag $[1]: not a STIX object (expected a JSON object)
            "#]],
        );
        check(
            r#"["evil.example"]"#,
            expect![[r#"
                error file: not STIX: expected a bundle, a TAXII envelope or an array of STIX objects
            "#]],
        );
        check(
            r#"{"type":"bundle","objects":{}}"#,
            expect![[r#"
                error $.objects: expected an array of STIX objects
            "#]],
        );
        check(
            r#"{"foo":1}"#,
            expect![[r#"
                error file: not STIX: expected a bundle, a TAXII envelope or an array of STIX objects
            "#]],
        );
        check(
            "\"bundle\"",
            expect![[r#"
                error file: not STIX: expected a bundle, a TAXII envelope or an array of STIX objects
            "#]],
        );
        check(
            "{\"type\":\"bundle\",\n\"objects\":[",
            expect![[r#"
                error line 2: column 11: invalid JSON: EOF while parsing a list
            "#]],
        );
    }

    #[test]
    fn multibyte_labels() {
        check(
            r#"[{"type":"indicator","id":"indicator--1","labels":["abcé","tlé","tlp:"],"pattern":"[domain-name:value = 'a.example']"}]"#,
            expect![[r#"
                domain a.example
            "#]],
        );
    }

    proptest::proptest! {
        /// Patterns built from pattern tokens and junk never panic the reader.
        #[test]
        fn patterns_never_panic(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("[".to_owned()),
                proptest::strategy::Just("]".to_owned()),
                proptest::strategy::Just("(".to_owned()),
                proptest::strategy::Just(")".to_owned()),
                proptest::strategy::Just(" OR ".to_owned()),
                proptest::strategy::Just(" AND ".to_owned()),
                proptest::strategy::Just(" FOLLOWEDBY ".to_owned()),
                proptest::strategy::Just(" WITHIN 5 SECONDS".to_owned()),
                proptest::strategy::Just("domain-name:value = 'a.example'".to_owned()),
                proptest::strategy::Just("ipv4-addr:value IN ('192.0.2.1', 7)".to_owned()),
                proptest::strategy::Just("file:hashes.'SHA-256'".to_owned()),
                proptest::strategy::Just("[*]".to_owned()),
                proptest::strategy::Just("'".to_owned()),
                proptest::strategy::Just("\\".to_owned()),
                proptest::strategy::Just(" = ".to_owned()),
                proptest::strategy::Just("t'".to_owned()),
                "\\PC{0,4}",
            ],
            0..24,
        )) {
            let pattern = parts.concat();
            let bundle = serde_json::json!([{"type": "indicator", "id": "indicator--1", "pattern": pattern}]);
            let parsed = super::parse(&bundle.to_string());
            proptest::prop_assert!(parsed.is_ok());
        }

        /// Arbitrary text never panics the reader.
        #[test]
        fn text_never_panics(text in "\\PC{0,200}") {
            let _ = super::parse(&text);
        }
    }
}
