//! The store's contract, tested once and run against both backends.
//!
//! The hub must not care which store it has, so every case here is written against
//! [`Store`] alone and runs twice: on a fresh SQLite store in a temporary directory
//! and on a fresh database of a real PostgreSQL server (see `support`). Cases that
//! must reopen the store or break it behind its back take a [`Db`], which knows how
//! to do that for each backend.

mod support;

use std::collections::HashSet;

use store::{
    AllowRow, AuditEntry, BatchStatus, DecisionRow, IndicatorKey, NewBatch, NewSource,
    ObservationRow, RuleChanges, RuleDelta, RuleText, STATE_HOLD, STATE_PUBLISH, STATE_URL_ONLY,
    SourceKind, Store, StoreError, Timestamp, Tx,
};
use support::{Must, TempDir, pg_database};

/// The schema version this build writes (`store::schema`): a fresh or migrated store
/// must be at it.
const LATEST_SCHEMA: i64 = 4;

// --- harness

/// A store under test and what it takes to reopen it or reach under it.
struct Db {
    store: Store,
    place: Place,
}

enum Place {
    Sqlite(TempDir),
    Postgres(String),
}

impl Db {
    fn sqlite() -> Db {
        Db::sqlite_at(None)
    }

    fn postgres() -> Db {
        Db::postgres_at(None)
    }

    /// A fresh SQLite store, migrated to `version` (default: latest).
    fn sqlite_at(version: Option<i64>) -> Db {
        let dir = TempDir::new("sharedefend-store");
        let store = match version {
            Some(v) => Store::open_sqlite_at_version(dir.path(), v),
            None => Store::open_sqlite(dir.path()),
        }
        .must();
        Db {
            store,
            place: Place::Sqlite(dir),
        }
    }

    fn postgres_at(version: Option<i64>) -> Db {
        let params = pg_database();
        let store = match version {
            Some(v) => Store::open_postgres_at_version(&params, v),
            None => Store::open_postgres(&params),
        }
        .must();
        Db {
            store,
            place: Place::Postgres(params),
        }
    }

    /// Opens the same store again, as a restarted hub would.
    fn try_reopen(&self) -> Result<Store, StoreError> {
        match &self.place {
            Place::Sqlite(dir) => Store::open_sqlite(dir.path()),
            Place::Postgres(params) => Store::open_postgres(params),
        }
    }

    fn reopen(&mut self) {
        let reopened = self.try_reopen().must();
        drop(std::mem::replace(&mut self.store, reopened));
    }

    /// Runs raw SQL on the database behind the store's back (and its foreign keys').
    fn raw(&self, sql: &str) {
        match &self.place {
            Place::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("sharedefend.db")).must();
                conn.pragma_update(None, "foreign_keys", false).must();
                conn.execute_batch(sql).must();
            }
            Place::Postgres(params) => {
                let mut client = ::postgres::Client::connect(params, ::postgres::NoTls).must();
                client.batch_execute(sql).must();
            }
        }
    }

    /// Whether the database has an index of this name.
    fn has_index(&self, name: &str) -> bool {
        match &self.place {
            Place::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("sharedefend.db")).must();
                conn.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .must()
                    == 1
            }
            Place::Postgres(params) => {
                let mut client = ::postgres::Client::connect(params, ::postgres::NoTls).must();
                let row = client
                    .query_one(
                        "SELECT COUNT(*) FROM pg_indexes WHERE indexname = $1",
                        &[&name],
                    )
                    .must();
                row.try_get::<_, i64>(0).must() == 1
            }
        }
    }
}

/// Two tests per case, one per backend. `store:` cases take `&mut Store`, `db:`
/// cases take `&mut Db`.
macro_rules! cases {
    ($($kind:ident: $case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { let mut db = super::Db::sqlite(); cases!(@run $kind super::$case, db); } )*
        }
        mod postgres {
            $( #[test] fn $case() { let mut db = super::Db::postgres(); cases!(@run $kind super::$case, db); } )*
        }
    };
    (@run store $f:path, $db:ident) => { $f(&mut $db.store) };
    (@run db $f:path, $db:ident) => { $f(&mut $db) };
}

cases! {
    store: fresh_store_is_at_latest_version,
    db: v1_store_migrates_with_data_intact,
    db: v2_store_migrates_all_into_the_union,
    db: newer_store_refuses_to_open,
    store: sources_upsert_by_name,
    store: source_trust_must_be_a_fraction,
    store: indicator_ids_create_once_in_order,
    store: indicator_ids_say_which_they_created,
    store: indicator_lookups,
    store: observations_merge_min_max_count,
    store: observations_merge_keeps_newer_fields,
    store: observations_merge_repeats_in_one_slice,
    store: observations_of_carry_source_trust_and_group,
    store: observations_delete_and_indicators_of_source,
    store: published_indicator_ids_follow_decision_state,
    store: batches_and_statuses,
    store: held_batches_insert_and_take,
    store: decisions_put_get_counts_in_state,
    store: refcounts_appear_and_disappear,
    store: refcounts_net_deltas_in_one_call,
    store: refcount_below_zero_fails_and_rolls_back,
    store: journal_serials_grow_per_feed,
    store: journal_since_returns_changes_in_order,
    store: rule_published_serial_is_the_last_appearance,
    store: union_feed_has_every_rule_once,
    store: union_feed_is_declared_over_no_rules,
    store: journal_keeps_order_across_chunks,
    db: serials_continue_after_reopen,
    store: allowlists_replace_add_all,
    store: audit_by_target,
    store: pull_state_put_replaces,
    store: snapshot_batches_are_marked,
    store: integrity_check_passes_on_a_good_store,
    db: integrity_check_fails_on_a_serial_behind_its_journal,
    db: integrity_check_fails_on_a_rule_ahead_of_its_feed,
    db: integrity_check_fails_on_an_orphan,
    db: integrity_check_fails_on_a_wrong_rule_count,
    store: references_to_missing_rows_are_rejected,
    store: error_in_write_leaves_nothing_behind,
    store: read_cannot_write,
    store: bulk_operations_span_many_statements,
}

// --- helpers

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).must()
}

fn w<R>(store: &mut Store, f: impl FnOnce(&mut dyn Tx) -> store::Result<R>) -> R {
    store.write(f).must()
}

fn r<R>(store: &mut Store, f: impl FnOnce(&mut dyn Tx) -> store::Result<R>) -> R {
    store.read(f).must()
}

fn source(store: &mut Store, name: &str, trust: f64, group: Option<&str>) -> i64 {
    w(store, |tx| {
        tx.source_upsert(&NewSource {
            name: name.into(),
            kind: SourceKind::Feed,
            trust,
            group: group.map(Into::into),
        })
    })
    .id
}

fn domain(name: &str) -> IndicatorKey {
    IndicatorKey {
        value: name.into(),
        kind: "domain".into(),
        host: Some(name.trim_start_matches("*.").into()),
    }
}

fn url(value: &str, host: &str) -> IndicatorKey {
    IndicatorKey {
        value: value.into(),
        kind: "url".into(),
        host: Some(host.into()),
    }
}

fn ids(store: &mut Store, keys: &[IndicatorKey]) -> Vec<i64> {
    w(store, |tx| tx.indicator_ids(keys))
}

