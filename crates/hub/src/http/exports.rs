//! `GET /feeds/{feed}.{format}`, its `.minisig`, and `GET /feeds/pubkey`.
//!
//! A body is what `sharedefend export --feed F --format X` writes, byte for byte
//! ([`crate::export_store`]), rendered on the blocking pool and kept in a [`Cache`]:
//! one entry per (feed, format), replaced when the feed's serial moves, so a thousand
//! resolvers polling the same feed cost one render (and one signature, and at most one
//! gzip) per serial. Concurrent misses wait for the one render in flight.
//!
//! Each representation has a strong ETag made of feed, format and serial (`.gz` added
//! for the gzip coding, as RFC 9110 §8.8.3 wants distinct tags per coding); a request
//! whose `If-None-Match` names the current tag gets 304 from the serial snapshot,
//! without touching the store. `Cache-Control: public, no-cache` lets shared caches
//! keep a copy but makes them revalidate (a cheap 304) before every use. The signature
//! covers the uncompressed body and its trusted comment names feed, serial and format.
//!
//! The `urls` list is the exception: it also carries URL-only indicators, which are not
//! rules and do not move the serial. Its tag adds a digest of the body, its cached
//! render is reused for [`URLS_MAX_AGE`] only, and a conditional request is answered
//! after that (cheap, the lists are small) render.
//!
//! The `urls` and `csv` lists are cut to the reader's TLP clearance
//! ([`crate::ExportFormat::by_clearance`]): an anonymous request gets what was shared
//! `clear`; a request with a partner's token (`Authorization: Bearer …`) gets what its
//! clearance allows (a bad token is 401). Each clearance is its own cached render and
//! its own ETag (`"feed.csv.amber.5"`); such answers are `private` and vary by
//! `Authorization`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use indicator::Tlp;

use super::{ApiError, HttpState, Routes};
use crate::ExportFormat;

/// The header that tells which serial a body (or signature) is of.
pub const SERIAL_HEADER: &str = "x-sharedefend-serial";

/// How long a render of the `urls` list is reused (its content can change without
/// the serial).
pub const URLS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// True if the body of `format` is determined by the feed's serial alone.
fn versioned_by_serial(format: ExportFormat) -> bool {
    format != ExportFormat::Urls
}

/// The URL extension of each format (`txt` is the plain domain list).
pub(super) fn extension(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Domains => "txt",
        f => f.name(),
    }
}

fn format_of(extension_: &str) -> Option<ExportFormat> {
    ExportFormat::ALL
        .into_iter()
        .find(|f| extension(*f) == extension_)
}

fn content_type(format: ExportFormat) -> &'static str {
    match format {
        // RFC 4027: zone files are text/dns.
        ExportFormat::Rpz => "text/dns; charset=utf-8",
        ExportFormat::Csv => "text/csv; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// One rendered export at one serial.
#[derive(Debug)]
pub struct Rendered {
    pub serial: u32,
    /// What the ETag names: the serial, or for `urls` the serial and a body digest.
    pub version: String,
    made: Instant,
    pub body: Bytes,
    /// The `.minisig` file of `body`.
    pub minisig: Bytes,
    /// `body` gzipped, made on first demand.
    gzip: OnceLock<Bytes>,
}

impl Rendered {
    /// Usable for a request that knows the feed at `serial`.
    fn fresh(&self, format: ExportFormat, serial: u32) -> bool {
        self.serial >= serial && (versioned_by_serial(format) || self.made.elapsed() < URLS_MAX_AGE)
    }

    /// The gzip coding of the body (made once; blocking work). `None` if compression
    /// failed, which writing to memory does not.
    fn gzip(&self) -> Option<Bytes> {
        let gz = self.gzip.get_or_init(|| {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.body.len() / 4),
                flate2::Compression::default(),
            );
            match enc.write_all(&self.body).and_then(|()| enc.finish()) {
                Ok(v) => Bytes::from(v),
                Err(_) => Bytes::new(),
            }
        });
        (!gz.is_empty()).then(|| gz.clone())
    }
}

/// (feed, format, clearance): the clearance is `Red` (everything) for the formats not
/// cut by it.
type Key = (String, ExportFormat, Tlp);

