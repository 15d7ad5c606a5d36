//! Writes the server's recording feed to disk as session files that
//! `voicemcu replay` plays back (`voicemcu server --record DIR`).
//!
//! Each life of a room gets its own folder under the recording root,
//! `ROOM-YYYYMMDDTHHMMSSZ` (with `-2`, `-3`, ... when that exists), holding:
//!
//! - `ID-NAME.wav` for every participant: what the server decoded from it
//!   (after jitter buffering and concealment), 48 kHz mono 16-bit, from its
//!   join to its leave, silence where nothing was decoded;
//! - `session.toml`: a session file in the replay format, with each
//!   participant's join and leave and every moderation action at the room
//!   time it happened.
//!
//! `ROOM` and `NAME` keep only ASCII letters, digits, `-` and `_` of the
//! room code and display name, so neither can name a path outside the
//! folder. Names in the session file are made unique, so the replay writes
//! one `NAME-heard.wav` per participant: someone who leaves and joins again
//! is a second participant (`alice`, then `alice-2`).
//!
//! The writer runs on its own thread ([`start`]) and is fed through
//! [`voicemcu_quic::recording`], which drops audio rather than making the
//! mix wait. Every [`FLUSH_INTERVAL`] it updates the WAV headers and the
//! session file, so a server that is killed leaves valid files that end at
//! most that long before it died.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, error, info, warn};
use voicemcu_audio::wav::WavRecorder;
use voicemcu_core::audio::{FRAME_DURATION, FRAME_SAMPLES, SILENCE};
use voicemcu_core::ids::ClientId;
use voicemcu_core::server::{LeaveReason, RecordEvent, RecordedAction, RoomSerial};
use voicemcu_core::wire::Dialect;
use voicemcu_quic::recording::{self, DropCounts, RecordingReceiver, RecordingSender};

use super::session::{Action, DEFAULT_TAIL};

/// How often WAV headers and session files are brought up to date.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The session file's name in each room's folder.
pub const SESSION_FILE: &str = "session.toml";

/// Longest room code or display name kept in a file name, in characters.
const MAX_NAME_CHARS: usize = 40;

/// Writes recorded rooms under one folder. Drive it with
/// [`SessionWriter::handle`] and [`SessionWriter::flush`], or let
/// [`start`] do so on a thread.
pub struct SessionWriter {
    root: PathBuf,
    rooms: BTreeMap<RoomSerial, RoomRecording>,
    /// Every session folder created, in order.
    sessions: Vec<PathBuf>,
}

/// One room's recording in progress.
struct RoomRecording {
    code: String,
    /// `None` when the folder could not be created: the room is skipped.
    dir: Option<PathBuf>,
    /// When the room opened, for the session file's header.
    started: SystemTime,
    /// The latest tick of the room's clock seen.
    tick: u64,
    participants: Vec<Track>,
    /// Index in `participants` of every client id.
    by_client: BTreeMap<ClientId, usize>,
    events: Vec<SessionEvent>,
    /// The tick at which the session file was last written.
    written: Option<u64>,
    /// Whether participants or events changed since then.
    dirty: bool,
    closed: bool,
}

/// One participant's recording.
struct Track {
    client: ClientId,
    display_name: String,
    /// Unique in the room, safe in a file name.
    name: String,
    file_name: String,
    dialect: Dialect,
    join: u64,
    left: Option<(u64, LeaveReason)>,
    /// `None` once finished, or after an error.
    wav: Option<WavRecorder>,
    /// 20 ms frames written so far.
    frames: u64,
}

/// A moderation action in session terms.
struct SessionEvent {
    tick: u64,
    action: Action,
    by: usize,
    target: Option<usize>,
}

