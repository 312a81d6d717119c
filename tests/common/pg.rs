//! A PostgreSQL to test against: `TASKHIVE_PG_URL` when set, else a throwaway cluster
//! (initdb + pg_ctl in a temp dir, on a free local port) shared by the tests of one binary
//! and stopped when the last of them lets go. Every test gets a database of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

/// A throwaway cluster; stopped on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    base: String,
    as_user: Option<&'static str>,
}

/// One test's database; dropped (best effort) with it.
pub struct PgDb {
    /// Connection URL of this database.
    pub url: String,
    admin: String,
    name: String,
    _cluster: Option<Arc<Cluster>>,
}

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

/// The directory of initdb/pg_ctl: `TASKHIVE_PG_BIN`, the newest /usr/lib/postgresql/*/bin, or PATH.
pub fn pg_bin() -> PathBuf {
    if let Ok(b) = std::env::var("TASKHIVE_PG_BIN") {
        return PathBuf::from(b);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_default()
}

/// A port nothing listens on: bound, then released (for a server to start on, or for a
/// client to find closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(bin: &Path, as_user: Option<&str>, prog: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(prog);
    let mut cmd = match as_user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e} (is PostgreSQL installed?)", exe.display()));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Cluster {
    /// initdb and start a cluster; `settings` are extra `-c name=value` server options.
    pub fn start(settings: &[&str]) -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        // initdb refuses to run as root: run the cluster as the postgres system user then.
        let as_user = (unsafe { libc::geteuid() } == 0).then_some("postgres");
        if as_user.is_some() {
            let pw = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .unwrap();
            let gid = Command::new("id")
                .args(["-g", "postgres"])
                .output()
                .unwrap();
            let uid: u32 = String::from_utf8_lossy(&pw.stdout).trim().parse().unwrap();
            let gid: u32 = String::from_utf8_lossy(&gid.stdout).trim().parse().unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap().to_string();
        run(
            &bin,
            as_user,
            "initdb",
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let sock = dir.path().to_str().unwrap().to_string();
        let log = dir.path().join("log").to_str().unwrap().to_string();
        for attempt in 0.. {
            let port = free_port();
            let mut opts =
                format!("-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200");
            for s in settings {
                opts.push_str(" -c ");
                opts.push_str(s);
            }
            let mut cmd = match as_user {
                Some(u) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", u, "--"]).arg(bin.join("pg_ctl"));
                    c
                }
                None => Command::new(bin.join("pg_ctl")),
            };
            let ok = cmd
                .args([
                    "-D", &data_s, "-l", &log, "-w", "-t", "60", "-o", &opts, "start",
                ])
                .output()
                .unwrap()
                .status
                .success();
            if ok {
                return Cluster {
                    dir,
                    bin,
                    base: format!("postgres://postgres@127.0.0.1:{port}"),
                    as_user,
                };
            }
            assert!(
                attempt < 3,
                "pg_ctl start failed: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        unreachable!()
    }

    /// URL of database `db` in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut cmd = match self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(self.bin.join("pg_ctl"));
                c
            }
            None => Command::new(self.bin.join("pg_ctl")),
        };
        let _ = cmd
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

/// The cluster shared by this test binary, started on first use.
pub fn shared_cluster() -> Arc<Cluster> {
    let mut g = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = g.upgrade() {
        return c;
    }
    // pg_stat_statements lets the idle test count the statements nodes run.
    let c = Arc::new(Cluster::start(&[
        "fsync=off",
        "shared_preload_libraries=pg_stat_statements",
    ]));
    *g = Arc::downgrade(&c);
    c
}

fn exec_admin(admin: &str, sql: &str) {
    // The sync client runs its own runtime: keep it off any Tokio thread.
    let (admin, sql) = (admin.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect admin");
        c.batch_execute(&sql).expect("admin statement");
    })
    .join()
    .unwrap();
}

impl PgDb {
    /// Sets a default for every session that connects to this database from now on
    /// (`ALTER DATABASE ... SET`, which needs the admin role).
    pub fn set_session_default(&self, setting: &str, value: &str) {
        exec_admin(
            &self.admin,
            &format!("ALTER DATABASE {} SET {setting} = '{value}'", self.name),
        );
    }
}

/// A fresh, empty database.
pub fn fresh_db() -> PgDb {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "th_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (admin, base, cluster) = match std::env::var("TASKHIVE_PG_URL") {
        Ok(u) if !u.is_empty() => {
            let base = match u.rfind('/') {
                Some(i) if i > "postgres://".len() => u[..i].to_string(),
                _ => u.clone(),
            };
            (u, base, None)
        }
        _ => {
            let c = shared_cluster();
            (c.url("postgres"), c.base.clone(), Some(c))
        }
    };
    exec_admin(&admin, &format!("CREATE DATABASE {name}"));
    PgDb {
        url: format!("{base}/{name}"),
        admin,
        name,
        _cluster: cluster,
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}

/// Hands `path` to the user the throwaway clusters run as (`postgres` when the tests run as
/// root), so the server can read files made for it, such as its TLS certificate and key.
pub fn give_to_server(path: &Path) {
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).unwrap();
}