fn obs(indicator_id: i64, source_id: i64, first: i64, last: i64) -> ObservationRow {
    ObservationRow {
        indicator_id,
        source_id,
        category: "phishing".into(),
        confidence: Some(80),
        tlp: "clear".into(),
        tags: vec!["bank".into()],
        first_seen: t(first),
        last_seen: t(last),
        valid_until: None,
        count: 1,
        reference: Some("https://ref.example/1".into()),
    }
}

fn rule(trigger: &str) -> RuleText {
    RuleText {
        trigger: trigger.into(),
        action: "nxdomain".into(),
    }
}

fn delta(trigger: &str, delta: i64) -> RuleDelta {
    RuleDelta {
        rule: rule(trigger),
        delta,
    }
}

fn triggers(rules: &[RuleText]) -> Vec<&str> {
    rules.iter().map(|r| r.trigger.as_str()).collect()
}

fn decision(indicator_id: i64, state: &str) -> DecisionRow {
    DecisionRow {
        indicator_id,
        state: state.into(),
        score: 0.75,
        category: "phishing".into(),
        reasons: vec!["sources: 2 independent".into(), "quote: \"x\" \\ y".into()],
        rules: vec![rule("evil.example"), rule("*.evil.example")],
        feeds: vec!["sd-block".into()],
        decided_at: t(1_700_000_000),
    }
}

fn allow(list: &str, value: &str, rank: Option<u32>) -> AllowRow {
    AllowRow {
        list: list.into(),
        role: "popular".into(),
        extent: "subtree".into(),
        value: value.into(),
        rank,
    }
}

/// Publishes `deltas` in `feed` as one journal entry, the way the hub does.
fn publish(store: &mut Store, feed: &str, deltas: &[RuleDelta], at: i64) -> (RuleChanges, u32) {
    w(store, |tx| {
        let changes = tx.feed_rules_adjust(feed, deltas)?;
        let serial = tx.journal_append(feed, &changes, t(at), None)?;
        Ok((changes, serial))
    })
}

// --- schema and migrations

fn fresh_store_is_at_latest_version(store: &mut Store) {
    assert_eq!(store.schema_version().must(), LATEST_SCHEMA);
    r(store, |tx| tx.integrity_check());
}

fn v1_store_migrates_with_data_intact(db: &mut Db) {
    let mut old = match &db.place {
        Place::Sqlite(_) => Db::sqlite_at(Some(1)),
        Place::Postgres(_) => Db::postgres_at(Some(1)),
    };
    assert_eq!(old.store.schema_version().must(), 1);
    assert!(!old.has_index("observations_source"));
    // Sources, indicators and observations have kept their shape, so this build's
    // operations can fill them; the rules and the journal are written as v1 had them.
    let src = source(&mut old.store, "urlhaus", 0.9, None);
    let id = ids(&mut old.store, &[domain("evil.example")])[0];
    w(&mut old.store, |tx| {
        tx.observations_merge(&[obs(id, src, 100, 200)])
    });
    old.raw(
        "INSERT INTO feeds (name, serial, updated_at) VALUES ('sd-block', 1, 300);
         INSERT INTO feed_rules (feed, trigger, action, refcount, serial_added)
             VALUES ('sd-block', 'evil.example', 'nxdomain', 1, 1);
         INSERT INTO journal (feed, serial, at, batch_id) VALUES ('sd-block', 1, 300, NULL);
         INSERT INTO journal_changes (feed, serial, seq, op, trigger, action)
             VALUES ('sd-block', 1, 0, '+', 'evil.example', 'nxdomain');",
    );

    old.reopen();
    assert_eq!(old.store.schema_version().must(), LATEST_SCHEMA);
    assert!(old.has_index("observations_source"));
    assert!(old.has_index("decisions_state"));
    assert!(old.has_index("audit_target"));
    let (indicator, observations, rules, feeds, journal) = r(&mut old.store, |tx| {
        Ok((
            tx.indicator_by_value("evil.example")?,
            tx.observations_of(&[id])?,
            tx.feed_rules("sd-block")?,
            tx.feeds()?,
            tx.journal_since("sd-block", 0)?,
        ))
    });
    assert_eq!(indicator.map(|i| i.id), Some(id));
    assert_eq!(observations.len(), 1);
    assert_eq!(observations[0].source, "urlhaus");
    assert_eq!(triggers(&rules), ["evil.example"]);
    assert_eq!(
        (feeds[0].serial, feeds[0].rules, feeds[0].union),
        (1, 1, false)
    );
    assert_eq!(journal.len(), 1);
    assert_eq!(triggers(&journal[0].added), ["evil.example"]);
    r(&mut old.store, |tx| tx.integrity_check());
    // And it is written to as a store of this version.
    let (_, serial) = publish(&mut old.store, "sd-block", &[delta("new.example", 1)], 400);
    assert_eq!(serial, 2);
    r(&mut old.store, |tx| tx.integrity_check());
}

