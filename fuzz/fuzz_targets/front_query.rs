//! Fuzzes the filter's query handler: an arbitrary query, and an arbitrary message
//! taken as the upstream's answer to it, through the policy (every action of the
//! reference screen) and the cache. Nothing may panic, and every answer written
//! must be a well-framed message echoing the query's ID, within the UDP size.
//!
//! Input: two bytes of query length (big-endian), the query, then the upstream
//! answer.

#![no_main]

use std::sync::{Arc, OnceLock};

use dns::front::{Front, FrontConfig, LocalData, Policy, PolicySoa, PolicyZone, Redirect, fuzzing};
use filter::{Allowlist, ReferenceScreen, ZonePolicy, ZoneRules};

fn front() -> &'static Front {
    static FRONT: OnceLock<Front> = OnceLock::new();
    FRONT.get_or_init(|| {
        let soa = PolicySoa {
            ttl: 60,
            mname: "localhost".into(),
            rname: "root.localhost".into(),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 30,
        };
        let zone = Arc::new(PolicyZone::new("fuzz.rpz", soa).expect("zone"));
        let mut rules = ZoneRules::new(zone, &ZonePolicy::Given).expect("rules");
        let local = LocalData::new(&[
            ("A".into(), "10.1.2.3".into()),
            ("TXT".into(), "\"blocked\"".into()),
        ])
        .expect("local data");
        rules.add_qname("a", Policy::Nxdomain);
        rules.add_qname("*.b", Policy::Nodata);
        rules.add_qname("c", Policy::Drop);
        rules.add_qname("d", Policy::TcpOnly);
        rules.add_qname("e", Policy::Local(Arc::new(local)));
        rules.add_qname("f", Policy::Redirect(Arc::new(Redirect::new("a").expect("target"))));
        rules.add_qname("*.g", Policy::Redirect(Arc::new(Redirect::new("*.h").expect("target"))));
        rules.add_qname("p", Policy::Passthru);
        rules.add_response_ip("192.0.2.0/24".parse().expect("net"), Policy::Nxdomain);
        let allow = Allowlist::from_names(["ok.example"]).expect("allowlist");
        let screen = ReferenceScreen::new(vec![(rules, ZonePolicy::Given)], allow);
        let config = FrontConfig {
            cache_bytes: 1 << 20,
            ..FrontConfig::default()
        };
        Front::new(Arc::new(screen), config)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (query, upstream) = rest.split_at(len);
    for (tcp, answer) in fuzzing::drive(front(), query, upstream) {
        fuzzing::check_answer(query, &answer, tcp);
    }
});
