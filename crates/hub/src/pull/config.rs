//! The `[[feed_source]]` tables of the hub's config: which feeds the hub fetches
//! itself, how often, and how far it trusts them.
//!
//! ```toml
//! [[feed_source]]
//! name = "urlhaus"                       # the source's name in the store
//! url = "https://urlhaus.abuse.ch/downloads/csv_online/"
//! format = "urlhaus-csv"                 # optional: sniffed from the body
//! interval = "15m"                       # 500ms, 30s, 15m, 2h, 1d or seconds
//! trust = 0.8                            # 0–1, default 0.8
//! category = "malware"                   # when the feed does not say
//! group = "abuse.ch"                     # independence group
//! snapshot = true                        # the feed lists everything it still means
//! headers = { "Auth-Key" = "…" }         # a secret: never logged, never shown
//! timeout = "2m"                         # the whole fetch, body included
//! max_body = "512MiB"                    # bytes, or KiB / MiB / GiB
//! ```
//!
//! Deserialised with the rest of the file (`deny_unknown_fields`; a bad value is
//! reported with its line and column), then [`validate`]d as a whole (names unique,
//! URL scheme), with messages that name the source and the field and never quote a
//! header's value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use formats::Format;
use indicator::{Category, Tlp};
use serde::{Deserialize, Deserializer};

/// Default time between two pulls of a source.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Shortest interval accepted: a typo must not make the hub hammer a public feed.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default limit on one whole fetch (connect, headers and body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default cap on a body, compressed or not: 512 MiB.
pub const DEFAULT_MAX_BODY: u64 = 512 << 20;
/// Default trust of a pulled source (as `sharedefend import`).
pub const DEFAULT_TRUST: f64 = 0.8;
/// Default first wait after a failed pull; it doubles with each further failure, up
/// to the source's interval.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(30);
/// Default age after which a pull imports the body even when the server says (or
/// the digest shows) it has not changed: a re-listing is a new sighting, and
/// evidence not seen again decays (phishing after 72 h).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// One `[[feed_source]]` table.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSource {
    /// The source's name in the store (observations, batches, `explain`).
    pub name: String,
    /// `http://` or `https://`.
    #[serde(deserialize_with = "url")]
    pub url: reqwest::Url,
    /// Read the body as this format; sniffed from the content when absent.
    #[serde(default, deserialize_with = "format_opt")]
    pub format: Option<Format>,
    /// Column mapping for `format = "csv"` (as `import --csv-columns`).
    #[serde(default)]
    pub csv_columns: Option<String>,
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default = "default_trust")]
    pub trust: f64,
    /// For records whose feed does not say.
    #[serde(default = "default_category", deserialize_with = "from_str")]
    pub category: Category,
    /// For records whose feed does not say.
    #[serde(default = "default_tlp", deserialize_with = "from_str")]
    pub tlp: Tlp,
    /// Independence group: sources that re-publish each other count once.
    #[serde(default)]
    pub group: Option<String>,
    /// The feed is a full snapshot: what it stops listing loses this source's
    /// observation.
    #[serde(default)]
    pub snapshot: bool,
    /// Extra request headers (an API key). Secret: `Debug` hides the values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_body", deserialize_with = "size")]
    pub max_body: u64,
    #[serde(default = "default_backoff_min", deserialize_with = "duration")]
    pub backoff_min: Duration,
    #[serde(default = "default_refresh", deserialize_with = "duration")]
    pub refresh: Duration,
}

impl fmt::Debug for FeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        f.debug_struct("FeedSource")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("format", &self.format)
            .field("interval", &self.interval)
            .field("trust", &self.trust)
            .field("category", &self.category)
            .field("group", &self.group)
            .field("snapshot", &self.snapshot)
            .field("headers (values hidden)", &headers)
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl FeedSource {
    /// A source with every optional field at its default.
    pub fn new(name: &str, url: reqwest::Url) -> FeedSource {
        FeedSource {
            name: name.to_owned(),
            url,
            format: None,
            csv_columns: None,
            interval: DEFAULT_INTERVAL,
            trust: DEFAULT_TRUST,
            category: Category::Unknown,
            tlp: Tlp::Clear,
            group: None,
            snapshot: false,
            headers: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            backoff_min: DEFAULT_BACKOFF_MIN,
            refresh: DEFAULT_REFRESH,
        }
    }

    /// The URL as logs and status show it (see [`redacted_url`]).
    pub fn display_url(&self) -> String {
        redacted_url(&self.url)
    }
}

/// A URL fit for logs: no user or password, and no query (feeds that take a key in
/// the query string would otherwise print it). Secrets belong in `headers`.
pub fn redacted_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let had_query = u.query().is_some();
    u.set_query(None);
    u.set_fragment(None);
    if had_query {
        format!("{u}?…")
    } else {
        u.to_string()
    }
}

