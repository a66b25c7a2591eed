//! A nats-server with JetStream on a free loopback port and a temporary
//! store directory, stopped by pid when the guard drops (also when a test
//! fails). A missing nats-server fails the test: it is a dependency the
//! Makefile installs (Debian's `nats-server`).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use treasure_cluster::{Config, Delivery, Link};

/// The server binary: `NATS_SERVER` or `nats-server` on PATH, else Debian's path.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("/usr/sbin/nats-server")
}

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

static N: AtomicU32 = AtomicU32::new(0);

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

impl Server {
    /// Starts a server with JetStream on a free port and a fresh store dir.
    pub fn start() -> Server {
        let dir = std::env::temp_dir().join(format!(
            "treasure-cluster-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the store dir");
        let mut s = Server {
            child: None,
            port: free_port(),
            dir,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and store dir; waits until it
    /// accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let bin = binary();
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Debian's nats-server (make deps-cluster)",
                    bin.display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("nats-server exited at start: {status}");
                }
            }
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL, by pid) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A link's configuration against this server.
    pub fn config(&self, stream: &str, shard: u16, shards: u16) -> Config {
        Config {
            url: self.url(),
            stream: stream.to_owned(),
            shard,
            shards,
            ack_timeout: Duration::from_millis(1000),
            ..Config::default()
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A record with a routable header: `src`, `dest`, `to`, the length at
/// byte 32, and `extra` payload bytes after the 40-byte header (the
/// transport reads nothing else).
pub fn record(src: u16, dest: u16, to: u64, extra: usize) -> Vec<u8> {
    let mut r = vec![0u8; 40 + extra];
    r[0..4].copy_from_slice(b"TRSC");
    r[4..6].copy_from_slice(&1u16.to_le_bytes());
    r[6..8].copy_from_slice(&src.to_le_bytes());
    r[8..10].copy_from_slice(&dest.to_le_bytes());
    r[24..32].copy_from_slice(&to.to_le_bytes());
    let len = r.len() as u32;
    r[32..36].copy_from_slice(&len.to_le_bytes());
    for (i, b) in r[40..].iter_mut().enumerate() {
        *b = (to as usize + i) as u8;
    }
    r
}

/// The `to` of a record.
pub fn to_of(r: &[u8]) -> u64 {
    u64::from_le_bytes(r[24..32].try_into().unwrap())
}

/// Receives until `n` deliveries came or `timeout` passed.
pub fn receive(link: &Link, n: usize, timeout: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        match link.try_recv() {
            Some(d) => out.push(d),
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    out
}

/// Everything that arrives within `quiet` of silence.
pub fn drain(link: &Link, quiet: Duration) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        match link.try_recv() {
            Some(d) => {
                out.push(d);
                last = Instant::now();
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    out
}
