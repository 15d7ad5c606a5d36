//! The session file: who joins when with which recording, what their
//! network does to their packets, and which commands they type.
//!
//! A session file is TOML (format in `docs/replay.md`). [`Session::load`]
//! parses it, checks every value and reads every WAV file, so that a replay
//! never starts on input it would fail on halfway. Every error names the
//! session file, the entry and the offending value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use voicemcu_audio::{WavError, WavSource};
use voicemcu_core::audio::FRAME_DURATION;
use voicemcu_core::server::ServerConfig;
use voicemcu_core::wire::Dialect;

use super::impairment::{ImpairmentError, ImpairmentSpec};

/// Room code used when the session file names none.
pub const DEFAULT_ROOM: &str = "replay";

/// Longest display name accepted, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// Latest instant accepted anywhere in a session file, in seconds: 4 hours,
/// the longest WAV file voicemcu reads.
pub const MAX_SECONDS: f64 = 4.0 * 3600.0;

/// Quiet time kept after the last participant stops sending or leaves, when
/// the session file sets no `duration`, so that the jitter buffers drain.
pub const DEFAULT_TAIL: Duration = Duration::from_millis(500);

/// Why a session file cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("failed reading session file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("session file {} is not valid: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("session file {}: {entry}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        entry: String,
        message: String,
    },
    #[error("session file {}: {entry}: {error}", path.display())]
    Wav {
        path: PathBuf,
        entry: String,
        error: WavError,
    },
}

/// The session file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    room: Option<String>,
    seed: Option<u64>,
    duration: Option<f64>,
    #[serde(default)]
    participant: Vec<RawParticipant>,
    #[serde(default)]
    event: Vec<RawEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParticipant {
    name: String,
    wav: PathBuf,
    join: f64,
    leave: Option<f64>,
    dialect: Option<DialectName>,
    impairment: Option<ImpairmentSpec>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DialectName {
    Native,
    Legacy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: f64,
    action: Action,
    by: String,
    target: Option<String>,
}

/// What a participant does at an event, typed as the matching slash command.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Mute,
    Unmute,
    ForceMute,
    ForceUnmute,
    Kick,
    Block,
    Unblock,
    Leave,
}

impl Action {
    /// Whether the action names a peer in `target`.
    pub fn needs_target(self) -> bool {
        matches!(
            self,
            Action::ForceMute
                | Action::ForceUnmute
                | Action::Kick
                | Action::Block
                | Action::Unblock
        )
    }

    /// The line typed into the actor's client.
    pub fn command_line(self, target: Option<&str>) -> String {
        let target = target.unwrap_or_default();
        match self {
            Action::Mute => "/mute on".to_string(),
            Action::Unmute => "/mute off".to_string(),
            Action::ForceMute => format!("/forcemute {target}"),
            Action::ForceUnmute => format!("/forceunmute {target}"),
            Action::Kick => format!("/kick {target}"),
            Action::Block => format!("/block {target}"),
            Action::Unblock => format!("/unblock {target}"),
            Action::Leave => "/leave".to_string(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::ForceMute => "forcemute",
            Action::ForceUnmute => "forceunmute",
            Action::Kick => "kick",
            Action::Block => "block",
            Action::Unblock => "unblock",
            Action::Leave => "leave",
        })
    }
}

/// A validated session, with every participant's audio read into memory.
#[derive(Debug)]
pub struct Session {
    /// The session file, as given.
    pub path: PathBuf,
    pub room: String,
    /// Seed of the server's client id allocation.
    pub seed: u64,
    /// Length of the replay, a whole number of 20 ms frames.
    pub duration: Duration,
    pub participants: Vec<Participant>,
    /// Events in the order they run: by time, then by file order.
    pub events: Vec<Event>,
}

/// One participant of a session.
#[derive(Debug)]
pub struct Participant {
    pub name: String,
    /// The WAV file, resolved against the session file's folder.
    pub wav: PathBuf,
    /// What the participant sends: 48 kHz mono.
    pub audio: WavSource,
    /// When it joins, rounded to the 20 ms frame grid.
    pub join: Duration,
    /// When it types `/leave`, rounded to the frame grid.
    pub leave: Option<Duration>,
    pub dialect: Dialect,
    pub impairment: Option<ImpairmentSpec>,
}

