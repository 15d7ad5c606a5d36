//! A server that crashes and comes back on the same port with the same
//! certificate resets its old connections at once. The real `voicemcu
//! server` on 127.0.0.1 is killed with SIGKILL, so it sends nothing. A
//! real headless client must then learn of the crash from the new
//! server's stateless reset, long before its 30 s idle timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const BINARY: &str = env!("CARGO_BIN_EXE_voicemcu");

/// How long the client may take to notice the restart: well under the
/// 30 s idle timeout it would otherwise wait out, and generous for a
/// loaded CI machine.
const NOTICE_WITHIN: Duration = Duration::from_secs(12);

/// A server process, killed and waited for when dropped.
struct Server {
    child: Child,
    addr: String,
    fingerprint: String,
}

impl Server {
    fn start(dir: &Path, bind: &str) -> Server {
        let args = ["--no-status-socket", "--bind", bind];
        let (child, start) = common::start_server(dir, args, "listening on ");
        Server {
            child,
            addr: start.addr,
            fingerprint: start.fingerprint,
        }
    }

    /// Kills the process the way a crash would: it closes nothing.
    fn crash(&mut self) {
        self.child.kill().expect("the server can be killed");
        self.child.wait().expect("the server can be waited for");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.crash();
        }
    }
}

#[test]
fn restarted_server_resets_old_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), "127.0.0.1:0");

    let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/speech/alice.wav");
    let mut client = Command::new(BINARY)
        .args(["client", &server.addr, "crash-room", "alice"])
        .args(["--cert-hash", &server.fingerprint, "--seconds", "60"])
        .arg("--input-wav")
        .arg(&speech)
        .arg("--output-wav")
        .arg(dir.path().join("alice-heard.wav"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client starts");

    // Wait until the client has joined, from its own output.
    let stdout = client.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let joined = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("joined"));
    assert!(joined, "the client never reported joining");

    // The client keeps sending audio, so its next datagram reaches the
    // new server within 20 ms of it starting.
    server.crash();
    let restarted = Server::start(dir.path(), &server.addr);
    assert_eq!(restarted.fingerprint, server.fingerprint);

    #[allow(clippy::disallowed_methods)] // NOTE: a deadline, not a measurement.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > NOTICE_WITHIN {
            let _ = client.kill();
            let _ = client.wait();
            panic!("the client did not notice the restart within {NOTICE_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut stderr = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let output = format!("{}\n{stderr}", rest.join("\n"));
    assert!(
        output.contains("reset the connection"),
        "the client ended ({status}) without seeing a reset:\n{output}"
    );
}
