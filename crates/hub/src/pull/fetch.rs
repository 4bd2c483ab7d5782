//! One HTTP fetch of a feed: a conditional GET with a size cap, and the body turned
//! into a parsed feed.
//!
//! The client is reqwest on rustls with ring as the crypto provider (the tree's one
//! provider; installed once for the process) and the system's trust store (through
//! rustls-platform-verifier), HTTP/1.1, proxies from `HTTPS_PROXY`/`NO_PROXY`.
//! `Accept-Encoding: gzip` is sent and the body kept as it came: [`read_body`]
//! gunzips it (under the same cap) before `formats` reads it. Redirects are followed
//! up to 5 times, never from https to http, and never to another host when the
//! source sends headers (an API key must not follow a redirect elsewhere). Error
//! messages never carry the URL's query or a header.

use std::io::Read;
use std::sync::Once;

use formats::{Format, Parsed, Polarity, ReadOptions};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::config::FeedSource;

/// What the hub calls itself.
pub const USER_AGENT: &str = concat!("sharedefend/", env!("CARGO_PKG_VERSION"), " (feed pull)");
/// Redirects followed before a fetch fails.
pub const MAX_REDIRECTS: usize = 5;

/// How a fetch ended, when it got an answer it can use.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the validators still hold.
    NotModified,
    /// 200 with the body as sent (gzip or not) and the new validators.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// A failed fetch: why, and the HTTP status if the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub message: String,
    pub status: Option<u16>,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn error(message: impl Into<String>) -> FetchError {
    FetchError {
        message: message.into(),
        status: None,
    }
}

/// Makes ring the process's rustls provider, once. There is no other provider in
/// the tree (`cargo tree -i ring` shows one ring, and there is no aws-lc).
fn install_ring() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // rustls 0.23.48 deprecates its ring provider for lacking post-quantum key
        // exchange (X25519MLKEM768, which only aws-lc-rs offers). The house rule is
        // one crypto provider, ring; see docs/ARCHITECTURE.md.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        // Err means a provider is installed already: it can only be this one.
        let _ = provider.install_default();
    });
}

/// The client for `source` (its redirect rule depends on its headers).
pub fn client(source: &FeedSource) -> Result<reqwest::Client, FetchError> {
    install_ring();
    let guard_host = !source.headers.is_empty();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let first = attempt.previous().first().cloned();
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if let Some(first) = first {
            if first.scheme() == "https" && attempt.url().scheme() != "https" {
                return attempt.error("redirect from https to http refused");
            }
            if guard_host && first.host_str() != attempt.url().host_str() {
                return attempt.error(
                    "redirect to another host refused: the source's headers stay with its own host",
                );
            }
        }
        attempt.follow()
    });
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .http1_only()
        .connect_timeout(source.timeout.min(std::time::Duration::from_secs(30)))
        .timeout(source.timeout)
        .redirect(redirects)
        .build()
        .map_err(|e| error(format!("HTTP client: {}", chain(&e))))
}

/// The headers of a request: the source's own, `Accept-Encoding: gzip`, and the
/// validators of a conditional GET.
fn request_headers(
    source: &FeedSource,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> Result<HeaderMap, FetchError> {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    for (name, value) in &source.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| error(format!("header {name:?}: not a header name")))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| error(format!("header {name}: not a valid value")))?;
        value.set_sensitive(true);
        h.insert(name, value);
    }
    if let Some(e) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        h.insert(header::IF_NONE_MATCH, e);
    }
    if let Some(m) = last_modified.and_then(|m| HeaderValue::from_str(m).ok()) {
        h.insert(header::IF_MODIFIED_SINCE, m);
    }
    Ok(h)
}

