//! Receiving NOTIFY (RFC 1996): the primary's "the zone changed, come and get it".
//!
//! The filter's DNS front receives every message on its port; the ones with opcode
//! NOTIFY it hands to [`NotifyAcceptor::handle`], which decides and builds the
//! answer. A NOTIFY is accepted only for a zone we follow, only from that zone's
//! primary address, and — when the zone has a TSIG key — only signed with that key;
//! the acknowledgement is then signed the same way. An accepted NOTIFY only says
//! "refresh now": what changed is learnt by the usual SOA query and transfer, so a
//! forged one can at worst cause a transfer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use domain::base::iana::{Opcode, Rcode, TsigRcode};
use domain::base::{Message, Rtype, ToName};
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, Key, KeyName, ServerTransaction};

use super::SecondaryZone;
use super::parse::{parse_soa, relative_owner};
use crate::wire::{self, Dname, parse_name};

/// What to do with one NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyOutcome {
    /// The answer to send back (the acknowledgement or an error); `None`: send
    /// nothing (not a NOTIFY request at all).
    pub reply: Option<Vec<u8>>,
    /// The zone to refresh now, as its index in the list the acceptor was built
    /// from; `None` when refused.
    pub zone: Option<usize>,
    /// The serial the NOTIFY announced, when it carried the SOA (a hint only).
    pub serial: Option<u32>,
    /// Why it was refused, for the log.
    pub refused: Option<String>,
}

impl NotifyOutcome {
    fn refused(reply: Option<Vec<u8>>, why: String) -> NotifyOutcome {
        NotifyOutcome {
            reply,
            zone: None,
            serial: None,
            refused: Some(why),
        }
    }
}

#[derive(Debug)]
struct Followed {
    apex: Dname,
    primary: IpAddr,
    key: Option<KeyName>,
}

/// Validates NOTIFY messages for the zones we follow.
#[derive(Debug)]
pub struct NotifyAcceptor {
    zones: Vec<Followed>,
    keys: HashMap<(KeyName, Algorithm), Arc<Key>>,
}

impl NotifyAcceptor {
    /// An acceptor for `zones`; indexes in [`NotifyOutcome::zone`] refer to this
    /// list.
    pub fn new(zones: &[SecondaryZone]) -> Result<NotifyAcceptor, String> {
        let mut keys = HashMap::new();
        let mut followed = Vec::with_capacity(zones.len());
        for z in zones {
            let key = match &z.tsig {
                Some(t) => {
                    let key = crate::server::make_key(t)?;
                    let name = key.name().clone();
                    keys.insert((name.clone(), key.algorithm()), Arc::new(key));
                    Some(name)
                }
                None => None,
            };
            followed.push(Followed {
                apex: parse_name(&z.apex)?,
                primary: z.primary.ip().to_canonical(),
                key,
            });
        }
        Ok(NotifyAcceptor {
            zones: followed,
            keys,
        })
    }

