//! Decisions for hand-written cases: every guard rail and blast-radius shape, with the
//! reasons `explain` will show.

use analysis::{Config, Context, Entry, Evidence, Extent, Lists, Role, Sighting, decide};
use expect_test::{Expect, expect};
use indicator::{Category, Domain, Hint, Indicator, SuffixList, Timestamp};

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn sighting(source: &str, trust: f64) -> Sighting {
    Sighting {
        source: source.into(),
        trust,
        group: None,
        category: Category::Phishing,
        confidence: Some(90),
        last_seen: now(),
        valid_until: None,
    }
}

fn lists() -> Lists {
    let mut l = Lists::new();
    let mut add = |name: &str, list: &str, role, extent, rank| {
        let d = Domain::parse(name).unwrap_or_else(|e| panic!("{e}"));
        l.add_name(
            &d,
            Entry {
                list: list.into(),
                role,
                extent,
                rank,
            },
        );
    };
    add(
        "google.com",
        "tranco",
        Role::Popular,
        Extent::Subtree,
        Some(1),
    );
    add(
        "bit.ly",
        "url-shortener",
        Role::Shared,
        Extent::Subtree,
        None,
    );
    add(
        "duckdns.org",
        "dynamic-dns",
        Role::Shared,
        Extent::Subtree,
        None,
    );
    add(
        "nhs.uk",
        "protected",
        Role::Protected,
        Extent::Subtree,
        None,
    );
    add(
        "login.evil-but-allowed.example",
        "allow",
        Role::Allow,
        Extent::Exact,
        None,
    );
    l
}

#[track_caller]
fn check_with(value: &str, hint: Hint, evidence: &Evidence, was_published: bool, expect: Expect) {
    let lists = lists();
    let config = Config::default();
    let cx = Context {
        psl: SuffixList::builtin(),
        lists: &lists,
        config: &config,
    };
    let indicator = Indicator::parse(value, hint).unwrap_or_else(|e| panic!("{e}"));
    let d = decide(&indicator, evidence, &cx, was_published, now());
    let mut out = format!("{} {:.2}\n", d.outcome.as_str(), d.score.value);
    for r in d.outcome.rules() {
        out.push_str(&format!("  rule {r}\n"));
    }
    for r in &d.reasons {
        out.push_str(&format!("  {r}\n"));
    }
    expect.assert_eq(&out);
}

#[track_caller]
fn check(value: &str, expect: Expect) {
    check_with(
        value,
        Hint::Any,
        &Evidence {
            sightings: vec![sighting("feed", 0.8)],
            compromised: false,
        },
        false,
        expect,
    );
}