/// A v2 store as the hub wrote it: every rule stored again in `all`, counted once per
/// indicator (`both.example` by a phishing and a malware indicator;
/// `spam-only.example` by an indicator of no category, in `all` alone), and one
/// journal row per change.
fn v2_store_migrates_all_into_the_union(db: &mut Db) {
    let mut old = match &db.place {
        Place::Sqlite(_) => Db::sqlite_at(Some(2)),
        Place::Postgres(_) => Db::postgres_at(Some(2)),
    };
    assert_eq!(old.store.schema_version().must(), 2);
    old.raw(
        "INSERT INTO feeds (name, serial, updated_at) VALUES
             ('phishing', 2, 200), ('malware', 1, 100), ('all', 3, 300);
         INSERT INTO feed_rules (feed, trigger, action, refcount, serial_added) VALUES
             ('phishing', 'a.example', 'nxdomain', 1, 1),
             ('phishing', '*.a.example', 'nxdomain', 1, 1),
             ('phishing', 'both.example', 'nxdomain', 1, 2),
             ('malware', 'both.example', 'nxdomain', 1, 1),
             ('all', 'a.example', 'nxdomain', 1, 1),
             ('all', '*.a.example', 'nxdomain', 1, 1),
             ('all', 'both.example', 'nxdomain', 2, 2),
             ('all', 'spam-only.example', 'nxdomain', 1, 3);
         INSERT INTO journal (feed, serial, at, batch_id) VALUES
             ('phishing', 1, 100, NULL), ('phishing', 2, 200, NULL),
             ('malware', 1, 100, NULL),
             ('all', 1, 100, NULL), ('all', 2, 150, NULL), ('all', 3, 300, NULL);
         INSERT INTO journal_changes (feed, serial, seq, op, trigger, action) VALUES
             ('phishing', 1, 0, '+', 'a.example', 'nxdomain'),
             ('phishing', 1, 1, '+', '*.a.example', 'nxdomain'),
             ('phishing', 2, 0, '+', 'both.example', 'nxdomain'),
             ('malware', 1, 0, '+', 'both.example', 'nxdomain'),
             ('all', 1, 0, '+', 'a.example', 'nxdomain'),
             ('all', 1, 1, '+', '*.a.example', 'nxdomain'),
             ('all', 2, 0, '+', 'both.example', 'nxdomain'),
             ('all', 2, 1, '+', 'gone.example', 'passthru'),
             ('all', 2, 2, '+', 'other.example', 'nxdomain'),
             ('all', 3, 0, '+', 'spam-only.example', 'nxdomain'),
             ('all', 3, 1, '-', 'gone.example', 'passthru');",
    );
    // One long entry: 5,000 changes, more than one chunk of the migration.
    old.raw(
        "INSERT INTO feeds (name, serial, updated_at) VALUES ('sd-long', 1, 100);
         INSERT INTO journal (feed, serial, at, batch_id) VALUES ('sd-long', 1, 100, NULL);
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)
         INSERT INTO journal_changes (feed, serial, seq, op, trigger, action)
             SELECT 'sd-long', 1, i, '-', 'n' || i || '.example', 'nxdomain' FROM n;",
    );

    old.reopen();
    assert_eq!(old.store.schema_version().must(), LATEST_SCHEMA);
    let (feeds, all, phishing, journal, long, serials) = r(&mut old.store, |tx| {
        Ok((
            tx.feeds()?,
            tx.feed_rules("all")?,
            tx.feed_rules("phishing")?,
            tx.journal_since("all", 0)?,
            tx.journal_since("sd-long", 0)?,
            (
                tx.rule_published_serial("all", "both.example")?,
                tx.rule_published_serial("all", "spam-only.example")?,
                tx.rule_published_serial("phishing", "both.example")?,
            ),
        ))
    });
    let feeds: Vec<(&str, u32, u64, bool)> = feeds
        .iter()
        .map(|f| (f.name.as_str(), f.serial, f.rules, f.union))
        .collect();
    assert_eq!(
        feeds,
        [
            ("all", 3, 4, true),
            ("malware", 1, 1, false),
            ("phishing", 2, 3, false),
            ("sd-long", 1, 0, false),
        ]
    );
    assert_eq!(
        triggers(&all),
        [
            "*.a.example",
            "a.example",
            "both.example",
            "spam-only.example"
        ]
    );
    assert_eq!(
        triggers(&phishing),
        ["*.a.example", "a.example", "both.example"]
    );
    assert_eq!(serials, (Some(2), Some(3), Some(2)));
    let entries: Vec<(u32, Vec<&str>, Vec<&str>)> = journal
        .iter()
        .map(|e| (e.serial, triggers(&e.added), triggers(&e.removed)))
        .collect();
    assert_eq!(
        entries,
        [
            (1, vec!["a.example", "*.a.example"], vec![]),
            (
                2,
                vec!["both.example", "gone.example", "other.example"],
                vec![]
            ),
            (3, vec!["spam-only.example"], vec!["gone.example"]),
        ]
    );
    assert_eq!(journal[1].added[1].action, "passthru");
    assert_eq!(long[0].removed.len(), 5000);
    assert!(
        long[0]
            .removed
            .iter()
            .enumerate()
            .all(|(i, r)| r.trigger == format!("n{i}.example")),
        "the long entry in its order"
    );
    r(&mut old.store, |tx| tx.integrity_check());
    // `both.example` leaves `all` only when it leaves both feeds.
    let changes = w(&mut old.store, |tx| {
        let mut deltas = store::RuleDeltas::new();
        deltas.insert("phishing".into(), vec![delta("both.example", -1)]);
        tx.rules_adjust(&deltas)
    });
    assert_eq!(triggers(&changes["phishing"].removed), ["both.example"]);
    assert!(changes["all"].is_empty(), "{changes:?}");
    let changes = w(&mut old.store, |tx| {
        let mut deltas = store::RuleDeltas::new();
        deltas.insert("malware".into(), vec![delta("both.example", -1)]);
        tx.rules_adjust(&deltas)
    });
    assert_eq!(triggers(&changes["all"].removed), ["both.example"]);
}

fn newer_store_refuses_to_open(db: &mut Db) {
    db.raw("INSERT INTO schema_version (version, applied_at, description) VALUES (99, 0, 'from the future')");
    match db.try_reopen() {
        Err(StoreError::TooNew {
            found: 99,
            known: LATEST_SCHEMA,
        }) => {}
        other => panic!("expected TooNew, got {other:?}"),
    }
}

// --- sources and indicators

fn sources_upsert_by_name(store: &mut Store) {
    let a = source(store, "urlhaus", 0.9, None);
    let b = source(store, "openphish", 0.7, Some("phish-crowd"));
    assert_ne!(a, b);
    let again = source(store, "urlhaus", 0.5, Some("abuse.ch"));
    assert_eq!(again, a, "an upsert keeps the id");
    let (one, all, none) = r(store, |tx| {
        Ok((
            tx.source_by_name("urlhaus")?,
            tx.sources()?,
            tx.source_by_name("nope")?,
        ))
    });
    let one = one.must_some();
    assert_eq!((one.trust, one.group.as_deref()), (0.5, Some("abuse.ch")));
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["openphish", "urlhaus"]);
    assert_eq!(all[0].group.as_deref(), Some("phish-crowd"));
    assert_eq!(none, None);
}

fn source_trust_must_be_a_fraction(store: &mut Store) {
    let result = store.write(|tx| {
        tx.source_upsert(&NewSource {
            name: "x".into(),
            kind: SourceKind::Partner,
            trust: 1.5,
            group: None,
        })
    });
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert!(r(store, |tx| tx.sources()).is_empty());
}

fn indicator_ids_say_which_they_created(store: &mut Store) {
    let keys = [
        domain("a.example"),
        domain("b.example"),
        domain("a.example"),
    ];
    let (first, created) = w(store, |tx| tx.indicator_ids_created(&keys));
    assert_eq!(created, [true, true, false], "a repeat is created once");
    assert_eq!(first[0], first[2]);
    let (second, created) = w(store, |tx| {
        tx.indicator_ids_created(&[domain("b.example"), domain("c.example")])
    });
    assert_eq!(created, [false, true], "b exists, c is new");
    assert_eq!(second[0], first[1]);
    assert_eq!(ids(store, &keys), first, "the plain form agrees");
}

fn indicator_ids_create_once_in_order(store: &mut Store) {
    let first = ids(
        store,
        &[
            domain("a.example"),
            domain("b.example"),
            domain("a.example"),
        ],
    );
    assert_eq!(first[0], first[2], "a repeated key gets one id");
    assert_ne!(first[0], first[1]);
    let second = ids(
        store,
        &[
            domain("c.example"),
            domain("b.example"),
            domain("a.example"),
        ],
    );
    assert_eq!(
        second[1..],
        [first[1], first[0]],
        "existing keys keep their ids"
    );
    assert!(!first.contains(&second[0]));
    assert!(ids(store, &[]).is_empty());
}

fn indicator_lookups(store: &mut Store) {
    let keys = [
        domain("evil.example"),
        domain("*.evil.example"),
        url("http://evil.example/login", "evil.example"),
        IndicatorKey {
            value: "192.0.2.1".into(),
            kind: "ip".into(),
            host: None,
        },
    ];
    let id = ids(store, &keys);
    let (by_value, by_id, by_host, ip, missing) = r(store, |tx| {
        Ok((
            tx.indicator_by_value("http://evil.example/login")?,
            tx.indicators_by_id(&[id[3], id[0], 999_999, id[3]])?,
            tx.indicators_by_host("evil.example")?,
            tx.indicator_by_value("192.0.2.1")?,
            tx.indicator_by_value("good.example")?,
        ))
    });
    let by_value = by_value.must_some();
    assert_eq!((by_value.id, by_value.kind.as_str()), (id[2], "url"));
    assert_eq!(by_value.host.as_deref(), Some("evil.example"));
    let values: Vec<&str> = by_id.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(
        values,
        ["192.0.2.1", "evil.example"],
        "in the order asked, once, missing skipped"
    );
    let hosts: Vec<i64> = by_host.iter().map(|i| i.id).collect();
    assert_eq!(hosts, id[..3]);
    assert_eq!(ip.must_some().host, None);
    assert_eq!(missing, None);
}

