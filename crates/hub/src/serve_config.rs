//! The `hub serve` configuration file: one TOML for the whole service.
//!
//! ```toml
//! listen = "0.0.0.0:53"                 # DNS (UDP and TCP); --dns-listen overrides
//!
//! [http]
//! listen = "0.0.0.0:8053"               # HTTP exports; --http-listen overrides
//! key_dir = "/var/lib/sharedefend/keys" # signing key; --key-dir overrides
//!
//! [[partner]]                           # zone transfers: see dns::Config
//! name = "isp-a"
//! feeds = ["phishing", "malware"]
//! tsig = { name = "sharedefend-isp-a", algorithm = "hmac-sha256", secret = "…" }
//! # the partner API (see access.rs)
//! roles = ["consumer", "contributor"]   # contributor, consumer, reviewer, admin
//! trust = 0.7                           # source trust of what it submits
//! tlp = "amber"                         # clearance: clear, green (default), amber, amber+strict, red
//! tokens = [{ sha256 = "…", created = "2026-09-01T10:00:00Z" }]
//!
//! [[feed_source]]                       # see pull::FeedSource
//! name = "openphish"
//! url = "https://openphish.example/feed.txt"
//! interval = "15m"
//! ```
//!
//! It lives in the hub because it joins the parts the hub runs (the `dns` front, the
//! HTTP front); each part still gets only its own sub-config. Unknown fields are
//! errors everywhere, so a misspelt key is reported with its line rather than ignored.
//! A partner may use zone transfers (a TSIG key or `allow_ips`), the API (roles), or
//! both; one with neither is an error.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use indicator::Tlp;
use serde::Deserialize;

use crate::access::{self, DEFAULT_CLEARANCE, DEFAULT_PARTNER_TRUST, Partner, Role};
use crate::http::HttpConfig;

/// The whole `hub serve` configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The DNS listening address.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default, rename = "partner")]
    pub partners: Vec<PartnerEntry>,
    /// Feeds the hub pulls on a schedule.
    #[serde(default, rename = "feed_source")]
    pub feed_sources: Vec<crate::pull::FeedSource>,
}

/// One `[[partner]]` table: its zone transfers and its use of the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerEntry {
    pub name: String,
    /// The feeds it may transfer; `"*"` grants every feed.
    #[serde(default)]
    pub feeds: Vec<String>,
    /// Its TSIG key for zone transfers.
    #[serde(default)]
    pub tsig: Option<dns::TsigConfig>,
    /// Servers to NOTIFY when one of its feeds changes.
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
    /// Addresses allowed to transfer without a signature (opt-in, logged).
    #[serde(default)]
    pub allow_ips: Vec<IpAddr>,
    /// What it may do through the API; none = no API access.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Source trust of its submissions, 0 to 1 [default 0.5].
    #[serde(default)]
    pub trust: Option<f64>,
    /// Independence group of its submissions [default: its own].
    #[serde(default)]
    pub group: Option<String>,
    /// TLP clearance: the most restricted marking it may receive [default green].
    #[serde(default)]
    pub tlp: Option<String>,
    /// Its API tokens, as SHA-256 hashes (`sharedefend partner token NAME`).
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// An API token as the configuration keeps it: its hash, never the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// SHA-256 of the token, 64 lowercase hex digits.
    pub sha256: String,
    /// When it was issued (RFC 3339), for the operator.
    #[serde(default)]
    pub created: Option<String>,
}

impl PartnerEntry {
    /// True if the partner takes zone transfers (it has a key or allowed addresses).
    pub fn uses_dns(&self) -> bool {
        self.tsig.is_some() || !self.allow_ips.is_empty()
    }

    /// The partner's part of the DNS front's configuration.
    pub fn dns(&self) -> dns::PartnerConfig {
        dns::PartnerConfig {
            name: self.name.clone(),
            feeds: self.feeds.clone(),
            tsig: self.tsig.clone(),
            notify: self.notify.clone(),
            allow_ips: self.allow_ips.clone(),
        }
    }

    /// Its clearance (validated by [`ServeConfig::parse`]; an unreadable one counts
    /// as the default).
    pub fn clearance(&self) -> Tlp {
        self.tlp
            .as_deref()
            .and_then(Tlp::from_label)
            .unwrap_or(DEFAULT_CLEARANCE)
    }

    /// The partner as the API sees it.
    pub fn api_partner(&self) -> Partner {
        Partner {
            name: self.name.clone(),
            roles: self.roles.clone(),
            trust: self.trust.unwrap_or(DEFAULT_PARTNER_TRUST),
            group: self.group.clone(),
            clearance: self.clearance(),
        }
    }
}

/// A configuration file that cannot be used, with what is wrong and where. The
/// message never quotes the file's text: a broken line may hold a secret, and these
/// errors are logged.
#[derive(Debug, thiserror::Error)]
pub enum ServeConfigError {
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{message}")]
    Other { message: String },
    #[error("{0}")]
    Invalid(#[from] dns::ConfigError),
    #[error("partner {partner:?}: {message}")]
    Partner { partner: String, message: String },
}

impl ServeConfig {
    /// Parses and validates a configuration file's text.
    pub fn parse(text: &str) -> Result<ServeConfig, ServeConfigError> {
        let config: ServeConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            match e.span() {
                Some(span) => {
                    let before = text.get(..span.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    ServeConfigError::Syntax {
                        line,
                        column,
                        message,
                    }
                }
                None => ServeConfigError::Other { message },
            }
        })?;
        config.validate_partners()?;
        config.dns().validate()?;
        crate::pull::validate(&config.feed_sources)
            .map_err(|message| ServeConfigError::Other { message })?;
        Ok(config)
    }

