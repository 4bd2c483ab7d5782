//! Who may use the partner API, and as what: roles, trust, TLP clearance and bearer
//! tokens, as the `[[partner]]` tables of the `hub serve` configuration give them.
//!
//! A partner is an organisation. Its **roles** say what it may do: a *contributor*
//! submits indicators, a *consumer* reads them (within its clearance), a *reviewer*
//! works the review queue and delists, an *admin* may do everything. Its **trust**
//! (0–1) is the source trust of what it submits: every partner is a source of its
//! own (`partner:NAME`). Its **clearance** is the most restricted TLP it may receive.
//!
//! Tokens are random (32 bytes from ring's system generator, base64url, prefixed
//! `sdp_`); the configuration keeps only their SHA-256 (ring's `digest`), so a
//! leaked config file grants nothing and a token is shown once, by the command that
//! made it. A request's token is hashed and looked up; nothing here logs a token.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use indicator::Tlp;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use store::{NewSource, SourceKind};

/// What a partner may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits indicators (`POST /api/indicators`).
    Contributor,
    /// Reads indicators within its clearance (`GET /api/indicators…`).
    Consumer,
    /// Works the review queue, delists, reads the status.
    Reviewer,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Contributor,
        Role::Consumer,
        Role::Reviewer,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Contributor => "contributor",
            Role::Consumer => "consumer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The trust of a partner's submissions when its table does not say.
pub const DEFAULT_PARTNER_TRUST: f64 = 0.5;

/// A partner's clearance when its table does not say: TLP:GREEN, what a community
/// of partners shares among itself (anonymous readers get CLEAR).
pub const DEFAULT_CLEARANCE: Tlp = Tlp::Green;

/// The prefix of every API token (so a token found in a log or a paste is
/// recognisable, and secret scanners can match it).
pub const TOKEN_PREFIX: &str = "sdp_";

/// A partner as the API sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Partner {
    pub name: String,
    pub roles: Vec<Role>,
    pub trust: f64,
    pub group: Option<String>,
    pub clearance: Tlp,
}

impl Partner {
    /// True if the partner has `role` (an admin has every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r == role || *r == Role::Admin)
    }

    /// The source its submissions are recorded under.
    pub fn source(&self) -> NewSource {
        NewSource {
            name: format!("partner:{}", self.name),
            kind: SourceKind::Partner,
            trust: self.trust,
            group: self.group.clone(),
        }
    }

    /// True if the partner may receive something marked `tlp`.
    pub fn cleared_for(&self, tlp: Tlp) -> bool {
        tlp <= self.clearance
    }
}

/// The tokens in force: hash → partner. Replaced whole when the config reloads.
#[derive(Debug, Default)]
pub struct Access {
    by_hash: HashMap<String, Arc<Partner>>,
}

impl Access {
    /// Builds the table from validated partners (see [`crate::ServeConfig::parse`]).
    pub fn new(partners: &[crate::serve_config::PartnerEntry]) -> Access {
        let mut by_hash = HashMap::new();
        for p in partners {
            let partner = Arc::new(p.api_partner());
            for t in &p.tokens {
                by_hash.insert(t.sha256.to_ascii_lowercase(), partner.clone());
            }
        }
        Access { by_hash }
    }

    /// The partner a bearer token belongs to.
    pub fn partner(&self, token: &str) -> Option<Arc<Partner>> {
        self.by_hash.get(&token_hash(token)).cloned()
    }

    pub fn tokens(&self) -> usize {
        self.by_hash.len()
    }
}

/// The SHA-256 of a token, lowercase hex: what the configuration stores.
pub fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// True if `s` looks like a stored token hash (64 lowercase hex digits).
pub fn is_token_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh token; `None` if the system random generator failed.
pub fn new_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hash_to_sha256_hex_and_differ() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = new_token().unwrap_or_default();
        let b = new_token().unwrap_or_default();
        assert!(
            a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43,
            "{a}"
        );
        assert_ne!(a, b);
        assert!(is_token_hash(&token_hash(&a)));
        assert!(!is_token_hash("ABC"));
    }

    #[test]
    fn admin_has_every_role_and_clearance_is_an_upper_bound() {
        let p = Partner {
            name: "cert".into(),
            roles: vec![Role::Admin],
            trust: 0.9,
            group: None,
            clearance: Tlp::Amber,
        };
        assert!(Role::ALL.iter().all(|r| p.has(*r)));
        assert!(p.cleared_for(Tlp::Green) && p.cleared_for(Tlp::Amber));
        assert!(!p.cleared_for(Tlp::AmberStrict) && !p.cleared_for(Tlp::Red));
        let c = Partner {
            roles: vec![Role::Consumer],
            ..p
        };
        assert!(c.has(Role::Consumer) && !c.has(Role::Reviewer));
        assert_eq!(c.source().name, "partner:cert");
    }
}