impl SessionWriter {
    /// Creates a writer that puts sessions under `root`, creating it if
    /// needed.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<SessionWriter> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(SessionWriter {
            root,
            rooms: BTreeMap::new(),
            sessions: Vec::new(),
        })
    }

    /// Returns the session folders created so far, in the order the rooms
    /// opened.
    pub fn sessions(&self) -> &[PathBuf] {
        &self.sessions
    }

    /// Records one event. `now` dates the folder of a room that opens.
    pub fn handle(&mut self, event: RecordEvent, now: SystemTime) {
        let serial = event.room();
        if let RecordEvent::RoomOpened { code, .. } = &event {
            let dir = self.create_session_dir(code, now);
            self.rooms.insert(
                serial,
                RoomRecording {
                    code: code.clone(),
                    dir,
                    started: now,
                    tick: 0,
                    participants: Vec::new(),
                    by_client: BTreeMap::new(),
                    events: Vec::new(),
                    written: None,
                    dirty: true,
                    closed: false,
                },
            );
            return;
        }
        let Some(room) = self.rooms.get_mut(&serial) else {
            debug!(room = serial, "recording event for an unknown room ignored");
            return;
        };
        if room.dir.is_none() {
            if matches!(event, RecordEvent::RoomClosed { .. }) {
                self.rooms.remove(&serial);
            }
            return;
        }
        match event {
            RecordEvent::RoomOpened { .. } => {}
            RecordEvent::Joined {
                tick,
                client,
                name,
                dialect,
                ..
            } => room.joined(tick, client, name, dialect),
            RecordEvent::Left {
                tick,
                client,
                reason,
                ..
            } => room.left(tick, client, reason),
            RecordEvent::Action {
                tick,
                by,
                action,
                target,
                ..
            } => room.action(tick, by, action, target),
            RecordEvent::Tick { tick, frames, .. } => {
                room.advance(tick);
                for frame in frames {
                    room.audio(tick, frame.member, &frame.pcm);
                }
            }
            RecordEvent::RoomClosed { tick, .. } => {
                room.advance(tick);
                room.close();
                self.rooms.remove(&serial);
            }
        }
    }

    /// Updates every WAV header and rewrites every session file that
    /// changed, so that the files are valid as they stand.
    pub fn flush(&mut self) {
        for room in self.rooms.values_mut() {
            room.flush();
        }
    }

    /// Finishes every room still open, as if it closed now.
    pub fn finish(&mut self) {
        for (_, mut room) in std::mem::take(&mut self.rooms) {
            if room.dir.is_some() {
                room.close();
            }
        }
    }

    /// Creates `ROOT/ROOM-TIMESTAMP`, or that with `-2`, `-3`, ... when it
    /// exists.
    fn create_session_dir(&mut self, code: &str, now: SystemTime) -> Option<PathBuf> {
        let base = format!("{}-{}", safe_file_name(code, "room"), compact_utc(now));
        for attempt in 1..=1000u32 {
            let name = match attempt {
                1 => base.clone(),
                n => format!("{base}-{n}"),
            };
            let dir = self.root.join(name);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    info!(room = code, dir = %dir.display(), "recording room");
                    self.sessions.push(dir.clone());
                    return Some(dir);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => {
                    error!(room = code, dir = %dir.display(), %error, "cannot record room: failed to create its folder");
                    return None;
                }
            }
        }
        error!(
            room = code,
            "cannot record room: too many folders named {base}"
        );
        None
    }
}

impl Drop for SessionWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

