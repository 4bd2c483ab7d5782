//! What the store's tests stand on: temporary directories, and a real PostgreSQL
//! server started for the test run.
//!
//! The PostgreSQL half runs the Debian server binaries (`/usr/lib/postgresql/*/bin`):
//! `initdb` into a temporary directory, `pg_ctl start` on a free loopback port with
//! the unix socket in that directory, and one database per test so tests run in
//! parallel. The server is started once per test binary and must not outlive it,
//! even when the binary is killed: a watchdog shell is spawned first, reading a pipe
//! whose only writer is this process, and when the pipe closes (the process ended,
//! however it ended) it stops the server (`-m immediate`) and deletes the directory.
//! Rust creates its pipes close-on-exec, so neither the server nor any other child
//! holds the pipe open. `initdb` and `pg_ctl` refuse to run as root; as root they run
//! as the `postgres` user (created by the Debian package) through `runuser`.
//!
//! Missing binaries are a failure, never a skip: `scripts/test` installs them.
//! Shared by the test suite and the speed example, which use different parts.
#![allow(dead_code)]

use std::error::Error;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// `Result::unwrap` that says what failed, for tests.
pub trait Must<T> {
    fn must(self) -> T;
}

impl<T, E: Error> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{}", chain(&e)),
        }
    }
}

/// An error with its causes (`postgres: db error: ERROR: …`).
pub fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique name for this process.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory deleted on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(prefix));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SUPERUSER: &str = "sharedefend";
const INSTALL_HINT: &str = "scripts/test installs postgresql (Debian package `postgresql`)";

/// A running PostgreSQL server for this test binary.
pub struct Server {
    port: u16,
    admin: Mutex<postgres::Client>,
    /// Kept for its stdin: dropping it (or the process ending) stops the server.
    _watchdog: Child,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// Connection parameters of a new, empty database on the test server.
pub fn pg_database() -> String {
    let server = match SERVER.get_or_init(Server::start) {
        Ok(server) => server,
        Err(e) => panic!("cannot start PostgreSQL for the tests: {e}"),
    };
    server.create_database()
}

impl Server {
    fn create_database(&self) -> String {
        let name = unique("t").replace('-', "_");
        let mut admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        self.params(&name)
    }

    fn params(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={dbname}",
            self.port
        )
    }

    fn start() -> Result<Server, String> {
        let bin = find_bin_dir()?;
        let runas = RunAs::detect()?;
        let base = std::env::temp_dir().join(unique("sharedefend-pg"));
        fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        runas.give(&base)?;
        let data = base.join("data");
        let pg_ctl = bin.join("pg_ctl");

        // The watchdog first, so that nothing started below can outlive us.
        let stop = runas.shell(&format!(
            "{} -D {} -m immediate -w stop",
            pg_ctl.display(),
            data.display()
        ));
        let script = format!(
            "trap '' INT TERM HUP; cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {}",
            base.display()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the watchdog: {e}"))?;

        let mut initdb = runas.command(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "--no-locale",
            "-E",
            "UTF8",
        ]);
        run(initdb, "initdb")?;

        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut conf = fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .map_err(|e| format!("opening postgresql.conf: {e}"))?;
            // Later lines win: each attempt's port replaces the last one's.
            writeln!(
                conf,
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200",
                base.display()
            )
            .map_err(|e| format!("writing postgresql.conf: {e}"))?;
            drop(conf);
            let mut start = runas.command(&pg_ctl);
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(base.join("server.log"))
                .args(["-w", "-t", "60", "start"]);
            match run(start, "pg_ctl start") {
                Ok(()) => {
                    let admin = postgres::Client::connect(
                        &format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres"),
                        postgres::NoTls,
                    )
                    .map_err(|e| format!("connecting to the test server: {e}"))?;
                    return Ok(Server {
                        port,
                        admin: Mutex::new(admin),
                        _watchdog: watchdog,
                    });
                }
                Err(e) => {
                    let log = fs::read_to_string(base.join("server.log")).unwrap_or_default();
                    last_error = format!("{e}\n{log}");
                }
            }
        }
        Err(last_error)
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "no PostgreSQL server binaries (initdb, pg_ctl) in {}/*/bin: {INSTALL_HINT}",
            root.display()
        )
    })
}

/// Who runs the server: this process's user, or `postgres` when this is root.
enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Result<RunAs, String> {
        let me = fs::metadata("/proc/self").map_err(|e| format!("reading /proc/self: {e}"))?;
        if me.uid() != 0 {
            return Ok(RunAs::Me);
        }
        let passwd =
            fs::read_to_string("/etc/passwd").map_err(|e| format!("reading /etc/passwd: {e}"))?;
        let line = passwd
            .lines()
            .find(|l| l.starts_with("postgres:"))
            .ok_or_else(|| format!("running as root and there is no `postgres` user to run the server: {INSTALL_HINT}"))?;
        let fields: Vec<&str> = line.split(':').collect();
        let id = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u32>().ok())
                .ok_or_else(|| format!("/etc/passwd: bad line {line:?}"))
        };
        Ok(RunAs::Postgres {
            uid: id(2)?,
            gid: id(3)?,
        })
    }

    /// Makes `dir` the server user's.
    fn give(&self, dir: &Path) -> Result<(), String> {
        match self {
            RunAs::Me => Ok(()),
            RunAs::Postgres { uid, gid } => std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
                .map_err(|e| format!("chown {}: {e}", dir.display())),
        }
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::Postgres { .. } => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
        }
    }

    fn shell(&self, command: &str) -> String {
        match self {
            RunAs::Me => command.to_owned(),
            RunAs::Postgres { .. } => format!("runuser -u postgres -- {command}"),
        }
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    Ok(testkit::free_port())
}
