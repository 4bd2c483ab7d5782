//! The last good copy of each policy zone, on disk.
//!
//! A filter that cannot reach its primary must keep protecting, so every zone it
//! follows is saved in `--state DIR` as an RPZ master file (`<apex>.zone`, written
//! by `formats`' [`RecordWriter`], loadable by BIND and `named-checkzone`) and read
//! back at start. A copy is replaced atomically: the new one is written to a
//! temporary file in the same directory, flushed to the disk (`fsync`), renamed over
//! the old one, and the directory synced, so after a crash there is the old copy or
//! the new one, never half of one. An IXFR is applied by streaming the saved copy
//! into the new one, so a zone is never held in memory here: memory grows with the
//! size of a change, not of the zone. The file's modification time records when the
//! primary last confirmed the copy (the SOA expire timer counts from it).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use dns::secondary::{Diff, Soa, ZoneRecord};
use formats::readers::rpz::RecordReader;
use formats::write::rpz::RecordWriter;

/// Why a saved copy could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file is not an intact saved zone.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// An IXFR does not fit the saved copy (it removes a record the copy does not
    /// hold): the copy is left as it was.
    #[error("the differences do not apply: {0}")]
    Inconsistent(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: &Path) -> Result<StateDir, StateError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        Ok(StateDir {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved copy of zone `apex`: `<apex>.zone`, bytes other than letters,
    /// digits, `-`, `_` and `.` written `%XX`.
    pub fn zone_path(&self, apex: &str) -> PathBuf {
        let mut name = String::new();
        for b in apex.trim_end_matches('.').bytes() {
            let b = b.to_ascii_lowercase();
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                name.push(char::from(b));
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        if name.is_empty() || name.starts_with('.') {
            name.insert_str(0, "root");
        }
        name.push_str(".zone");
        self.dir.join(name)
    }
}

/// A new copy of a zone being written; it replaces the saved one only on
/// [`commit`](ZoneFileWriter::commit), and is removed if dropped before.
#[derive(Debug)]
pub struct ZoneFileWriter {
    tmp: PathBuf,
    path: PathBuf,
    writer: Option<RecordWriter<File>>,
}

impl ZoneFileWriter {
    /// Starts the copy of zone `apex` at `path` with its SOA.
    pub fn create(path: &Path, apex: &str, soa: &Soa) -> Result<ZoneFileWriter, StateError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(io_error(&tmp))?;
        let mut w = ZoneFileWriter {
            writer: None,
            path: path.to_owned(),
            tmp,
        };
        let mut writer = RecordWriter::new(file, apex).map_err(io_error(&w.tmp))?;
        writer
            .record("@", soa.ttl, "SOA", &soa.rdata())
            .map_err(io_error(&w.tmp))?;
        w.writer = Some(writer);
        Ok(w)
    }

    pub fn record(&mut self, r: &ZoneRecord) -> Result<(), StateError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(StateError::Corrupt {
                path: self.tmp.clone(),
                message: "written after commit".into(),
            });
        };
        writer
            .record(&r.owner, r.ttl, &r.rtype, &r.data)
            .map_err(io_error(&self.tmp))
    }

    /// Copies a record line of a saved copy as it is.
    pub fn copy_line(&mut self, line: &str) -> Result<(), StateError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(StateError::Corrupt {
                path: self.tmp.clone(),
                message: "written after commit".into(),
            });
        };
        writer.copy_line(line).map_err(io_error(&self.tmp))
    }

    /// Records written, the SOA included.
    pub fn records(&self) -> u64 {
        self.writer.as_ref().map_or(0, RecordWriter::records)
    }

    /// Makes the new copy the saved one: flush, fsync, rename, fsync the directory.
    pub fn commit(mut self) -> Result<(), StateError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let file = writer.finish().map_err(io_error(&self.tmp))?;
        file.sync_all().map_err(io_error(&self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(io_error(&self.path))?;
        if let Some(dir) = self.path.parent() {
            // A directory opened read-only can be synced on Linux; elsewhere this
            // may fail and the rename is still in place.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for ZoneFileWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// What a saved copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedZone {
    pub soa: Soa,
    /// Records other than the SOA.
    pub records: u64,
    /// When the primary last confirmed this copy (the file's modification time).
    pub confirmed: SystemTime,
}

/// Reads the saved copy of `apex` at `path` record by record (the SOA is returned,
/// the others handed to `visit`). The whole file is checked: any bad line, a
/// missing or second SOA, is [`StateError::Corrupt`].
pub fn read_zone_file(
    path: &Path,
    apex: &str,
    visit: &mut dyn FnMut(ZoneRecord) -> Result<(), String>,
) -> Result<SavedZone, StateError> {
    stream(path, apex, &mut |_| false, &mut |_| Ok(()), visit)
}

/// The owner of a record line as written by [`ZoneFileWriter`] (its first field),
/// or `None` for a directive, a comment or a continued entry.
fn line_owner(line: &str) -> Option<&str> {
    let first = *line.as_bytes().first()?;
    if matches!(first, b' ' | b'\t' | b';' | b'$' | b'\n' | b'\r') {
        return None;
    }
    line.split([' ', '\t']).next()
}

/// Reads the saved copy line by line. After the SOA, a record line whose owner
/// `copy_owner` selects is handed to `copy` as it is, unread (the copy is ours and
/// was checked when loaded); every other line is read and its records handed to
/// `visit`.
fn stream(
    path: &Path,
    apex: &str,
    copy_owner: &mut dyn FnMut(&str) -> bool,
    copy: &mut dyn FnMut(&str) -> Result<(), String>,
    visit: &mut dyn FnMut(ZoneRecord) -> Result<(), String>,
) -> Result<SavedZone, StateError> {
    let file = File::open(path).map_err(io_error(path))?;
    let confirmed = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(io_error(path))?;
    let corrupt = |message: String| StateError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let mut reader = RecordReader::new(apex);
    let mut soa: Option<Soa> = None;
    let mut records = 0u64;
    let mut lines = BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = lines.read_line(&mut line).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                corrupt("not UTF-8 text".into())
            } else {
                StateError::Io {
                    path: path.to_owned(),
                    source: e,
                }
            }
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        if soa.is_some()
            && let Some(owner) = line_owner(&line)
            && owner != "@"
            && copy_owner(owner)
        {
            records += 1;
            copy(&line).map_err(|e| corrupt(format!("line {number}: {e}")))?;
            // Keep the reader's line count in step.
            reader
                .read("\n", &mut |_| Ok(()))
                .map_err(|e| corrupt(e.to_string()))?;
            continue;
        }
        reader
            .read(&line, &mut |r| {
                if r.rtype == "SOA" && r.owner == "@" {
                    if soa.is_some() {
                        return Err("a second SOA".into());
                    }
                    soa = Some(
                        Soa::from_rdata(r.ttl, &r.rdata)
                            .ok_or_else(|| format!("SOA {:?} not as written", r.rdata))?,
                    );
                    return Ok(());
                }
                if soa.is_none() {
                    return Err("a record before the SOA".into());
                }
                records += 1;
                visit(ZoneRecord {
                    owner: r.owner,
                    ttl: r.ttl,
                    rtype: r.rtype,
                    data: r.rdata,
                })
            })
            .map_err(|e| corrupt(e.to_string()))?;
    }
    let soa = soa.ok_or_else(|| corrupt("no SOA".into()))?;
    Ok(SavedZone {
        soa,
        records,
        confirmed,
    })
}

