//! From a parsed RPZ zone file to the matcher's rules.
//!
//! `formats` reads zone text into records with the policy as written (owner names
//! relative to the origin, CNAME targets as text). This turns each record into a
//! [`ZoneTrigger`] and a [`Response`], and says what it could not use: NSDNAME and
//! NSIP rules (parsed, reported, not applied — the filter does not look at the
//! delegation path), owners that are not valid names, redirect targets that are not
//! names. `policy` depends on `formats`, not the reverse: formats stays the layer
//! of syntax, this crate the layer of meaning (the layout in DESIGN.md).

use formats::{Diagnostic, Parsed, Record, RpzAction, RpzPolicy, RpzTrigger};
use indicator::{Domain, Hint, Indicator};

use crate::{LocalRecord, Redirect, Response, RuleSet, RuleSetBuilder, Trigger, ZoneTrigger};

/// Why a record gives no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unused {
    /// The record carries no RPZ policy (it did not come from the RPZ reader).
    #[error("not an RPZ rule")]
    NotPolicy,
    /// A trigger the filter does not evaluate (NSDNAME, NSIP).
    #[error("{0} trigger not applied")]
    NotApplied(&'static str),
    /// The rule cannot be used as written.
    #[error("{0}")]
    Invalid(String),
}

/// One record's rule.
pub fn rule_from_record(record: &Record) -> Result<(ZoneTrigger, Response), Unused> {
    let policy = record
        .meta
        .as_ref()
        .and_then(|m| m.rpz.as_ref())
        .ok_or(Unused::NotPolicy)?;
    rule_from_policy(&record.value, record.hint, policy)
}

/// The rule of one owner's policy, as the RPZ reader states it ([`rule_from_record`]
/// without the record: what a streaming load gets from `rpz::parse_each`).
pub fn rule_from_policy(
    value: &str,
    hint: Hint,
    policy: &RpzPolicy,
) -> Result<(ZoneTrigger, Response), Unused> {
    let trigger = match &policy.trigger {
        RpzTrigger::Qname => match Indicator::parse(value, hint) {
            Ok(Indicator::Domain(d)) => ZoneTrigger::Qname(Trigger::Exact(d)),
            Ok(Indicator::Wildcard(d)) => ZoneTrigger::Qname(Trigger::Wildcard(d)),
            Ok(other) => {
                return Err(Unused::Invalid(format!(
                    "owner {value:?} reads as {} {other}, not a name",
                    other.kind().as_str()
                )));
            }
            Err(e) => {
                return Err(Unused::Invalid(format!(
                    "owner {value:?} is not a usable name: {e}"
                )));
            }
        },
        RpzTrigger::ResponseIp(net) => ZoneTrigger::ResponseIp(*net),
        RpzTrigger::ClientIp(net) => ZoneTrigger::ClientIp(*net),
        RpzTrigger::NsDname => return Err(Unused::NotApplied("rpz-nsdname")),
        RpzTrigger::NsIp(_) => return Err(Unused::NotApplied("rpz-nsip")),
    };
    let response = match &policy.action {
        RpzAction::Nxdomain => Response::Nxdomain,
        RpzAction::Nodata => Response::Nodata,
        RpzAction::Passthru => Response::Passthru,
        RpzAction::Drop => Response::Drop,
        RpzAction::TcpOnly => Response::TcpOnly,
        RpzAction::Redirect(target) => {
            let (prepend_qname, name) = match target.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, target.as_str()),
            };
            let target = Domain::parse(name).map_err(|e| {
                Unused::Invalid(format!("CNAME target {target:?} is not a name: {e}"))
            })?;
            Response::Redirect(Redirect {
                target,
                prepend_qname,
            })
        }
        RpzAction::LocalData(rrs) => Response::LocalData(
            rrs.iter()
                .map(|(rtype, rdata)| LocalRecord::new(rtype, rdata))
                .collect(),
        ),
    };
    Ok((trigger, response))
}

/// A zone's rules and what of the zone was not used.
#[derive(Debug)]
pub struct LoadedZone {
    pub rules: RuleSet,
    /// NSDNAME and NSIP rules: read, not applied.
    pub not_applied: Vec<Diagnostic>,
    /// Rules that could not be used (bad owner, bad CNAME target).
    pub invalid: Vec<Diagnostic>,
}