    /// Decides on one message received from `src`.
    pub fn handle(&self, bytes: &[u8], src: SocketAddr) -> NotifyOutcome {
        let Ok(mut msg) = Message::from_octets(bytes.to_vec()) else {
            return NotifyOutcome::refused(None, "not a DNS message".into());
        };
        if msg.header().qr() || msg.header().opcode() != Opcode::NOTIFY {
            return NotifyOutcome::refused(None, "not a NOTIFY request".into());
        }
        let original = msg.clone();
        let tsig = match ServerTransaction::request(&self.keys, &mut msg, Time48::now()) {
            Ok(t) => t,
            Err(e) => {
                let error = e.error();
                // As in the server: `domain` reports a MAC that does not verify as
                // FORMERR; RFC 8945 §5.2.2 says BADSIG.
                let reply = if error == TsigRcode::FORMERR {
                    wire::tsig_error(&original, TsigRcode::BADSIG)
                } else {
                    e.build_message(&original, wire::builder())
                        .ok()
                        .map(|b| b.finish().into_target())
                };
                return NotifyOutcome::refused(reply, format!("tsig: {error}"));
            }
        };
        let answer = |rcode: Rcode, tsig: Option<ServerTransaction<Arc<Key>>>| {
            let mut b = wire::builder().start_answer(&msg, rcode).ok()?;
            b.header_mut().set_aa(rcode == Rcode::NOERROR);
            let mut add = b.additional();
            if let Some(t) = tsig {
                t.answer(&mut add, Time48::now()).ok()?;
            }
            Some(add.finish().into_target())
        };
        let Ok(question) = msg.sole_question() else {
            return NotifyOutcome::refused(
                answer(Rcode::FORMERR, tsig),
                "not exactly one question".into(),
            );
        };
        let qname: Dname = question.qname().to_name();
        let Some((index, zone)) = self.zones.iter().enumerate().find(|(_, z)| z.apex == qname)
        else {
            return NotifyOutcome::refused(
                answer(Rcode::NOTAUTH, tsig),
                format!("{qname}: not a zone we follow"),
            );
        };
        if question.qtype() != Rtype::SOA {
            return NotifyOutcome::refused(
                answer(Rcode::FORMERR, tsig),
                format!("{qname}: NOTIFY for type {}", question.qtype()),
            );
        }
        if src.ip().to_canonical() != zone.primary {
            return NotifyOutcome::refused(
                answer(Rcode::REFUSED, tsig),
                format!(
                    "{qname}: from {src}, not the zone's primary {}",
                    zone.primary
                ),
            );
        }
        if let Some(key) = &zone.key {
            let signed_by = tsig.as_ref().map(|t| t.key().name());
            if signed_by != Some(key) {
                return NotifyOutcome::refused(
                    answer(Rcode::REFUSED, tsig),
                    format!("{qname}: not signed with the zone's key {key}"),
                );
            }
        }
        let serial = msg.answer().ok().and_then(|section| {
            section.flatten().find_map(|rr| {
                let at_apex = relative_owner(&rr.owner(), &zone.apex).as_deref() == Some("@");
                (rr.rtype() == Rtype::SOA && at_apex)
                    .then(|| parse_soa(&rr).ok().map(|s| s.serial))
                    .flatten()
            })
        });
        NotifyOutcome {
            reply: answer(Rcode::NOERROR, tsig),
            zone: Some(index),
            serial,
            refused: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::base::iana::Class;
    use domain::tsig::ClientTransaction;

    use super::*;
    use crate::{KeyAlgorithm, Secret, TsigConfig};

    const SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
    const PRIMARY: &str = "127.0.0.7:53";

    fn tsig(name: &str, secret: &str) -> TsigConfig {
        TsigConfig {
            name: name.into(),
            algorithm: KeyAlgorithm::HmacSha256,
            secret: Secret::new(secret),
        }
    }

    fn acceptor() -> NotifyAcceptor {
        let primary: SocketAddr = PRIMARY.parse().unwrap_or_else(|e| panic!("{e}"));
        NotifyAcceptor::new(&[
            SecondaryZone {
                apex: "open.rpz".into(),
                primary,
                tsig: None,
            },
            SecondaryZone {
                apex: "signed.rpz".into(),
                primary,
                tsig: Some(tsig("k", SECRET)),
            },
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A NOTIFY for `zone` announcing `serial`, signed with `key` if given.
    fn notify(
        zone: &str,
        key: Option<TsigConfig>,
    ) -> (Vec<u8>, Option<ClientTransaction<Arc<Key>>>) {
        let apex = parse_name(zone).unwrap_or_else(|e| panic!("{e}"));
        let mut b = wire::builder();
        b.header_mut().set_id(99);
        b.header_mut().set_opcode(Opcode::NOTIFY);
        b.header_mut().set_aa(true);
        let mut q = b.question();
        q.push((&apex, Rtype::SOA, Class::IN))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut a = q.answer();
        let root = parse_name(".").unwrap_or_else(|e| panic!("{e}"));
        a.push((
            &apex,
            Class::IN,
            60,
            domain::rdata::Soa::new(
                root.clone(),
                root,
                domain::base::Serial(42),
                domain::base::Ttl::from_secs(1),
                domain::base::Ttl::from_secs(1),
                domain::base::Ttl::from_secs(1),
                domain::base::Ttl::from_secs(1),
            ),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut add = a.additional();
        let tran = key.map(|k| {
            let key = Arc::new(crate::server::make_key(&k).unwrap_or_else(|e| panic!("{e}")));
            ClientTransaction::request(key, &mut add, Time48::now())
                .unwrap_or_else(|e| panic!("{e}"))
        });
        (add.finish().into_target(), tran)
    }

    fn rcode(reply: &Option<Vec<u8>>) -> String {
        match reply {
            Some(bytes) => Message::from_octets(bytes.clone())
                .map(|m| m.header().rcode().to_string())
                .unwrap_or_else(|_| "garbage".into()),
            None => "no reply".into(),
        }
    }

    #[test]
    fn accepted_from_the_primary_and_acknowledged() {
        let a = acceptor();
        let from: SocketAddr = "127.0.0.7:40000".parse().unwrap_or_else(|e| panic!("{e}"));
        let (bytes, _) = notify("open.rpz", None);
        let out = a.handle(&bytes, from);
        assert_eq!(
            (out.zone, out.serial, &out.refused),
            (Some(0), Some(42), &None)
        );
        let reply = Message::from_octets(out.reply.clone().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let h = reply.header();
        assert!(h.qr() && h.aa());
        assert_eq!(
            (h.id(), h.opcode(), h.rcode()),
            (99, Opcode::NOTIFY, Rcode::NOERROR)
        );

        // Signed with the zone's key: accepted, and the ACK verifies.
        let (bytes, tran) = notify("signed.rpz", Some(tsig("k", SECRET)));
        let out = a.handle(&bytes, from);
        assert_eq!(out.zone, Some(1), "{:?}", out.refused);
        let mut reply =
            Message::from_octets(out.reply.unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        tran.unwrap_or_else(|| panic!("signed"))
            .answer(&mut reply, Time48::now())
            .unwrap_or_else(|e| panic!("ack does not verify: {e}"));
    }

    #[test]
    fn refused_otherwise() {
        let a = acceptor();
        let from: SocketAddr = "127.0.0.7:40000".parse().unwrap_or_else(|e| panic!("{e}"));
        let stranger: SocketAddr = "127.0.0.8:40000".parse().unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            (
                notify("open.rpz", None).0,
                stranger,
                "REFUSED",
                "not the zone's primary",
            ),
            (
                notify("other.rpz", None).0,
                from,
                "NOTAUTH",
                "not a zone we follow",
            ),
            (notify("signed.rpz", None).0, from, "REFUSED", "not signed"),
            (
                notify(
                    "signed.rpz",
                    Some(tsig("k", "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=")),
                )
                .0,
                from,
                "NOTAUTH",
                "tsig",
            ),
            (
                notify("signed.rpz", Some(tsig("stranger", SECRET))).0,
                from,
                "NOTAUTH",
                "tsig",
            ),
        ];
        for (bytes, src, expected, why) in cases {
            let out = a.handle(&bytes, src);
            assert_eq!(out.zone, None);
            assert_eq!(rcode(&out.reply), expected, "{why}");
            let refused = out.refused.unwrap_or_default();
            assert!(refused.contains(why), "{refused}");
        }
        // Not a NOTIFY at all: no reply.
        let out = a.handle(b"\x00\x01garbage", from);
        assert_eq!((out.reply, out.zone), (None, None));
    }
}
