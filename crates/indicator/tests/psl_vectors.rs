//! The Public Suffix List's own test vectors, run against our registrable-domain view.
//!
//! `tests.txt` and `test_psl.txt` come from publicsuffix/list and are read in place from
//! `../shared/data/psl/`. Each vector is run against the compiled-in list and against
//! the same list loaded at run time, so both paths are held to the list's own answers.

use std::path::PathBuf;

use indicator::{Domain, SuffixList};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// The registrable domain of `input` as the PSL tests define it; `None` for null.
fn registrable(list: &SuffixList, input: Option<&str>) -> Option<String> {
    let input = input?;
    // The vectors expect null for a leading dot; Domain::parse rejects it (empty label).
    let domain = Domain::parse(input).ok()?;
    list.registrable_domain(&domain).map(|d| d.to_string())
}

/// The expected value in A-label form (the vectors write some in Unicode).
fn expected(text: Option<&str>) -> Option<String> {
    text.map(|t| {
        Domain::parse(t)
            .unwrap_or_else(|e| panic!("expected value {t:?} is not a domain: {e}"))
            .to_string()
    })
}

fn null(s: &str) -> Option<&str> {
    (s != "null").then_some(s)
}

fn run(vectors: &[(Option<String>, Option<String>)]) {
    let runtime = SuffixList::parse(
        &std::fs::read_to_string(data("psl/public_suffix_list.dat"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for list in [SuffixList::builtin(), &runtime] {
        let mut failures = Vec::new();
        for (input, want) in vectors {
            let got = registrable(list, input.as_deref());
            let want = expected(want.as_deref());
            if got != want {
                failures.push(format!("{input:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn tests_txt() {
    let text = std::fs::read_to_string(data("psl/tests.txt")).unwrap_or_else(|e| panic!("{e}"));
    let vectors: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with("//") && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let input = f.next().unwrap_or_default();
            let want = f.next().unwrap_or_default();
            (
                null(input).map(str::to_owned),
                null(want).map(str::to_owned),
            )
        })
        .collect();
    // 78 non-comment lines per SOURCES.md, of which every one is a vector.
    assert_eq!(vectors.len(), 78);
    run(&vectors);
}

#[test]
fn test_psl_txt() {
    let text = std::fs::read_to_string(data("psl/test_psl.txt")).unwrap_or_else(|e| panic!("{e}"));
    let arg = |s: &str| -> Option<String> {
        let s = s.trim();
        if s == "null" {
            None
        } else {
            Some(s.trim_matches('\'').to_owned())
        }
    };
    let vectors: Vec<_> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("checkPublicSuffix("))
        .filter_map(|rest| rest.strip_suffix(");"))
        .map(|args| {
            let (a, b) = args.split_once(',').unwrap_or((args, "null"));
            (arg(a), arg(b))
        })
        .collect();
    assert_eq!(vectors.len(), 78);
    run(&vectors);
}