// --- observations

fn observations_merge_min_max_count(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let id = ids(store, &[domain("evil.example")])[0];
    w(store, |tx| {
        tx.observations_merge(&[obs(id, src, 1000, 2000)])
    });
    w(store, |tx| {
        tx.observations_merge(&[obs(id, src, 500, 1500)])
    });
    w(store, |tx| {
        tx.observations_merge(&[obs(id, src, 1200, 3000)])
    });
    let got = r(store, |tx| tx.observations_of(&[id]));
    assert_eq!(got.len(), 1, "one row per indicator and source");
    let o = &got[0].observation;
    assert_eq!((o.first_seen, o.last_seen, o.count), (t(500), t(3000), 3));
}

fn observations_merge_keeps_newer_fields(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let id = ids(store, &[domain("evil.example")])[0];
    let newer = ObservationRow {
        category: "malware".into(),
        confidence: None,
        tlp: "amber".into(),
        tags: vec!["emotet".into(), "loader".into()],
        valid_until: Some(t(9000)),
        reference: None,
        ..obs(id, src, 100, 5000)
    };
    w(store, |tx| {
        tx.observations_merge(&[obs(id, src, 100, 1000)])
    });
    w(store, |tx| {
        tx.observations_merge(std::slice::from_ref(&newer))
    });
    // An older report (a re-imported old file) adds to the count but does not win.
    w(store, |tx| tx.observations_merge(&[obs(id, src, 50, 2000)]));
    let o = r(store, |tx| tx.observations_of(&[id]))
        .remove(0)
        .observation;
    assert_eq!(
        o,
        ObservationRow {
            first_seen: t(50),
            count: 3,
            ..newer
        }
    );
}

fn observations_merge_repeats_in_one_slice(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let other = source(store, "openphish", 0.5, None);
    let id = ids(store, &[domain("evil.example")])[0];
    let later = ObservationRow {
        category: "malware".into(),
        ..obs(id, src, 300, 900)
    };
    w(store, |tx| {
        tx.observations_merge(&[
            obs(id, src, 200, 400),
            later.clone(),
            obs(id, other, 1, 2),
            obs(id, src, 100, 500),
        ])
    });
    let got = r(store, |tx| tx.observations_of(&[id]));
    assert_eq!(got.len(), 2);
    let o = &got
        .iter()
        .find(|o| o.source == "urlhaus")
        .must_some()
        .observation;
    assert_eq!((o.first_seen, o.last_seen, o.count), (t(100), t(900), 3));
    assert_eq!(o.category, "malware", "the report seen last wins");
}

fn observations_of_carry_source_trust_and_group(store: &mut Store) {
    let a = source(store, "urlhaus", 0.9, Some("abuse.ch"));
    let b = source(store, "partner-x", 0.6, None);
    let id = ids(
        store,
        &[
            domain("one.example"),
            domain("two.example"),
            domain("three.example"),
        ],
    );
    w(store, |tx| {
        tx.observations_merge(&[
            obs(id[0], b, 1, 2),
            obs(id[0], a, 1, 2),
            obs(id[1], a, 1, 2),
        ])
    });
    let got = r(store, |tx| tx.observations_of(&[id[1], id[0], id[2]]));
    let seen: Vec<(i64, &str, f64, Option<&str>)> = got
        .iter()
        .map(|o| {
            (
                o.observation.indicator_id,
                o.source.as_str(),
                o.trust,
                o.group.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (id[1], "urlhaus", 0.9, Some("abuse.ch")),
            (id[0], "urlhaus", 0.9, Some("abuse.ch")),
            (id[0], "partner-x", 0.6, None),
        ]
    );
}

fn observations_delete_and_indicators_of_source(store: &mut Store) {
    let a = source(store, "urlhaus", 0.9, None);
    let b = source(store, "openphish", 0.6, None);
    let id = ids(
        store,
        &[
            domain("one.example"),
            domain("two.example"),
            domain("three.example"),
        ],
    );
    w(store, |tx| {
        tx.observations_merge(&[
            obs(id[2], a, 1, 2),
            obs(id[0], a, 1, 2),
            obs(id[1], a, 1, 2),
            obs(id[0], b, 1, 2),
        ])
    });
    assert_eq!(r(store, |tx| tx.indicators_of_source(a)), id);
    let deleted = w(store, |tx| {
        tx.observations_delete(a, &[id[0], id[1], id[0], 999_999])
    });
    assert_eq!(deleted, 2);
    assert_eq!(r(store, |tx| tx.indicators_of_source(a)), [id[2]]);
    assert_eq!(
        r(store, |tx| tx.indicators_of_source(b)),
        [id[0]],
        "other sources keep theirs"
    );
}

fn published_indicator_ids_follow_decision_state(store: &mut Store) {
    let id = ids(
        store,
        &[
            domain("a.example"),
            domain("b.example"),
            domain("c.example"),
            domain("d.example"),
        ],
    );
    w(store, |tx| {
        tx.decisions_put(&[
            decision(id[3], STATE_PUBLISH),
            decision(id[0], STATE_URL_ONLY),
            decision(id[1], STATE_HOLD),
            decision(id[2], "address-only"),
        ])
    });
    assert_eq!(
        r(store, |tx| tx.published_indicator_ids()),
        [id[0], id[2], id[3]]
    );
    w(store, |tx| tx.decisions_put(&[decision(id[3], "delisted")]));
    assert_eq!(r(store, |tx| tx.published_indicator_ids()), [id[0], id[2]]);
}

// --- batches

fn batches_and_statuses(store: &mut Store) {
    let src = source(store, "partner-x", 0.6, None);
    let new = |status, origin: &str| NewBatch {
        source_id: src,
        origin: origin.into(),
        status,
        created_at: t(1000),
        note: String::new(),
    };
    let a = w(store, |tx| {
        tx.batch_create(&new(BatchStatus::Published, "feed.txt"))
    });
    let b = w(store, |tx| tx.batch_create(&new(BatchStatus::Held, "api")));
    assert!(b > a);
    w(store, |tx| {
        tx.batch_set_status(b, BatchStatus::Approved, "looked fine")
    });
    let (one, all, held, approved) = r(store, |tx| {
        Ok((
            tx.batch(b)?,
            tx.batches(None)?,
            tx.batches(Some(BatchStatus::Held))?,
            tx.batches(Some(BatchStatus::Approved))?,
        ))
    });
    let one = one.must_some();
    assert_eq!(
        (
            one.status,
            one.note.as_str(),
            one.origin.as_str(),
            one.created_at,
            one.held
        ),
        (BatchStatus::Approved, "looked fine", "api", t(1000), 0)
    );
    assert_eq!(all.iter().map(|b| b.id).collect::<Vec<_>>(), [a, b]);
    assert!(held.is_empty());
    assert_eq!(approved.iter().map(|b| b.id).collect::<Vec<_>>(), [b]);
    assert_eq!(r(store, |tx| tx.batch(b + 100)), None);
    let missing = store.write(|tx| tx.batch_set_status(b + 100, BatchStatus::Rejected, ""));
    assert!(
        matches!(missing, Err(StoreError::Invalid(_))),
        "{missing:?}"
    );
}

fn held_batches_insert_and_take(store: &mut Store) {
    let src = source(store, "partner-x", 0.6, None);
    let id = ids(store, &[domain("one.example"), domain("two.example")]);
    let batch = w(store, |tx| {
        tx.batch_create(&NewBatch {
            source_id: src,
            origin: "api".into(),
            status: BatchStatus::Held,
            created_at: t(1000),
            note: "blast radius: popular.example".into(),
        })
    });
    let rows = [
        obs(id[1], src, 1, 2),
        obs(id[0], src, 3, 4),
        obs(id[1], src, 5, 6),
    ];
    w(store, |tx| tx.held_insert(batch, &rows));
    let (held, evidence) = r(store, |tx| Ok((tx.batch(batch)?, tx.observations_of(&id)?)));
    assert_eq!(held.must_some().held, 3);
    assert!(evidence.is_empty(), "held observations are not evidence");
    assert_eq!(
        w(store, |tx| tx.held_take(batch)),
        rows,
        "all of them, in order"
    );
    assert!(
        w(store, |tx| tx.held_take(batch)).is_empty(),
        "taken means gone"
    );
    assert_eq!(r(store, |tx| tx.batch(batch)).must_some().held, 0);
}

// --- decisions

fn decisions_put_get_counts_in_state(store: &mut Store) {
    let id = ids(
        store,
        &[
            domain("a.example"),
            domain("b.example"),
            domain("c.example"),
        ],
    );
    w(store, |tx| {
        tx.decisions_put(&[
            decision(id[0], STATE_PUBLISH),
            decision(id[1], STATE_PUBLISH),
            decision(id[2], STATE_HOLD),
        ])
    });
    let changed = DecisionRow {
        score: 0.1,
        reasons: vec![],
        rules: vec![],
        feeds: vec![],
        ..decision(id[1], STATE_HOLD)
    };
    w(store, |tx| tx.decisions_put(std::slice::from_ref(&changed)));
    let (of, counts, published) = r(store, |tx| {
        Ok((
            tx.decisions_of(&[id[1], id[0], 999_999])?,
            tx.decision_counts()?,
            tx.decisions_in_state(STATE_PUBLISH)?,
        ))
    });
    assert_eq!(of, [changed, decision(id[0], STATE_PUBLISH)]);
    assert_eq!(counts, [("hold".to_owned(), 2), ("publish".to_owned(), 1)]);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0.value, "a.example");
    assert_eq!(published[0].1, decision(id[0], STATE_PUBLISH));
}

