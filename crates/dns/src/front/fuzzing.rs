//! Entry points for the fuzz targets (`fuzz/fuzz_targets/front_query.rs`): the
//! query path driven with arbitrary queries and arbitrary upstream answers, no
//! network. Not part of the API.

use std::net::IpAddr;
use std::time::Instant;

use super::cache::{Entry, Key};
use super::message::{self, HEADER_LEN};
use super::{Fetched, Front, Outcome, Report, Step};

/// Answers `query` from the cache or the policy (UDP and TCP), then, if it needs an
/// upstream, with `upstream` taken as the upstream's answer for it (and for a
/// redirect target). Returns the answers written with whether they went over TCP,
/// for [`check_answer`].
pub fn drive(front: &Front, query: &[u8], upstream: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let client: IpAddr = [192, 0, 2, 1].into();
    let mut answers = Vec::new();
    for tcp in [false, true] {
        let mut out = Vec::new();
        match front.answer_now(query, client, tcp, &mut out) {
            Outcome::Reply => answers.push((tcp, out)),
            Outcome::Drop => {}
            Outcome::Upstream => {
                let mut fetched = Fetched::default();
                for _ in 0..3 {
                    let step = front.respond(
                        query,
                        client,
                        tcp,
                        Instant::now(),
                        &fetched,
                        &mut Report::default(),
                        &mut out,
                    );
                    let (key, main) = match step {
                        Step::Done(Outcome::Reply) => {
                            answers.push((tcp, out.clone()));
                            break;
                        }
                        Step::Done(_) => break,
                        Step::Main(key) => (key, true),
                        Step::Target(key) => (key, false),
                    };
                    let Some(entry) = upstream_entry(&key, upstream) else {
                        break;
                    };
                    let entry = front.inner.cache.insert(&key, entry);
                    if main {
                        fetched.main = Some(entry);
                    } else {
                        fetched.target = Some(entry);
                    }
                }
            }
        }
    }
    answers
}

/// `upstream` read as the answer to `key` (its own ID taken as the one sent).
fn upstream_entry(key: &Key, upstream: &[u8]) -> Option<Entry> {
    let id = u16::from_be_bytes([*upstream.first()?, *upstream.get(1)?]);
    let answer = message::parse_answer(upstream, id, key.qname(), key.qtype()).ok()?;
    Some(Entry::new(key, answer, Instant::now()))
}

/// Checks what the front wrote for `query`: a well-framed message answering the
/// same question, and no larger than the client can take over UDP.
pub fn check_answer(query: &[u8], answer: &[u8], tcp: bool) {
    assert!(answer.len() >= HEADER_LEN, "answer shorter than a header");
    assert_eq!(answer.get(..2), query.get(..2), "answer ID differs");
    assert!(answer.get(2).is_some_and(|f| f & 0x80 != 0), "QR not set");
    if !tcp {
        assert!(
            answer.len() <= usize::from(super::UDP_PAYLOAD),
            "UDP answer over the payload size"
        );
    }
    let msg = domain::base::Message::from_octets(answer).unwrap_or_else(|e| panic!("{e}"));
    let mut section = msg.question();
    for q in &mut section {
        q.unwrap_or_else(|e| panic!("question: {e}"));
    }
    let mut section = section.answer().unwrap_or_else(|e| panic!("{e}"));
    loop {
        for rr in &mut section {
            rr.unwrap_or_else(|e| panic!("record: {e}"));
        }
        match section.next_section() {
            Ok(Some(next)) => section = next,
            Ok(None) => break,
            Err(e) => panic!("section: {e}"),
        }
    }
}