/// One command a participant types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When, rounded to the 20 ms frame grid.
    pub at: Duration,
    pub action: Action,
    /// Index of the acting participant in [`Session::participants`].
    pub by: usize,
    /// Index of the target participant, for actions that need one.
    pub target: Option<usize>,
}

impl Session {
    /// Reads, parses and validates the session file at `path`, and reads
    /// every participant's WAV file.
    pub fn load(path: impl AsRef<Path>) -> Result<Session, SessionError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| SessionError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Session::parse(path, &text, base)
    }

    /// Parses and validates `text` as the session file `path`, resolving WAV
    /// paths against `base`.
    pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Session, SessionError> {
        let raw: RawSession = toml::from_str(text).map_err(|error| SessionError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_string(),
        })?;
        Validator { path }.validate(raw, base)
    }

    /// The index of the participant named `name`, compared case-insensitively
    /// as the client compares display names.
    pub fn participant_index(&self, name: &str) -> Option<usize> {
        find_name(self.participants.iter().map(|p| p.name.as_str()), name)
    }
}

fn find_name<'a>(names: impl Iterator<Item = &'a str>, name: &str) -> Option<usize> {
    let wanted = name.to_lowercase();
    names
        .enumerate()
        .find(|(_, candidate)| candidate.to_lowercase() == wanted)
        .map(|(index, _)| index)
}

