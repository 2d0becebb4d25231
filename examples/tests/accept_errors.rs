//! The accept loop survives running out of file descriptors: a server with
//! a low `RLIMIT_NOFILE` (set by `sh`'s `ulimit` before it starts) gets
//! more connections than it may open, logs the accept errors, and serves
//! again once they close.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Process;

/// File descriptors the server may have open: a few for the runtime, the
/// listener and the pipes, and room for a dozen connections.
const NOFILE: u32 = 24;

fn hello(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
    let mut answer = String::new();
    socket.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn the_accept_loop_survives_running_out_of_file_descriptors() {
    let server = Process::spawn(
        "sh",
        &[
            "-c",
            &format!("ulimit -n {NOFILE} && exec \"$0\""),
            env!("CARGO_BIN_EXE_axum-streaming"),
        ],
        &[("ADDR", "127.0.0.1:0")],
    );
    let (mut server, addr) = server.listening();
    assert!(hello(addr).unwrap().starts_with("HTTP/1.1 200"));

    // Four times what the server may open, held open: the kernel completes
    // them all (the backlog), the server accepts until it runs out.
    let held: Vec<TcpStream> = (0..4 * NOFILE)
        .map(|_| TcpStream::connect(addr).expect("the kernel accepts into the backlog"))
        .collect();
    let line = server.wait_for_log("accept failed");
    assert!(line.contains("Too many open files"), "{line}");

    // Once they close, the server serves again (after its backoff, at most
    // a second; the backlog is worked through first).
    drop(held);
    let started = std::time::Instant::now();
    let served = loop {
        match hello(addr) {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => break answer,
            _ if started.elapsed() < tower_drain_tests::HANG => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("never served again: {other:?}"),
        }
    };
    assert!(served.ends_with("hello\n"), "{served}");

    server.sigterm();
    let (status, _, report) = server.exit();
    assert!(status.success(), "{report}");
}