/// GETs `source.url`, conditional on the validators given, reading at most
/// `source.max_body` bytes.
pub async fn fetch(
    client: &reqwest::Client,
    source: &FeedSource,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> Result<Fetched, FetchError> {
    let headers = request_headers(source, etag, last_modified)?;
    let mut response = client
        .get(source.url.clone())
        .headers(headers)
        .send()
        .await
        .map_err(|e| error(chain(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(FetchError {
            message: format!("HTTP {status}"),
            status: Some(status.as_u16()),
        });
    }
    let cap = source.max_body;
    let too_big = |n: u64| FetchError {
        message: format!("body larger than max_body ({n} > {cap} bytes)"),
        status: Some(status.as_u16()),
    };
    if let Some(len) = response.content_length()
        && len > cap
    {
        return Err(too_big(len));
    }
    let header_text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let new_etag = header_text(header::ETAG);
    let new_last_modified = header_text(header::LAST_MODIFIED);
    let initial = response.content_length().unwrap_or(1 << 16).min(cap);
    let mut bytes = Vec::with_capacity(usize::try_from(initial).unwrap_or(1 << 16));
    loop {
        let chunk = response.chunk().await.map_err(|e| FetchError {
            message: format!("reading the body: {}", chain(&e)),
            status: Some(status.as_u16()),
        })?;
        let Some(chunk) = chunk else { break };
        let total = bytes.len() as u64 + chunk.len() as u64;
        if total > cap {
            return Err(too_big(total));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        bytes,
        etag: new_etag,
        last_modified: new_last_modified,
    })
}

/// An error and its causes, one line, without the URL (which may carry a key).
fn chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "reading the body"
    } else {
        "request failed"
    };
    parts.push(what.to_owned());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Turns a body into a parsed feed: gunzips (at most `max_body` bytes out), checks
/// it is text, takes the configured format or sniffs one, reads it. A body that is
/// not a feed fails here, before anything is stored: not text, a format that cannot
/// be recognised, prose (an error page served with 200), nothing readable at all, or
/// records none of which is an indicator. An empty body is a feed with nothing in
/// it (for a snapshot source, the breaker judges what that would withdraw).
pub fn read_body(bytes: &[u8], source: &FeedSource) -> Result<Parsed, String> {
    let plain;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(source.max_body.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        if out.len() as u64 > source.max_body {
            return Err(format!(
                "gzip body expands beyond max_body ({} bytes)",
                source.max_body
            ));
        }
        plain = out;
        &plain[..]
    } else {
        bytes
    };
    let text = formats::decode(bytes).map_err(|e| e.to_string())?;
    let format = match source.format.or_else(|| formats::sniff(&text)) {
        Some(Format::Prose) => {
            return Err("the body reads as prose, not a feed (an error page?)".to_owned());
        }
        Some(Format::MispFeed) => {
            return Err("the body is a MISP feed manifest: pull takes one file".to_owned());
        }
        Some(f) => f,
        None => {
            return Err("format not recognised (set format in the feed_source)".to_owned());
        }
    };
    let options = ReadOptions {
        format: Some(format),
        csv_columns: source.csv_columns.clone(),
    };
    let parsed = formats::read_text(&text, &options).map_err(|e| e.to_string())?;
    if parsed.records.is_empty()
        && let Some(first) = parsed.diagnostics.first()
    {
        return Err(format!(
            "nothing readable as {format}: {} problems, first: {first}",
            parsed.diagnostics.len()
        ));
    }
    if !parsed.records.is_empty()
        && !parsed
            .records
            .iter()
            .any(|r| r.polarity == Polarity::Allow || r.normalise().is_ok())
    {
        return Err(format!(
            "no record is an indicator ({} records read as {format}, all rejected)",
            parsed.records.len()
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(format: Option<Format>) -> FeedSource {
        let mut s = FeedSource::new(
            "t",
            reqwest::Url::parse("https://feeds.example/x").unwrap_or_else(|e| panic!("{e}")),
        );
        s.format = format;
        s
    }

    fn check(body: &[u8], format: Option<Format>) -> String {
        match read_body(body, &source(format)) {
            Ok(p) => format!("{} {} records", p.format, p.records.len()),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn bodies_that_are_not_feeds_fail() {
        assert_eq!(
            check(b"evil.example\nbad.example\n", None),
            "plain 2 records"
        );
        assert_eq!(check(b"", None), "plain 0 records");
        assert!(check(b"a\0b", None).contains("binary data"));
        assert!(
            check(
                b"<html><body>Service Unavailable</body></html>\n",
                Some(Format::Plain)
            )
            .contains("all rejected")
        );
        assert!(check(b"{\"error\": \"quota\"}", None).starts_with("error: "));
    }

    #[test]
    fn gzip_bodies_are_read_under_the_cap() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let text = "evil.example\n".repeat(1000);
        gz.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let gz = gz.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&gz, None), "plain 1000 records");
        let mut small = source(None);
        small.max_body = 100;
        let e = read_body(&gz, &small).err().unwrap_or_default();
        assert!(e.contains("expands beyond max_body"), "{e}");
    }

    #[test]
    fn the_client_builds_on_ring() {
        assert!(client(&source(None)).is_ok());
    }
}