/// Builds a zone's rule set from its parsed records. The reader's own diagnostics
/// (lines it could not read at all) stay in `parsed`.
pub fn load_rpz(parsed: &Parsed) -> LoadedZone {
    let mut builder = RuleSetBuilder::with_capacity(parsed.records.len());
    let mut not_applied = Vec::new();
    let mut invalid = Vec::new();
    for record in &parsed.records {
        match rule_from_record(record) {
            Ok((trigger, response)) => {
                builder.insert(trigger, response);
            }
            Err(Unused::NotPolicy) => {}
            Err(e @ Unused::NotApplied(_)) => {
                not_applied.push(Diagnostic::new(
                    record.at.clone(),
                    format!("{} {e}", record.value),
                ));
            }
            Err(e @ Unused::Invalid(_)) => {
                invalid.push(Diagnostic::new(record.at.clone(), e.to_string()));
            }
        }
    }
    LoadedZone {
        rules: builder.build(),
        not_applied,
        invalid,
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::QueryName;

    #[test]
    fn every_trigger_and_action() {
        let zone = "$ORIGIN rpz.example.\n\
            @ SOA ns. hostmaster. 1 2 3 4 5\n\
            @ NS ns.\n\
            a.example CNAME .\n\
            *.a.example CNAME *.\n\
            b.example CNAME rpz-passthru.\n\
            c.example CNAME rpz-drop.\n\
            d.example CNAME rpz-tcp-only.\n\
            e.example CNAME walled.garden.example.\n\
            f.example CNAME *.walled.garden.example.\n\
            g.example A 192.0.2.1\n\
            g.example TXT \"blocked\"\n\
            h.example CNAME h.example.\n\
            24.0.2.0.192.rpz-ip CNAME .\n\
            32.1.2.0.192.rpz-client-ip CNAME rpz-drop.\n\
            ns.bad.example.rpz-nsdname CNAME .\n\
            32.53.2.0.192.rpz-nsip CNAME .\n\
            bad_.-x.example CNAME .\n\
            i.example CNAME not_a-.name-.\n";
        let parsed = formats::readers::rpz::parse(zone).unwrap_or_else(|e| panic!("{e}"));
        let loaded = load_rpz(&parsed);
        let mut rules: Vec<String> = loaded
            .rules
            .rules()
            .map(|(t, r)| format!("{t} {r}"))
            .collect();
        rules.sort();
        let mut out = rules.join("\n");
        for d in &loaded.not_applied {
            out.push_str(&format!("\nnot applied {d}"));
        }
        for d in &loaded.invalid {
            out.push_str(&format!("\ninvalid {d}"));
        }
        expect![[r#"
            *.a.example nodata
            a.example nxdomain
            b.example passthru
            c.example drop
            d.example tcp-only
            e.example cname walled.garden.example
            f.example cname *.walled.garden.example
            g.example local [A 192.0.2.1] [TXT "blocked"]
            h.example passthru
            rpz-client-ip 192.0.2.1/32 drop
            rpz-ip 192.0.2.0/24 nxdomain
            not applied line 16: ns.bad.example rpz-nsdname trigger not applied
            not applied line 17: 192.0.2.53/32 rpz-nsip trigger not applied
            invalid line 18: owner "bad_.-x.example" is not a usable name: invalid-domain: "bad_.-x.example": label starts or ends with a hyphen
            invalid line 19: CNAME target "not_a-.name-" is not a name: label starts or ends with a hyphen"#]]
        .assert_eq(&out);
        let q = QueryName::from_text(b"x.a.example").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.rules.lookup_qname(&q).map(|m| m.response),
            Some(&Response::Nodata)
        );
    }

    fn real(path: &str) -> LoadedZone {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data")
            .join(path);
        let text =
            std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
        let parsed = formats::readers::rpz::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        load_rpz(&parsed)
    }

    /// Every rule answers its own trigger: an exact name itself, a wildcard a name
    /// one label below it.
    fn every_rule_matches_itself(rules: &RuleSet) {
        for (trigger, response) in rules.rules() {
            let ZoneTrigger::Qname(t) = &trigger else {
                continue;
            };
            let name = match t {
                Trigger::Exact(d) => d.to_string(),
                Trigger::Wildcard(d) => format!("zz-below.{d}"),
            };
            let q = QueryName::from_text(name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let m = rules.lookup_qname(&q);
            assert_eq!(m.map(|m| m.response), Some(&response), "{trigger}");
        }
    }

    /// `feeds/rpz-misc/ubuntu-rpz_db.rpz`: 310 distinct owners, 154 of them wildcards,
    /// all `CNAME .` (see `crates/formats/tests/rpz_zone.rs` for how those were counted).
    #[test]
    fn ubuntu_rpz_zone() {
        let loaded = real("feeds/rpz-misc/ubuntu-rpz_db.rpz");
        assert_eq!(loaded.rules.len(), 310);
        assert_eq!((loaded.not_applied.len(), loaded.invalid.len()), (0, 0));
        let wildcards = loaded
            .rules
            .rules()
            .filter(|(t, _)| matches!(t, ZoneTrigger::Qname(Trigger::Wildcard(_))))
            .count();
        assert_eq!(wildcards, 154);
        every_rule_matches_itself(&loaded.rules);
        let q = QueryName::from_text(b"www.tiktok.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.rules.lookup_qname(&q).map(|m| (m.name, m.wildcard)),
            Some(("tiktok.com", true))
        );
    }

    /// `feeds/urlhaus-filter/urlhaus-filter-rpz.conf`: 2689 distinct `name CNAME .`.
    #[test]
    fn urlhaus_filter_rpz_zone() {
        let loaded = real("feeds/urlhaus-filter/urlhaus-filter-rpz.conf");
        assert_eq!(loaded.rules.len(), 2689);
        assert_eq!((loaded.not_applied.len(), loaded.invalid.len()), (0, 0));
        assert!(loaded.rules.rules().all(|(_, r)| r == Response::Nxdomain));
        every_rule_matches_itself(&loaded.rules);
    }
}
