//! What every fuzz target does with its input, written once.
//!
//! The readers promise never to panic on any input and to keep their diagnostics
//! pointing inside the input; the targets in `fuzz_targets/` feed them arbitrary bytes
//! and check both promises, then push every record through normalisation and the
//! summary, the path every input takes in production. A failed check panics, which
//! libFuzzer reports as a crash.

use formats::{Format, Location, Parsed, ReadOptions};
use indicator::{Hint, Indicator};

/// For [`Format::Csv`]: an input whose first line is `@columns SPEC` is read with
/// `--csv-columns SPEC` (the rest of the input is the CSV), so the column mapping
/// parser is fuzzed too.
pub const COLUMNS_PREFIX: &str = "@columns ";

/// Reads `data` (as lossy UTF-8) as `format`.
pub fn read_as(format: Format, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut options = ReadOptions::default();
    let mut body: &str = &text;
    if format == Format::Csv
        && let Some(rest) = text.strip_prefix(COLUMNS_PREFIX)
    {
        let (spec, csv) = rest.split_once('\n').unwrap_or((rest, ""));
        options.csv_columns = Some(spec.to_owned());
        body = csv;
    }
    if let Ok(parsed) = formats::readers::parse(format, body, &options) {
        assert_eq!(parsed.format, format, "reader reports another format");
        check_parsed(&parsed, body);
    }
}

/// Reads raw bytes the way the CLI does: gunzip, decode, sniff, parse.
pub fn read_sniffed(data: &[u8]) {
    let Ok(parsed) = formats::read(data, &ReadOptions::default()) else {
        return;
    };
    // Locations refer to the decoded text.
    if let Ok(text) = formats::decode(data) {
        check_parsed(&parsed, &text);
    }
}

/// A small MISP event the feed loader returns for every even-length UUID (odd ones
/// fail, exercising the loader-error path).
pub const MISP_EVENT: &str = r#"{"Event":{"uuid":"5f0c2c4e-0000-4000-8000-000000000001","info":"fuzz event","Orgc":{"name":"Fuzz"},"Tag":[{"name":"tlp:clear"}],"Attribute":[{"type":"domain","category":"Network activity","to_ids":true,"value":"evil.example"},{"type":"url","value":"hxxp://bad[.]example/x","Tag":[{"name":"phishing"}]},{"type":"ip-dst","value":"192.0.2.1"},{"type":"md5","value":"d41d8cd98f00b204e9800998ecf8427e"}],"Object":[{"name":"url","Attribute":[{"type":"url","value":"http://obj.example/"}]}]}}"#;

/// Reads `data` as a MISP feed `manifest.json`, every event coming from [`MISP_EVENT`].
pub fn read_misp_feed(data: &[u8]) {
    let mut load = |uuid: &str| -> Result<Vec<u8>, String> {
        if uuid.len().is_multiple_of(2) {
            Ok(MISP_EVENT.as_bytes().to_vec())
        } else {
            Err(format!("no file for event {uuid}"))
        }
    };
    if let Ok(parsed) = formats::read_misp_feed(data, &mut load) {
        // Locations point into the event files, not the manifest: only exercise the
        // normalisation and summary paths.
        let _ = parsed.dump();
        let _ = formats::summarise(&parsed);
    }
}

/// Every hint over the same text: no panic, and normalising the normal form again
/// under the same hint gives the same indicator (normalisation is idempotent).
pub fn normalise(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for hint in [
        Hint::Any,
        Hint::Domain,
        Hint::Wildcard,
        Hint::Url,
        Hint::Ip,
        Hint::Cidr,
    ] {
        if let Ok(indicator) = Indicator::parse(&text, hint) {
            let again = Indicator::parse(&indicator.to_string(), hint);
            assert_eq!(
                again.as_ref(),
                Ok(&indicator),
                "not idempotent under {hint:?}: {text:?} -> {indicator} -> {again:?}"
            );
        }
    }
}

