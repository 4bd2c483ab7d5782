//! The hub's judgement end to end on a real store: never over-block on the real feeds,
//! the breaker on a poisoned feed, corroboration by independence group, decay with a
//! controlled clock, delisting and review.

#![allow(clippy::print_stderr)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use formats::ReadOptions;
use hub::{AllowlistOptions, ExportFormat, Hub, ImportDefaults, ImportJob};
use indicator::{Category, Domain, SuffixList, Timestamp};
use store::{NewSource, SourceKind, Store};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn hub(name: &str) -> Hub {
    let store = Store::open_sqlite(&temp_dir(name)).unwrap_or_else(|e| panic!("{e}"));
    Hub::open(
        store,
        analysis::Config::default(),
        SuffixList::builtin().clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn source(name: &str, trust: f64, group: Option<&str>) -> NewSource {
    NewSource {
        name: name.into(),
        kind: SourceKind::Feed,
        trust,
        group: group.map(Into::into),
    }
}

fn import_into(
    hub: &mut Hub,
    source: &NewSource,
    origin: &str,
    parsed: &formats::Parsed,
    defaults: &ImportDefaults,
    now: Timestamp,
    who: &str,
) -> store::Result<hub::ImportReport> {
    hub.import(
        &ImportJob {
            source,
            origin,
            defaults,
        },
        parsed,
        now,
        who,
    )
}

#[allow(clippy::too_many_arguments)]
fn load_list(
    hub: &mut Hub,
    list: Option<&str>,
    role: Option<analysis::Role>,
    subdomains: bool,
    popular_top: Option<u32>,
    parsed: &formats::Parsed,
    now: Timestamp,
    who: &str,
) -> store::Result<hub::AllowlistReport> {
    let options = AllowlistOptions {
        list,
        role,
        subdomains,
        popular_top,
    };
    hub.load_allowlist(&options, parsed, now, who)
}

fn read(path: &Path) -> formats::Parsed {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    formats::read(&bytes, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_text(text: &str) -> formats::Parsed {
    formats::read(text.as_bytes(), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn export(hub: &mut Hub, feed: &str, format: ExportFormat) -> String {
    let mut out = Vec::new();
    hub::export(hub, feed, format, &mut out).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
}

/// Exact triggers and wildcard bases of a feed's current rules.
fn rules(hub: &mut Hub, feed: &str) -> (HashSet<String>, HashSet<String>) {
    let rules = hub
        .store
        .read(|tx| tx.feed_rules(feed))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut exact = HashSet::new();
    let mut wild = HashSet::new();
    for r in rules {
        match r.trigger.strip_prefix("*.") {
            Some(base) => {
                wild.insert(base.to_owned());
            }
            None => {
                exact.insert(r.trigger);
            }
        }
    }
    (exact, wild)
}

/// True when a rule in (exact, wild) catches `name`.
fn blocked(name: &Domain, exact: &HashSet<String>, wild: &HashSet<String>) -> bool {
    exact.contains(name.as_str()) || name.suffixes().skip(1).any(|a| wild.contains(a))
}

fn list_names(path: &Path) -> Vec<Domain> {
    read(path)
        .records
        .iter()
        .filter_map(|r| Domain::parse(r.value.trim_start_matches("*.")).ok())
        .collect()
}

#[test]
fn real_feeds_never_block_popular_or_public_names() {
    let mut hub = hub("real");
    let now = ts("2026-09-01T00:00:00Z");
    let mut feeds = Vec::new();
    collect(&data("feeds"), &mut feeds);
    // Allowlists first, as a running hub has them; then the feeds.
    let lists_dir = data("allowlists/misp-warninglists");
    for entry in std::fs::read_dir(&lists_dir).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.file_name().is_some_and(|n| n == "_schema.json") {
            continue;
        }
        let parsed = read(&path);
        load_list(&mut hub, None, None, false, None, &parsed, now, "test")
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let tranco = read(&data("allowlists/tranco/tranco_top-1m_first50k.csv"));
    load_list(
        &mut hub,
        Some("tranco"),
        None,
        false,
        Some(10_000),
        &tranco,
        now,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for path in &feeds {
        let name = path
            .strip_prefix(data("feeds"))
            .unwrap_or(path)
            .to_string_lossy()
            .replace('/', ":");
        let parsed = read(path);
        let category = if name.contains("phish") {
            Category::Phishing
        } else {
            Category::Malware
        };
        let defaults = ImportDefaults {
            category,
            ..Default::default()
        };
        let report = import_into(
            &mut hub,
            &source(&name, 0.8, None),
            &name,
            &parsed,
            &defaults,
            now,
            "test",
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The real feeds name a few top sites (a shortener, a cloud host): the breaker
        // may hold such a batch; an operator approves after looking.
        if let (Some(_), Some(batch)) = (&report.held, report.batch_id) {
            hub.approve(batch, "test approves", now, "test")
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let (exact, wild) = rules(&mut hub, "all");
    assert!(
        exact.len() > 10_000,
        "expected a real feed to publish, got {} rules",
        exact.len()
    );

    let psl = SuffixList::builtin();
    for list in [
        "tranco10k",
        "cisco_top1000",
        "google",
        "microsoft",
        "url-shortener",
    ] {
        let names = list_names(&data(&format!("allowlists/misp-warninglists/{list}.json")));
        assert!(!names.is_empty(), "{list}");
        let hits: Vec<_> = names
            .iter()
            .filter(|n| blocked(n, &exact, &wild))
            .map(ToString::to_string)
            .collect();
        assert!(
            hits.is_empty(),
            "{list}: blocked {} names, e.g. {:?}",
            hits.len(),
            &hits[..hits.len().min(10)]
        );
    }
    for trigger in exact.iter().chain(wild.iter()) {
        let d = Domain::parse(trigger).unwrap_or_else(|e| panic!("{trigger}: {e}"));
        assert!(!psl.is_public_suffix(&d), "rule on public suffix {trigger}");
    }
    // No rule catches a name the PSL lists (`*.co.uk` would catch `ltd.co.uk`).
    let psl_text = std::fs::read_to_string(data("psl/public_suffix_list.dat"))
        .unwrap_or_else(|e| panic!("{e}"));
    for line in psl_text.lines() {
        let rule = line.split_whitespace().next().unwrap_or("");
        if rule.is_empty() || rule.starts_with("//") || rule.starts_with('!') {
            continue;
        }
        if let Ok(d) = Domain::parse(rule.trim_start_matches("*.")) {
            assert!(
                !blocked(&d, &exact, &wild),
                "a rule catches public suffix {d}"
            );
        }
    }
    // Every OpenPhish/PhishTank URL on a shared host is URL-only.
    let mut shared_urls = 0;
    let mut host_reported = 0;
    for path in [
        data("feeds/openphish/openphish_feed_2026-08-22.txt"),
        data("feeds/phishtank/phishtank_verified_online_2023-01-05.csv"),
    ] {
        for r in read(&path).records {
            let Ok(indicator::Indicator::Url(u)) = r.normalise() else {
                continue;
            };
            let Some(host) = u.domain() else { continue };
            let shared =
                analysis::is_private_tenant(host, psl) || hub.lists().shared(host).is_some();
            if !shared {
                continue;
            }
            shared_urls += 1;
            let e = hub
                .explain(u.as_str(), now)
                .unwrap_or_else(|e| panic!("{e}"));
            let decision = e.decision.unwrap_or_else(|| panic!("{u}: no decision"));
            assert!(
                decision.state == "url-only" || decision.state == "ignore",
                "{u}: {}",
                decision.state
            );
            assert!(
                decision.rules.is_empty(),
                "{u}: the URL made DNS rules {:?}",
                decision.rules
            );
            // The host may still be blocked, but only because a source reported the
            // host name itself (a phishing tenant's own subdomain), never for the URL.
            if exact.contains(host.as_str()) {
                let h = hub
                    .explain(host.as_str(), now)
                    .unwrap_or_else(|e| panic!("{e}"));
                let state = h.decision.map(|d| d.state).unwrap_or_default();
                assert_eq!(
                    state, "publish",
                    "{u}: host {host} blocked without a report of the host"
                );
                host_reported += 1;
            }
        }
    }
    eprintln!(
        "{shared_urls} URLs on shared hosts; {host_reported} of their hosts reported as names too"
    );
    assert!(
        shared_urls > 100,
        "only {shared_urls} URLs on shared hosts in OpenPhish+PhishTank"
    );
    // The exported RPZ zone carries the journal serial.
    let zone = export(&mut hub, "all", ExportFormat::Rpz);
    let serial = hub
        .store
        .read(|tx| tx.feeds())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|f| f.name == "all")
        .map(|f| f.serial);
    assert!(
        zone.contains(&format!("{}", serial.unwrap_or(0))),
        "serial in zone"
    );
    hub.store
        .read(|tx| tx.integrity_check())
        .unwrap_or_else(|e| panic!("{e}"));
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn poisoned_feed_publishes_nothing_and_trips_the_breaker() {
    let mut hub = hub("poison");
    let now = ts("2026-09-01T00:00:00Z");
    let tranco = read(&data("allowlists/tranco/tranco_top-1m_first50k.csv"));
    // Popularity known, but not yet an allowlist: the breaker alone must catch it.
    load_list(
        &mut hub,
        Some("tranco"),
        Some(analysis::Role::Popular),
        false,
        Some(10_000),
        &tranco,
        now,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A healthy feed first, so there is something to protect.
    let mut healthy = String::new();
    for i in 0..500 {
        healthy.push_str(&format!("phish-{i}-login.example\n"));
    }
    let r = import_into(
        &mut hub,
        &source("healthy", 0.9, None),
        "healthy",
        &parse_text(&healthy),
        &ImportDefaults {
            category: Category::Phishing,
            ..Default::default()
        },
        now,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.held.is_none());
    let before = rules(&mut hub, "all");
    let serial_before = hub
        .store
        .read(|tx| tx.feeds())
        .unwrap_or_else(|e| panic!("{e}"));

    let mut poison = String::from("com\nco.uk\ngithub.io\ngov.uk\nblogspot.com\n");
    for (i, r) in tranco.records.iter().take(10_000).enumerate() {
        if i % 2 == 0 {
            poison.push_str(&r.value);
            poison.push('\n');
        }
    }
    let report = import_into(
        &mut hub,
        &source("poisoned", 0.9, None),
        "poisoned",
        &parse_text(&poison),
        &ImportDefaults {
            category: Category::Phishing,
            ..Default::default()
        },
        now,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let held = report
        .held
        .unwrap_or_else(|| panic!("breaker did not trip"));
    assert!(held.iter().any(|r| r.contains("popular")), "{held:?}");
    assert_eq!(
        rules(&mut hub, "all"),
        before,
        "a held batch published something"
    );
    assert_eq!(
        hub.store
            .read(|tx| tx.feeds())
            .unwrap_or_else(|e| panic!("{e}")),
        serial_before
    );
    let batches = hub
        .store
        .read(|tx| tx.batches(Some(store::BatchStatus::Held)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batches.len(), 1);
    // Rejecting discards it; nothing was ever published.
    hub.reject(batches[0].id, "poisoned", now, "test")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules(&mut hub, "all"), before);
}

#[test]
fn one_independence_group_counts_once() {
    let mut hub = hub("groups");
    let now = ts("2026-09-01T00:00:00Z");
    let defaults = ImportDefaults {
        category: Category::Phishing,
        ..Default::default()
    };
    let feed = parse_text("corroborated.example\n");
    // Two weak sources that re-publish each other: one witness, below the threshold.
    for name in ["mirror-a", "mirror-b"] {
        import_into(
            &mut hub,
            &source(name, 0.5, Some("abuse.ch")),
            name,
            &feed,
            &defaults,
            now,
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let e = hub
        .explain("corroborated.example", now)
        .unwrap_or_else(|e| panic!("{e}"));
    let one = e.decision.unwrap_or_else(|| panic!("no decision"));
    assert_eq!(one.state, "ignore", "{:?}", one.reasons);
    assert!((one.score - 0.4).abs() < 1e-9, "{}", one.score);
    // An independent source corroborates: 1 - 0.6 × 0.6 = 0.64.
    import_into(
        &mut hub,
        &source("independent", 0.5, None),
        "independent",
        &feed,
        &defaults,
        now,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = hub
        .explain("corroborated.example", now)
        .unwrap_or_else(|e| panic!("{e}"));
    let two = e.decision.unwrap_or_else(|| panic!("no decision"));
    assert_eq!(two.state, "publish", "{:?}", two.reasons);
    assert!((two.score - 0.64).abs() < 1e-9, "{}", two.score);
    assert_eq!(e.score.map(|s| s.groups.len()), Some(2));
}

#[test]
fn decay_withdraws_and_a_new_sighting_re_arms() {
    let mut hub = hub("decay");
    let t0 = ts("2026-09-01T00:00:00Z");
    let defaults = ImportDefaults {
        category: Category::Phishing,
        ..Default::default()
    };
    let feed = parse_text("short-lived-phish.example\n");
    import_into(
        &mut hub,
        &source("feed", 0.9, None),
        "feed",
        &feed,
        &defaults,
        t0,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (exact, _) = rules(&mut hub, "phishing");
    assert!(exact.contains("short-lived-phish.example"));
    // Half a day later it is still blocked.
    hub.sweep(ts("2026-09-01T12:00:00Z"), "test")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rules(&mut hub, "phishing")
            .0
            .contains("short-lived-phish.example")
    );
    // Past the phishing lifetime (72 h) without a new sighting: withdrawn.
    let report = hub
        .sweep(ts("2026-09-04T01:00:00Z"), "test")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.applied.rules_removed(),
        4,
        "exact + wildcard in phishing and all"
    );
    assert!(
        !rules(&mut hub, "phishing")
            .0
            .contains("short-lived-phish.example")
    );
    // Seen again: re-armed and published again.
    let t1 = ts("2026-09-05T00:00:00Z");
    import_into(
        &mut hub,
        &source("feed", 0.9, None),
        "feed",
        &feed,
        &defaults,
        t1,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rules(&mut hub, "phishing")
            .0
            .contains("short-lived-phish.example")
    );
    // Serials only grew.
    let journal = hub
        .store
        .read(|tx| tx.journal_since("phishing", 0))
        .unwrap_or_else(|e| panic!("{e}"));
    let serials: Vec<u32> = journal.iter().map(|j| j.serial).collect();
    assert_eq!(serials, vec![1, 2, 3]);
}

#[test]
fn delist_withdraws_at_once_and_stays_out() {
    let mut hub = hub("delist");
    let now = ts("2026-09-01T00:00:00Z");
    let defaults = ImportDefaults {
        category: Category::Scam,
        ..Default::default()
    };
    import_into(
        &mut hub,
        &source("feed", 0.9, None),
        "feed",
        &parse_text("wrongly-listed.example\nhttp://wrongly-listed.example/shop\n"),
        &defaults,
        now,
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(rules(&mut hub, "scam").0.contains("wrongly-listed.example"));
    let applied = hub
        .delist(
            "wrongly-listed.example",
            "bakery, reported via block page",
            now,
            "analyst",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied.rules_removed(), 4);
    assert!(rules(&mut hub, "scam").0.is_empty());
    // The feed lists it again tomorrow: it stays out.
    import_into(
        &mut hub,
        &source("feed", 0.9, None),
        "feed",
        &parse_text("wrongly-listed.example\n"),
        &defaults,
        ts("2026-09-02T00:00:00Z"),
        "test",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(rules(&mut hub, "scam").0.is_empty());
    let e = hub
        .explain("wrongly-listed.example", now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        e.audit
            .iter()
            .any(|a| a.action == "delist" && a.who == "analyst"),
        "{:?}",
        e.audit
    );
    assert!(e.protected_by.is_some());
}

/// An import decides the names it creates from the observation it has just written,
/// without reading it back (`engine::recompute_with_fresh`). Re-deciding everything
/// from the store at the same instant must then change nothing: not a rule, not a
/// score. The clock has a fraction of a second, which the store drops.
#[test]
fn fresh_import_decides_as_the_stored_evidence_does() {
    let dir = temp_dir("fresh");
    let mut hub = Hub::open(
        Store::open_sqlite(&dir).unwrap_or_else(|e| panic!("{e}")),
        analysis::Config::default(),
        SuffixList::builtin().clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let now = ts("2026-09-01T00:00:00.75Z");
    let defaults = ImportDefaults {
        category: Category::Phishing,
        ..Default::default()
    };
    let first = parse_text("old.example\nshared.example\n");
    let second = parse_text(
        "shared.example\nnew.example\nlogin.new2.example\n*.wild.example\n\
         http://url.example/login\n192.0.2.7\ngoogle.com\n",
    );
    for (name, feed) in [("first", &first), ("second", &second)] {
        let report = import_into(
            &mut hub,
            &source(name, 0.9, None),
            name,
            feed,
            &defaults,
            now,
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.held, None);
    }
    let mut again = Store::open_sqlite(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cx = hub.context();
    let (before, applied, after) = again
        .write(|tx| {
            let mut ids = Vec::new();
            for state in [
                store::STATE_PUBLISH,
                store::STATE_URL_ONLY,
                store::STATE_ADDRESS_ONLY,
                store::STATE_IGNORE,
                store::STATE_HOLD,
            ] {
                ids.extend(tx.decisions_in_state(state)?.into_iter().map(|(i, _)| i.id));
            }
            let before = tx.decisions_of(&ids)?;
            let applied = hub::engine::recompute(tx, &ids, &cx, now, None)?;
            Ok((before, applied, tx.decisions_of(&ids)?))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(before.len(), 8, "{before:#?}");
    assert_eq!(applied.rules_added() + applied.rules_removed(), 0);
    // Reasons differ on purpose: re-decided, a published name is held to the lower
    // withdrawal threshold. Everything else, the score to the last bit, is the same.
    let outcome = |rows: &[store::DecisionRow]| -> Vec<_> {
        rows.iter()
            .map(|d| {
                let r = (d.indicator_id, d.state.clone(), d.score.to_bits());
                (r, d.category.clone(), d.rules.clone(), d.feeds.clone())
            })
            .collect()
    };
    assert_eq!(outcome(&before), outcome(&after));
}

/// `all` is the union of the category feeds, kept without storing rules twice: a
/// rule two feeds publish is in it once and leaves only when it leaves both, and
/// IXFR of `all` from any serial is the exact difference.
#[test]
fn all_is_the_union_of_the_category_feeds() {
    use dns::ZoneSource;

    let mut hub = hub("union");
    let t0 = ts("2026-09-01T00:00:00Z");
    let import = |hub: &mut Hub, name: &str, text: &str, category: Category| {
        import_into(
            hub,
            &source(name, 0.9, None),
            name,
            &parse_text(text),
            &ImportDefaults {
                category,
                ..Default::default()
            },
            t0,
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    // A phishing report of the domain: exact + wildcard in `phishing`. A malware
    // report of a URL on it: the host exactly, in `malware`.
    import(&mut hub, "phish-feed", "both.example\n", Category::Phishing);
    let report = import(
        &mut hub,
        "malware-feed",
        "http://both.example/payload.exe\n",
        Category::Malware,
    );
    assert!(
        report.applied.feeds.contains_key("malware") && !report.applied.feeds.contains_key("all"),
        "the host was in `all` already: {:?}",
        report.applied.feeds.keys().collect::<Vec<_>>()
    );
    let all_rules = |hub: &mut Hub| -> Vec<String> {
        hub.store
            .read(|tx| tx.feed_rules("all"))
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| r.trigger)
            .collect()
    };
    assert_eq!(all_rules(&mut hub), ["*.both.example", "both.example"]);
    assert_eq!(rules(&mut hub, "malware").0.len(), 1);
    let e = hub
        .explain("both.example", t0)
        .unwrap_or_else(|e| panic!("{e}"));
    let in_all: Vec<_> = e.matched_by.iter().filter(|r| r.feed == "all").collect();
    assert_eq!(e.matched_by.len(), 3, "{:?}", e.matched_by);
    assert!(
        matches!(&in_all[..], [r] if r.trigger == "both.example"
            && r.action == "nxdomain"
            && r.serial == Some(1)),
        "{in_all:?}"
    );

    let dir = std::env::temp_dir().join(format!("sharedefend-hub-union-{}", std::process::id()));
    let zones = hub::StoreZones::new(Store::open_sqlite(&dir).unwrap_or_else(|e| panic!("{e}")));
    let owners = |rules: &[dns::ZoneRule]| -> Vec<String> {
        let mut o: Vec<String> = rules.iter().map(|r| r.owner.clone()).collect();
        o.sort();
        o
    };
    let serial = |zones: &hub::StoreZones| {
        zones
            .zones()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|z| z.feed == "all")
            .map(|z| z.serial)
    };
    assert_eq!(serial(&zones), Some(1));

    // Past the phishing lifetime, not the malware one: `phishing` loses both rules,
    // `all` only the wildcard.
    hub.sweep(ts("2026-09-05T00:00:00Z"), "test")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rules(&mut hub, "phishing").0.is_empty());
    assert_eq!(all_rules(&mut hub), ["both.example"]);
    assert_eq!(serial(&zones), Some(2));
    let delta = zones
        .delta("all", 1)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no delta"));
    assert_eq!(
        (owners(&delta.removed), owners(&delta.added)),
        (vec!["*.both.example".to_owned()], vec![])
    );
    // Past the malware lifetime too: now it leaves `all`.
    hub.sweep(ts("2026-10-15T00:00:00Z"), "test")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(all_rules(&mut hub).is_empty());
    assert_eq!(serial(&zones), Some(3));
    let delta = zones
        .delta("all", 1)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no delta"));
    assert_eq!(
        (owners(&delta.removed), owners(&delta.added)),
        (
            vec!["*.both.example".to_owned(), "both.example".to_owned()],
            vec![]
        )
    );
    let delta = zones
        .delta("all", 0)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no delta"));
    assert!(
        delta.removed.is_empty() && delta.added.is_empty(),
        "from an empty zone to an empty zone: {delta:?}"
    );
    let snapshot = zones
        .snapshot("all")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no zone"));
    assert!(snapshot.rules.is_empty());
    hub.store
        .read(|tx| tx.integrity_check())
        .unwrap_or_else(|e| panic!("{e}"));
}