// --- feed rules and the journal

fn refcounts_appear_and_disappear(store: &mut Store) {
    let feed = "sd-block";
    let adjust = |store: &mut Store, d: i64| {
        w(store, |tx| {
            tx.feed_rules_adjust(feed, &[delta("evil.example", d)])
        })
    };
    let up = adjust(store, 1);
    assert_eq!(
        (triggers(&up.added), up.removed.len()),
        (vec!["evil.example"], 0),
        "0 → 1 appears"
    );
    assert!(adjust(store, 1).is_empty(), "1 → 2: no change");
    assert!(adjust(store, -1).is_empty(), "2 → 1: no change");
    assert_eq!(r(store, |tx| tx.feed_rule_count(feed)), 1);
    let down = adjust(store, -1);
    assert_eq!(
        (down.added.len(), triggers(&down.removed)),
        (0, vec!["evil.example"]),
        "1 → 0 disappears"
    );
    assert_eq!(r(store, |tx| tx.feed_rule_count(feed)), 0);
    assert!(r(store, |tx| tx.feed_rules(feed)).is_empty());
    assert_eq!(
        triggers(&adjust(store, 2).added),
        ["evil.example"],
        "0 → 2 appears again"
    );
}

fn refcounts_net_deltas_in_one_call(store: &mut Store) {
    let feed = "sd-block";
    w(store, |tx| {
        tx.feed_rules_adjust(feed, &[delta("keep.example", 1), delta("gone.example", 1)])
    });
    let changes = w(store, |tx| {
        tx.feed_rules_adjust(
            feed,
            &[
                delta("new.example", 1),
                delta("gone.example", -1),
                delta("keep.example", 1),
                delta("keep.example", -1),
                delta("b.example", 1),
                delta("new.example", 1),
                delta("flicker.example", 1),
                delta("flicker.example", -1),
            ],
        )
    });
    assert_eq!(triggers(&changes.added), ["new.example", "b.example"]);
    assert_eq!(triggers(&changes.removed), ["gone.example"]);
    let rules = r(store, |tx| tx.feed_rules(feed));
    assert_eq!(
        triggers(&rules),
        ["b.example", "keep.example", "new.example"],
        "sorted by trigger"
    );
    let other = w(store, |tx| {
        tx.feed_rules_adjust("sd-other", &[delta("new.example", 1)])
    });
    assert_eq!(
        triggers(&other.added),
        ["new.example"],
        "feeds count separately"
    );
    let down = w(store, |tx| {
        tx.feed_rules_adjust(feed, &[delta("new.example", -2)])
    });
    assert_eq!(triggers(&down.removed), ["new.example"]);
}

fn refcount_below_zero_fails_and_rolls_back(store: &mut Store) {
    let feed = "sd-block";
    w(store, |tx| {
        tx.feed_rules_adjust(feed, &[delta("a.example", 1)])
    });
    let result = store
        .write(|tx| tx.feed_rules_adjust(feed, &[delta("b.example", 1), delta("a.example", -2)]));
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(triggers(&r(store, |tx| tx.feed_rules(feed))), ["a.example"]);
}

fn journal_serials_grow_per_feed(store: &mut Store) {
    let (_, s1) = publish(store, "sd-block", &[delta("a.example", 1)], 100);
    let (_, s2) = publish(store, "sd-block", &[delta("b.example", 1)], 200);
    let (_, o1) = publish(store, "sd-other", &[delta("a.example", 1)], 250);
    let empty = w(store, |tx| {
        tx.journal_append("sd-block", &RuleChanges::default(), t(300), None)
    });
    assert_eq!((s1, s2, empty, o1), (1, 2, 3, 1));
    let (feeds, fresh) = r(store, |tx| {
        Ok((tx.feeds()?, tx.journal_since("sd-block", 0)?))
    });
    let serials: Vec<(&str, u32, Option<Timestamp>)> = feeds
        .iter()
        .map(|f| (f.name.as_str(), f.serial, f.updated_at))
        .collect();
    assert_eq!(
        serials,
        [("sd-block", 3, Some(t(300))), ("sd-other", 1, Some(t(250)))]
    );
    assert_eq!(
        fresh.iter().map(|e| e.serial).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let new = w(store, |tx| tx.feed_ensure("sd-new"));
    assert_eq!(
        (new.serial, new.updated_at),
        (0, None),
        "a new feed starts at serial 0"
    );
    assert_eq!(
        w(store, |tx| tx.feed_ensure("sd-block")).serial,
        3,
        "ensure keeps the serial"
    );
    r(store, |tx| tx.integrity_check());
}

fn journal_since_returns_changes_in_order(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let batch = w(store, |tx| {
        tx.batch_create(&NewBatch {
            source_id: src,
            origin: "feed.txt".into(),
            status: BatchStatus::Published,
            created_at: t(100),
            note: String::new(),
        })
    });
    let feed = "sd-block";
    publish(
        store,
        feed,
        &[
            delta("z.example", 1),
            delta("a.example", 1),
            delta("m.example", 1),
        ],
        100,
    );
    let (changes, serial) = w(store, |tx| {
        let changes = tx.feed_rules_adjust(
            feed,
            &[
                delta("a.example", -1),
                delta("n.example", 1),
                delta("z.example", -1),
            ],
        )?;
        let serial = tx.journal_append(feed, &changes, t(200), Some(batch))?;
        Ok((changes, serial))
    });
    assert_eq!(serial, 2);
    let all = r(store, |tx| tx.journal_since(feed, 0));
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].serial, all[0].at, all[0].batch_id),
        (1, t(100), None)
    );
    assert_eq!(
        triggers(&all[0].added),
        ["z.example", "a.example", "m.example"],
        "in the order given"
    );
    assert!(all[0].removed.is_empty());
    assert_eq!(
        (all[1].feed.as_str(), all[1].serial, all[1].batch_id),
        (feed, 2, Some(batch))
    );
    assert_eq!(
        (all[1].added.clone(), all[1].removed.clone()),
        (changes.added, changes.removed)
    );
    assert_eq!(triggers(&all[1].removed), ["a.example", "z.example"]);
    assert_eq!(r(store, |tx| tx.journal_since(feed, 1)), all[1..]);
    assert!(r(store, |tx| tx.journal_since(feed, 2)).is_empty());
    assert!(r(store, |tx| tx.journal_since("sd-none", 0)).is_empty());
}

