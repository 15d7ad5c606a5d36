//! The status socket end to end: the real `voicemcu server` on 127.0.0.1,
//! two real headless clients sending the bundled speech, and
//! `voicemcu status` reading the server's rooms while they talk.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

const BINARY: &str = env!("CARGO_BIN_EXE_voicemcu");

/// How long anything here may take before the test gives up; generous,
/// because CI machines are shared.
const DEADLINE: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/speech")
        .join(name)
}

/// A server process, interrupted and waited for when dropped.
struct Server {
    child: Child,
    addr: String,
    fingerprint: String,
}

impl Server {
    fn start(dir: &Path, socket: &Path) -> Server {
        let args = [
            OsStr::new("--bind"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--status-socket"),
            socket.as_os_str(),
        ];
        let (child, start) = common::start_server(dir, args, "status: ");
        Server {
            child,
            addr: start.addr,
            fingerprint: start.fingerprint,
        }
    }

    /// Sends SIGINT, as Ctrl+C would, and waits for the process to end.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child's, which has not been waited for yet.
        unsafe { libc::kill(pid, libc::SIGINT) };
        self.child.wait().expect("the server can be waited for")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
        }
    }
}

fn client(server: &Server, name: &str, wav: &str, out: &Path) -> Child {
    Command::new(BINARY)
        .args(["client", &server.addr, "status-room", name])
        .args(["--cert-hash", &server.fingerprint])
        .arg("--input-wav")
        .arg(fixture(wav))
        .arg("--output-wav")
        .arg(out)
        .args(["--seconds", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the voicemcu binary starts")
}

fn status(socket: &Path, json: bool) -> Output {
    let mut command = Command::new(BINARY);
    command.args(["status", "--socket"]).arg(socket);
    if json {
        command.arg("--json");
    }
    command.output().expect("voicemcu status runs")
}

/// Polls `voicemcu status --json` until `ready` accepts the document.
#[allow(clippy::disallowed_methods)] // A test deadline is wall-clock time.
fn wait_for_status(socket: &Path, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let output = status(socket, true);
        assert!(
            output.status.success(),
            "voicemcu status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let document: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the status is JSON");
        if ready(&document) {
            return document;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the status never showed what was expected; last: {document:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_shows_talking_room() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let mut server = Server::start(dir.path(), &socket);

    let mut alice = client(
        &server,
        "alice",
        "alice.wav",
        &dir.path().join("alice-heard.wav"),
    );
    let mut bob = client(&server, "bob", "bob.wav", &dir.path().join("bob-heard.wav"));

    // Both joined and the server has received audio from each.
    let document = wait_for_status(&socket, |document| {
        let participants = &document["rooms"][0]["participants"];
        participants.as_array().is_some_and(|list| {
            list.len() == 2
                && list
                    .iter()
                    .all(|p| p["arrival"]["received"].as_u64() > Some(25))
        })
    });
    let room = &document["rooms"][0];
    assert_eq!(room["code"], "status-room");
    let names: Vec<&str> = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"alice") && names.contains(&"bob"),
        "{names:?}"
    );
    assert_eq!(document["connections"], 2);
    for participant in room["participants"].as_array().unwrap() {
        assert_eq!(participant["arrival"]["lost"], 0, "loopback loses nothing");
        assert!(participant["media"]["jitter"]["played"].as_u64() > Some(0));
    }

    // The table names the room and both participants.
    let table = status(&socket, false);
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("room \"status-room\", participants: 2"),
        "{table}"
    );
    assert!(table.contains("alice"), "{table}");
    assert!(table.contains("bob"), "{table}");

    for child in [&mut alice, &mut bob] {
        assert!(child.wait().unwrap().success());
    }
    assert!(server.interrupt().success());
    assert!(
        !socket.exists(),
        "the server removes its socket when it stops"
    );
}

#[test]
fn status_without_server_explains() {
    let dir = tempfile::tempdir().unwrap();
    let output = status(&dir.path().join("nothing.sock"), false);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no voicemcu server answers on"), "{stderr}");
}

#[test]
fn second_server_keeps_running_without_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let _first = Server::start(dir.path(), &socket);

    // The second server finds the socket taken, warns and serves anyway.
    let mut second = Command::new(BINARY)
        .args(["server", "--bind", "127.0.0.1:0", "--status-socket"])
        .arg(&socket)
        .arg("--cert-file")
        .arg(dir.path().join("cert.pem"))
        .arg("--key-file")
        .arg(dir.path().join("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(second.stdout.take().unwrap());
    let lines: Vec<String> = stdout
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.starts_with("certificate fingerprint"))
        .collect();
    assert!(lines.iter().any(|line| line.starts_with("listening on ")));

    // Still up after the warning: interrupt it and read what it logged.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(second.try_wait().unwrap(), None, "the second server exited");
    let pid = libc::pid_t::try_from(second.id()).unwrap();
    // SAFETY: as in Server::interrupt.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let output = second.wait_with_output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another voicemcu server answers on the status socket"),
        "{stderr}"
    );
    assert!(socket.exists(), "the first server's socket is left alone");
}
