//! Policy zones from files: an RPZ zone file read with `formats`' RPZ reader and
//! turned into the reference policy's rules.
//!
//! The zone's name and SOA come from the file (SOA owner or `$ORIGIN`) unless the
//! operator names the zone; the SOA is what rewritten answers carry in their
//! additional section. Lines the reader cannot use are diagnostics naming the file
//! and line, logged at load; a file that is not a zone at all is an error and
//! nothing of it is loaded.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use dns::front::{LocalData, Policy, PolicySoa, PolicyZone, Redirect};
use formats::readers::rpz;
use formats::{RpzAction, RpzTrigger};

use crate::reference::{ZonePolicy, ZoneRules};

/// One zone file to load, in the configured order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFile {
    pub path: PathBuf,
    /// The zone's name when the file does not say (or to override it).
    pub name: Option<String>,
    pub policy: ZonePolicy,
}

impl ZoneFile {
    /// Reads a command-line spec: `FILE[,name=NAME][,policy=POLICY]`.
    pub fn parse_spec(spec: &str) -> Result<ZoneFile, String> {
        let mut parts = spec.split(',');
        let path = parts
            .next()
            .filter(|p| !p.is_empty())
            .ok_or("empty zone file spec")?;
        let mut zone = ZoneFile {
            path: PathBuf::from(path),
            name: None,
            policy: ZonePolicy::Given,
        };
        for part in parts {
            match part.split_once('=') {
                Some(("name", n)) if !n.is_empty() => zone.name = Some(n.to_owned()),
                Some(("policy", p)) => {
                    zone.policy = ZonePolicy::parse(p)
                        .ok_or_else(|| format!("zone file {path}: unknown policy {p:?}"))?;
                }
                _ => {
                    return Err(format!(
                        "zone file {path}: unknown option {part:?} (name=NAME, policy=POLICY)"
                    ));
                }
            }
        }
        Ok(zone)
    }
}

/// A zone file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

/// A loaded zone and what could not be used of it.
#[derive(Debug)]
pub struct Loaded {
    pub rules: ZoneRules,
    /// `line N: message`, one per unusable line or rule.
    pub diagnostics: Vec<String>,
}

/// What a load logs: the zone, its size, what could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub zone: String,
    pub rules: usize,
    pub not_applied: usize,
    pub diagnostics: Vec<String>,
}

impl LoadReport {
    pub fn of(loaded: &Loaded) -> LoadReport {
        LoadReport {
            zone: loaded.rules.name().to_owned(),
            rules: loaded.rules.len(),
            not_applied: loaded.rules.not_applied,
            diagnostics: loaded.diagnostics.clone(),
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zone {} ({} rules", self.zone, self.rules)?;
        if self.not_applied > 0 {
            write!(f, ", {} nsdname/nsip rules not applied", self.not_applied)?;
        }
        write!(f, ", {} diagnostics)", self.diagnostics.len())
    }
}

/// The SOA used when a file has none (plain `name CNAME .` lists).
fn default_soa() -> PolicySoa {
    PolicySoa {
        ttl: 60,
        mname: "localhost".into(),
        rname: "root.localhost".into(),
        serial: 0,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: 60,
    }
}

/// The policy zone a zone file states: its name (`name=` or the file's apex) and SOA
/// (the file's, or a default when it has none).
pub(crate) fn policy_zone(spec: &ZoneFile, head: rpz::ZoneHead) -> Result<PolicyZone, String> {
    let name = spec.name.clone().or(head.apex).ok_or_else(|| {
        "the file does not name its zone (no absolute SOA owner or $ORIGIN): give name=NAME"
            .to_owned()
    })?;
    let soa = head.soa.map_or_else(default_soa, |s| PolicySoa {
        ttl: s.ttl,
        mname: s.mname,
        rname: s.rname,
        serial: s.serial,
        refresh: s.refresh,
        retry: s.retry,
        expire: s.expire,
        minimum: s.minimum,
    });
    PolicyZone::new(&name, soa)
}

/// Loads one zone file.
pub fn load(spec: &ZoneFile) -> Result<Loaded, LoadError> {
    let err = |message: String| LoadError {
        path: spec.path.clone(),
        message,
    };
    let bytes = std::fs::read(&spec.path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = formats::decode(&bytes).map_err(|e| err(e.to_string()))?;
    let parsed = rpz::parse(&text).map_err(|e| err(e.to_string()))?;
    let head = rpz::head(&text);
    let zone = policy_zone(spec, head).map_err(err)?;
    let mut rules = ZoneRules::new(Arc::new(zone), &spec.policy).map_err(err)?;
    let mut diagnostics: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    for record in &parsed.records {
        let Some(p) = record.meta.as_ref().and_then(|m| m.rpz.as_ref()) else {
            continue;
        };
        let action = match &p.action {
            RpzAction::Nxdomain => Ok(Policy::Nxdomain),
            RpzAction::Nodata => Ok(Policy::Nodata),
            RpzAction::Passthru => Ok(Policy::Passthru),
            RpzAction::Drop => Ok(Policy::Drop),
            RpzAction::TcpOnly => Ok(Policy::TcpOnly),
            RpzAction::Redirect(t) => Redirect::new(t).map(|r| Policy::Redirect(Arc::new(r))),
            RpzAction::LocalData(rrs) => LocalData::new(rrs).map(|l| Policy::Local(Arc::new(l))),
        };
        let action = match action {
            Ok(a) => a,
            Err(e) => {
                diagnostics.push(format!("{}: {} not loaded: {e}", record.at, record.value));
                continue;
            }
        };
        match &p.trigger {
            RpzTrigger::Qname => rules.add_qname(&record.value, action),
            RpzTrigger::ResponseIp(net) => rules.add_response_ip(*net, action),
            RpzTrigger::ClientIp(net) => rules.add_client_ip(*net, action),
            RpzTrigger::NsDname | RpzTrigger::NsIp(_) => rules.not_applied += 1,
        }
    }
    Ok(Loaded { rules, diagnostics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let z = ZoneFile::parse_spec("a.rpz,name=feed.rpz,policy=log-only")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(z.path, PathBuf::from("a.rpz"));
        assert_eq!(z.name.as_deref(), Some("feed.rpz"));
        assert_eq!(z.policy, ZonePolicy::LogOnly);
        assert_eq!(
            ZoneFile::parse_spec("a.rpz,policy=cname:garden.example").map(|z| z.policy),
            Ok(ZonePolicy::Cname("garden.example".into()))
        );
        assert!(ZoneFile::parse_spec("a.rpz,colour=blue").is_err());
        assert!(ZoneFile::parse_spec("a.rpz,policy=block").is_err());
        assert!(ZoneFile::parse_spec("").is_err());
    }
}
