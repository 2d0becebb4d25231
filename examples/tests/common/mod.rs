//! Child processes for the process tests: started with their log captured,
//! signalled and waited for with bounds, and ended by their pid if a test
//! fails before they exit.

#![allow(dead_code)] // Each test binary uses part of it.

pub(crate) mod browser;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tower_drain_tests::HANG;

/// The number before `what` in the report line ("3 completed").
pub(crate) fn count(report: &str, what: &str) -> usize {
    let before = report
        .split(what)
        .next()
        .filter(|before| before.len() < report.len())
        .unwrap_or_else(|| panic!("no {what:?} in {report:?}"));
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .find(|n| !n.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {what:?} in {report:?}"))
}

/// A child process of this test.
pub(crate) struct Process {
    child: Child,
    /// Its stderr, line by line.
    log: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `program` with `args` and `env`, stdout and stderr piped.
    pub(crate) fn spawn(program: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Self {
        let program = program.as_ref();
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, log }
    }

    /// Starts one of the examples with `env` and waits for the line that
    /// says where it listens (its signal handlers are installed before it).
    pub(crate) fn example(program: impl AsRef<Path>, env: &[(&str, &str)]) -> (Self, SocketAddr) {
        Self::spawn(program, &[], env).listening()
    }

    /// Waits for the line that says where the process listens.
    pub(crate) fn listening(mut self) -> (Self, SocketAddr) {
        let process = &mut self;
        let line = process.wait_for_log(" on http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ' ']).next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        (self, addr)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a log line containing `text`, and returns it.
    pub(crate) fn wait_for_log(&mut self, text: &str) -> String {
        let until = Instant::now() + HANG;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?} within {HANG:?}"),
            }
        }
    }

    /// Sends `signal` ("TERM", "QUIT", ...) to this process, by its pid.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIG{signal} delivered");
    }

    pub(crate) fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Waits (bounded) for the exit; returns its status, the time it took
    /// and what it printed on stdout.
    pub(crate) fn exit(mut self) -> (ExitStatus, Duration, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                break status;
            }
            assert!(started.elapsed() < HANG, "the process did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut stdout)
            .expect("stdout readable");
        (status, started.elapsed(), stdout)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Only if a test failed before the child exited: ours, by its pid.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
