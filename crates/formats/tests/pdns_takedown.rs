//! Real-file tests for passive DNS (COF), takedown reports and the document
//! recognisers (JSON Schema, STIX bundle index, prose).
//!
//! Each input goes through `formats::read` with default options, so the sniffer has
//! to pick the format from the content as it will in production; the expected counts
//! come from `shared/data/SOURCES.md` or from the independent check named next to
//! each assertion.

use std::path::{Path, PathBuf};

use formats::{Format, Location, Parsed, ReadOptions, TakedownStatus, summarise};
use indicator::Kind;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

#[track_caller]
fn read_path(path: &Path) -> Parsed {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    formats::read(&bytes, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[track_caller]
fn read(rel: &str) -> Parsed {
    read_path(&data(rel))
}

/// The one diagnostic a document reader gives, after checking it is alone.
#[track_caller]
fn only_diagnostic(parsed: &Parsed) -> String {
    assert!(parsed.records.is_empty(), "{:?}", parsed.records);
    assert!(parsed.pdns.is_empty());
    assert_eq!(parsed.diagnostics.len(), 1, "{:?}", parsed.diagnostics);
    let d = &parsed.diagnostics[0];
    assert_eq!(d.at, Location::File);
    d.message.clone()
}

#[test]
fn circl_cof_testdata() {
    // SOURCES.md: 2 lines, 2 real CIRCL records.
    let parsed = read("pdns/circl_cof_testdata.ndjson");
    assert_eq!(parsed.format, Format::Cof);
    assert!(parsed.records.is_empty(), "passive DNS is not indicators");
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.pdns.len(), 2);
    assert_eq!(summarise(&parsed).pdns, 2);
    let first = &parsed.pdns[0];
    assert_eq!(first.at, Location::Line(1));
    assert_eq!(first.rrname, "www.circl.lu");
    assert_eq!(first.rrtype, "CNAME");
    assert_eq!(first.rdata, ["cpa.circl.lu"]);
    assert_eq!(first.count, Some(1909));
    assert_eq!(first.time_first.as_second(), 1_315_586_409);
    assert_eq!(first.time_last.as_second(), 1_449_566_799);
    let second = &parsed.pdns[1];
    assert_eq!(second.rdata, ["cpab.circl.lu"]);
    assert_eq!(second.count, Some(2560));
    assert_eq!(second.bailiwick, None);
}

#[test]
fn takedown_sample() {
    // tests/data/takedown-sample.jsonl: 10 lines; line 5 has an unknown status and
    // line 8 is taken_down without taken_down_at; the other 8 are 4 URLs and 4
    // domains, 3 live, 3 taken down, 2 unknown.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/takedown-sample.jsonl");
    let parsed = read_path(&path);
    assert_eq!(parsed.format, Format::Takedown);
    assert_eq!(parsed.records.len(), 8);
    let bad: Vec<_> = parsed.diagnostics.iter().map(|d| d.at.clone()).collect();
    assert_eq!(bad, [Location::Line(5), Location::Line(8)]);

    let summary = summarise(&parsed);
    assert_eq!(summary.rejected, 0, "{:?}", summary.first_rejects);
    assert_eq!(summary.unique[&Kind::Url], 4);
    assert_eq!(summary.unique[&Kind::Domain], 4);

    let status_count = |s: TakedownStatus| {
        parsed
            .records
            .iter()
            .filter_map(|r| r.meta.as_ref()?.takedown.as_ref())
            .filter(|t| t.status == s)
            .count()
    };
    assert_eq!(status_count(TakedownStatus::Live), 3);
    assert_eq!(status_count(TakedownStatus::TakenDown), 3);
    assert_eq!(status_count(TakedownStatus::Unknown), 2);

    let with_reference = parsed
        .records
        .iter()
        .filter(|r| r.meta.as_ref().is_some_and(|m| m.reference.is_some()))
        .count();
    assert_eq!(with_reference, 4);
    assert!(
        parsed
            .records
            .iter()
            .all(|r| r.meta.as_ref().is_some_and(|m| m.category.is_none()))
    );
}

/// Every STIX 2.1 JSON Schema (57 files, SOURCES.md) and the two other schemas are
/// recognised as schemas and give no records.
#[test]
fn json_schemas() {
    let mut files = Vec::new();
    let mut dirs = vec![data("stix/stix21-json-schemas")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    // `find stix/stix21-json-schemas -type f | wc -l`
    assert_eq!(files.len(), 57);
    files.push(data("pdns/cof_schema.json"));
    files.push(data("allowlists/misp-warninglists/_schema.json"));
    for path in &files {
        let parsed = read_path(path);
        assert_eq!(parsed.format, Format::JsonSchema, "{}", path.display());
        let message = only_diagnostic(&parsed);
        assert!(
            message.starts_with("JSON Schema") && message.ends_with("holds no indicators"),
            "{}: {message}",
            path.display()
        );
    }
}

#[test]
fn named_schemas() {
    let message = only_diagnostic(&read("pdns/cof_schema.json"));
    assert_eq!(
        message,
        "JSON Schema \"The passive DNS Common Output Format (COF) schema\": describes a data format, holds no indicators"
    );
    let message = only_diagnostic(&read("allowlists/misp-warninglists/_schema.json"));
    assert_eq!(
        message,
        "JSON Schema \"Validator for misp-warninglists\": describes a data format, holds no indicators"
    );
}

#[test]
fn tweetfeed_stix_manifest() {
    let parsed = read("stix/tweetfeed/tweetfeed_stix_manifest.json");
    assert_eq!(parsed.format, Format::StixIndex);
    // today 59 + week 1536 + month 11784 (read from the file with jq/python).
    assert_eq!(
        only_diagnostic(&parsed),
        "STIX bundle index by TweetFeed: references 3 bundles with 13379 indicators in all; holds no indicators itself (read the bundles)"
    );
}

#[test]
fn cof_draft_is_prose() {
    let parsed = read("pdns/draft-dulaunoy-dnsop-passive-dns-cof.txt");
    assert_eq!(parsed.format, Format::Prose);
    // `wc -l`: 784 lines (SOURCES.md says 797: it also splits at the 13 form feeds).
    assert_eq!(
        only_diagnostic(&parsed),
        "Internet-Draft text (784 lines): a document, holds no indicators"
    );
}
