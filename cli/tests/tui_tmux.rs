//! Drives the real `voicemcu client` terminal UI in a pseudo-terminal under
//! tmux: a real server on 127.0.0.1, a headless peer sending recorded
//! speech, and the UI client sending a test tone. The test types `/mute`,
//! `/block bob` and `/leave` with `tmux send-keys` and reads the screen with
//! `tmux capture-pane`.
//!
//! tmux must be installed (`./dev test` installs it). Set
//! `VOICEMCU_SKIP_TMUX_TEST=1` to skip this test where it cannot be.

#![allow(
    clippy::disallowed_methods,
    reason = "real processes run on the wall clock, so waits for them need deadlines from it"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_voicemcu");

/// The environment variable that skips this test when tmux is missing.
const SKIP_ENV: &str = "VOICEMCU_SKIP_TMUX_TEST";

/// How long any one step may take before the test gives up. It is
/// generous because the machine may be busy building. The test never
/// asserts on how long a step took.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

const ROOM: &str = "tmuxroom";
const SESSION: &str = "alice";
const TALKING_MARKER: char = '●';

/// Width of the peers panel at 100 columns: 40 % of the screen.
const PEERS_PANEL_COLUMNS: usize = 40;

#[test]
fn tui_joins_mutes_blocks_and_leaves() {
    if !tmux_installed() {
        if std::env::var_os(SKIP_ENV).is_some() {
            eprintln!("skipped: tmux is not installed and {SKIP_ENV} is set");
            return;
        }
        panic!(
            "tmux not found on PATH: install it (for example `sudo apt-get install tmux`, \
             which `./dev test` does), or set {SKIP_ENV}=1 to skip this test"
        );
    }

    let dir = tempfile::tempdir().expect("create a temporary folder");
    let server = start_server(dir.path());
    let bob = start_headless_peer(dir.path(), &server);
    let tmux = Tmux::start(dir.path(), &server);

    // Both participants are in the roster, and alice's tone lights her row.
    let screen = tmux.wait_for("the roster with alice and bob", |screen| {
        screen.contains("peers (2)")
            && peer_row(screen, "alice (you)").is_some()
            && peer_row(screen, "bob").is_some()
    });
    assert!(screen.contains(&format!("alice in {ROOM}")), "{screen}");
    tmux.wait_for("alice's own talking marker", |screen| {
        peer_row(screen, "alice (you)").is_some_and(|row| row.contains(TALKING_MARKER))
    });

    // Bob's recording has speech from about 4 s in, which the server reports.
    tmux.wait_for("bob's talking marker from the server", |screen| {
        peer_row(screen, "bob").is_some_and(|row| row.contains(TALKING_MARKER))
    });

    tmux.type_line("/mute");
    let screen = tmux.wait_for("MUTED in the input title", |screen| {
        input_title(screen).is_some_and(|title| title.contains("MUTED"))
    });
    let own_row = peer_row(&screen, "alice (you)").unwrap_or_default();
    assert!(own_row.contains("MUTE"), "{screen}");
    assert!(!own_row.contains(TALKING_MARKER), "muted: {screen}");

    tmux.type_line("/block bob");
    let screen = tmux.wait_for("the block event", |screen| {
        screen.contains("blocked bob (id")
            && peer_row(screen, "bob").is_some_and(|row| row.contains("BLOCKED"))
    });
    let bob_row = peer_row(&screen, "bob").unwrap_or_default();
    assert!(!bob_row.contains(TALKING_MARKER), "blocked: {screen}");

    tmux.type_line("/leave");
    let screen = tmux.wait_for("the client to exit", |screen| {
        screen.contains("voicemcu exit status")
    });
    assert!(
        screen.contains("voicemcu exit status 0"),
        "the client should exit with status 0:\n{screen}"
    );
    assert!(screen.contains("session ended"), "{screen}");

    // The terminal is back to normal: no UI left on screen, the main
    // screen shown, the cursor visible, and canonical mode with echo on.
    assert!(!screen.contains("┌ peers"), "UI left on screen:\n{screen}");
    assert_eq!(tmux.pane_format("#{alternate_on}"), "0", "{screen}");
    assert_eq!(tmux.pane_format("#{cursor_flag}"), "1", "{screen}");
    let modes: Vec<&str> = screen.split_whitespace().collect();
    for mode in ["icanon", "echo"] {
        assert!(modes.contains(&mode), "{mode} should be on:\n{screen}");
        let off = format!("-{mode}");
        assert!(!modes.contains(&off.as_str()), "{mode} is off:\n{screen}");
    }

    drop(tmux);
    drop(bob);
    drop(server);
}

