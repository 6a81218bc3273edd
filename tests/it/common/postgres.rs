//! A throwaway PostgreSQL cluster for the tests, started once per test process from the
//! machine's own installation (as the `postgres` user when running as root, since PostgreSQL
//! refuses to run as root) and stopped when the test process exits: the server runs under a
//! small shell that waits on our stdin pipe, which closes when this process ends, however it
//! ends. `SORCHA_TEST_DATABASE_URL` points the tests at an existing server instead.
//!
//! Under `CI=true` a cluster that cannot be started fails the test; elsewhere the test is
//! skipped with a message.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection;

struct Cluster {
    /// URL of the maintenance database, used to create one database per test.
    admin_url: String,
    /// Kept open for the life of the process: closing it stops the server.
    _guard: Option<Mutex<Child>>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Panics under `CI=true`, otherwise says the test is skipped because PostgreSQL is
/// unavailable.
fn unavailable(e: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is required under CI=true but could not be started: {e}");
    }
    eprintln!("SKIPPED: PostgreSQL unavailable ({e}); set SORCHA_TEST_DATABASE_URL to run it");
}

/// A fresh, empty database for one test, or `None` (test skipped) outside CI when PostgreSQL
/// cannot be started.
pub async fn fresh_database() -> Option<String> {
    let cluster = match CLUSTER.get_or_init(start_cluster) {
        Ok(cluster) => cluster,
        Err(e) => {
            unavailable(e);
            return None;
        }
    };
    let name = format!(
        "sorcha_peer_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = sqlx::PgConnection::connect(&cluster.admin_url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = cluster
        .admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .expect("url has a database");
    Some(format!("{base}/{name}"))
}

fn start_cluster() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("SORCHA_TEST_DATABASE_URL") {
        return Ok(Cluster {
            admin_url: url,
            _guard: None,
        });
    }
    let bin = find_bin_dir().ok_or("no PostgreSQL installation found (looked for initdb)")?;
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("sorcha-peer-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if root {
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir))?;
    }
    let data = dir.join("data");
    let mut initdb = as_postgres(root, bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
    run(&mut initdb)?;

    let port = server_port()?;
    // The shell starts the server, then blocks reading stdin; EOF (our exit) stops the server.
    let script = r#"
        "$1" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
             >"$4/server.log" 2>&1 &
        pid=$!
        cat >/dev/null
        kill -INT "$pid"
        wait "$pid"
        rm -rf "$4"
    "#;
    let mut shell = as_postgres(root, PathBuf::from("sh"));
    shell
        .args(["-c", script, "sh"])
        .arg(bin.join("postgres"))
        .arg(&data)
        .arg(port.to_string())
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = shell.spawn().map_err(|e| format!("start postgres: {e}"))?;

    let started = Instant::now();
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("PostgreSQL did not become ready: {log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Cluster {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        _guard: Some(Mutex::new(child)),
    })
}

/// A PostgreSQL cluster of one test's own, which the test may stop and start again (the
/// shared cluster serves every other test and must stay up). Stopped when dropped.
pub struct OwnCluster {
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    port: u16,
}

impl OwnCluster {
    /// Creates and starts the cluster, or `None` (test skipped) outside CI when impossible.
    /// An external server (`SORCHA_TEST_DATABASE_URL`) cannot be restarted by a test, so tests
    /// that need this skip there too.
    pub fn start() -> Option<OwnCluster> {
        match OwnCluster::create() {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                unavailable(&e);
                None
            }
        }
    }

    fn create() -> Result<OwnCluster, String> {
        let bin = find_bin_dir().ok_or("no PostgreSQL installation found (looked for initdb)")?;
        let root = is_root();
        let dir = std::env::temp_dir().join(format!(
            "sorcha-peer-pg-own-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let mut initdb = as_postgres(root, bin.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(&mut initdb)?;
        let port = server_port()?;
        let cluster = OwnCluster {
            bin,
            root,
            dir,
            port,
        };
        cluster.start_server()?;
        Ok(cluster)
    }

    /// URL of database `name` (`postgres` exists from the start).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = as_postgres(self.root, self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.join("data"));
        cmd
    }

    /// Starts the server and waits until it accepts connections. Commits are durable on
    /// return (synchronous_commit stays on), as in production; only fsync is off, which
    /// matters for power loss, not for a server restart.
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        run(self
            .pg_ctl()
            .args(["start", "-w", "-t", "30", "-o", &options, "-l"])
            .arg(self.dir.join("server.log")))
    }

    /// Stops the server the way an operator does (`pg_ctl stop -m fast`: sessions are cut,
    /// open transactions aborted).
    pub fn stop_server(&self) -> Result<(), String> {
        run(self.pg_ctl().args(["stop", "-w", "-t", "30", "-m", "fast"]))
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // Already stopped (a test that failed while the server was down) is fine here.
        let pid_file = self.dir.join("data").join("postmaster.pid");
        if pid_file.exists()
            && let Err(e) = run(self
                .pg_ctl()
                .args(["stop", "-w", "-t", "10", "-m", "immediate"]))
        {
            eprintln!("warning: cannot stop the test's own PostgreSQL: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    if let Some(best) = candidates.pop() {
        return Some(best);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.join("initdb").exists().then_some(dir)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn as_postgres(root: bool, program: PathBuf) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A free port below the kernel's ephemeral range (32768 and up), so that while a test has
/// its server stopped no port-0 socket of another test can take the port and keep the
/// restart from binding it. The search starts at a place of its own for each process.
fn server_port() -> Result<u16, String> {
    const FIRST: u16 = 20_000;
    const COUNT: u16 = 12_000;
    // Two clusters of one process starting at once never try the same port first.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(97, std::sync::atomic::Ordering::SeqCst);
    let start = ((std::process::id() % u32::from(COUNT)) as u16).wrapping_add(call) % COUNT;
    (0..COUNT)
        .map(|i| FIRST + (start + i) % COUNT)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .ok_or_else(|| format!("no free port in {FIRST}..{}", FIRST + COUNT))
}