fn rule_published_serial_is_the_last_appearance(store: &mut Store) {
    let feed = "sd-block";
    publish(store, feed, &[delta("a.example", 1)], 100);
    publish(
        store,
        feed,
        &[delta("b.example", 1), delta("a.example", 1)],
        200,
    );
    publish(store, feed, &[delta("a.example", -2)], 300);
    publish(store, feed, &[delta("a.example", 1)], 400);
    let got = r(store, |tx| {
        Ok((
            tx.rule_published_serial(feed, "a.example")?,
            tx.rule_published_serial(feed, "b.example")?,
            tx.rule_published_serial(feed, "c.example")?,
            tx.rule_published_serial("sd-other", "a.example")?,
        ))
    });
    assert_eq!(got, (Some(4), Some(2), None, None));
}

/// Adjusts several feeds at once and journals every feed that changed, the union
/// included, as the hub does; returns the changes.
fn publish_all(
    store: &mut Store,
    deltas: &[(&str, &[RuleDelta])],
    at: i64,
) -> std::collections::BTreeMap<String, RuleChanges> {
    let deltas: store::RuleDeltas = deltas
        .iter()
        .map(|(feed, d)| ((*feed).to_owned(), d.to_vec()))
        .collect();
    w(store, |tx| {
        let changes = tx.rules_adjust(&deltas)?;
        for (feed, c) in &changes {
            if !c.is_empty() {
                tx.journal_append(feed, c, t(at), None)?;
            }
        }
        Ok(changes)
    })
}

fn union_feed_has_every_rule_once(store: &mut Store) {
    let union = w(store, |tx| tx.feed_declare_union("sd-all"));
    assert_eq!(
        (union.name.as_str(), union.serial, union.union),
        ("sd-all", 0, true)
    );
    assert_eq!(
        w(store, |tx| tx.feed_declare_union("sd-all")),
        union,
        "idempotent"
    );
    let x = delta("x.example", 1);
    let y = delta("y.example", 1);
    let c = publish_all(
        store,
        &[
            ("sd-a", &[x.clone(), y.clone()]),
            ("sd-b", std::slice::from_ref(&x)),
        ],
        100,
    );
    assert_eq!(triggers(&c["sd-a"].added), ["x.example", "y.example"]);
    assert_eq!(triggers(&c["sd-b"].added), ["x.example"]);
    assert_eq!(
        triggers(&c["sd-all"].added),
        ["x.example", "y.example"],
        "once each"
    );
    let read = |store: &mut Store| {
        r(store, |tx| {
            Ok((
                triggers(&tx.feed_rules("sd-all")?)
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
                tx.feed_rule_count("sd-all")?,
                tx.rule_published_serial("sd-all", "x.example")?,
            ))
        })
    };
    assert_eq!(
        read(store),
        (
            vec!["x.example".to_owned(), "y.example".to_owned()],
            2,
            Some(1)
        )
    );
    // Leaving one feed while another has it: not a change of the union.
    let c = publish_all(store, &[("sd-a", &[delta("x.example", -1)])], 200);
    assert_eq!(triggers(&c["sd-a"].removed), ["x.example"]);
    assert!(c["sd-all"].is_empty(), "{c:?}");
    // Moving from one feed to the other in one call: not a change either, and it
    // keeps the serial at which it entered the union.
    let c = publish_all(
        store,
        &[
            ("sd-b", &[delta("x.example", -1)]),
            ("sd-a", std::slice::from_ref(&x)),
        ],
        300,
    );
    assert_eq!(triggers(&c["sd-a"].added), ["x.example"]);
    assert_eq!(triggers(&c["sd-b"].removed), ["x.example"]);
    assert!(c["sd-all"].is_empty(), "{c:?}");
    assert_eq!(read(store).2, Some(1));
    // A rule only the union carries, then also a feed: it enters once, and leaves
    // when the last of them lets go.
    let z = delta("z.example", 1);
    let c = publish_all(store, &[("sd-all", std::slice::from_ref(&z))], 400);
    assert_eq!(triggers(&c["sd-all"].added), ["z.example"]);
    let c = publish_all(store, &[("sd-a", std::slice::from_ref(&z))], 500);
    assert!(c["sd-all"].is_empty(), "{c:?}");
    let c = publish_all(store, &[("sd-all", &[delta("z.example", -1)])], 600);
    assert!(c["sd-all"].is_empty(), "{c:?}");
    assert_eq!(
        r(store, |tx| tx.rule_published_serial("sd-all", "z.example")),
        Some(2)
    );
    let c = publish_all(store, &[("sd-a", &[delta("z.example", -1)])], 700);
    assert_eq!(triggers(&c["sd-all"].removed), ["z.example"]);
    assert_eq!(
        r(store, |tx| tx.rule_published_serial("sd-all", "z.example")),
        None
    );
    // The union's journal is the exact history of its rule set.
    let journal = r(store, |tx| tx.journal_since("sd-all", 0));
    let entries: Vec<(u32, Vec<&str>, Vec<&str>)> = journal
        .iter()
        .map(|e| (e.serial, triggers(&e.added), triggers(&e.removed)))
        .collect();
    assert_eq!(
        entries,
        [
            (1, vec!["x.example", "y.example"], vec![]),
            (2, vec!["z.example"], vec![]),
            (3, vec![], vec!["z.example"]),
        ]
    );
    assert_eq!(
        read(store),
        (
            vec!["x.example".to_owned(), "y.example".to_owned()],
            2,
            Some(1)
        )
    );
    // One feed's adjustment cannot drop the union's changes on the floor.
    let lost = store.write(|tx| tx.feed_rules_adjust("sd-a", &[delta("w.example", 1)]));
    assert!(matches!(lost, Err(StoreError::Invalid(_))), "{lost:?}");
    let second = store.write(|tx| tx.feed_declare_union("sd-a"));
    assert!(matches!(second, Err(StoreError::Invalid(_))), "{second:?}");
    r(store, |tx| tx.integrity_check());
}

