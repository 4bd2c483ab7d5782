//! The matcher at a national scale: 1,000,000 rules.
//!
//! Times (divan): building the set, looking up names that hit (exact and through a
//! wildcard) and names that miss (realistic 3–4 label names), a whole policy check
//! (allowlist + 4 zones), applying a 10% IXFR delta and compacting after it.
//! Memory (printed before the timings): heap bytes per rule by the set's own
//! accounting, and resident memory (RSS from `/proc/self/statm`) as a cross-check;
//! the extra memory while a 10% delta is applied and compacted, as a ratio to the
//! steady set. Names are synthetic but shaped like feed names (registered domains of
//! 5–14 characters under common TLDs, a third with a host label). Run:
//! `cargo bench -p policy --bench matcher`.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::LazyLock;

use divan::Bencher;
use indicator::Domain;
use policy::{
    Delta, Policy, QueryName, Response, RuleSet, RuleSetBuilder, Trigger, Zone, ZoneOptions,
    ZoneTrigger,
};

const RULES: usize = 1_000_000;
/// Distinct query names per kind: more than a run looks up, so every lookup is cold
/// (no name repeats; the table lines it needs are not in cache).
const QUERIES: usize = 200_000;

fn main() {
    report_memory();
    divan::main();
}

/// xorshift64*: deterministic names without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn label(&mut self, min: u64, max: u64) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let len = min + self.below(max - min + 1);
        (0..len)
            .map(|_| char::from(CHARS[self.below(CHARS.len() as u64) as usize]))
            .collect()
    }
    fn tld(&mut self) -> &'static str {
        const TLDS: [&str; 12] = [
            "com", "net", "org", "xyz", "top", "ru", "info", "online", "shop", "co.uk", "de", "app",
        ];
        TLDS[self.below(TLDS.len() as u64) as usize]
    }
    /// A registered domain, and a host below it a third of the time.
    fn feed_name(&mut self) -> String {
        let registered = format!("{}.{}", self.label(5, 14), self.tld());
        if self.below(3) == 0 {
            format!("{}.{registered}", self.label(3, 8))
        } else {
            registered
        }
    }
}

struct Data {
    /// 90% exact, 10% wildcard, every name distinct.
    rules: Vec<Trigger>,
    /// Query texts: names of exact rules; names below wildcard rules; misses.
    hits: Vec<String>,
    wildcard_hits: Vec<String>,
    misses: Vec<String>,
    /// 10% of the rules replaced: removed, and as many new ones added.
    delta: Delta,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut seen = std::collections::HashSet::with_capacity(RULES * 2);
    let mut fresh = |rng: &mut Rng| loop {
        let name = rng.feed_name();
        if seen.insert(name.clone()) {
            return Domain::parse(&name).unwrap();
        }
    };
    let rules: Vec<Trigger> = (0..RULES)
        .map(|i| {
            let d = fresh(&mut rng);
            if i % 10 == 0 {
                Trigger::Wildcard(d)
            } else {
                Trigger::Exact(d)
            }
        })
        .collect();
    let pick = |rng: &mut Rng| &rules[rng.below(RULES as u64) as usize];
    let mut hits = Vec::new();
    let mut wildcard_hits = Vec::new();
    while hits.len() < QUERIES || wildcard_hits.len() < QUERIES {
        match pick(&mut rng) {
            Trigger::Exact(d) if hits.len() < QUERIES => hits.push(d.to_string()),
            Trigger::Wildcard(d) if wildcard_hits.len() < QUERIES => {
                wildcard_hits.push(format!("www.{d}"))
            }
            _ => {}
        }
    }
    let misses = (0..QUERIES)
        .map(|i| match i % 3 {
            0 => format!("www.{}.com", rng.label(5, 14)),
            1 => format!("img.cdn.{}.net", rng.label(5, 14)),
            _ => format!("api.{}.co.uk", rng.label(5, 14)),
        })
        .collect();
    let step = 10;
    let removed = rules
        .iter()
        .step_by(step)
        .map(|t| ZoneTrigger::Qname(t.clone()))
        .collect::<Vec<_>>();
    let added = (0..removed.len())
        .map(|_| {
            (
                ZoneTrigger::Qname(Trigger::Exact(fresh(&mut rng))),
                Response::Nxdomain,
            )
        })
        .collect();
    Data {
        rules,
        hits,
        wildcard_hits,
        misses,
        delta: Delta { removed, added },
    }
});

fn build(rules: &[Trigger]) -> RuleSet {
    let mut b = RuleSetBuilder::with_capacity(rules.len());
    for t in rules {
        b.insert_name(t, Response::Nxdomain);
    }
    b.build()
}