/// The last render of each (feed, format), and the renders in flight.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<Key, Arc<Rendered>>>,
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl Cache {
    fn get(&self, key: &Key) -> Option<Arc<Rendered>> {
        let entries = match self.entries.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        entries.get(key).cloned()
    }

    fn put(&self, key: Key, r: Arc<Rendered>) {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        entries.insert(key, r);
    }

    fn flight(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = match self.flights.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        flights.entry(key.clone()).or_default().clone()
    }
}

pub(super) fn routes(r: Routes) -> Routes {
    r.add(&["get"], "/feeds/pubkey", get(pubkey))
        .add(&["get"], "/feeds/{file}", get(feed_file))
}

async fn pubkey(State(state): State<Arc<HttpState>>) -> Response {
    let mut r = Response::new(Body::from(state.pubkey.clone()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// What a `/feeds/{file}` path names.
struct Target {
    feed: String,
    format: ExportFormat,
    signature: bool,
}

fn parse_target(file: &str) -> Result<Target, ApiError> {
    let (name, signature) = match file.strip_suffix(".minisig") {
        Some(n) => (n, true),
        None => (file, false),
    };
    let expected = || {
        ExportFormat::ALL
            .iter()
            .map(|f| extension(*f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((feed, ext)) = name.rsplit_once('.') else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "format",
            format!(
                "expected /feeds/FEED.FORMAT with FORMAT one of {}",
                expected()
            ),
        ));
    };
    let Some(format) = format_of(ext) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "format",
            format!("unknown format {ext:?}; expected one of {}", expected()),
        ));
    };
    Ok(Target {
        feed: feed.to_owned(),
        format,
        signature,
    })
}

/// True if the client takes the gzip coding (`Accept-Encoding: gzip`, `x-gzip` or `*`
/// with a quality above zero).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let quality_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !quality_zero
                && (coding.eq_ignore_ascii_case("gzip")
                    || coding.eq_ignore_ascii_case("x-gzip")
                    || coding == "*")
        })
}

/// True if an `If-None-Match` value names one of `tags` (weak comparison, as RFC 9110
/// §13.1.2 says for this header) or is `*`.
pub fn etag_matches(if_none_match: &str, tags: &[&str]) -> bool {
    if_none_match.trim() == "*"
        || if_none_match.split(',').any(|t| {
            let t = t.trim();
            let t = t.strip_prefix("W/").unwrap_or(t);
            tags.contains(&t)
        })
}

async fn feed_file(
    State(state): State<Arc<HttpState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(file) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "path", e.body_text()))?;
    let target = parse_target(&file)?;
    let (clearance, private) = if target.format.by_clearance() {
        match super::auth::partner(&state, &headers)? {
            Some(p) => (p.clearance, true),
            None => (Tlp::Clear, false),
        }
    } else {
        (Tlp::Red, false)
    };
    let key: Key = (target.feed.clone(), target.format, clearance);
    let Some(snapshot) = state.serial(&target.feed) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "feed",
            format!("unknown feed {:?}", target.feed),
        ));
    };
    let cached = state.cache.get(&key);
    let gzip = !target.signature && accepts_gzip(&headers);
    let cut = if target.format.by_clearance() && clearance != Tlp::Clear {
        format!(".{}", clearance.as_str())
    } else {
        String::new()
    };
    let tag = |version: &str, gz: bool| {
        let base = format!(
            "\"{}.{}{cut}.{version}",
            target.feed,
            extension(target.format)
        );
        match (target.signature, gz) {
            (true, _) => format!("{base}.minisig\""),
            (false, true) => format!("{base}.gz\""),
            (false, false) => format!("{base}\""),
        }
    };
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let not_modified = |version: &str, serial: u32| -> Option<Response> {
        let inm = if_none_match?;
        let (plain, gz) = (tag(version, false), tag(version, true));
        if !etag_matches(inm, &[plain.as_str(), gz.as_str()]) {
            return None;
        }
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        common_headers(r.headers_mut(), &tag(version, gzip), serial, private);
        Some(r)
    };
    if versioned_by_serial(target.format) {
        // The newest serial known: the snapshot, or a render made since it was taken.
        // A current tag is answered here, with no store read and no render.
        let serial = cached.as_ref().map_or(snapshot, |c| c.serial.max(snapshot));
        if let Some(r) = not_modified(&serial.to_string(), serial) {
            return Ok(r);
        }
    }
    let rendered = match cached.filter(|c| c.fresh(target.format, snapshot)) {
        Some(c) => c,
        None => render_once(&state, &key, snapshot).await?,
    };
    let serial = rendered.serial;
    if let Some(r) = not_modified(&rendered.version, serial) {
        return Ok(r);
    }
    if target.signature {
        let mut r = Response::new(Body::from(rendered.minisig.clone()));
        common_headers(
            r.headers_mut(),
            &tag(&rendered.version, false),
            serial,
            private,
        );
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(r);
    }
    let gz = if gzip {
        let r = rendered.clone();
        tokio::task::spawn_blocking(move || r.gzip())
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let coded = gz.is_some();
    let mut r = Response::new(Body::from(gz.unwrap_or_else(|| rendered.body.clone())));
    let h = r.headers_mut();
    common_headers(h, &tag(&rendered.version, coded), serial, private);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(target.format)),
    );
    if coded {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(r)
}