/// Returns whether `tmux -V` runs.
fn tmux_installed() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A child process that is killed when the test ends, pass or fail.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `voicemcu server` and how to reach it.
struct Server {
    _process: Process,
    addr: String,
    cert_hash: String,
}

/// Environment for every process the test starts, so that none reads or
/// writes the user's configuration, data or known-servers file.
fn isolated(command: &mut Command, dir: &Path) {
    command
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("VOICEMCU_KNOWN_SERVERS", dir.join("known_servers"))
        .env_remove("TMUX");
}

/// Starts a server on an ephemeral port of 127.0.0.1 and reads its address
/// and certificate fingerprint from what it prints.
fn start_server(dir: &Path) -> Server {
    let log = std::fs::File::create(dir.join("server.log")).expect("create server.log");
    let mut command = Command::new(BINARY);
    command
        .args(["server", "--bind", "127.0.0.1:0", "--seed", "7"])
        .arg("--cert-file")
        .arg(dir.join("cert.pem"))
        .arg("--key-file")
        .arg(dir.join("key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    isolated(&mut command, dir);
    let mut child = command.spawn().expect("start voicemcu server");
    let lines = read_lines(child.stdout.take().expect("server stdout is piped"));
    let process = Process { child };

    let mut addr = None;
    let mut cert_hash = None;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while addr.is_none() || cert_hash.is_none() {
        let line = next_line(
            &lines,
            deadline,
            "the server's address and fingerprint",
            dir,
        );
        if let Some(rest) = line.strip_prefix("listening on ") {
            addr = Some(rest.trim().to_string());
        }
        if let Some((_, rest)) = line.split_once("--cert-hash ") {
            cert_hash = Some(rest.trim_end_matches(')').trim().to_string());
        }
    }

    let addr = addr.unwrap_or_default();
    assert!(addr.starts_with("127.0.0.1:"), "server bound to {addr}");
    Server {
        _process: process,
        addr,
        cert_hash: cert_hash.unwrap_or_default(),
    }
}

/// Starts bob, a headless client sending the bundled speech, and waits
/// until he is in the room.
fn start_headless_peer(dir: &Path, server: &Server) -> Process {
    let speech = fixtures().join("speech").join("bob.wav");
    let mut command = Command::new(BINARY);
    command
        .args(["client", &server.addr, ROOM, "bob"])
        .args(["--cert-hash", &server.cert_hash])
        .arg("--input-wav")
        .arg(&speech)
        .arg("--output-wav")
        .arg(dir.join("bob-heard.wav"))
        .args(["--seconds", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("bob.log")).expect("create bob.log"));
    isolated(&mut command, dir);
    let mut child = command.spawn().expect("start the headless client");
    let lines = read_lines(child.stdout.take().expect("client stdout is piped"));
    let process = Process { child };

    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let line = next_line(&lines, deadline, "bob to join", dir);
        if line.starts_with("joined room") {
            return process;
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate is inside the workspace")
        .join("fixtures")
}

/// Reads `stream` line by line on a thread, so a wait can time out.
fn read_lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn next_line(lines: &mpsc::Receiver<String>, deadline: Instant, what: &str, dir: &Path) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    match lines.recv_timeout(left) {
        Ok(line) => line,
        Err(error) => panic!(
            "gave up waiting for {what} ({error}); server log:\n{}",
            read_log(&dir.join("server.log"))
        ),
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| format!("({}: {error})", path.display()))
}

/// A tmux server on a socket of its own, running alice's client in one
/// session of 100 by 30 cells. Dropping it kills that tmux server only and
/// removes its socket file.
struct Tmux {
    socket: String,
    dir: PathBuf,
    /// Where tmux put the socket, once the server runs.
    socket_path: Option<PathBuf>,
}

impl Tmux {
    fn start(dir: &Path, server: &Server) -> Tmux {
        // The temporary folder's random name keeps the socket unique.
        let unique = dir.file_name().map_or_else(String::new, |name| {
            name.to_string_lossy().trim_start_matches('.').to_string()
        });
        let mut tmux = Tmux {
            socket: format!("voicemcu-test-{}-{unique}", std::process::id()),
            dir: dir.to_path_buf(),
            socket_path: None,
        };

        // After the client exits, the shell reports its status and the
        // terminal modes, then keeps the pane open for capture-pane.
        let client = [
            quote(BINARY),
            "client".to_string(),
            quote(&server.addr),
            ROOM.to_string(),
            SESSION.to_string(),
            "--cert-hash".to_string(),
            quote(&server.cert_hash),
            "--test-tone".to_string(),
            "--output-wav".to_string(),
            quote(&dir.join("alice-heard.wav").display().to_string()),
            "--log-file".to_string(),
            quote(&dir.join("alice.log").display().to_string()),
        ]
        .join(" ");
        let script = format!("{client}; echo \"voicemcu exit status $?\"; stty -a; sleep 600");

        let output = tmux.command(|command| {
            command
                .args(["-f", "/dev/null", "new-session", "-d", "-s", SESSION])
                .args(["-x", "100", "-y", "30"])
                .arg(script);
        });
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let socket_path = tmux.pane_format("#{socket_path}");
        tmux.socket_path = Some(PathBuf::from(socket_path));
        tmux
    }

    /// Runs tmux on this test's socket with the arguments `build` adds.
    fn command(&self, build: impl FnOnce(&mut Command)) -> Output {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        isolated(&mut command, &self.dir);
        build(&mut command);
        command.output().expect("run tmux")
    }

    /// The pane's text, including up to 100 lines scrolled off the top.
    fn capture(&self) -> String {
        let output = self.command(|command| {
            command.args(["capture-pane", "-p", "-S", "-100", "-t", SESSION]);
        });
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Expands a tmux format such as `#{cursor_flag}` for the pane.
    fn pane_format(&self, format: &str) -> String {
        let output = self.command(|command| {
            command.args(["display-message", "-p", "-t", SESSION, format]);
        });
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn type_line(&self, line: &str) {
        for keys in [&["-l", line][..], &["Enter"][..]] {
            let output = self.command(|command| {
                command.args(["send-keys", "-t", SESSION]).args(keys);
            });
            assert!(output.status.success(), "tmux send-keys {keys:?} failed");
        }
    }

    /// Polls the screen until `done` accepts it, and returns that screen.
    /// Panics with the last screen and the client's log after
    /// [`STEP_TIMEOUT`].
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let screen = self.capture();
            if done(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!(
                    "gave up waiting for {what}; the screen:\n{screen}\nclient log:\n{}\nserver log:\n{}",
                    read_log(&self.dir.join("alice.log")),
                    read_log(&self.dir.join("server.log")),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(|command| {
            command.arg("kill-server");
        });
        // tmux 3.3 leaves the socket file behind after kill-server.
        if let Some(path) = &self.socket_path {
            if path.file_name() == Some(self.socket.as_ref()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Quotes `text` for the shell tmux runs the command with.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The peers panel's row that contains `needle`, if any.
fn peer_row(screen: &str, needle: &str) -> Option<String> {
    screen
        .lines()
        .map(|line| line.chars().take(PEERS_PANEL_COLUMNS).collect::<String>())
        .find(|row| row.contains(needle))
}

/// The input box's title row: the name and room, then the state badges.
fn input_title(screen: &str) -> Option<&str> {
    screen
        .lines()
        .find(|line| line.contains(&format!("{SESSION} in {ROOM}")))
}
