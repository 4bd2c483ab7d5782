//! Editing the partners of the `hub serve` configuration file: add a partner with a
//! fresh TSIG key (and its API roles, trust and clearance), rotate its key, issue it
//! an API token, list them.
//!
//! The file is the operator's: edits go through `toml_edit`, so its comments, order and
//! other tables stay as they were. Every edit is checked whole before anything is
//! written (the result must parse and validate as a [`ServeConfig`]), then written to a
//! temporary file and renamed, so a failed or interrupted command changes nothing. A
//! running `hub serve` picks the change up by itself (it watches the file).
//!
//! Secrets come from ring's system random generator (32 bytes for hmac-sha256, 64 for
//! hmac-sha512: the hash's block-size guidance of RFC 8945 §6) and are returned to the
//! caller once, to hand to the partner; nothing here logs them. API tokens likewise
//! (32 random bytes); the file keeps only their SHA-256.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use dns::KeyAlgorithm;
use ring::rand::{SecureRandom, SystemRandom};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value, value};

use crate::ServeConfig;
use crate::access::Role;
use crate::keys::write_atomic;
use crate::serve_config::PartnerEntry;

/// A partner to add.
#[derive(Debug, Clone)]
pub struct NewPartner {
    pub name: String,
    pub feeds: Vec<String>,
    pub notify: Vec<SocketAddr>,
    pub allow_ips: Vec<IpAddr>,
    pub algorithm: KeyAlgorithm,
    /// The TSIG key's name; default `sharedefend-<name>`.
    pub key_name: Option<String>,
    /// Make no TSIG key (an API-only partner, or one using `allow_ips`).
    pub no_tsig: bool,
    /// API roles.
    pub roles: Vec<Role>,
    /// Source trust of its submissions (0–1).
    pub trust: Option<f64>,
    /// TLP clearance (`clear`, `green`, `amber`, `amber+strict`, `red`).
    pub tlp: Option<String>,
    /// Independence group of its submissions.
    pub group: Option<String>,
}