    /// What serde cannot check of the partners: unique names, each usable somehow,
    /// trust a fraction, clearance a TLP, token hashes well-formed and unique.
    fn validate_partners(&self) -> Result<(), ServeConfigError> {
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for p in &self.partners {
            let err = |message: String| ServeConfigError::Partner {
                partner: p.name.clone(),
                message,
            };
            if !names.insert(p.name.as_str()) {
                return Err(err("defined twice".to_owned()));
            }
            if !p.uses_dns() && p.roles.is_empty() {
                return Err(err(
                    "neither a tsig key, allow_ips nor roles: it could do nothing".to_owned(),
                ));
            }
            if let Some(t) = p.trust
                && !(0.0..=1.0).contains(&t)
            {
                return Err(err(format!("trust {t} is not between 0 and 1")));
            }
            if let Some(t) = &p.tlp
                && Tlp::from_label(t).is_none()
            {
                return Err(err(format!(
                    "tlp {t:?} is not one of clear, green, amber, amber+strict, red"
                )));
            }
            for t in &p.tokens {
                if !access::is_token_hash(&t.sha256) {
                    return Err(err(
                        "a token's sha256 is not 64 lowercase hex digits".to_owned()
                    ));
                }
                if !hashes.insert(t.sha256.as_str()) {
                    return Err(err("a token hash is listed twice".to_owned()));
                }
            }
        }
        Ok(())
    }

    /// The DNS front's part: the partners that take zone transfers.
    pub fn dns(&self) -> dns::Config {
        dns::Config {
            listen: self.listen,
            partners: self
                .partners
                .iter()
                .filter(|p| p.uses_dns())
                .map(PartnerEntry::dns)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_part_and_rejects_unknown_fields() {
        let c = ServeConfig::parse(
            r#"listen = "127.0.0.1:5300"
[http]
listen = "127.0.0.1:8053"
key_dir = "/tmp/keys"
[[partner]]
name = "isp"
feeds = ["phishing"]
allow_ips = ["127.0.0.1"]
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.map(|a| a.port()), Some(5300));
        assert_eq!(c.http.listen.map(|a| a.port()), Some(8053));
        assert_eq!(c.partners.len(), 1);
        let bad = ServeConfig::parse("[http]\nlisten = \"127.0.0.1:8053\"\nkeydir = \"x\"\n")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            bad.as_ref()
                .is_err_and(|e| e.contains("keydir") && e.starts_with("line 3, column 1: ")),
            "{bad:?}"
        );
        // A broken line is located, never quoted (it may hold a secret).
        let broken =
            ServeConfig::parse("[[partner]]\nname = \"x\"\ntsig = { secret = \"s3cr3t }\n")
                .map(|_| ())
                .map_err(|e| e.to_string());
        assert!(
            broken
                .as_ref()
                .is_err_and(|e| e.starts_with("line 3") && !e.contains("s3cr3t")),
            "{broken:?}"
        );
    }

    fn error(text: &str) -> String {
        match ServeConfig::parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn api_partners_need_roles_and_valid_fields() {
        let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let c = ServeConfig::parse(&format!(
            "[[partner]]\nname = \"cert\"\nroles = [\"contributor\", \"reviewer\"]\n\
             trust = 0.8\ntlp = \"amber\"\ntokens = [{{ sha256 = \"{hash}\" }}]\n\
             [[partner]]\nname = \"isp\"\nfeeds = [\"*\"]\nallow_ips = [\"127.0.0.1\"]\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        // Only the partner with DNS access reaches the DNS front.
        assert_eq!(c.dns().partners.len(), 1);
        let cert = c.partners[0].api_partner();
        assert_eq!(
            (cert.trust, cert.clearance, cert.roles.len()),
            (0.8, Tlp::Amber, 2)
        );
        assert_eq!(c.partners[1].api_partner().clearance, Tlp::Green);
        assert_eq!(
            crate::access::Access::new(&c.partners)
                .partner("abc")
                .map(|p| p.name.clone()),
            Some("cert".to_owned())
        );
        assert_eq!(
            error("[[partner]]\nname = \"x\"\n"),
            "partner \"x\": neither a tsig key, allow_ips nor roles: it could do nothing"
        );
        assert_eq!(
            error("[[partner]]\nname = \"x\"\nroles = [\"consumer\"]\ntrust = 2.0\n"),
            "partner \"x\": trust 2 is not between 0 and 1"
        );
        assert!(error("[[partner]]\nname = \"x\"\nroles = [\"boss\"]\n").starts_with("line 3"),);
        assert_eq!(
            error("[[partner]]\nname = \"x\"\nroles = [\"consumer\"]\ntlp = \"purple\"\n"),
            "partner \"x\": tlp \"purple\" is not one of clear, green, amber, amber+strict, red"
        );
        assert_eq!(
            error(
                "[[partner]]\nname = \"x\"\nroles = [\"consumer\"]\ntokens = [{ sha256 = \"abc\" }]\n"
            ),
            "partner \"x\": a token's sha256 is not 64 lowercase hex digits"
        );
    }
}