/// Records the primary's confirmation that the copy is current: the file's
/// modification time becomes now.
pub fn touch(path: &Path) -> Result<(), StateError> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .map_err(io_error(path))
}

/// One owner's records before or after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecords {
    /// Relative to the apex (`@` for the apex).
    pub owner: String,
    pub records: Vec<ZoneRecord>,
}

impl OwnerRecords {
    /// The owner's records read as policy by `formats`' RPZ reader (`None` for the
    /// apex and DNSSEC records), for the matcher: `policy` turns the record into a
    /// rule.
    pub fn policy(&self, apex: &str) -> Result<Option<formats::Record>, String> {
        let pairs: Vec<(&str, &str)> = self
            .records
            .iter()
            .map(|r| (r.rtype.as_str(), r.data.as_str()))
            .collect();
        formats::readers::rpz::owner_record(apex, &self.owner, &pairs, 0)
    }
}

/// A change to a zone, owner by owner (an RPZ rule is an owner with its records):
/// every owner whose records changed is in `removed` with its records before (if it
/// had any) and in `added` with its records after (if it has any). Applying it is
/// "remove these rules, then add those".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerDelta {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<OwnerRecords>,
    pub added: Vec<OwnerRecords>,
}

/// The identity of a record: owner, type, data (not the TTL).
type RecordKey = (String, String, String);