/// The checks every successful read must pass.
fn check_parsed(parsed: &Parsed, text: &str) {
    // Line numbers must fall inside the input (1-based; a final line without `\n`
    // counts).
    let lines = newline_count(text) + 1;
    let inside = |at: &Location| match at {
        Location::Line(n) => *n >= 1 && (*n as usize) <= lines,
        Location::Path(p) => p.starts_with('$'),
        Location::File => true,
    };
    for r in &parsed.records {
        assert!(inside(&r.at), "record at {} outside the input", r.at);
    }
    for p in &parsed.pdns {
        assert!(inside(&p.at), "pdns record at {} outside the input", p.at);
    }
    for d in &parsed.diagnostics {
        assert!(inside(&d.at), "diagnostic at {} outside the input", d.at);
    }
    let _ = parsed.dump();
    let summary = formats::summarise(parsed);
    assert_eq!(summary.records, parsed.records.len());
}

fn newline_count(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

/// Reads `data` as a zone transfer answer the way the filter's secondary does, and
/// checks what it accepts: every record fits the saved copy's zone-file form (the
/// `formats` writer takes it and the reader gives it back unchanged), and an IXFR's
/// differences chain from the serial asked about to the new one.
///
/// Input: one byte (even: AXFR; odd: IXFR from the serial in the next four bytes,
/// big-endian), then the answer messages, each prefixed by its length (two bytes,
/// big-endian, as on TCP).
pub fn secondary_transfer(data: &[u8]) {
    use dns::secondary::{CollectSink, Outcome};
    let Some((&kind, mut rest)) = data.split_first() else {
        return;
    };
    let from = if kind % 2 == 1 {
        let Some((serial, tail)) = rest.split_first_chunk::<4>() else {
            return;
        };
        rest = tail;
        Some(u32::from_be_bytes(*serial))
    } else {
        None
    };
    let mut messages = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        let Some((msg, tail)) = tail.split_at_checked(len) else {
            break;
        };
        messages.push(msg.to_vec());
        rest = tail;
    }
    let apex = "rpz.fuzz";
    let mut sink = CollectSink::default();
    let Ok(outcome) = dns::secondary::parse_transfer(apex, from, messages, &mut sink, 100_000)
    else {
        return;
    };
    let mut records: Vec<&dns::secondary::ZoneRecord> = sink.records.iter().collect();
    match &outcome {
        Outcome::Incremental { soa, diffs } => {
            let mut at = from.unwrap_or_default();
            for d in diffs {
                assert_eq!(d.from, at, "differences do not chain");
                at = d.to;
                records.extend(d.removed.iter().chain(&d.added));
            }
            assert_eq!(at, soa.serial, "differences end elsewhere");
        }
        Outcome::Full { records: n, .. } => {
            assert_eq!(usize::try_from(*n).ok(), Some(sink.records.len()));
        }
        Outcome::UpToDate(_) => {}
    }
    let mut writer = match formats::write::rpz::RecordWriter::new(Vec::new(), apex) {
        Ok(w) => w,
        Err(e) => panic!("origin: {e}"),
    };
    for r in &records {
        if let Err(e) = writer.record(&r.owner, r.ttl, &r.rtype, &r.data) {
            panic!("accepted record does not fit a zone file: {r:?}: {e}");
        }
    }
    let text = match writer.finish() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => panic!("{e}"),
    };
    let mut back = Vec::new();
    let read = formats::readers::rpz::RecordReader::new(apex).read(&text, &mut |r| {
        back.push((r.owner, r.ttl, r.rtype, r.rdata));
        Ok(())
    });
    if let Err(e) = read {
        panic!("saved form does not read back: {e}\n{text}");
    }
    let written: Vec<_> = records
        .iter()
        .map(|r| (r.owner.clone(), r.ttl, r.rtype.clone(), r.data.clone()))
        .collect();
    assert_eq!(back, written, "saved form reads back differently");
}