/// An API token just made, to show once.
pub struct IssuedToken {
    pub partner: String,
    token: String,
    /// How many earlier tokens the partner still has.
    pub others_kept: usize,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("partner", &self.partner)
            .field("others_kept", &self.others_kept)
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// The token, for the one time it is shown.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// A TSIG key just made, to show once.
pub struct IssuedKey {
    pub partner: String,
    pub key_name: String,
    pub algorithm: KeyAlgorithm,
    secret: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("partner", &self.partner)
            .field("key_name", &self.key_name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl IssuedKey {
    /// The key as BIND's `named.conf` (and Knot's `keymgr` import, and `dig -k`) read
    /// it: `key "name" { algorithm hmac-sha256; secret "…"; };`
    pub fn bind_stanza(&self) -> String {
        format!(
            "key \"{}\" {{\n    algorithm {};\n    secret \"{}\";\n}};\n",
            self.key_name,
            self.algorithm.name(),
            self.secret
        )
    }

    /// `algorithm:name:secret`, as `dig -y` and `kdig -y` take it.
    pub fn dig_y(&self) -> String {
        format!(
            "{}:{}:{}",
            self.algorithm.name(),
            self.key_name,
            self.secret
        )
    }
}

/// Why an edit was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file as it is (before the edit) is not a valid configuration.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// An argument is wrong; `field` names it.
    #[error("{field}: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    #[error("the system random number generator failed")]
    Random,
}

fn field(field: &'static str, message: impl Into<String>) -> PartnerError {
    PartnerError::Field {
        field,
        message: message.into(),
    }
}

/// The feed names a partner may be granted: the hub's feeds, or `*` for all.
fn check_feeds(feeds: &[String]) -> Result<(), PartnerError> {
    if feeds.is_empty() {
        return Err(field("feeds", "at least one feed is needed"));
    }
    for f in feeds {
        if f != "*" && !analysis::DEFAULT_FEEDS.contains(&f.as_str()) {
            return Err(field(
                "feeds",
                format!(
                    "unknown feed {f:?}; expected {} or *",
                    analysis::DEFAULT_FEEDS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A partner name: what a TSIG key name label may hold, 1 to 63 characters.
fn check_name(what: &'static str, name: &str) -> Result<(), PartnerError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(field(
            what,
            format!("{name:?}: use 1 to 63 letters, digits, '-' or '_', not starting with '-'"),
        ))
    }
}

/// A fresh secret for `algorithm`, base64.
fn new_secret(algorithm: KeyAlgorithm) -> Result<String, PartnerError> {
    let mut bytes = vec![
        0u8;
        match algorithm {
            KeyAlgorithm::HmacSha256 => 32,
            KeyAlgorithm::HmacSha512 => 64,
        }
    ];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PartnerError::Random)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The file's text and parsed configuration; an absent file is an empty one.
fn load(path: &Path, must_exist: bool) -> Result<(String, ServeConfig), PartnerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
        Err(source) => {
            return Err(PartnerError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let config = ServeConfig::parse(&text).map_err(|e| PartnerError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((text, config))
}

fn document(path: &Path, text: &str) -> Result<DocumentMut, PartnerError> {
    text.parse::<DocumentMut>()
        .map_err(|e| PartnerError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Checks the edited document whole, then writes it atomically, keeping the file's
/// mode (0600 for a new file: it holds secrets).
fn store(path: &Path, doc: &DocumentMut) -> Result<(), PartnerError> {
    let text = doc.to_string();
    ServeConfig::parse(&text).map_err(|e| PartnerError::Config {
        path: path.to_path_buf(),
        message: format!("the edited file would not be valid: {e}"),
    })?;
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o600)
    };
    #[cfg(not(unix))]
    let mode = 0o600;
    write_atomic(path, text.as_bytes(), mode).map_err(|source| PartnerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The partners in the file (secrets stay inside their redacting type).
pub fn list(path: &Path) -> Result<Vec<PartnerEntry>, PartnerError> {
    Ok(load(path, true)?.1.partners)
}

/// Adds a partner, with a new TSIG key unless `no_tsig`; returns the key to hand over.
pub fn add(path: &Path, new: &NewPartner) -> Result<Option<IssuedKey>, PartnerError> {
    check_name("name", &new.name)?;
    let wants_dns = !new.no_tsig || !new.allow_ips.is_empty();
    if wants_dns || !new.feeds.is_empty() {
        check_feeds(&new.feeds)?;
    }
    if !wants_dns && new.roles.is_empty() {
        return Err(field(
            "roles",
            "a partner without a TSIG key or allowed addresses needs API roles",
        ));
    }
    if let Some(t) = new.trust
        && !(0.0..=1.0).contains(&t)
    {
        return Err(field("trust", format!("{t} is not between 0 and 1")));
    }
    if let Some(t) = &new.tlp
        && indicator::Tlp::from_label(t).is_none()
    {
        return Err(field(
            "tlp",
            format!("{t:?} is not one of clear, green, amber, amber+strict, red"),
        ));
    }
    let key_name = new
        .key_name
        .clone()
        .unwrap_or_else(|| format!("sharedefend-{}", new.name));
    check_name("tsig-name", &key_name)?;
    let (text, config) = load(path, false)?;
    if config.partners.iter().any(|p| p.name == new.name) {
        return Err(field(
            "name",
            format!("a partner {:?} is already in {}", new.name, path.display()),
        ));
    }
    if config.partners.iter().any(|p| {
        p.tsig
            .as_ref()
            .is_some_and(|t| t.name.eq_ignore_ascii_case(&key_name))
    }) {
        return Err(field(
            "tsig-name",
            format!("the key name {key_name:?} is already used"),
        ));
    }
    let secret = if new.no_tsig {
        None
    } else {
        Some(new_secret(new.algorithm)?)
    };
    let mut doc = document(path, &text)?;
    let mut table = Table::new();
    table.insert("name", value(new.name.as_str()));
    if !new.feeds.is_empty() {
        table.insert(
            "feeds",
            value(Array::from_iter(new.feeds.iter().map(String::as_str))),
        );
    }
    if !new.roles.is_empty() {
        table.insert(
            "roles",
            value(Array::from_iter(new.roles.iter().map(|r| r.as_str()))),
        );
    }
    if let Some(t) = new.trust {
        table.insert("trust", value(t));
    }
    if let Some(t) = &new.tlp {
        table.insert("tlp", value(t.to_ascii_lowercase()));
    }
    if let Some(g) = &new.group {
        table.insert("group", value(g.as_str()));
    }
    if !new.notify.is_empty() {
        let notify = Array::from_iter(new.notify.iter().map(ToString::to_string));
        table.insert("notify", value(notify));
    }
    if !new.allow_ips.is_empty() {
        let ips = Array::from_iter(new.allow_ips.iter().map(ToString::to_string));
        table.insert("allow_ips", value(ips));
    }
    if let Some(secret) = &secret {
        let mut tsig = InlineTable::new();
        tsig.insert("name", Value::from(key_name.as_str()));
        tsig.insert("algorithm", Value::from(new.algorithm.name()));
        tsig.insert("secret", Value::from(secret.as_str()));
        table.insert("tsig", value(tsig));
    }
    // Comments at the end of the file belong before what is appended, so the file
    // reads as it did with the new table added below.
    let trailing = doc.trailing().as_str().unwrap_or_default().to_owned();
    if !trailing.trim().is_empty() {
        let mut prefix = trailing;
        if !prefix.ends_with('\n') {
            prefix.push('\n');
        }
        table.decor_mut().set_prefix(prefix);
        doc.set_trailing("");
    }
    match doc.get_mut("partner") {
        None => {
            let mut array = ArrayOfTables::new();
            array.push(table);
            doc.insert("partner", Item::ArrayOfTables(array));
        }
        Some(Item::ArrayOfTables(array)) => array.push(table),
        Some(_) => {
            return Err(PartnerError::Config {
                path: path.to_path_buf(),
                message: "`partner` is not an array of [[partner]] tables".to_owned(),
            });
        }
    }
    store(path, &doc)?;
    Ok(secret.map(|secret| IssuedKey {
        partner: new.name.clone(),
        key_name,
        algorithm: new.algorithm,
        secret,
    }))
}

/// Issues `name` a new API token: its SHA-256 joins the partner's `tokens` (or
/// replaces them all with `replace`, which revokes the old ones); returns the token
/// to hand over. The partner needs API roles.
pub fn issue_token(path: &Path, name: &str, replace: bool) -> Result<IssuedToken, PartnerError> {
    let (text, config) = load(path, true)?;
    let Some(partner) = config.partners.iter().find(|p| p.name == name) else {
        return Err(field(
            "name",
            format!("no partner {name:?} in {}", path.display()),
        ));
    };
    if partner.roles.is_empty() {
        return Err(field(
            "name",
            format!(
                "partner {name:?} has no API roles: a token would grant nothing (add roles = [...] first)"
            ),
        ));
    }
    let others_kept = if replace { 0 } else { partner.tokens.len() };
    let token = crate::access::new_token().ok_or(PartnerError::Random)?;
    let mut entry = InlineTable::new();
    entry.insert(
        "sha256",
        Value::from(crate::access::token_hash(&token).as_str()),
    );
    entry.insert(
        "created",
        Value::from(store::stored_time(indicator::Timestamp::now()).to_string()),
    );
    let mut doc = document(path, &text)?;
    let Some(table) = doc
        .get_mut("partner")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
        })
    else {
        return Err(PartnerError::Config {
            path: path.to_path_buf(),
            message: format!("partner {name:?}: its [[partner]] table was not found"),
        });
    };
    match table.get_mut("tokens").and_then(Item::as_array_mut) {
        Some(tokens) if !replace => tokens.push(entry),
        _ => {
            let mut tokens = Array::new();
            tokens.push(entry);
            table.insert("tokens", value(tokens));
        }
    }
    store(path, &doc)?;
    Ok(IssuedToken {
        partner: name.to_owned(),
        token,
        others_kept,
    })
}

/// Replaces a partner's TSIG secret (same key name and algorithm); returns the new key.
pub fn rotate_tsig(path: &Path, name: &str) -> Result<IssuedKey, PartnerError> {
    let (text, config) = load(path, true)?;
    let Some(partner) = config.partners.iter().find(|p| p.name == name) else {
        return Err(field(
            "name",
            format!("no partner {name:?} in {}", path.display()),
        ));
    };
    let Some(tsig) = &partner.tsig else {
        return Err(field(
            "name",
            format!("partner {name:?} has no tsig key to rotate (it uses allow_ips only)"),
        ));
    };
    let secret = new_secret(tsig.algorithm)?;
    let mut doc = document(path, &text)?;
    let entry = doc
        .get_mut("partner")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|a| {
            a.iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
        })
        .and_then(|t| t.get_mut("tsig"))
        .and_then(Item::as_table_like_mut)
        .and_then(|t| t.get_mut("secret"));
    match entry {
        Some(item) => {
            let decor = item.as_value().map(|v| v.decor().clone());
            let mut fresh = Value::from(secret.as_str());
            if let Some(d) = decor {
                *fresh.decor_mut() = d;
            }
            *item = Item::Value(fresh);
        }
        None => {
            return Err(PartnerError::Config {
                path: path.to_path_buf(),
                message: format!("partner {name:?}: tsig.secret not found where expected"),
            });
        }
    }
    store(path, &doc)?;
    Ok(IssuedKey {
        partner: name.to_owned(),
        key_name: tsig.name.clone(),
        algorithm: tsig.algorithm,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sharedefend-partners-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir.join("hub.toml")
    }

    fn cleanup(path: &Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn partner(name: &str, feeds: &[&str]) -> NewPartner {
        NewPartner {
            name: name.to_owned(),
            feeds: feeds.iter().map(|f| (*f).to_owned()).collect(),
            notify: vec!["127.0.0.1:53".parse().unwrap_or_else(|e| panic!("{e}"))],
            allow_ips: Vec::new(),
            algorithm: KeyAlgorithm::HmacSha256,
            key_name: None,
            no_tsig: false,
            roles: Vec::new(),
            trust: None,
            tlp: None,
            group: None,
        }
    }

    fn err<T>(r: Result<T, PartnerError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn add_keeps_comments_and_rotate_changes_only_the_secret() {
        let path = temp("edit");
        let original = "# the hub's config\nlisten = \"127.0.0.1:5300\" # dns\n\n[http]\nlisten = \"127.0.0.1:8053\"\n";
        std::fs::write(&path, original).unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let key = add(&path, &partner("isp-a", &["phishing", "malware"]))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no key made"));
        assert_eq!(key.key_name, "sharedefend-isp-a");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(text.starts_with(original), "{text}");
        assert!(text.contains(&key.secret), "{text}");
        let stanza = key.bind_stanza();
        assert!(
            stanza.starts_with(
                "key \"sharedefend-isp-a\" {\n    algorithm hmac-sha256;\n    secret \""
            ),
            "{stanza}"
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&key.secret)
                .map(|b| b.len())
                .ok(),
            Some(32)
        );

        let second = add(&path, &partner("isp-b", &["*"]))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no key made"));
        let rotated = rotate_tsig(&path, "isp-a").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(rotated.secret, key.secret);
        let after = std::fs::read_to_string(&path).unwrap_or_default();
        // Only the secret changed: with the old one put back, the file is what it was
        // plus the second partner.
        assert!(
            after
                .replace(&rotated.secret, &key.secret)
                .starts_with(&text),
            "{after}"
        );
        assert!(
            after.contains(&second.secret) && !after.contains(&key.secret),
            "{after}"
        );
        let partners = list(&path).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = partners.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["isp-a", "isp-b"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o640, "an existing file keeps its mode");
        }
        cleanup(&path);
    }

    #[test]
    fn a_comment_at_the_end_stays_above_the_new_partner() {
        let path = temp("trailing");
        std::fs::write(&path, "# partners of the hub\n").unwrap_or_else(|e| panic!("{e}"));
        add(&path, &partner("isp", &["phishing"])).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            text.starts_with("# partners of the hub\n[[partner]]\nname = \"isp\"\n"),
            "{text}"
        );
        add(&path, &partner("isp2", &["phishing"])).unwrap_or_else(|e| panic!("{e}"));
        let text2 = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(text2.starts_with(&text), "{text2}");
        cleanup(&path);
    }

    #[test]
    fn a_new_file_is_private_and_bad_arguments_change_nothing() {
        let path = temp("bad");
        add(&path, &partner("isp", &["phishing"])).unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            err(add(&path, &partner("isp", &["phishing"])))
                .starts_with("name: a partner \"isp\" is already in")
        );
        assert_eq!(
            err(add(&path, &partner("other", &["phish"]))),
            "feeds: unknown feed \"phish\"; expected phishing, malware, c2, scam, all or *"
        );
        assert!(
            err(add(&path, &partner("bad name", &["phishing"])))
                .starts_with("name: \"bad name\": use 1 to 63")
        );
        assert_eq!(
            err(add(&path, &partner("x", &[]))),
            "feeds: at least one feed is needed"
        );
        assert!(err(rotate_tsig(&path, "nobody")).starts_with("name: no partner \"nobody\""));
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), before);
        std::fs::write(&path, "[[partner]]\nname = 3\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(err(add(&path, &partner("y", &["phishing"]))).contains("line 2"));
        assert!(!format!("{:?}", rotate_tsig(&path, "y").err()).is_empty());
        cleanup(&path);
    }

    #[test]
    fn tokens_are_stored_hashed_added_or_replaced() {
        let path = temp("tokens");
        assert!(err(issue_token(&path, "nobody", false)).contains("No such file"));
        add(&path, &partner("dns-only", &["phishing"])).unwrap_or_else(|e| panic!("{e}"));
        let api = NewPartner {
            no_tsig: true,
            roles: vec![Role::Contributor, Role::Consumer],
            trust: Some(0.7),
            tlp: Some("AMBER".into()),
            feeds: Vec::new(),
            notify: Vec::new(),
            ..partner("cert", &[])
        };
        assert!(
            add(&path, &api).unwrap_or_else(|e| panic!("{e}")).is_none(),
            "no tsig key for an API-only partner"
        );
        assert!(
            err(issue_token(&path, "dns-only", false))
                .starts_with("name: partner \"dns-only\" has no API roles")
        );
        let first = issue_token(&path, "cert", false).unwrap_or_else(|e| panic!("{e}"));
        let second = issue_token(&path, "cert", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.others_kept, second.others_kept), (0, 1));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains(first.token()) && !text.contains(second.token()),
            "{text}"
        );
        assert!(
            text.contains(&crate::access::token_hash(first.token())),
            "{text}"
        );
        assert!(
            text.contains("tlp = \"amber\"") && text.contains("trust = 0.7"),
            "{text}"
        );
        let config = ServeConfig::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let access = crate::access::Access::new(&config.partners);
        assert_eq!(access.tokens(), 2);
        let who = access
            .partner(second.token())
            .unwrap_or_else(|| panic!("token unknown"));
        assert_eq!(
            (who.name.as_str(), who.clearance),
            ("cert", indicator::Tlp::Amber)
        );
        assert!(!format!("{second:?}").contains(second.token()));

        let third = issue_token(&path, "cert", true).unwrap_or_else(|e| panic!("{e}"));
        let config = load(&path, true).unwrap_or_else(|e| panic!("{e}")).1;
        let access = crate::access::Access::new(&config.partners);
        assert!(
            access.partner(first.token()).is_none() && access.partner(second.token()).is_none()
        );
        assert!(access.partner(third.token()).is_some());
        cleanup(&path);
    }
}
