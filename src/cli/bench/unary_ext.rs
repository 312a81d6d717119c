//! `submit-unary-ext`: unary SubmitJob calls against a separate `taskhive serve` process (the
//! other scenarios run the server in the bench's own process, where the client's CPU and the
//! server's cannot be told apart), with the server's CPU time per acknowledged job read
//! from `/proc` beside the rate. `gearman-submit` reports the same figure for each gearmand
//! it drives (found by its listening port), so the two are compared side by side.
//!
//! On a machine with two cores or more the server is pinned to CPU 0 and the bench (the
//! driver) to CPU 1, so neither steals the other's core and the per-job CPU is the server's
//! alone.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{BenchArgs, BenchResult, BoxError};

/// A process's CPU time (user + system, every thread), from `/proc/PID/stat`.
#[derive(Clone, Copy)]
pub struct ProcCpu {
    pid: u32,
}

impl ProcCpu {
    /// The process listening on TCP `port` (loopback or any address), if this user can see
    /// its file descriptors.
    pub(crate) fn listening_on(port: u16) -> Option<ProcCpu> {
        let inode = listening_inode(port)?;
        let want = format!("socket:[{inode}]");
        for p in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                    return Some(ProcCpu { pid });
                }
            }
        }
        None
    }

    /// This process.
    pub(crate) fn own() -> ProcCpu {
        ProcCpu {
            pid: std::process::id(),
        }
    }

    /// CPU time used so far (user and system).
    pub fn used(&self) -> std::io::Result<Duration> {
        let [user, system, ..] = self.times()?;
        Ok(ticks(user + system))
    }

    /// User-mode CPU time used so far.
    pub(crate) fn user(&self) -> std::io::Result<Duration> {
        Ok(ticks(self.times()?[0]))
    }

    /// User-mode CPU time used so far, with that of the children reaped so far.
    pub(crate) fn user_with_children(&self) -> std::io::Result<Duration> {
        let [user, _, children_user, _] = self.times()?;
        Ok(ticks(user + children_user))
    }

    /// utime, stime, cutime and cstime (fields 14 to 17 of stat(5)), in clock ticks.
    fn times(&self) -> std::io::Result<[u64; 4]> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command (which may hold spaces) start at the last ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| std::io::Error::other("malformed /proc stat"))?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3.
        let t = f
            .get(11..15)
            .ok_or_else(|| std::io::Error::other("short /proc stat"))?;
        Ok(std::array::from_fn(|i| t[i].parse::<u64>().unwrap_or(0)))
    }
}

/// Clock ticks (`/proc`'s unit of CPU time) as a duration.
pub(crate) fn ticks(n: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(n * 1_000_000 / hz)
}

/// The inode of the socket listening on `port`, from `/proc/net/tcp` and `tcp6`.
fn listening_inode(port: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXADDR:HEXPORT; state 0A is LISTEN; inode is field 10.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if p == Some(port) && *state == "0A" {
                return inode.parse().ok();
            }
        }
    }
    None
}

/// Adds the server's CPU per operation to `r` (and the time itself) when `before` and
/// `after` were read.
pub(crate) fn add_cpu(r: &mut BenchResult, before: Option<Duration>, after: Option<Duration>) {
    if let (Some(b), Some(a)) = (before, after) {
        let us = a.saturating_sub(b).as_secs_f64() * 1e6;
        r.extra.insert("server_cpu_s".into(), us / 1e6);
        r.extra
            .insert("server_cpu_us_per_job".into(), us / r.ops.max(1) as f64);
    }
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
fn pin_self(cpu: usize) {
    pin_thread(0, cpu);
}

/// Pins every thread of this process to `cpu` (the runtime's workers already run).
fn pin_all(cpu: usize) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for t in tasks.flatten() {
        if let Ok(tid) = t.file_name().to_string_lossy().parse::<libc::pid_t>() {
            pin_thread(tid, cpu);
        }
    }
}