impl RoomRecording {
    fn dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("."))
    }

    fn advance(&mut self, tick: u64) {
        self.tick = self.tick.max(tick);
    }

    fn joined(&mut self, tick: u64, client: ClientId, display_name: String, dialect: Dialect) {
        self.advance(tick);
        self.dirty = true;
        let name = self.unique_name(&display_name);
        let file_name = format!("{client}-{name}.wav");
        let path = self.dir().join(&file_name);
        let wav = match WavRecorder::create(&path) {
            Ok(wav) => Some(wav),
            Err(error) => {
                error!(%error, "cannot record a participant");
                None
            }
        };
        self.by_client.insert(client, self.participants.len());
        self.participants.push(Track {
            client,
            display_name,
            name,
            file_name,
            dialect,
            join: tick,
            left: None,
            wav,
            frames: 0,
        });
    }

    /// A name for the session file: safe in a file name, and different
    /// (ignoring case, as clients compare names) from every earlier one.
    fn unique_name(&self, display_name: &str) -> String {
        let base = safe_file_name(display_name, "participant");
        let taken = |candidate: &str| {
            self.participants
                .iter()
                .any(|track| track.name.eq_ignore_ascii_case(candidate))
        };
        let mut name = base.clone();
        let mut counter = 2;
        while taken(&name) {
            name = format!("{base}-{counter}");
            counter += 1;
        }
        name
    }

    fn left(&mut self, tick: u64, client: ClientId, reason: LeaveReason) {
        self.advance(tick);
        self.dirty = true;
        let Some(&index) = self.by_client.get(&client) else {
            return;
        };
        // A replayed participant leaves after its join and after its own
        // last action, because the replay rejects anything else; both can
        // fall in the same 20 ms tick live.
        let last_action = self
            .events
            .iter()
            .filter(|event| event.by == index)
            .map(|event| event.tick + 1)
            .max()
            .unwrap_or(0);
        let track = &mut self.participants[index];
        let end = tick.max(track.join + 1).max(last_action);
        track.left = Some((end, reason));
        track.pad_to(end - track.join);
        track.finish();
    }

    fn action(
        &mut self,
        tick: u64,
        by: ClientId,
        action: RecordedAction,
        target: Option<ClientId>,
    ) {
        self.advance(tick);
        self.dirty = true;
        let Some(&by) = self.by_client.get(&by) else {
            return;
        };
        let target = match target {
            Some(client) => match self.by_client.get(&client) {
                Some(&index) => Some(index),
                None => return,
            },
            None => None,
        };
        let action = match action {
            RecordedAction::Mute => Action::Mute,
            RecordedAction::Unmute => Action::Unmute,
            RecordedAction::ForceMute => Action::ForceMute,
            RecordedAction::ForceUnmute => Action::ForceUnmute,
            RecordedAction::Kick => Action::Kick,
            RecordedAction::Block => Action::Block,
            RecordedAction::Unblock => Action::Unblock,
        };
        self.events.push(SessionEvent {
            tick,
            action,
            by,
            target,
        });
    }

    /// Writes a member's frame decoded in `tick`, after silence for the
    /// ticks since its last frame.
    fn audio(&mut self, tick: u64, client: ClientId, pcm: &[f32; FRAME_SAMPLES]) {
        let Some(&index) = self.by_client.get(&client) else {
            return;
        };
        let track = &mut self.participants[index];
        if track.left.is_some() || tick <= track.join {
            return;
        }
        let position = tick - 1 - track.join;
        if position < track.frames {
            debug!(
                client,
                tick, "recorded frame older than the file's end ignored"
            );
            return;
        }
        track.pad_to(position);
        track.write(pcm);
    }

    fn flush(&mut self) {
        let now = self.tick;
        for track in &mut self.participants {
            if track.left.is_none() {
                track.pad_to(now.saturating_sub(track.join));
            }
            track.flush();
        }
        self.write_session();
    }

    /// Finishes every file: participants still in the room end now.
    fn close(&mut self) {
        self.closed = true;
        let now = self.tick;
        for track in &mut self.participants {
            if track.left.is_none() {
                track.pad_to(now.saturating_sub(track.join).max(1));
            }
            track.finish();
        }
        self.write_session();
    }

    /// Writes the session file through a temporary file, so that a reader
    /// (or a kill) never sees half of one. Skips it when nothing changed.
    fn write_session(&mut self) {
        if !self.dirty && !self.closed && self.written == Some(self.tick) {
            return;
        }
        let text = self.session_text();
        let dir = self.dir().to_path_buf();
        let path = dir.join(SESSION_FILE);
        let temporary = dir.join(format!("{SESSION_FILE}.tmp"));
        let result = fs::write(&temporary, text).and_then(|()| fs::rename(&temporary, &path));
        match result {
            Ok(()) => {
                self.written = Some(self.tick);
                self.dirty = false;
            }
            Err(error) => {
                error!(path = %path.display(), %error, "failed to write the session file")
            }
        }
    }

    fn session_text(&self) -> String {
        let mut text = String::new();
        let end = self.tick;
        let _ = writeln!(
            text,
            "# voicemcu recording of room {}, opened {}.",
            toml_string(&self.code),
            readable_utc(self.started)
        );
        text.push_str(
            "# Replay it with: voicemcu replay session.toml --out DIR\n\
             #\n\
             # Times are seconds on the room's clock, counted in 20 ms mixer ticks\n\
             # from the moment the room opened. Each WAV file holds what the server\n\
             # decoded from that participant (after its jitter buffer and loss\n\
             # concealment), starting at its join, so the session needs no network\n\
             # impairment: replaying it reproduces what every listener heard.\n",
        );
        if self.closed {
            let _ = writeln!(
                text,
                "# The recording ended at {} s, when the room closed or the server stopped.",
                seconds(end)
            );
        } else {
            let _ = writeln!(
                text,
                "# Written while recording, at {} s; if the server was killed, the\n\
                 # recording ends about here.",
                seconds(end)
            );
        }

        // Everyone is in the session once their file holds audio; a
        // participant who joined in the tick just written waits for the
        // next update.
        let listed: Vec<bool> = self
            .participants
            .iter()
            .map(|track| track.frames > 0)
            .collect();
        let duration = end as f64 * FRAME_DURATION.as_secs_f64() + DEFAULT_TAIL.as_secs_f64();
        let _ = writeln!(text, "\nroom = {}", toml_string(&self.code));
        let _ = writeln!(text, "duration = {duration:.2}");

        for (track, listed) in self.participants.iter().zip(&listed) {
            if !listed {
                continue;
            }
            let dialect = match track.dialect {
                Dialect::Native => "native",
                Dialect::Legacy => "legacy",
            };
            let status = match track.left {
                Some((tick, reason)) => format!("{reason} at {} s", seconds(tick)),
                None if self.closed => "in the room until the end".to_string(),
                None => "in the room".to_string(),
            };
            let _ = writeln!(
                text,
                "\n[[participant]]\n# display name {}, client id {}, {dialect} dialect; {status}",
                toml_string(&track.display_name),
                track.client
            );
            let _ = writeln!(text, "name = {}", toml_string(&track.name));
            let _ = writeln!(text, "wav = {}", toml_string(&track.file_name));
            let _ = writeln!(text, "join = {}", seconds(track.join));
            // Kicks are replayed as the host's action, and a shutdown as
            // the end of the session.
            if let Some((tick, reason)) = track.left {
                if !matches!(reason, LeaveReason::Kicked | LeaveReason::Shutdown) {
                    let _ = writeln!(text, "leave = {}", seconds(tick));
                }
            }
            if track.dialect == Dialect::Legacy {
                text.push_str("dialect = \"legacy\"\n");
            }
        }

        for event in &self.events {
            let involved = std::iter::once(event.by).chain(event.target);
            if !involved.into_iter().all(|index| listed[index]) {
                continue;
            }
            let _ = writeln!(
                text,
                "\n[[event]]\nat = {}\naction = \"{}\"\nby = {}",
                seconds(event.tick),
                event.action,
                toml_string(&self.participants[event.by].name)
            );
            if let Some(target) = event.target {
                let _ = writeln!(
                    text,
                    "target = {}",
                    toml_string(&self.participants[target].name)
                );
            }
        }
        text
    }
}