/// Checks a parsed session file and builds errors that name it.
struct Validator<'a> {
    path: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, entry: &str, message: String) -> SessionError {
        SessionError::Invalid {
            path: self.path.to_path_buf(),
            entry: entry.to_string(),
            message,
        }
    }

    fn validate(&self, raw: RawSession, base: &Path) -> Result<Session, SessionError> {
        let limits = ServerConfig::default();
        let room = raw.room.unwrap_or_else(|| DEFAULT_ROOM.to_string());
        if room.trim().is_empty() {
            return Err(self.invalid("room", "the room code is empty".to_string()));
        }
        let room_len = room.chars().count();
        if room_len > limits.max_room_code_len {
            return Err(self.invalid(
                "room",
                format!(
                    "the room code is {room_len} characters long, over the server's limit of {}; \
                     use a shorter one",
                    limits.max_room_code_len
                ),
            ));
        }
        let duration = match raw.duration {
            Some(seconds) => {
                let duration = self.seconds("duration", "duration", seconds)?;
                if duration.is_zero() {
                    return Err(self.invalid(
                        "duration",
                        format!("duration {seconds} s is shorter than one 20 ms frame"),
                    ));
                }
                Some(duration)
            }
            None => None,
        };
        if raw.participant.is_empty() {
            return Err(self.invalid(
                "participants",
                "the session has no [[participant]] entries; add at least one".to_string(),
            ));
        }

        let mut participants = Vec::with_capacity(raw.participant.len());
        for (index, participant) in raw.participant.into_iter().enumerate() {
            let checked = self.participant(index, participant, base, &participants, duration)?;
            participants.push(checked);
        }

        let mut events = Vec::with_capacity(raw.event.len());
        for (index, event) in raw.event.into_iter().enumerate() {
            events.push(self.event(index, event, &participants, duration)?);
        }
        // A stable sort keeps file order among events at the same instant.
        events.sort_by_key(|event| event.at);

        let duration = duration.unwrap_or_else(|| default_duration(&participants, &events));
        if let Some((at, count)) = crowded_moment(&participants, &events, limits.max_room_size) {
            return Err(self.invalid(
                "participants",
                format!(
                    "{count} participants are in the room at {} s, over the server's limit of {} \
                     per room; the server would reject the later joiners, so leave some out or \
                     give them leave times",
                    at.as_secs_f64(),
                    limits.max_room_size
                ),
            ));
        }
        Ok(Session {
            path: self.path.to_path_buf(),
            room,
            seed: raw.seed.unwrap_or(0),
            duration,
            participants,
            events,
        })
    }

    fn participant(
        &self,
        index: usize,
        raw: RawParticipant,
        base: &Path,
        earlier: &[Participant],
        duration: Option<Duration>,
    ) -> Result<Participant, SessionError> {
        let entry = format!("participant {} ({:?})", index + 1, raw.name);
        check_name(&raw.name).map_err(|message| self.invalid(&entry, message))?;
        if let Some(other) = find_name(earlier.iter().map(|p| p.name.as_str()), &raw.name) {
            return Err(self.invalid(
                &entry,
                format!(
                    "name {:?} is already used by participant {} ({:?}); names must differ \
                     even in case, because commands find peers by name",
                    raw.name,
                    other + 1,
                    earlier[other].name
                ),
            ));
        }

        let join = self.seconds(&entry, "join", raw.join)?;
        if let Some(end) = duration {
            if join >= end {
                return Err(self.invalid(
                    &entry,
                    format!(
                        "join {} s is not before the end of the session at {} s",
                        raw.join,
                        end.as_secs_f64()
                    ),
                ));
            }
        }
        let leave = match raw.leave {
            Some(seconds) => {
                let leave = self.seconds(&entry, "leave", seconds)?;
                if leave <= join {
                    return Err(self.invalid(
                        &entry,
                        format!(
                            "leave {seconds} s is not after join {} s (times are rounded to \
                             20 ms)",
                            raw.join
                        ),
                    ));
                }
                Some(leave)
            }
            None => None,
        };

        if let Some(impairment) = &raw.impairment {
            impairment.check().map_err(|error: ImpairmentError| {
                self.invalid(&format!("{entry}, impairment"), error.to_string())
            })?;
        }

        let wav = base.join(&raw.wav);
        let audio = WavSource::open(&wav).map_err(|error| SessionError::Wav {
            path: self.path.to_path_buf(),
            entry: entry.clone(),
            error,
        })?;

        let dialect = match raw.dialect {
            Some(DialectName::Legacy) => Dialect::Legacy,
            Some(DialectName::Native) | None => Dialect::Native,
        };
        Ok(Participant {
            name: raw.name,
            wav,
            audio,
            join,
            leave,
            dialect,
            impairment: raw.impairment,
        })
    }

    fn event(
        &self,
        index: usize,
        raw: RawEvent,
        participants: &[Participant],
        duration: Option<Duration>,
    ) -> Result<Event, SessionError> {
        let entry = format!("event {} ({} at {} s)", index + 1, raw.action, raw.at);
        let at = self.seconds(&entry, "at", raw.at)?;
        if let Some(end) = duration {
            if at >= end {
                return Err(self.invalid(
                    &entry,
                    format!(
                        "at {} s is not before the end of the session at {} s",
                        raw.at,
                        end.as_secs_f64()
                    ),
                ));
            }
        }

        let names = || participants.iter().map(|p| p.name.as_str());
        let known = || {
            participants
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(by) = find_name(names(), &raw.by) else {
            return Err(self.invalid(
                &entry,
                format!(
                    "by {:?} is not a participant; the participants are {}",
                    raw.by,
                    known()
                ),
            ));
        };
        let actor = &participants[by];
        if at < actor.join {
            return Err(self.invalid(
                &entry,
                format!(
                    "{} acts at {} s but joins only at {} s",
                    actor.name,
                    raw.at,
                    actor.join.as_secs_f64()
                ),
            ));
        }
        if let Some(leave) = actor.leave {
            if at >= leave {
                return Err(self.invalid(
                    &entry,
                    format!(
                        "{} acts at {} s but has left at {} s",
                        actor.name,
                        raw.at,
                        leave.as_secs_f64()
                    ),
                ));
            }
        }

        let target = match (raw.action.needs_target(), &raw.target) {
            (true, None) => {
                return Err(self.invalid(
                    &entry,
                    format!(
                        "action {} needs a target: add target = \"NAME\"",
                        raw.action
                    ),
                ))
            }
            (false, Some(target)) => {
                return Err(self.invalid(
                    &entry,
                    format!(
                        "action {} takes no target, but target = {target:?} is set",
                        raw.action
                    ),
                ))
            }
            (false, None) => None,
            (true, Some(target)) => {
                let Some(index) = find_name(names(), target) else {
                    return Err(self.invalid(
                        &entry,
                        format!(
                            "target {target:?} is not a participant; the participants are {}",
                            known()
                        ),
                    ));
                };
                if index == by {
                    return Err(self.invalid(
                        &entry,
                        format!("target {target:?} is the participant acting; name a peer"),
                    ));
                }
                let peer = &participants[index];
                if at < peer.join {
                    return Err(self.invalid(
                        &entry,
                        format!(
                            "target {} joins only at {} s, after the event",
                            peer.name,
                            peer.join.as_secs_f64()
                        ),
                    ));
                }
                Some(index)
            }
        };

        Ok(Event {
            at,
            action: raw.action,
            by,
            target,
        })
    }

    /// Checks a time in seconds and rounds it to the 20 ms frame grid.
    fn seconds(&self, entry: &str, field: &str, seconds: f64) -> Result<Duration, SessionError> {
        if !seconds.is_finite() {
            return Err(self.invalid(entry, format!("{field} {seconds} is not a number")));
        }
        if seconds < 0.0 {
            return Err(self.invalid(
                entry,
                format!(
                    "{field} {seconds} s is negative; times are seconds from the session start"
                ),
            ));
        }
        if seconds > MAX_SECONDS {
            return Err(self.invalid(
                entry,
                format!("{field} {seconds} s is later than the maximum of {MAX_SECONDS} s"),
            ));
        }
        Ok(round_to_frame(seconds))
    }
}