fn pin_thread(tid: libc::pid_t, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The machine's online CPUs. Not `available_parallelism`, which follows this process's
/// affinity: after the first scenario pinned the bench to CPU 1 it said 1, so later
/// scenarios left their server unpinned, sharing CPU 1 with the driver (a JSON-face run
/// after a gRPC one showed 60–80 µs of server CPU per job instead of 31–36).
fn cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// A started `taskhive serve`: the process, its gRPC/HTTP address and, when asked for, its
/// Periodic TCP address.
struct Served {
    child: Child,
    addr: String,
    periodic: Option<String>,
}

/// Starts `taskhive serve` (this very binary) over `dir` on a free port (and a free Periodic
/// TCP port when `periodic`), pinned to CPU 0 when there are two or more.
async fn serve(dir: &Path, periodic: bool) -> Result<Served, BoxError> {
    let mut cmd = Command::new(super::server_exe()?);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--min-free-disk", "0"])
        .arg("--data")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if periodic {
        cmd.args(["--periodic-listen", "tcp://127.0.0.1:0"]);
    }
    if cpus() >= 2 {
        // SAFETY: pre_exec runs between fork and exec; sched_setaffinity is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                pin_self(0);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut next_line = async || -> Result<String, BoxError> {
        Ok(
            tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .map_err(|_| "taskhive serve printed nothing in 60 s")??
                .ok_or("taskhive serve exited at start")?,
        )
    };
    let line = next_line().await?;
    let addr = line
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("taskhive serve: unexpected first line {line:?}"))?
        .to_string();
    let periodic = if periodic {
        let line = next_line().await?;
        let a = line
            .strip_prefix("periodic listening on tcp://")
            .ok_or_else(|| format!("taskhive serve: unexpected second line {line:?}"))?;
        Some(a.to_string())
    } else {
        None
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Served {
        child,
        addr,
        periodic,
    })
}

/// Stops the server as an operator would (SIGTERM, then SIGKILL after 30 s): a profiler
/// wrapped around it (`bench/profile-faces`' callgrind) writes its counts only at a clean
/// exit. The CPU figures were read before this.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: a plain kill(2) of our own child, which has not been reaped yet.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    child.kill().await.ok();
}

/// The face a `submit-*-ext` scenario submits through.
#[derive(Clone, Copy, Debug)]
pub enum Face {
    /// Unary gRPC SubmitJob.
    Grpc,
    /// The JSON face: `POST /taskhive.v1.Scheduler/SubmitJob` over HTTP/1.1 keep-alive.
    Json,
    /// The Periodic binary protocol's SUBMIT_JOB.
    Periodic,
}

impl Face {
    fn scenario(self) -> &'static str {
        match self {
            Face::Grpc => "submit-unary-ext",
            Face::Json => "submit-json-ext",
            Face::Periodic => "submit-periodic-ext",
        }
    }
}

/// The scenario: `a.jobs` one-job submits through `face` from `a.clients` connections with
/// `a.pipeline` in flight each (the JSON face, one request per HTTP/1.1 connection at a
/// time, opens `clients × pipeline` connections), against a fresh server process.
pub(crate) async fn submit_ext(a: &BenchArgs, face: Face) -> Result<BenchResult, BoxError> {
    let dir = super::tempfile_dir()?;
    let Served {
        mut child,
        addr,
        periodic,
    } = serve(&dir, matches!(face, Face::Periodic)).await?;
    if cpus() >= 2 {
        pin_all(1);
    }
    let cpu = ProcCpu {
        pid: child.id().ok_or("taskhive serve exited")?,
    };
    let me = ProcCpu::own();
    let (before, me_before) = (cpu.used().ok(), me.used().ok());
    let load = match (face, periodic) {
        (Face::Grpc, _) => super::submit_load(a, &addr, false).await,
        (Face::Json, _) => super::faces::json_submit_load(a, &addr).await,
        (Face::Periodic, Some(p)) => super::faces::periodic_submit_load(a, &p).await,
        (Face::Periodic, None) => Err("no Periodic listener".into()),
    };
    let (after, me_after) = (cpu.used().ok(), me.used().ok());
    stop(&mut child).await;
    std::fs::remove_dir_all(&dir).ok();
    let mut r = load?;
    r.scenario = face.scenario().into();
    add_cpu(&mut r, before, after);
    // The driver's own CPU per job: what the client of each face costs (`--grpc-client`).
    if let (Some(b), Some(a)) = (me_before, me_after) {
        let us = a.saturating_sub(b).as_secs_f64() * 1e6;
        r.extra
            .insert("driver_cpu_us_per_job".into(), us / r.ops.max(1) as f64);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_machines_cpus_whatever_this_threads_affinity() {
        let all = cpus();
        std::thread::spawn(move || {
            pin_self(0);
            assert_eq!(cpus(), all, "pinning must not change the count");
            assert_eq!(
                std::thread::available_parallelism().unwrap().get(),
                1,
                "what the count must not be read from"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn finds_the_process_listening_on_a_port_and_reads_its_cpu() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let p = ProcCpu::listening_on(port).expect("this test process listens there");
        assert_eq!(p.pid, std::process::id());
        let t0 = p.used().unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(300) {
            std::hint::black_box(0u64);
        }
        assert!(
            p.used().unwrap() > t0,
            "300 ms of spinning shows as CPU time"
        );
    }
}
