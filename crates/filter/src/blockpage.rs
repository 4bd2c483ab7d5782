//! The block page: what a person sees when a walled-garden zone sent their browser
//! here instead of to the site they asked for.
//!
//! A zone with `policy=cname TARGET` answers blocked names with a CNAME to TARGET,
//! a name the operator points at this server's address. The browser still sends the
//! name it wanted in the `Host` header, so the page learns the blocked name from it,
//! looks the rule up in the policy in force, and explains in plain words why the
//! site was blocked, what to do ("Stop! Think Fraud"-style advice), and how to
//! contest a wrong block: a link to the hub's public report endpoint carrying the
//! name, zone and rule. The `Host` header is attacker input: it is checked as a DNS
//! name before the policy sees it, and everything shown is HTML-escaped and every
//! link parameter percent-encoded. HTTP only — an HTTPS site cannot be answered
//! without its certificate, so the browser shows its own error (docs/operating.md).
//! No client address is read or logged.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dns::front::{Policy, Screen};

/// What the page needs: the policy in force and where wrong blocks are reported.
#[derive(Clone)]
pub struct BlockPage {
    screen: Arc<dyn Screen>,
    report_url: Option<Arc<str>>,
}

impl std::fmt::Debug for BlockPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPage")
            .field("report_url", &self.report_url)
            .finish_non_exhaustive()
    }
}

/// Checks a `--report-url`: an absolute http(s) URL without spaces or a fragment.
pub fn check_report_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("report URL {url:?}: expected http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("report URL {url:?}: no host"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '#' | '"' | '<' | '>'))
    {
        return Err(format!(
            "report URL {url:?}: spaces, quotes, '<', '>' or '#' not allowed"
        ));
    }
    Ok(())
}

impl BlockPage {
    pub fn new(screen: Arc<dyn Screen>, report_url: Option<String>) -> BlockPage {
        BlockPage {
            screen,
            report_url: report_url.map(Into::into),
        }
    }

    /// Every path answers with the page.
    pub fn router(self) -> Router {
        Router::new().fallback(page).with_state(self)
    }
}

/// The blocked name from a `Host` header: port and trailing dot removed, lower
/// case; `None` unless it is a plausible DNS name.
pub fn host_name(host: &str) -> Option<String> {
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = name
        .split('.')
        .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-'));
    let bytes_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!name.is_empty() && name.len() <= 253 && labels_ok && bytes_ok).then_some(name)
}

/// `&`, `<`, `>`, `"`, `'` as entities.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_param(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The rule that blocks `name` now: (zone, rule owner).
fn rule_for(screen: &dyn Screen, name: &str) -> Option<(String, String)> {
    // The page never learns the client's address; client-IP rules cannot apply.
    let v = screen.qname(name, IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
    if v.shadow || matches!(v.action, Policy::Passthru) {
        return None;
    }
    Some((v.zone.name().to_owned(), v.rule.to_string()))
}

async fn page(State(page): State<BlockPage>, headers: HeaderMap) -> Response {
    let raw_host = headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    let name = host_name(&raw_host);
    let rule = name.as_deref().and_then(|n| rule_for(&*page.screen, n));
    let body = render(
        &raw_host,
        name.as_deref(),
        rule.as_ref(),
        page.report_url.as_deref(),
    );
    let mut response = (StatusCode::FORBIDDEN, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

/// The page's HTML. `raw_host` is shown (escaped) only when it is not a name.
pub fn render(
    raw_host: &str,
    name: Option<&str>,
    rule: Option<&(String, String)>,
    report_url: Option<&str>,
) -> String {
    let shown = escape_html(name.unwrap_or(raw_host));
    let mut html = String::with_capacity(4096);
    html.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Blocked: this site is reported as dangerous</title>\n\
         <style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5}\
         h1{color:#a00}code{word-break:break-all}</style>\n</head>\n<body>\n",
    );
    let _ = write!(
        html,
        "<h1>This site was blocked to protect you</h1>\n\
         <p>Your internet provider's protective DNS stopped your device from opening \
         <strong><code>{shown}</code></strong>, because it is reported as a <strong>scam, \
         phishing or malware</strong> site: a site that tries to steal passwords, bank \
         details or money, or to install harmful software.</p>\n"
    );
    html.push_str(
        "<h2>Stop. Think. Check.</h2>\n<ul>\n\
         <li><strong>Stop:</strong> take a moment before you give money or information. \
         Criminals pretend to be banks, delivery firms, the police or people you know, and \
         they try to rush you.</li>\n\
         <li><strong>Think:</strong> did a message, call or advert bring you here? It may be \
         fake. Contact the organisation yourself, with a phone number or address you already \
         know, not the one in the message.</li>\n\
         <li><strong>Protect:</strong> if you entered a password, change it now wherever you \
         use it. If you gave card or bank details, call your bank on the number on the back \
         of your card. Report fraud to the police.</li>\n</ul>\n",
    );
    html.push_str("<h2>Think this is a mistake?</h2>\n");
    if let Some((zone, rule)) = rule {
        let _ = writeln!(
            html,
            "<p>The block comes from rule <code>{}</code> of list <code>{}</code>.</p>",
            escape_html(rule),
            escape_html(zone)
        );
    }
    match report_url {
        Some(url) => {
            let mut link = url.to_owned();
            link.push(if url.contains('?') { '&' } else { '?' });
            let _ = write!(link, "name={}", encode_param(name.unwrap_or(raw_host)));
            if let Some((zone, rule)) = rule {
                let _ = write!(
                    link,
                    "&zone={}&rule={}",
                    encode_param(zone),
                    encode_param(rule)
                );
            }
            let _ = writeln!(
                html,
                "<p>If you are sure this site is safe, <a href=\"{}\">report the wrong block</a>. \
                 People check every report; the block is lifted if it was wrong.</p>",
                escape_html(&link)
            );
        }
        None => html.push_str(
            "<p>If you are sure this site is safe, tell your internet provider, naming the site \
             above.</p>\n",
        ),
    }
    html.push_str("</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_becomes_a_name_or_nothing() {
        assert_eq!(
            host_name("Evil.Example:8080").as_deref(),
            Some("evil.example")
        );
        assert_eq!(host_name("evil.example.").as_deref(), Some("evil.example"));
        assert_eq!(host_name("<script>alert(1)</script>"), None);
        assert_eq!(host_name("a..b"), None);
        assert_eq!(host_name(""), None);
        assert_eq!(host_name("[::1]:80"), None);
    }

    #[test]
    fn page_escapes_and_encodes() {
        let html = render(
            "\"><script>alert(1)</script>",
            None,
            None,
            Some("https://hub.example/api/reports"),
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains(
                "https://hub.example/api/reports?name=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
            ),
            "{html}"
        );
        let rule = ("bad.rpz".to_owned(), "*.evil.example".to_owned());
        let html = render(
            "x.evil.example",
            Some("x.evil.example"),
            Some(&rule),
            Some("https://hub.example/r?lang=en"),
        );
        assert!(
            html.contains("href=\"https://hub.example/r?lang=en&amp;name=x.evil.example&amp;zone=bad.rpz&amp;rule=%2A.evil.example\""),
            "{html}"
        );
        assert!(check_report_url("https://hub.example/api/reports").is_ok());
        assert!(check_report_url("javascript:alert(1)").is_err());
        assert!(check_report_url("https:///x").is_err());
        assert!(check_report_url("https://a.example/\"x").is_err());
    }
}
