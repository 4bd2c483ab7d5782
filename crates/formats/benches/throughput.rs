//! Parse + normalise throughput of the readers that carry bulk data.
//!
//! Run with `cargo bench -p formats --bench throughput`. Inputs are synthetic but
//! shaped like the real feeds (deterministic, no I/O): a plain list mixing names, URLs
//! and addresses, a hosts file, and a STIX 2.1 bundle of domain/URL indicators. Each
//! iteration reads the whole input and normalises every record, which is the work an
//! import does before it touches the store. Divan reports items (lines or
//! indicators) per second on one core.

use divan::counter::ItemsCount;
use formats::{Format, ReadOptions};

fn main() {
    divan::main();
}

/// A cheap deterministic generator (xorshift), so the inputs are the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn word(&mut self) -> String {
        const SYL: &[&str] = &[
            "sec", "pay", "log", "in", "acc", "ount", "ver", "ify", "bank", "pal", "mail", "up",
            "date", "cl", "oud", "shop", "deal", "win", "gift", "track",
        ];
        let n = 2 + (self.next() % 3) as usize;
        (0..n)
            .map(|_| SYL[(self.next() % SYL.len() as u64) as usize])
            .collect()
    }
    fn name(&mut self) -> String {
        const TLDS: &[&str] = &["com", "net", "xyz", "top", "info", "co.uk", "ru", "shop"];
        let tld = TLDS[(self.next() % TLDS.len() as u64) as usize];
        match self.next() % 4 {
            0 => format!("{}.{}.{tld}", self.word(), self.word()),
            _ => format!("{}-{}.{tld}", self.word(), self.next() % 1000),
        }
    }
}

const PLAIN_LINES: usize = 1_000_000;
const HOSTS_LINES: usize = 300_000;
const STIX_INDICATORS: usize = 100_000;

fn plain_input() -> String {
    let mut rng = Rng(42);
    let mut s = String::from("# synthetic plain list\n");
    for i in 0..PLAIN_LINES {
        match i % 10 {
            0 => s.push_str(&format!("http://{}/{}/login.php\n", rng.name(), rng.word())),
            1 => s.push_str(&format!(
                "{}.{}.{}.{}\n",
                rng.next() % 223 + 1,
                rng.next() % 256,
                rng.next() % 256,
                rng.next() % 256
            )),
            _ => {
                s.push_str(&rng.name());
                s.push('\n');
            }
        }
    }
    s
}

fn hosts_input() -> String {
    let mut rng = Rng(7);
    let mut s = String::from("# synthetic hosts file\n127.0.0.1 localhost\n");
    for _ in 0..HOSTS_LINES {
        s.push_str("0.0.0.0 ");
        s.push_str(&rng.name());
        s.push('\n');
    }
    s
}

fn stix_input() -> String {
    let mut rng = Rng(99);
    let mut s = String::from(
        r#"{"type":"bundle","id":"bundle--00000000-0000-4000-8000-000000000000","objects":["#,
    );
    for i in 0..STIX_INDICATORS {
        if i > 0 {
            s.push(',');
        }
        let pattern = if i % 3 == 0 {
            format!("[url:value = 'https://{}/{}']", rng.name(), rng.word())
        } else {
            format!("[domain-name:value = '{}']", rng.name())
        };
        s.push_str(&format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{i:08x}-0000-4000-8000-000000000000","created":"2026-08-22T10:00:00.000Z","modified":"2026-08-22T10:00:00.000Z","indicator_types":["malicious-activity"],"pattern":"{pattern}","pattern_type":"stix","valid_from":"2026-08-22T10:00:00Z","labels":["phishing"]}}"#
        ));
    }
    s.push_str("]}");
    s
}

/// Reads `text` as `format` and normalises every record; returns the accepted count.
fn read_and_normalise(text: &str, format: Format) -> usize {
    let options = ReadOptions {
        format: Some(format),
        ..Default::default()
    };
    let parsed = formats::read_text(text, &options).unwrap_or_else(|e| panic!("{e}"));
    parsed
        .records
        .iter()
        .filter(|r| r.normalise().is_ok())
        .count()
}

#[divan::bench(sample_count = 5)]
fn plain_list(bencher: divan::Bencher<'_, '_>) {
    let text = plain_input();
    bencher
        .counter(ItemsCount::new(PLAIN_LINES))
        .bench(|| read_and_normalise(divan::black_box(&text), Format::Plain));
}

#[divan::bench(sample_count = 5)]
fn hosts_file(bencher: divan::Bencher<'_, '_>) {
    let text = hosts_input();
    bencher
        .counter(ItemsCount::new(HOSTS_LINES))
        .bench(|| read_and_normalise(divan::black_box(&text), Format::Hosts));
}

#[divan::bench(sample_count = 5)]
fn stix_bundle(bencher: divan::Bencher<'_, '_>) {
    let text = stix_input();
    bencher
        .counter(ItemsCount::new(STIX_INDICATORS))
        .bench(|| read_and_normalise(divan::black_box(&text), Format::Stix));
}
