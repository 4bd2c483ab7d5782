//! Who may transfer which zones, and whom to tell when they change.
//!
//! The server's configuration is a list of partners, read from TOML by the binary:
//!
//! ```toml
//! [[partner]]
//! name = "isp-a"
//! feeds = ["phishing", "malware"]       # "*" = every feed
//! notify = ["192.0.2.53:53"]            # NOTIFY targets
//! allow_ips = []                        # unsigned transfers from these (opt-in, logged)
//! tsig = { name = "isp-a-key", algorithm = "hmac-sha256", secret = "base64…" }
//! ```
//!
//! Unknown fields are errors, so a misspelt `alow_ips` does not silently grant
//! nothing. Secrets are kept in [`Secret`], whose `Debug` never shows them.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// The server's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen (UDP and TCP); the command line's `--dns-listen` overrides it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    #[serde(default, rename = "partner")]
    pub partners: Vec<PartnerConfig>,
}

/// One partner: its key, its feeds, its servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    pub name: String,
    /// The feeds it may transfer; `"*"` grants every feed.
    pub feeds: Vec<String>,
    /// Its TSIG key. A partner without one can only use `allow_ips`.
    #[serde(default)]
    pub tsig: Option<TsigConfig>,
    /// Servers to NOTIFY (`ADDR:PORT`) when one of its feeds changes.
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
    /// Addresses allowed to transfer WITHOUT a signature, for servers that cannot sign
    /// (Unbound). An explicit opt-in: every such transfer is logged.
    #[serde(default)]
    pub allow_ips: Vec<IpAddr>,
}

impl PartnerConfig {
    /// True if the partner may transfer `feed`.
    pub fn allows(&self, feed: &str) -> bool {
        self.feeds.iter().any(|f| f == "*" || f == feed)
    }
}

/// A TSIG key (RFC 8945).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigConfig {
    /// The key's name as both sides configure it (`isp-a-key`).
    pub name: String,
    pub algorithm: KeyAlgorithm,
    /// The shared secret, base64 (as `tsig-keygen` prints it).
    pub secret: Secret,
}

/// The HMAC algorithms accepted for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyAlgorithm {
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::HmacSha256 => "hmac-sha256",
            KeyAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

/// A secret: base64 text in the config; never shown by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(base64: &str) -> Secret {
        Secret(base64.to_owned())
    }

    pub(crate) fn base64(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A configuration that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("partner {partner:?}: {message}")]
    Partner { partner: String, message: String },
}

impl Config {
    /// Checks what serde cannot: names unique, keys decodable, every partner
    /// reachable by some means.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        for p in &self.partners {
            let err = |message: String| ConfigError::Partner {
                partner: p.name.clone(),
                message,
            };
            if !names.insert(p.name.as_str()) {
                return Err(err("defined twice".to_owned()));
            }
            if p.feeds.is_empty() {
                return Err(err("no feeds granted".to_owned()));
            }
            if p.tsig.is_none() && p.allow_ips.is_empty() {
                return Err(err(
                    "neither a tsig key nor allow_ips: it could transfer nothing".to_owned(),
                ));
            }
            if let Some(t) = &p.tsig {
                if !keys.insert(t.name.to_ascii_lowercase()) {
                    return Err(err(format!("tsig key name {:?} used twice", t.name)));
                }
                crate::server::make_key(t).map_err(err)?;
            }
        }
        Ok(())
    }
}