/// `private`: the body depends on the partner's token.
fn common_headers(h: &mut HeaderMap, etag: &str, serial: u32, private: bool) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if private {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        h.insert(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, Authorization"),
        );
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, no-cache"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    h.insert(
        HeaderName::from_static(SERIAL_HEADER),
        HeaderValue::from(serial),
    );
}

/// The render of `key` at `min_serial` or later: from the cache if another request
/// made it meanwhile, else made now (one render per key at a time).
async fn render_once(
    state: &Arc<HttpState>,
    key: &Key,
    min_serial: u32,
) -> Result<Arc<Rendered>, ApiError> {
    let flight = state.cache.flight(key);
    let _turn = flight.lock().await;
    if let Some(c) = state.cache.get(key).filter(|c| c.fresh(key.1, min_serial)) {
        return Ok(c);
    }
    let (feed, format, clearance) = key.clone();
    let signer_state = state.clone();
    let rendered = state
        .with_store(move |store| {
            let started = Instant::now();
            let mut body = Vec::new();
            let serial = crate::export_store(store, &feed, format, clearance, &mut body)
                .map_err(|e| e.to_string())?;
            let ms_render = started.elapsed().as_millis() as u64;
            Ok((feed, format, serial, body, ms_render))
        })
        .await?;
    let (feed, format, serial, body, ms_render) = rendered;
    // Sign outside the store lock.
    let rendered = tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let ext = extension(format);
        let comment = format!(
            "timestamp:{now}\tfile:{feed}.{ext}\tfeed:{feed}\tserial:{serial}\tformat:{ext}\thashed"
        );
        let minisig = signer_state
            .signer
            .sign(&body, &comment)
            .map_err(|e| e.to_string())?;
        tracing::info!(
            feed = %feed,
            format = ext,
            serial,
            bytes = body.len(),
            ms_render,
            "export rendered and signed"
        );
        let version = if versioned_by_serial(format) {
            serial.to_string()
        } else {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            body.hash(&mut h);
            format!("{serial}-{:016x}", h.finish())
        };
        Ok::<_, String>(Rendered {
            serial,
            version,
            made: Instant::now(),
            body: Bytes::from(body),
            minisig: Bytes::from(minisig),
            gzip: OnceLock::new(),
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(ApiError::internal)?;
    let rendered = Arc::new(rendered);
    state.cache.put(key.clone(), rendered.clone());
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("br, gzip;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(accepts_gzip(&headers("GZIP")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let tags = ["\"all.rpz.3\"", "\"all.rpz.3.gz\""];
        assert!(etag_matches("\"all.rpz.3\"", &tags));
        assert!(etag_matches("W/\"all.rpz.3.gz\"", &tags));
        assert!(etag_matches("\"x\", \"all.rpz.3\"", &tags));
        assert!(etag_matches("*", &tags));
        assert!(!etag_matches("\"all.rpz.2\"", &tags));
        assert!(!etag_matches("all.rpz.3", &tags));
    }

    #[test]
    fn paths_name_feed_and_format() {
        let t = parse_target("phishing.txt.minisig").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (t.feed.as_str(), t.format, t.signature),
            ("phishing", ExportFormat::Domains, true)
        );
        let e = parse_target("phishing.zip")
            .err()
            .map(|e| (e.status, e.field, e.message));
        assert_eq!(
            e,
            Some((
                StatusCode::NOT_FOUND,
                Some("format"),
                "unknown format \"zip\"; expected one of rpz, hosts, txt, dnsmasq, unbound, adblock, csv, urls".to_owned()
            ))
        );
        assert!(parse_target("phishing").is_err());
    }
}