fn key(r: &ZoneRecord) -> RecordKey {
    (r.owner.clone(), r.rtype.clone(), r.data.clone())
}

/// What the differences do to one record.
#[derive(Debug)]
struct Change {
    /// The copy must hold the record (the first thing done to it was a removal).
    must_exist: bool,
    /// Whether it is there after the differences, and with which TTL.
    after: Option<u32>,
    seen: bool,
    written: bool,
}

/// Applies `diffs` (chained from the saved copy's serial to `soa.serial`) to the
/// saved copy at `path`, writing the result as the new saved copy. Returns the
/// change owner by owner. A removal of a record the copy does not hold is
/// [`StateError::Inconsistent`] and nothing is written; adding a record the copy
/// holds updates its TTL.
pub fn apply_diffs(
    path: &Path,
    apex: &str,
    from: u32,
    soa: &Soa,
    diffs: &[Diff],
) -> Result<OwnerDelta, StateError> {
    let mut changes: HashMap<RecordKey, Change> = HashMap::new();
    for diff in diffs {
        for r in &diff.removed {
            match changes.get_mut(&key(r)) {
                None => {
                    changes.insert(
                        key(r),
                        Change {
                            must_exist: true,
                            after: None,
                            seen: false,
                            written: false,
                        },
                    );
                }
                Some(c) if c.after.is_some() => c.after = None,
                Some(_) => {
                    return Err(StateError::Inconsistent(format!(
                        "serial {} removes {} {} {} twice",
                        diff.to, r.owner, r.rtype, r.data
                    )));
                }
            }
        }
        for r in &diff.added {
            changes
                .entry(key(r))
                .and_modify(|c| c.after = Some(r.ttl))
                .or_insert(Change {
                    must_exist: false,
                    after: Some(r.ttl),
                    seen: false,
                    written: false,
                });
        }
    }
    let touched: HashSet<String> = changes.keys().map(|(o, _, _)| o.clone()).collect();
    let mut before: HashMap<String, Vec<ZoneRecord>> = HashMap::new();
    let mut writer = ZoneFileWriter::create(path, apex, soa)?;
    // Both closures write to the new copy, one at a time.
    let out = std::cell::RefCell::new((&mut writer, None::<StateError>));
    let saved = stream(
        path,
        apex,
        &mut |owner| !touched.contains(owner),
        &mut |line| {
            let mut out = out.borrow_mut();
            let (w, failed) = &mut *out;
            w.copy_line(line).map_err(|e| {
                let text = e.to_string();
                *failed = Some(e);
                text
            })
        },
        &mut |r| {
            if touched.contains(r.owner.as_str()) {
                before.entry(r.owner.clone()).or_default().push(r.clone());
            }
            let keep = match changes.get_mut(&key(&r)) {
                None => Some(r),
                Some(c) => {
                    c.seen = true;
                    match c.after {
                        Some(ttl) if !c.written => {
                            c.written = true;
                            Some(ZoneRecord { ttl, ..r })
                        }
                        _ => None,
                    }
                }
            };
            let mut out = out.borrow_mut();
            let (w, failed) = &mut *out;
            if let Some(r) = keep
                && let Err(e) = w.record(&r)
            {
                let text = e.to_string();
                *failed = Some(e);
                return Err(text);
            }
            Ok(())
        },
    );
    if let (_, Some(e)) = out.into_inner() {
        return Err(e);
    }
    let saved = saved?;
    if saved.soa.serial != from {
        return Err(StateError::Inconsistent(format!(
            "the saved copy is at serial {}, the differences start at {from}",
            saved.soa.serial
        )));
    }
    let mut missing = changes
        .iter()
        .filter(|(_, c)| c.must_exist && !c.seen)
        .map(|((o, t, d), _)| format!("{o} {t} {d}"));
    if let Some(first) = missing.next() {
        return Err(StateError::Inconsistent(format!(
            "a removed record is not in the zone: {first} (and {} more)",
            missing.count()
        )));
    }
    let mut after: HashMap<String, Vec<ZoneRecord>> = HashMap::new();
    for (owner, records) in &before {
        for r in records {
            match changes.get(&key(r)) {
                None => after.entry(owner.clone()).or_default().push(r.clone()),
                Some(c) => {
                    if let Some(ttl) = c.after {
                        after
                            .entry(owner.clone())
                            .or_default()
                            .push(ZoneRecord { ttl, ..r.clone() });
                    }
                }
            }
        }
    }
    // New records, in the order the differences added them.
    for diff in diffs {
        for r in &diff.added {
            let Some(c) = changes.get_mut(&key(r)) else {
                continue;
            };
            if let (Some(ttl), false) = (c.after, c.written) {
                c.written = true;
                let r = ZoneRecord { ttl, ..r.clone() };
                writer.record(&r)?;
                after.entry(r.owner.clone()).or_default().push(r);
            }
        }
    }
    writer.commit()?;
    let mut delta = OwnerDelta {
        from,
        to: soa.serial,
        removed: Vec::new(),
        added: Vec::new(),
    };
    let mut owners: Vec<&str> = touched.iter().map(String::as_str).collect();
    owners.sort_unstable();
    for owner in owners {
        let old = before.remove(owner).unwrap_or_default();
        let new = after.remove(owner).unwrap_or_default();
        if old == new {
            continue;
        }
        if !old.is_empty() {
            delta.removed.push(OwnerRecords {
                owner: owner.to_owned(),
                records: old,
            });
        }
        if !new.is_empty() {
            delta.added.push(OwnerRecords {
                owner: owner.to_owned(),
                records: new,
            });
        }
    }
    Ok(delta)
}

