//! The `hub serve` configuration file: one TOML for the whole service.
//!
//! ```toml
//! listen = "0.0.0.0:53"                 # DNS (UDP and TCP); --dns-listen overrides
//!
//! [http]
//! listen = "0.0.0.0:8053"               # HTTP exports; --http-listen overrides
//! key_dir = "/var/lib/sharedefend/keys" # signing key; --key-dir overrides
//!
//! [[partner]]                           # see dns::Config
//! name = "isp-a"
//! feeds = ["phishing", "malware"]
//! tsig = { name = "sharedefend-isp-a", algorithm = "hmac-sha256", secret = "…" }
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

use std::net::SocketAddr;

use serde::Deserialize;

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
    pub partners: Vec<dns::PartnerConfig>,
    /// Feeds the hub pulls on a schedule.
    #[serde(default, rename = "feed_source")]
    pub feed_sources: Vec<crate::pull::FeedSource>,
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
        config.dns().validate()?;
        crate::pull::validate(&config.feed_sources)
            .map_err(|message| ServeConfigError::Other { message })?;
        Ok(config)
    }

    /// The DNS front's part.
    pub fn dns(&self) -> dns::Config {
        dns::Config {
            listen: self.listen,
            partners: self.partners.clone(),
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
}