fn union_feed_is_declared_over_no_rules(store: &mut Store) {
    publish(store, "sd-block", &[delta("a.example", 1)], 100);
    let early = store.write(|tx| tx.feed_declare_union("sd-all"));
    assert!(matches!(early, Err(StoreError::Invalid(_))), "{early:?}");
    publish(store, "sd-block", &[delta("a.example", -1)], 200);
    let union = w(store, |tx| tx.feed_declare_union("sd-all"));
    assert!(union.union);
    let c = publish_all(store, &[("sd-block", &[delta("a.example", 1)])], 300);
    assert_eq!(triggers(&c["sd-all"].added), ["a.example"]);
    r(store, |tx| tx.integrity_check());
}

fn journal_keeps_order_across_chunks(store: &mut Store) {
    // Alternating actions and long runs: additions first, each in the order given.
    let rule = |i: usize| RuleText {
        trigger: format!("host-{i:05}-with-a-long-enough-name.example"),
        action: if i % 1000 < 500 {
            "nxdomain"
        } else {
            "passthru"
        }
        .into(),
    };
    let changes = RuleChanges {
        added: (0..6000).rev().map(rule).collect(),
        removed: (6000..9000).map(rule).collect(),
    };
    let serial = w(store, |tx| {
        tx.journal_append("sd-block", &changes, t(100), None)
    });
    let journal = r(store, |tx| tx.journal_since("sd-block", 0));
    assert_eq!(serial, 1);
    assert_eq!(
        (journal[0].added.clone(), journal[0].removed.clone()),
        (changes.added, changes.removed)
    );
    let bad = RuleChanges {
        added: vec![
            rule(1),
            RuleText {
                trigger: "a\nb.example".into(),
                action: "nxdomain".into(),
            },
        ],
        removed: vec![],
    };
    let refused = store.write(|tx| tx.journal_append("sd-block", &bad, t(200), None));
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
}

fn serials_continue_after_reopen(db: &mut Db) {
    publish(&mut db.store, "sd-block", &[delta("a.example", 1)], 100);
    publish(&mut db.store, "sd-block", &[delta("b.example", 1)], 200);
    db.reopen();
    assert_eq!(r(&mut db.store, |tx| tx.feeds())[0].serial, 2);
    let (_, serial) = publish(&mut db.store, "sd-block", &[delta("a.example", -1)], 300);
    assert_eq!(serial, 3, "never reused after a restart");
    let serials: Vec<u32> = r(&mut db.store, |tx| tx.journal_since("sd-block", 0))
        .iter()
        .map(|e| e.serial)
        .collect();
    assert_eq!(serials, [1, 2, 3]);
    r(&mut db.store, |tx| tx.integrity_check());
}

// --- allowlists and audit

fn allowlists_replace_add_all(store: &mut Store) {
    w(store, |tx| {
        tx.allow_replace_list(
            "tranco",
            &[
                allow("tranco", "google.com", Some(1)),
                allow("tranco", "gov.example", Some(5)),
            ],
        )
    });
    w(store, |tx| {
        tx.allow_add(&[
            allow("local", "intranet.example", None),
            allow("tranco", "google.com", Some(2)),
        ])
    });
    let all = r(store, |tx| tx.allow_all());
    assert_eq!(
        all,
        [
            allow("local", "intranet.example", None),
            allow("tranco", "google.com", Some(2)),
            allow("tranco", "gov.example", Some(5)),
        ]
    );
    w(store, |tx| {
        tx.allow_replace_list("tranco", &[allow("tranco", "new.example", Some(1))])
    });
    assert_eq!(
        r(store, |tx| tx.allow_all()),
        [
            allow("local", "intranet.example", None),
            allow("tranco", "new.example", Some(1))
        ],
        "replace touches only its own list"
    );
    let wrong =
        store.write(|tx| tx.allow_replace_list("tranco", &[allow("local", "x.example", None)]));
    assert!(matches!(wrong, Err(StoreError::Invalid(_))), "{wrong:?}");
    assert_eq!(
        r(store, |tx| tx.allow_all()).len(),
        2,
        "a failed replace changes nothing"
    );
}

fn audit_by_target(store: &mut Store) {
    let entry = |at, action: &str, target: &str| AuditEntry {
        at: t(at),
        who: "cli:root".into(),
        action: action.into(),
        target: target.into(),
        reason: "ticket 42".into(),
    };
    w(store, |tx| {
        tx.audit(&entry(100, "delist", "evil.example"))?;
        tx.audit(&entry(200, "approve", "batch:7"))?;
        tx.audit(&entry(300, "import", "evil.example"))
    });
    assert_eq!(
        r(store, |tx| tx.audit_for("evil.example")),
        [
            entry(100, "delist", "evil.example"),
            entry(300, "import", "evil.example")
        ]
    );
    assert!(r(store, |tx| tx.audit_for("nothing")).is_empty());
}