impl Track {
    /// Appends silence until the file contains `frames` frames.
    fn pad_to(&mut self, frames: u64) {
        while self.frames < frames {
            self.write(&SILENCE);
        }
    }

    fn write(&mut self, pcm: &[f32; FRAME_SAMPLES]) {
        self.frames += 1;
        let Some(wav) = &mut self.wav else {
            return;
        };
        if let Err(error) = wav.write(pcm) {
            error!(%error, "stopped recording a participant");
            self.wav = None;
        }
    }

    fn flush(&mut self) {
        if let Some(wav) = &mut self.wav {
            if let Err(error) = wav.flush() {
                error!(%error, "stopped recording a participant");
                self.wav = None;
            }
        }
    }

    fn finish(&mut self) {
        if let Some(mut wav) = self.wav.take() {
            if let Err(error) = wav.finish() {
                error!(%error, "failed to finish a recording");
            }
        }
    }
}

/// Keeps the ASCII letters, digits, `-` and `_` of `text`, turning every run
/// of other characters into one `_`, and at most [`MAX_NAME_CHARS`] of
/// them; `fallback` when nothing is left. The result never contains a path
/// separator or a dot, so it names a file inside the folder it is joined to.
pub fn safe_file_name(text: &str, fallback: &str) -> String {
    let mut safe = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            safe.push(c);
        } else if !safe.ends_with('_') {
            safe.push('_');
        }
        if safe.len() >= MAX_NAME_CHARS {
            break;
        }
    }
    let trimmed = safe.trim_matches(|c| c == '_' || c == '-');
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