/// Checks the sources as a whole: unique names, `http`/`https` URLs, trust in 0–1,
/// header names and values that HTTP can carry. The message names the source and
/// the field; it never quotes a header's value.
pub fn validate(sources: &[FeedSource]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for s in sources {
        let at = |field: &str, what: String| format!("feed_source {:?}: {field}: {what}", s.name);
        if s.name.trim().is_empty() || s.name.trim() != s.name {
            return Err(format!(
                "feed_source {:?}: name: must be non-empty, without surrounding spaces",
                s.name
            ));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(at("name", "a second source has this name".to_owned()));
        }
        if !matches!(s.url.scheme(), "http" | "https") {
            return Err(at(
                "url",
                format!("expected http:// or https://, got {}:", s.url.scheme()),
            ));
        }
        if !(0.0..=1.0).contains(&s.trust) {
            return Err(at("trust", format!("expected 0 to 1, got {}", s.trust)));
        }
        if s.interval < MIN_INTERVAL {
            return Err(at(
                "interval",
                format!("at least {MIN_INTERVAL:?}, got {:?}", s.interval),
            ));
        }
        if s.timeout.is_zero() || s.max_body == 0 {
            return Err(at("timeout/max_body", "must be more than zero".to_owned()));
        }
        if s.format == Some(Format::MispFeed) {
            return Err(at(
                "format",
                "a MISP feed is a manifest plus event files; pull takes one body".to_owned(),
            ));
        }
        for (name, value) in &s.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(at("headers", format!("{name:?} is not a header name")));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(at(
                    "headers",
                    format!("the value of {name:?} is not a valid header value"),
                ));
            }
        }
    }
    Ok(())
}

fn default_interval() -> Duration {
    DEFAULT_INTERVAL
}
fn default_trust() -> f64 {
    DEFAULT_TRUST
}
fn default_category() -> Category {
    Category::Unknown
}
fn default_tlp() -> Tlp {
    Tlp::Clear
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY
}
fn default_backoff_min() -> Duration {
    DEFAULT_BACKOFF_MIN
}
fn default_refresh() -> Duration {
    DEFAULT_REFRESH
}

/// A number of seconds, or a string: a number and a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 15m or 2h, got {text:?}"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => {
            return Err(format!("unknown unit in {text:?} (one of ms, s, m, h, d)"));
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A number of bytes, or a string: a number and a unit (`B`, `KiB`, `MiB`, `GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("expected a size like 512MiB, got {text:?}"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => {
            return Err(format!(
                "unknown unit in {text:?} (one of B, KiB, MiB, GiB)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A TOML integer or string, as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl NumberOrText {
    fn text(self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t,
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&NumberOrText::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_size(&NumberOrText::deserialize(d)?.text()).map_err(serde::de::Error::custom)
}

fn url<'de, D: Deserializer<'de>>(d: D) -> Result<reqwest::Url, D::Error> {
    let text = String::deserialize(d)?;
    // The message names the problem, not the URL (its query may hold a key).
    reqwest::Url::parse(&text).map_err(|e| serde::de::Error::custom(format!("not a URL: {e}")))
}

fn format_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Format>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "feed_source")]
        sources: Vec<FeedSource>,
    }

    fn parse(text: &str) -> Result<Vec<FeedSource>, String> {
        let f: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        validate(&f.sources)?;
        Ok(f.sources)
    }

    #[test]
    fn reads_a_source_with_defaults() {
        let s = parse(
            "[[feed_source]]\nname = \"openphish\"\nurl = \"https://openphish.example/feed.txt\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s[0].interval, DEFAULT_INTERVAL);
        assert_eq!(s[0].max_body, DEFAULT_MAX_BODY);
        assert_eq!(s[0].format, None);
        assert!(!s[0].snapshot);
    }

    #[test]
    fn reads_every_field() {
        let s = parse(
            r#"[[feed_source]]
name = "urlhaus"
url = "https://user:pw@feeds.example/csv?key=s3cr3t"
format = "urlhaus-csv"
interval = "2h"
trust = 0.9
category = "malware"
tlp = "green"
group = "abuse.ch"
snapshot = true
headers = { "Auth-Key" = "s3cr3t" }
timeout = 30
max_body = "16MiB"
backoff_min = "500ms"
refresh = "1d"
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let s = &s[0];
        assert_eq!(s.interval, Duration::from_secs(7200));
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.max_body, 16 << 20);
        assert_eq!(s.backoff_min, Duration::from_millis(500));
        assert_eq!(s.format, Some(Format::UrlhausCsv));
        assert_eq!(s.category, Category::Malware);
        // Neither the header's value nor the URL's password or query is ever shown.
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("pw"),
            "{shown}"
        );
        assert_eq!(s.display_url(), "https://feeds.example/csv?…");
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let base = "[[feed_source]]\nname = \"a\"\nurl = \"https://x.example/\"\n";
        for (extra, expect) in [
            ("interval = \"5x\"\n", "unknown unit"),
            ("interval = \"0s\"\n", "interval"),
            ("trust = 1.5\n", "trust"),
            ("format = \"nope\"\n", "unknown format"),
            ("category = \"nope\"\n", "nope"),
            ("max_body = \"1TB\"\n", "unknown unit"),
            ("headers = { \"Bad Name\" = \"v\" }\n", "not a header name"),
            (
                "headers = { \"K\" = \"line\\nbreak s3cr3t\" }\n",
                "not a valid header value",
            ),
            ("colour = \"red\"\n", "unknown field"),
        ] {
            let e = parse(&format!("{base}{extra}")).err().unwrap_or_default();
            assert!(e.contains(expect) && !e.contains("s3cr3t"), "{extra}: {e}");
        }
        let e = parse(&format!("{base}{base}")).err().unwrap_or_default();
        assert!(e.contains("second source"), "{e}");
        let e = parse("[[feed_source]]\nname = \"a\"\nurl = \"ftp://x.example/\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("http:// or https://"), "{e}");
    }
}