/// Writes a whole zone as the saved copy (tests, and a zone read elsewhere).
pub fn write_zone_file(
    path: &Path,
    apex: &str,
    soa: &Soa,
    records: &[ZoneRecord],
) -> Result<(), StateError> {
    let mut w = ZoneFileWriter::create(path, apex, soa)?;
    for r in records {
        w.record(r)?;
    }
    w.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APEX: &str = "rpz.example";

    fn soa(serial: u32) -> Soa {
        Soa {
            ttl: 300,
            mname: "localhost.".into(),
            rname: "root.localhost.".into(),
            serial,
            refresh: 60,
            retry: 10,
            expire: 3600,
            minimum: 300,
        }
    }

    fn rec(owner: &str, rtype: &str, data: &str) -> ZoneRecord {
        ZoneRecord {
            owner: owner.into(),
            ttl: 300,
            rtype: rtype.into(),
            data: data.into(),
        }
    }

    fn dir(tag: &str) -> StateDir {
        let d =
            std::env::temp_dir().join(format!("sharedefend-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        StateDir::new(&d).unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_all(path: &Path) -> (Soa, Vec<ZoneRecord>) {
        let mut out = Vec::new();
        let saved = read_zone_file(path, APEX, &mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        (saved.soa, out)
    }

    #[test]
    fn saved_copy_round_trips() {
        let d = dir("round");
        let path = d.zone_path(APEX);
        assert!(path.ends_with("rpz.example.zone"));
        assert!(d.zone_path("odd/zone").ends_with("odd%2Fzone.zone"));
        let records = vec![
            rec("@", "NS", "localhost."),
            rec("evil.example", "CNAME", "."),
            rec("*.evil.example", "CNAME", "*."),
            rec("page.example", "TXT", "\"blocked; see (this)\""),
            rec("page.example", "A", "192.0.2.1"),
        ];
        write_zone_file(&path, APEX, &soa(4), &records).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_all(&path), (soa(4), records));
        // It is an RPZ as our own reader reads one.
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let parsed = formats::readers::rpz::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.records.len(), 3);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(d.dir())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(d.dir());
    }

    #[test]
    fn a_damaged_copy_is_refused() {
        let d = dir("damaged");
        let path = d.zone_path(APEX);
        for (text, expect) in [
            ("$ORIGIN rpz.example.\n", "no SOA"),
            ("$ORIGIN rpz.example.\nx 1 IN CNAME .\n", "before the SOA"),
            (
                "$ORIGIN rpz.example.\n@ 1 IN SOA a. b. 1 2 3 4 5\nx 1 IN A 300.1.1.1\n",
                "line 3",
            ),
            (
                "$ORIGIN rpz.example.\n@ 1 IN SOA a. b. 1 2 3 4 5\n@ 1 IN SOA a. b. 1 2 3 4 5\n",
                "second SOA",
            ),
        ] {
            fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            let e = read_zone_file(&path, APEX, &mut |_| Ok(()));
            let text = e.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains(expect), "{text}");
        }
        fs::write(&path, b"$ORIGIN rpz.example.\n\xff\xfe\n").unwrap_or_else(|e| panic!("{e}"));
        let e = read_zone_file(&path, APEX, &mut |_| Ok(()));
        assert!(matches!(e, Err(StateError::Corrupt { .. })), "{e:?}");
        let _ = fs::remove_dir_all(d.dir());
    }

    #[test]
    fn differences_apply_owner_by_owner() {
        let d = dir("apply");
        let path = d.zone_path(APEX);
        write_zone_file(
            &path,
            APEX,
            &soa(4),
            &[
                rec("@", "NS", "localhost."),
                rec("a.example", "CNAME", "."),
                rec("b.example", "CNAME", "."),
                rec("page.example", "A", "192.0.2.1"),
                rec("page.example", "A", "192.0.2.2"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let diffs = vec![
            Diff {
                from: 4,
                to: 5,
                removed: vec![
                    rec("a.example", "CNAME", "."),
                    rec("page.example", "A", "192.0.2.2"),
                ],
                added: vec![rec("c.example", "CNAME", "rpz-drop.")],
            },
            Diff {
                from: 5,
                to: 6,
                removed: vec![rec("c.example", "CNAME", "rpz-drop.")],
                added: vec![
                    rec("c.example", "CNAME", "*."),
                    rec("a.example", "CNAME", "."),
                ],
            },
        ];
        let delta = apply_diffs(&path, APEX, 4, &soa(6), &diffs).unwrap_or_else(|e| panic!("{e}"));
        let (got_soa, records) = read_all(&path);
        assert_eq!(got_soa.serial, 6);
        let shown: Vec<String> = records
            .iter()
            .map(|r| format!("{} {} {}", r.owner, r.rtype, r.data))
            .collect();
        assert_eq!(
            shown,
            [
                "@ NS localhost.",
                "a.example CNAME .",
                "b.example CNAME .",
                "page.example A 192.0.2.1",
                "c.example CNAME *.",
            ]
        );
        // a.example: removed then re-added, no change. page.example: one of two A
        // records gone. c.example: new.
        let owners = |v: &[OwnerRecords]| -> Vec<String> {
            v.iter()
                .map(|o| {
                    let data: Vec<&str> = o.records.iter().map(|r| r.data.as_str()).collect();
                    format!("{} [{}]", o.owner, data.join(", "))
                })
                .collect()
        };
        assert_eq!(
            owners(&delta.removed),
            ["page.example [192.0.2.1, 192.0.2.2]"]
        );
        assert_eq!(
            owners(&delta.added),
            ["c.example [*.]", "page.example [192.0.2.1]"]
        );
        assert_eq!((delta.from, delta.to), (4, 6));
        let policy = delta.added[0]
            .policy(APEX)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a rule"));
        assert_eq!(policy.value, "c.example");
        let _ = fs::remove_dir_all(d.dir());
    }

    #[test]
    fn differences_that_do_not_fit_change_nothing() {
        let d = dir("misfit");
        let path = d.zone_path(APEX);
        let records = vec![rec("@", "NS", "localhost."), rec("a.example", "CNAME", ".")];
        write_zone_file(&path, APEX, &soa(4), &records).unwrap_or_else(|e| panic!("{e}"));
        let before = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let bad = [
            // Removes what is not there.
            (4, vec![rec("zz.example", "CNAME", ".")]),
            // Starts at another serial.
            (3, vec![rec("a.example", "CNAME", ".")]),
        ];
        for (from, removed) in bad {
            let diffs = vec![Diff {
                from,
                to: 5,
                removed,
                added: vec![rec("new.example", "CNAME", ".")],
            }];
            let e = apply_diffs(&path, APEX, from, &soa(5), &diffs);
            assert!(matches!(e, Err(StateError::Inconsistent(_))), "{e:?}");
            assert_eq!(fs::read(&path).unwrap_or_else(|e| panic!("{e}")), before);
        }
        let names: Vec<_> = fs::read_dir(d.dir())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(d.dir());
    }
}
