//! CSV export: `indicator,kind`, one row per indicator.
//!
//! The shape spreadsheet users, SIEM lookups and partners without a DNS stack ask
//! for. Quoting is left to the `csv` crate, so URLs holding commas or quotes survive,
//! and the header names columns the generic CSV reader recognises (`indicator` as
//! the value, `kind` as its type), so an export reads back to the same set.

use std::io::{self, Write};

use indicator::Indicator;

/// Writes `indicator,kind` then one row per item, in the given order.
pub fn csv(out: &mut dyn Write, items: &[Indicator]) -> io::Result<()> {
    let mut writer = ::csv::Writer::from_writer(out);
    writer.write_record(["indicator", "kind"])?;
    for item in items {
        writer.write_record([item.to_string().as_str(), item.kind().as_str()])?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use indicator::{Hint, Indicator};
    use proptest::prelude::*;

    use crate::Format;

    fn written(items: &[Indicator]) -> String {
        let mut out = Vec::new();
        super::csv(&mut out, items).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_back(text: &str) -> BTreeSet<Indicator> {
        let parsed = crate::readers::csv::parse(Format::Csv, text, None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        parsed
            .records
            .iter()
            .map(|r| r.normalise().unwrap_or_else(|e| panic!("{e}\n{text}")))
            .collect()
    }

    fn parse(text: &str) -> Indicator {
        Indicator::parse(text, Hint::Any).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn quotes_what_needs_quoting() {
        let items = [
            parse("evil.example"),
            parse("*.evil.example"),
            parse("http://evil.example/a,b?q=\"x\""),
            parse("192.0.2.1"),
            parse("2001:db8::/32"),
        ];
        let text = written(&items);
        expect_test::expect![[r#"
            indicator,kind
            evil.example,domain
            *.evil.example,domain
            "http://evil.example/a,b?q=%22x%22",url
            192.0.2.1,ip
            2001:db8::/32,cidr
        "#]]
        .assert_eq(&text);
        assert_eq!(read_back(&text), items.into_iter().collect());
        let sniffed = crate::read(text.as_bytes(), &crate::ReadOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sniffed.format, Format::Csv);
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
    }

    fn raw_indicator() -> impl Strategy<Value = String> {
        prop_oneof![
            (proptest::collection::vec(label(), 1..4), "[a-z]{2,6}")
                .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join("."))),
            (proptest::collection::vec(label(), 1..3), "[a-z]{2,6}")
                .prop_map(|(labels, tld)| format!("*.{}.{tld}", labels.join("."))),
            (
                label(),
                "[a-z]{2,6}",
                "[a-zA-Z0-9/,;\"' %=&?#.-]{0,20}",
                prop_oneof![Just("http"), Just("https")]
            )
                .prop_map(|(host, tld, path, scheme)| format!("{scheme}://{host}.{tld}/{path}")),
            any::<[u8; 4]>().prop_map(|b| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
            (any::<[u8; 4]>(), 1u8..32)
                .prop_map(|(b, len)| format!("{}.{}.{}.{}/{len}", b[0], b[1], b[2], b[3])),
            any::<[u16; 8]>().prop_map(|w| std::net::Ipv6Addr::from(w).to_string()),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_through_the_csv_reader(raw in proptest::collection::vec(raw_indicator(), 0..20)) {
            let items: Vec<Indicator> = raw
                .iter()
                .filter_map(|r| Indicator::parse(r, Hint::Any).ok())
                .collect();
            let text = written(&items);
            prop_assert_eq!(read_back(&text), items.into_iter().collect::<BTreeSet<_>>());
        }
    }
}