static SET: LazyLock<RuleSet> = LazyLock::new(|| build(&DATA.rules));

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn report_memory() {
    let data = &*DATA;
    let name_text: usize = data.rules.iter().map(|t| t.domain().as_str().len()).sum();
    let rss_before = rss_bytes();
    let set = build(&data.rules);
    let rss_after = rss_bytes();
    let heap = set.heap_bytes();
    let names = set.name_bytes();
    let n = set.len() as f64;
    eprintln!(
        "matcher memory, {} rules ({} shards):",
        set.len(),
        set.shard_count()
    );
    eprintln!(
        "  names: {:.1} bytes/rule of text on average ({name_text} bytes)",
        name_text as f64 / n
    );
    eprintln!(
        "  heap: {heap} bytes = {:.1} bytes/rule, {:.1} beyond the name text",
        heap as f64 / n,
        (heap - names) as f64 / n
    );
    eprintln!(
        "  RSS grew by {} bytes while building = {:.1} bytes/rule",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 / n
    );

    // A 10% IXFR: 100k removed, 100k added; then compaction shard by shard.
    let next = set.apply_delta(&data.delta).unwrap();
    let overlay = next.heap_bytes_beyond(Some(&set));
    eprintln!(
        "  10% delta ({} removed, {} added): overlay {overlay} bytes = {:.3}× the set while both live",
        data.delta.removed.len(),
        data.delta.added.len(),
        (heap + overlay) as f64 / heap as f64
    );
    drop(set);
    let mut current = next;
    let mut peak = current.heap_bytes();
    while let Some(compacted) = current.compact_one() {
        let both = current.heap_bytes() + compacted.heap_bytes_beyond(Some(&current));
        peak = peak.max(both);
        current = compacted;
    }
    let steady = current.heap_bytes();
    eprintln!(
        "  after compaction: {steady} bytes; peak during delta + compaction {peak} bytes = {:.3}× steady",
        peak as f64 / steady as f64
    );
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn build_1m_rules() -> RuleSet {
    build(&DATA.rules)
}

/// Query texts packed in one buffer: a query a resolver has just read is in cache,
/// 10,000 separate heap strings are not (each lookup would pay a cache and TLB miss
/// on its own input).
struct Queries {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Queries {
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }
}

fn queries(texts: &[String]) -> Queries {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for t in texts {
        bytes.extend_from_slice(t.as_bytes());
        ends.push(bytes.len());
    }
    Queries { bytes, ends }
}

/// Query name from text (lowercase, label split, suffix hashes, into a reused
/// buffer) + lookup.
#[divan::bench(args = ["exact hit", "wildcard hit", "miss"], sample_size = 1000)]
fn lookup(bencher: Bencher<'_, '_>, kind: &str) {
    let set = &*SET;
    let texts = match kind {
        "exact hit" => &DATA.hits,
        "wildcard hit" => &DATA.wildcard_hits,
        _ => &DATA.misses,
    };
    let texts = queries(texts);
    let hits = texts
        .iter()
        .filter(|t| {
            set.lookup_qname(&QueryName::from_text(t).unwrap())
                .is_some()
        })
        .count();
    assert_eq!(hits == texts.len(), kind != "miss", "{kind}: {hits} hits");
    let mut i = 0;
    let mut q = QueryName::root();
    bencher.bench_local(|| {
        i = (i + 1) % texts.len();
        q.set_text(black_box(texts.get(i))).unwrap();
        black_box(set.lookup_qname(&q).is_some())
    });
}

/// A whole pre-resolution check: allowlist (1,000 names) + 4 zones of 250k rules each.
#[divan::bench(args = ["hit", "miss"], sample_size = 1000)]
fn policy_check(bencher: Bencher<'_, '_>, kind: &str) {
    let rules = &DATA.rules;
    let quarter = rules.len() / 4;
    let zones = (0..4)
        .map(|z| {
            Zone::new(
                &format!("zone{z}"),
                ZoneOptions::default(),
                build(&rules[z * quarter..(z + 1) * quarter]),
            )
        })
        .collect();
    let allow = build(
        &DATA.misses[..1_000]
            .iter()
            .map(|m| Trigger::Exact(Domain::parse(&format!("x.{m}")).unwrap()))
            .collect::<Vec<_>>(),
    );
    let policy = Policy::new(zones, allow).unwrap();
    let texts = queries(if kind == "hit" {
        &DATA.hits
    } else {
        &DATA.misses
    });
    let mut i = 0;
    let mut q = QueryName::root();
    bencher.bench_local(|| {
        i = (i + 1) % texts.len();
        q.set_text(black_box(texts.get(i))).unwrap();
        black_box(policy.check_query(None, &q).hit.is_some())
    });
}

/// Applying a 10% IXFR (100k removed + 100k added) to the 1M set.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn delta_10_percent(bencher: Bencher<'_, '_>) {
    let set = &*SET;
    bencher.bench(|| set.apply_delta(&DATA.delta).unwrap());
}

/// Folding every overlay of that delta back into the bases, one shard at a time.
#[divan::bench(sample_count = 3, sample_size = 1)]
fn compact_after_delta(bencher: Bencher<'_, '_>) {
    let next = SET.apply_delta(&DATA.delta).unwrap();
    bencher
        .with_inputs(|| next.clone())
        .bench_values(|mut set| {
            while let Some(compacted) = set.compact_one() {
                set = compacted;
            }
            set
        });
}

/// The query side alone: lowercase, split, hash every suffix.
#[divan::bench(sample_size = 1000)]
fn query_name_from_text(bencher: Bencher<'_, '_>) {
    let texts = queries(&DATA.misses);
    let mut i = 0;
    let mut q = QueryName::root();
    bencher.bench_local(|| {
        i = (i + 1) % texts.len();
        q.set_text(black_box(texts.get(i))).unwrap();
        black_box(q.label_count())
    });
}

/// Misses against a set small enough to stay in cache (1,000 rules): the cost of
/// the code path without the memory latency of a 1M-rule set.
#[divan::bench(sample_size = 1000)]
fn lookup_miss_small_set(bencher: Bencher<'_, '_>) {
    let set = build(&DATA.rules[..1_000]);
    let texts = queries(&DATA.misses);
    let mut i = 0;
    let mut q = QueryName::root();
    bencher.bench_local(|| {
        i = (i + 1) % texts.len();
        q.set_text(black_box(texts.get(i))).unwrap();
        black_box(set.lookup_qname(&q).is_some())
    });
}