#[test]
fn registered_domain_gets_wildcard() {
    check(
        "evil-paypal-login.com",
        expect![[r#"
        publish 0.72
          rule evil-paypal-login.com nxdomain
          rule *.evil-paypal-login.com nxdomain
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
          whole-domain: evil-paypal-login.com is the registered domain itself: it and every name below it
    "#]],
    );
}

#[test]
fn host_gets_exact_rule() {
    check(
        "login.evil.co.uk",
        expect![[r#"
        publish 0.72
          rule login.evil.co.uk nxdomain
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
          exact-host: login.evil.co.uk is a host, not a registered domain: the exact host only
    "#]],
    );
}

#[test]
fn public_suffixes_never() {
    check(
        "github.io",
        expect![[r#"
        ignore 0.72
          public-suffix: github.io is a public suffix (Private section): blocking it would block every site registered under it
    "#]],
    );
    check(
        "co.uk",
        expect![[r#"
        ignore 0.72
          public-suffix: co.uk is a public suffix (Icann section): blocking it would block every site registered under it
    "#]],
    );
    check(
        "*.duckdns.org",
        expect![[r#"
        ignore 0.72
          public-suffix: duckdns.org is a public suffix (Private section): blocking it would block every site registered under it
    "#]],
    );
}

#[test]
fn allowlisted_and_protected_never() {
    check(
        "mail.google.com",
        expect![[r#"
        ignore 0.72
          popular: mail.google.com is on the popular list "tranco" entry google.com (rank 1)
    "#]],
    );
    check(
        "www.nhs.uk",
        expect![[r#"
        ignore 0.72
          protected: www.nhs.uk is on the protected list "protected" entry nhs.uk
    "#]],
    );
    check(
        "bit.ly",
        expect![[r#"
        ignore 0.72
          shared-infrastructure: bit.ly is on the shared list "url-shortener" entry bit.ly
    "#]],
    );
}

#[test]
fn wildcard_narrowed_by_allowlisted_name_below() {
    check(
        "evil-but-allowed.example",
        expect![[r#"
        publish 0.72
          rule evil-but-allowed.example nxdomain
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
          wildcard-narrowed: no wildcard: *.evil-but-allowed.example would block login.evil-but-allowed.example, which is on the allow list "allow" entry login.evil-but-allowed.example
    "#]],
    );
}

#[test]
fn urls_on_shared_hosts_stay_url_only() {
    check(
        "https://bit.ly/3xYz",
        expect![[r#"
        url-only 0.72
          shared-infrastructure: bit.ly is on the shared list "url-shortener" entry bit.ly
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
    "#]],
    );
    check(
        "http://www.undianshopee3535.blogspot.com/",
        expect![[r#"
        url-only 0.72
          private-suffix-tenant: www.undianshopee3535.blogspot.com is a tenant of blogspot.com (private suffix): the URL is blocked, not the host
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
    "#]],
    );
    check(
        "http://x.duckdns.org/login",
        expect![[r#"
        url-only 0.72
          shared-infrastructure: x.duckdns.org is shared infrastructure: shared list "dynamic-dns" entry duckdns.org
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
    "#]],
    );
    check(
        "https://docs.google.com/forms/d/e/x/viewform",
        expect![[r#"
        url-only 0.72
          popular: docs.google.com is on the popular list "tranco" entry google.com (rank 1)
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
    "#]],
    );
    check(
        "http://192.0.2.7/bins/arm7",
        expect![[r#"
        url-only 0.72
          ip-host: host is the address 192.0.2.7: no name to block
          score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
    "#]],
    );
}

#[test]
fn compromised_site_url_only() {
    check_with(
        "https://smallbakery.example/wp-content/x/login.php",
        Hint::Any,
        &Evidence {
            sightings: vec![sighting("feed", 0.8)],
            compromised: true,
        },
        false,
        expect![[r#"
            url-only 0.72
              compromised: smallbakery.example is a compromised legitimate site
              score: score 0.72 ≥ 0.50 (base 0.72 × decay 1.00)
        "#]],
    );
}

#[test]
fn url_on_dedicated_host_blocks_exact_host() {
    check(
        "https://allegro.pl-oferta981912111.sbs/login",
        expect![[r#"
        publish 0.72
          rule allegro.pl-oferta981912111.sbs nxdomain
          score: score 0.65 ≥ 0.50 (base 0.72 × decay 1.00)
          host-of-url: the reported URL's host allegro.pl-oferta981912111.sbs is blocked exactly (not its parent domain)
    "#]],
    );
}

#[test]
fn weak_evidence_is_not_published_and_hysteresis_keeps_it() {
    let weak = Evidence {
        sightings: vec![sighting("rumour", 0.45)],
        compromised: false,
    };
    check_with(
        "weak.example",
        Hint::Any,
        &weak,
        false,
        expect![[r#"
        ignore 0.41
          below-threshold: score 0.41 < 0.50
    "#]],
    );
    check_with(
        "weak.example",
        Hint::Any,
        &weak,
        true,
        expect![[r#"
        publish 0.41
          rule weak.example nxdomain
          rule *.weak.example nxdomain
          score: score 0.41 ≥ 0.30 (base 0.41 × decay 1.00)
          whole-domain: weak.example is the registered domain itself: it and every name below it
    "#]],
    );
}

#[test]
fn stale_evidence_expires() {
    let mut old = sighting("feed", 0.8);
    old.last_seen = "2026-05-01T00:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    check_with(
        "old-phish.example",
        Hint::Any,
        &Evidence {
            sightings: vec![old],
            compromised: false,
        },
        true,
        expect![[r#"
        ignore 0.00
          expired: evidence expired (31 days since last seen)
    "#]],
    );
}