fn pull_state_put_replaces(store: &mut Store) {
    assert_eq!(r(store, |tx| tx.pull_state("urlhaus")), None);
    w(store, |tx| {
        tx.pull_state_put("urlhaus", r#"{"etag":"\"a\""}"#, t(100))?;
        tx.pull_state_put("openphish", "{}", t(100))?;
        tx.pull_state_put("urlhaus", r#"{"etag":"\"b\""}"#, t(200))
    });
    assert_eq!(
        r(store, |tx| tx.pull_state("urlhaus")).as_deref(),
        Some(r#"{"etag":"\"b\""}"#)
    );
    assert_eq!(
        r(store, |tx| tx.pull_states()),
        [
            ("openphish".to_owned(), "{}".to_owned()),
            ("urlhaus".to_owned(), r#"{"etag":"\"b\""}"#.to_owned())
        ]
    );
}

fn snapshot_batches_are_marked(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let batch = |tx: &mut dyn Tx| {
        tx.batch_create(&NewBatch {
            source_id: src,
            origin: "http://feed.example/list.txt".into(),
            status: BatchStatus::Held,
            created_at: t(100),
            note: String::new(),
        })
    };
    let (snap, plain) = w(store, |tx| {
        let snap = batch(tx)?;
        let plain = batch(tx)?;
        tx.batch_mark_snapshot(snap)?;
        tx.batch_mark_snapshot(snap)?;
        Ok((snap, plain))
    });
    assert!(r(store, |tx| tx.batch_is_snapshot(snap)));
    assert!(!r(store, |tx| tx.batch_is_snapshot(plain)));
    // Only a batch that exists can be marked.
    assert!(
        store
            .write(|tx| tx.batch_mark_snapshot(snap + 100))
            .is_err()
    );
}

// --- integrity, transactions

/// A store with some of everything.
fn populate(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let id = ids(store, &[domain("evil.example"), domain("bad.example")]);
    w(store, |tx| {
        tx.observations_merge(&[obs(id[0], src, 1, 2), obs(id[1], src, 1, 2)])?;
        tx.decisions_put(&[decision(id[0], STATE_PUBLISH)])
    });
    publish(
        store,
        "sd-block",
        &[delta("evil.example", 1), delta("bad.example", 1)],
        100,
    );
    publish(store, "sd-block", &[delta("bad.example", -1)], 200);
}

fn integrity_check_passes_on_a_good_store(store: &mut Store) {
    populate(store);
    r(store, |tx| tx.integrity_check());
}

fn integrity_check_fails_on_a_serial_behind_its_journal(db: &mut Db) {
    populate(&mut db.store);
    db.raw("UPDATE feeds SET serial = 1 WHERE name = 'sd-block'");
    match db.store.read(|tx| tx.integrity_check()) {
        Err(StoreError::Integrity(message)) => assert!(
            message.contains("feed sd-block: serial 1 but newest journal entry 2"),
            "{message}"
        ),
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

fn integrity_check_fails_on_a_rule_ahead_of_its_feed(db: &mut Db) {
    populate(&mut db.store);
    // Rules changed without the journal entry that publishes them.
    w(&mut db.store, |tx| {
        tx.feed_rules_adjust("sd-block", &[delta("sneaky.example", 1)])
    });
    match db.store.read(|tx| tx.integrity_check()) {
        Err(StoreError::Integrity(message)) => {
            assert!(
                message.contains("rule sneaky.example nxdomain added at serial 3"),
                "{message}"
            )
        }
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

fn integrity_check_fails_on_an_orphan(db: &mut Db) {
    populate(&mut db.store);
    // The raw SQLite connection does not enforce foreign keys; PostgreSQL has none
    // on this table (see the schema).
    db.raw(
        "INSERT INTO decisions (indicator_id, state, score, category, reasons, rules, feeds, decided_at)
         VALUES (999999, 'publish', 1, 'phishing', '[]', '[]', '[]', 0)",
    );
    match db.store.read(|tx| tx.integrity_check()) {
        Err(StoreError::Integrity(message)) => assert!(message.contains("decisions"), "{message}"),
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

fn integrity_check_fails_on_a_wrong_rule_count(db: &mut Db) {
    populate(&mut db.store);
    db.raw("UPDATE feeds SET rules = 5 WHERE name = 'sd-block'");
    match db.store.read(|tx| tx.integrity_check()) {
        Err(StoreError::Integrity(message)) => assert!(
            message.contains("feed sd-block: 5 rules counted but 1 stored"),
            "{message}"
        ),
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

fn references_to_missing_rows_are_rejected(store: &mut Store) {
    let src = source(store, "urlhaus", 0.9, None);
    let id = ids(store, &[domain("evil.example")])[0];
    let bad_indicator =
        store.write(|tx| tx.observations_merge(&[obs(id, src, 1, 2), obs(id + 1000, src, 1, 2)]));
    assert!(bad_indicator.is_err(), "{bad_indicator:?}");
    let bad_source = store.write(|tx| tx.observations_merge(&[obs(id, src + 1000, 1, 2)]));
    assert!(bad_source.is_err(), "{bad_source:?}");
    let bad_batch = store.write(|tx| tx.held_insert(12345, &[obs(id, src, 1, 2)]));
    assert!(bad_batch.is_err(), "{bad_batch:?}");
    let bad_decision = store.write(|tx| tx.decisions_put(&[decision(id + 1000, STATE_PUBLISH)]));
    assert!(bad_decision.is_err(), "{bad_decision:?}");
    let (evidence, decided) = r(store, |tx| {
        Ok((tx.observations_of(&[id])?, tx.decision_counts()?))
    });
    assert!(
        evidence.is_empty() && decided.is_empty(),
        "nothing written: {evidence:?} {decided:?}"
    );
    r(store, |tx| tx.integrity_check());
}

fn error_in_write_leaves_nothing_behind(store: &mut Store) {
    populate(store);
    let before = snapshot(store);
    let result: store::Result<()> = store.write(|tx| {
        let src = tx.source_upsert(&NewSource {
            name: "doomed".into(),
            kind: SourceKind::Feed,
            trust: 0.5,
            group: None,
        })?;
        let id = tx.indicator_ids(&[domain("doomed.example")])?;
        tx.observations_merge(&[obs(id[0], src.id, 1, 2)])?;
        let changes = tx.feed_rules_adjust("sd-block", &[delta("doomed.example", 1)])?;
        tx.journal_append("sd-block", &changes, t(999), None)?;
        tx.allow_add(&[allow("local", "doomed.example", None)])?;
        Err(StoreError::Invalid("changed my mind".into()))
    });
    assert!(
        matches!(result, Err(StoreError::Invalid(ref m)) if m == "changed my mind"),
        "{result:?}"
    );
    assert_eq!(snapshot(store), before);
    // The store is usable afterwards and the serial was not consumed.
    let (_, serial) = publish(store, "sd-block", &[delta("next.example", 1)], 300);
    assert_eq!(serial, 3);
}

/// Everything the rollback test compares, as text.
fn snapshot(store: &mut Store) -> String {
    r(store, |tx| {
        Ok(format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            tx.sources()?,
            tx.indicator_by_value("doomed.example")?,
            tx.feeds()?,
            tx.feed_rules("sd-block")?,
            tx.journal_since("sd-block", 0)?,
            tx.allow_all()?,
            tx.decision_counts()?,
        ))
    })
}

fn read_cannot_write(store: &mut Store) {
    let result = store.read(|tx| tx.feed_ensure("sd-block"));
    assert!(result.is_err(), "{result:?}");
    assert!(r(store, |tx| tx.feeds()).is_empty());
    // And the store still writes afterwards.
    assert_eq!(w(store, |tx| tx.feed_ensure("sd-block")).serial, 0);
}

/// More rows than one PostgreSQL bulk statement takes (20,000), through every bulk
/// operation, in one transaction.
fn bulk_operations_span_many_statements(store: &mut Store) {
    const N: usize = 25_000;
    let src = source(store, "bulk", 0.5, None);
    let keys: Vec<IndicatorKey> = (0..N).map(|i| domain(&format!("d{i}.example"))).collect();
    let (id, changes, serial) = w(store, |tx| {
        let id = tx.indicator_ids(&keys)?;
        let rows: Vec<ObservationRow> = id.iter().map(|&i| obs(i, src, 1, 2)).collect();
        tx.observations_merge(&rows)?;
        tx.decisions_put(
            &id.iter()
                .map(|&i| decision(i, STATE_PUBLISH))
                .collect::<Vec<_>>(),
        )?;
        let deltas: Vec<RuleDelta> = keys.iter().map(|k| delta(&k.value, 1)).collect();
        let changes = tx.feed_rules_adjust("sd-block", &deltas)?;
        let serial = tx.journal_append("sd-block", &changes, t(100), None)?;
        Ok((id, changes, serial))
    });
    assert_eq!(id.iter().collect::<HashSet<_>>().len(), N);
    assert_eq!((changes.added.len(), serial), (N, 1));
    assert_eq!(
        ids(store, &keys),
        id,
        "the same ids, in order, the second time"
    );
    let (journal, rules, decided, evidence) = r(store, |tx| {
        Ok((
            tx.journal_since("sd-block", 0)?,
            tx.feed_rule_count("sd-block")?,
            tx.published_indicator_ids()?.len(),
            tx.observations_of(&id)?.len(),
        ))
    });
    assert_eq!(journal[0].added, changes.added);
    assert_eq!((rules, decided, evidence), (N as u64, N, N));
    r(store, |tx| tx.integrity_check());
}

/// `Option::unwrap` that says what failed, for tests.
trait MustSome<T> {
    fn must_some(self) -> T;
}

impl<T> MustSome<T> for Option<T> {
    #[track_caller]
    fn must_some(self) -> T {
        match self {
            Some(v) => v,
            None => panic!("expected Some, got None"),
        }
    }
}