/// `tick` as seconds of room time, exact to the 20 ms frame.
fn seconds(tick: u64) -> String {
    let millis = tick * FRAME_DURATION.as_millis() as u64;
    format!("{}.{:02}", millis / 1000, (millis % 1000) / 10)
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Year, month, day, hour, minute and second in UTC.
fn utc_parts(time: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// `20250102T030405Z`: sorts in time order and is safe in a file name.
fn compact_utc(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second) = utc_parts(time);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

/// `2025-01-02 03:04:05 UTC`.
fn readable_utc(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second) = utc_parts(time);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// A running writer thread, from [`start`].
pub struct RecorderHandle {
    thread: JoinHandle<RecordingSummary>,
}

/// The files a recording produced and the frames it lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Every session folder, in the order the rooms opened.
    pub sessions: Vec<PathBuf>,
    /// Frames and events the queue dropped because the writer fell behind.
    pub drops: DropCounts,
}

impl RecorderHandle {
    /// Waits for the writer to finish, which it does once the
    /// [`RecordingSender`] is dropped and everything queued is written.
    pub fn join(self) -> RecordingSummary {
        match self.thread.join() {
            Ok(summary) => summary,
            Err(_) => {
                error!("the recording writer thread panicked");
                RecordingSummary::default()
            }
        }
    }
}

/// Starts a writer thread that records under `root` (created if needed)
/// and returns the sender to hand to
/// [`voicemcu_quic::QuicServer::record_to`], with a queue of `queue_slots`
/// (see [`voicemcu_quic::recording`]).
pub fn start(
    root: impl Into<PathBuf>,
    queue_slots: usize,
) -> io::Result<(RecordingSender, RecorderHandle)> {
    let writer = SessionWriter::new(root)?;
    let (sender, receiver) = recording::channel(queue_slots);
    let thread = std::thread::Builder::new()
        .name("voicemcu-recorder".to_string())
        .spawn(move || run_writer(writer, receiver))?;
    Ok((sender, RecorderHandle { thread }))
}

#[allow(
    clippy::disallowed_methods,
    reason = "the writer thread is an adapter: it reads the clocks to date folders and pace flushes"
)]
fn run_writer(mut writer: SessionWriter, receiver: RecordingReceiver) -> RecordingSummary {
    let mut next_flush = std::time::Instant::now() + FLUSH_INTERVAL;
    loop {
        let wait = next_flush.saturating_duration_since(std::time::Instant::now());
        match receiver.recv_timeout(wait) {
            Ok(event) => writer.handle(event, SystemTime::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if std::time::Instant::now() >= next_flush {
            writer.flush();
            next_flush = std::time::Instant::now() + FLUSH_INTERVAL;
        }
    }
    writer.finish();
    let drops = receiver.drops();
    if drops.frames > 0 || drops.control > 0 {
        warn!(
            frames = drops.frames,
            control_events = drops.control,
            "the recording writer fell behind: some audio frames are silence in the recordings"
        );
    }
    RecordingSummary {
        sessions: writer.sessions().to_vec(),
        drops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicemcu_core::mixer::DecodedFrame;

    use crate::replay::session::Session;

    fn time() -> SystemTime {
        // 2024-02-29 23:59:58 UTC.
        UNIX_EPOCH + Duration::from_secs(1_709_251_198)
    }

    fn opened(room: RoomSerial, code: &str) -> RecordEvent {
        RecordEvent::RoomOpened {
            room,
            code: code.to_string(),
        }
    }

    fn joined(room: RoomSerial, tick: u64, client: ClientId, name: &str) -> RecordEvent {
        RecordEvent::Joined {
            room,
            tick,
            client,
            name: name.to_string(),
            dialect: Dialect::Native,
        }
    }

    fn frame(member: ClientId, value: f32) -> DecodedFrame {
        DecodedFrame {
            member,
            pcm: Box::new([value; FRAME_SAMPLES]),
        }
    }

    fn tick(room: RoomSerial, tick: u64, frames: Vec<DecodedFrame>) -> RecordEvent {
        RecordEvent::Tick { room, tick, frames }
    }

    #[test]
    fn names_are_safe_in_file_names() {
        assert_eq!(safe_file_name("../../etc/passwd", "room"), "etc_passwd");
        assert_eq!(safe_file_name("..", "room"), "room");
        assert_eq!(safe_file_name("a/b\\c:d", "room"), "a_b_c_d");
        assert_eq!(safe_file_name("Zoë Café 🎧", "x"), "Zo_Caf");
        assert_eq!(safe_file_name("", "participant"), "participant");
        assert_eq!(safe_file_name("CON", "room"), "CON");
        assert_eq!(
            safe_file_name(&"x".repeat(500), "room").len(),
            MAX_NAME_CHARS
        );
        for hostile in ["/", "\\", ".", "\0", "C:", "~"] {
            let safe = safe_file_name(hostile, "room");
            assert!(!safe.contains(['/', '\\', '.', '\0', ':']), "{safe:?}");
        }
    }

    #[test]
    fn times_are_formatted_exactly() {
        assert_eq!(seconds(0), "0.00");
        assert_eq!(seconds(1), "0.02");
        assert_eq!(seconds(725), "14.50");
        assert_eq!(compact_utc(time()), "20240229T235958Z");
        assert_eq!(readable_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(toml_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn recorded_room_becomes_a_replayable_session() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = SessionWriter::new(root.path()).unwrap();
        let now = time();
        writer.handle(opened(0, "../friday"), now);
        writer.handle(joined(0, 0, 10, "Alice Smith"), now);
        writer.handle(joined(0, 2, 11, "alice_smith"), now);
        writer.handle(joined(0, 2, 12, "../../bob"), now);
        for n in 1..=100 {
            let mut frames = vec![frame(10, 0.25)];
            if n > 50 {
                frames.push(frame(12, -0.5));
            }
            writer.handle(tick(0, n, frames), now);
        }
        writer.handle(
            RecordEvent::Action {
                room: 0,
                tick: 100,
                by: 10,
                action: RecordedAction::ForceMute,
                target: Some(12),
            },
            now,
        );
        writer.handle(
            RecordEvent::Action {
                room: 0,
                tick: 100,
                by: 11,
                action: RecordedAction::Mute,
                target: None,
            },
            now,
        );
        // Mute and leave in the same tick: the leave moves one tick later.
        writer.handle(
            RecordEvent::Left {
                room: 0,
                tick: 100,
                client: 11,
                reason: LeaveReason::Left,
            },
            now,
        );
        writer.handle(tick(0, 101, vec![frame(10, 0.25)]), now);
        writer.handle(
            RecordEvent::Action {
                room: 0,
                tick: 101,
                by: 10,
                action: RecordedAction::Kick,
                target: Some(12),
            },
            now,
        );
        writer.handle(
            RecordEvent::Left {
                room: 0,
                tick: 101,
                client: 12,
                reason: LeaveReason::Kicked,
            },
            now,
        );
        writer.handle(tick(0, 102, vec![frame(10, 0.25)]), now);
        writer.handle(
            RecordEvent::Left {
                room: 0,
                tick: 102,
                client: 10,
                reason: LeaveReason::Shutdown,
            },
            now,
        );
        writer.handle(RecordEvent::RoomClosed { room: 0, tick: 102 }, now);

        assert_eq!(writer.sessions().len(), 1);
        let dir = &writer.sessions()[0];
        assert_eq!(dir.parent().unwrap(), root.path(), "stays under the root");
        assert_eq!(
            dir.file_name().unwrap().to_str().unwrap(),
            "friday-20240229T235958Z"
        );
        let text = fs::read_to_string(dir.join(SESSION_FILE)).unwrap();
        let session = Session::load(dir.join(SESSION_FILE)).unwrap_or_else(|error| {
            panic!("{error}\n{text}");
        });
        assert_eq!(session.room, "../friday");
        let names: Vec<&str> = session
            .participants
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["Alice_Smith", "alice_smith-2", "bob"], "{text}");
        let files: Vec<String> = session
            .participants
            .iter()
            .map(|p| p.wav.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            ["10-Alice_Smith.wav", "11-alice_smith-2.wav", "12-bob.wav"]
        );

        let alice = &session.participants[0];
        assert_eq!(alice.join, Duration::ZERO);
        assert_eq!(alice.leave, None, "a shutdown is the end of the session");
        // 102 ticks from her join, all 0.25.
        assert_eq!(alice.audio.samples().len(), 102 * FRAME_SAMPLES);
        assert!(alice.audio.samples().iter().all(|&s| s == 0.25));

        let second = &session.participants[1];
        assert_eq!(second.join, FRAME_DURATION * 2);
        assert_eq!(second.leave, Some(FRAME_DURATION * 101));
        assert_eq!(second.audio.samples().len(), 99 * FRAME_SAMPLES);

        // Bob's audio runs from tick 51 to 100 of the room, frames 48 to 97
        // of his file, then silence until the kick.
        let bob = &session.participants[2];
        assert_eq!(bob.leave, None, "the kick removes him");
        let samples = bob.audio.samples();
        assert_eq!(samples.len(), 99 * FRAME_SAMPLES);
        assert!(samples[..48 * FRAME_SAMPLES].iter().all(|&s| s == 0.0));
        assert!(samples[48 * FRAME_SAMPLES..98 * FRAME_SAMPLES]
            .iter()
            .all(|&s| s == -0.5));
        assert!(samples[98 * FRAME_SAMPLES..].iter().all(|&s| s == 0.0));

        let events: Vec<(Duration, Action, usize, Option<usize>)> = session
            .events
            .iter()
            .map(|e| (e.at, e.action, e.by, e.target))
            .collect();
        assert_eq!(
            events,
            [
                (FRAME_DURATION * 100, Action::ForceMute, 0, Some(2)),
                (FRAME_DURATION * 100, Action::Mute, 1, None),
                (FRAME_DURATION * 101, Action::Kick, 0, Some(2)),
            ]
        );
        assert_eq!(session.duration, FRAME_DURATION * 102 + DEFAULT_TAIL);
    }

    #[test]
    fn reopened_room_gets_a_new_folder() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = SessionWriter::new(root.path()).unwrap();
        for serial in 0..2 {
            writer.handle(opened(serial, "friday"), time());
            writer.handle(joined(serial, 0, 10 + serial, "alice"), time());
            writer.handle(tick(serial, 1, vec![]), time());
            writer.handle(
                RecordEvent::Left {
                    room: serial,
                    tick: 1,
                    client: 10 + serial,
                    reason: LeaveReason::Left,
                },
                time(),
            );
            writer.handle(
                RecordEvent::RoomClosed {
                    room: serial,
                    tick: 1,
                },
                time(),
            );
        }
        let names: Vec<String> = writer
            .sessions()
            .iter()
            .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["friday-20240229T235958Z", "friday-20240229T235958Z-2"]
        );
        for dir in writer.sessions() {
            let session = Session::load(dir.join(SESSION_FILE)).unwrap();
            assert_eq!(session.participants.len(), 1);
        }
    }

    #[test]
    fn files_are_valid_while_recording() {
        // The state a killed server leaves: flushed, never finished.
        let root = tempfile::tempdir().unwrap();
        let mut writer = SessionWriter::new(root.path()).unwrap();
        writer.handle(opened(0, "friday"), time());
        writer.handle(joined(0, 0, 10, "alice"), time());
        for n in 1..=60 {
            writer.handle(tick(0, n, vec![frame(10, 0.5)]), time());
        }
        writer.handle(joined(0, 60, 11, "bob"), time());
        writer.flush();
        // Bob joined in the tick just written: not listed until he has audio.
        let dir = writer.sessions()[0].clone();
        let copy = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
        let session = Session::load(copy.path().join(SESSION_FILE)).unwrap();
        assert_eq!(session.participants.len(), 1);
        assert_eq!(
            session.participants[0].audio.samples().len(),
            60 * FRAME_SAMPLES
        );
        assert_eq!(session.duration, FRAME_DURATION * 60 + DEFAULT_TAIL);

        writer.handle(tick(0, 61, vec![frame(10, 0.5), frame(11, 0.1)]), time());
        writer.flush();
        let session = Session::load(dir.join(SESSION_FILE)).unwrap();
        assert_eq!(session.participants.len(), 2);
        assert_eq!(session.participants[1].audio.samples().len(), FRAME_SAMPLES);
        drop(writer);
        let text = fs::read_to_string(dir.join(SESSION_FILE)).unwrap();
        assert!(text.contains("# The recording ended at 1.22 s"), "{text}");
    }
}