/// Rounds seconds to the nearest whole 20 ms frame.
fn round_to_frame(seconds: f64) -> Duration {
    let frames = (seconds / FRAME_DURATION.as_secs_f64()).round();
    // `frames` is at most MAX_SECONDS / 0.02, far inside u32.
    FRAME_DURATION * frames as u32
}

/// Checks that a name is usable as a display name and in a file name.
/// Returns the first moment more than `limit` participants are in the room
/// at once, and how many, counting each from its join until it leaves or
/// is kicked.
fn crowded_moment(
    participants: &[Participant],
    events: &[Event],
    limit: usize,
) -> Option<(Duration, usize)> {
    let gone_at = |index: usize| {
        let kicked = events
            .iter()
            .filter(|event| event.action == Action::Kick && event.target == Some(index))
            .map(|event| event.at)
            .min();
        let left = events
            .iter()
            .filter(|event| event.action == Action::Leave && event.by == index)
            .map(|event| event.at)
            .min();
        [participants[index].leave, kicked, left]
            .into_iter()
            .flatten()
            .min()
    };
    // Joins and departures in time order; at the same instant a departure
    // comes first, as the server handles it.
    let mut changes: Vec<(Duration, i64)> = Vec::new();
    for (index, participant) in participants.iter().enumerate() {
        changes.push((participant.join, 1));
        if let Some(gone) = gone_at(index) {
            changes.push((gone, -1));
        }
    }
    changes.sort();

    let mut present = 0i64;
    for (at, change) in changes {
        present += change;
        let count = usize::try_from(present).unwrap_or(0);
        if count > limit {
            return Some((at, count));
        }
    }
    None
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".to_string());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "name {name:?} is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "name {name:?} contains {bad:?}; use ASCII letters, digits, '-' and '_', because the \
             name becomes part of the output file NAME-heard.wav"
        ));
    }
    Ok(())
}

/// The latest of every participant's leave time (or the end of its audio
/// when it sets none) and every event, plus [`DEFAULT_TAIL`], rounded up to
/// a whole frame.
fn default_duration(participants: &[Participant], events: &[Event]) -> Duration {
    let stays = participants.iter().map(|participant| {
        participant
            .leave
            .unwrap_or(participant.join + participant.audio.duration())
    });
    let last = stays
        .chain(events.iter().map(|event| event.at))
        .max()
        .unwrap_or_default();
    let micros = (last + DEFAULT_TAIL).as_micros();
    let frame = FRAME_DURATION.as_micros();
    let frames = micros.div_ceil(frame);
    FRAME_DURATION * u32::try_from(frames).unwrap_or(u32::MAX)
}
