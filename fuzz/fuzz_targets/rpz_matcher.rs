//! Fuzzes the path from RPZ zone text to the filter's matcher: any bytes read as a
//! zone, loaded into a rule set (never a panic), every exact rule found again by its
//! own name, every wildcard by a name below it, and the input's lines and words
//! looked up as query names, in text form and as wire labels.

#![no_main]

use policy::{QueryName, Trigger, ZoneTrigger, rpz};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = formats::readers::rpz::parse(&text) else {
        return;
    };
    let loaded = rpz::load_rpz(&parsed);
    let rules = &loaded.rules;
    for (trigger, response) in rules.rules() {
        let ZoneTrigger::Qname(t) = &trigger else {
            continue;
        };
        let name = match t {
            Trigger::Exact(d) => d.to_string(),
            Trigger::Wildcard(d) => format!("below.{d}"),
        };
        // A name of 253 characters has no room for a label below it.
        let Ok(q) = QueryName::from_text(name.as_bytes()) else {
            continue;
        };
        let found = rules.lookup_qname(&q).map(|m| m.response.clone());
        match t {
            Trigger::Exact(_) => assert_eq!(found.as_ref(), Some(&response), "{trigger}"),
            // A more specific wildcard or an exact `below.…` rule may answer instead.
            Trigger::Wildcard(_) => assert!(found.is_some(), "{trigger}"),
        }
    }
    for line in data.split(|&b| b == b'\n') {
        if let Ok(q) = QueryName::from_text(line) {
            let _ = rules.lookup_qname(&q);
        }
        if let Ok(q) = QueryName::from_labels(line.split(|&b| b == b' ')) {
            let _ = rules.lookup_qname(&q);
        }
    }
});
