//! Microphone and speakers through cpal, with fallbacks that keep a call
//! alive when a device is missing, fails to open or disappears.
//!
//! [`start`] spawns one device manager thread that owns the cpal streams.
//! It opens the capture and playback devices (the defaults or named ones),
//! hands the client side of each stream's ring buffer to the
//! [`DeviceSource`] and [`DeviceSink`] the client loop uses, watches for
//! failures (an error callback reporting the device gone, or callbacks that
//! stop arriving), and retries a missing device every
//! [`DeviceOptions::retry_interval`]. Each change is reported as a
//! [`DeviceNotice`] for the user interface.
//!
//! Everything the manager does with ALSA runs under
//! [`quiet::capture_stderr`], so library messages never reach the terminal;
//! they are logged at debug level and summarised once in a notice.
//!
//! [`convert`] holds the conversion the audio callbacks run, which the
//! tests drive with mock devices.

mod capture;
pub mod convert;
mod list;
mod open;
mod playback;
pub mod quiet;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use capture::{CaptureFallback, DeviceSource};
pub use list::{format_listings, list_devices, DeviceListing};
pub use open::DeviceError;
pub use playback::DeviceSink;

use convert::PathStats;
use open::OpenStream;

/// How often the manager checks its streams.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a running stream may go without a callback before it counts as
/// failed.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A device's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// A change in device state, for the user to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNotice {
    pub kind: NoticeKind,
    /// One line for the user, such as `microphone: "default" at 48000 Hz,
    /// 1 channel, i16`.
    pub message: String,
}

/// What a [`DeviceNotice`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// The device opened and is running.
    Opened(Direction),
    /// The device is missing, failed to open or failed while running; the
    /// fallback is in use.
    Unavailable(Direction),
    /// The audio library printed on stderr, which was hidden.
    LibraryOutput,
}

/// What [`start`] opens.
pub struct DeviceOptions {
    /// Open a capture device. Without it, the source only plays the
    /// fallback.
    pub capture: bool,
    /// Open a playback device. Without it, the sink discards every frame.
    pub playback: bool,
    /// Capture device name; the default device when `None`.
    pub input_device: Option<String>,
    /// Playback device name; the default device when `None`.
    pub output_device: Option<String>,
    /// What to send while no capture device is open.
    pub capture_fallback: CaptureFallback,
    /// How long to wait before trying a missing or failed device again.
    pub retry_interval: Duration,
}

/// The message that moves a ring buffer half between the manager and the
/// client side.
pub(crate) enum Handoff<T> {
    Attach(T),
    Detach,
}

/// The running device manager. Dropping it stops the thread and closes the
/// devices.
pub struct DeviceManager {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DeviceManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the audio device manager thread panicked");
            }
        }
    }
}

/// Starts the device manager thread and returns the source and sink the
/// client loop uses. Notices go to `notices` until it is dropped.
pub fn start(
    options: DeviceOptions,
    notices: Sender<DeviceNotice>,
) -> std::io::Result<(DeviceSource, DeviceSink, DeviceManager)> {
    let (capture_tx, capture_rx) = mpsc::channel();
    let (playback_tx, playback_rx) = mpsc::channel();
    let DeviceOptions {
        capture,
        playback,
        input_device,
        output_device,
        capture_fallback,
        retry_interval,
    } = options;

    let capture_fallback_label = match capture_fallback {
        CaptureFallback::Silence => "sending silence",
        CaptureFallback::Tone(_) => "sending a test tone",
    };
    let stop = Arc::new(AtomicBool::new(false));
    let manager = Manager {
        capture_fallback_label,
        capture: capture.then(|| Slot::new(Direction::Input, input_device, capture_tx)),
        playback: playback.then(|| Slot::new(Direction::Output, output_device, playback_tx)),
        retry_interval,
        notices,
        reported_library_output: false,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("voicemcu-audio-devices".to_string())
        .spawn(move || manager.run())?;

    let source = DeviceSource::new(capture_rx, capture_fallback);
    let sink = DeviceSink::new(playback_rx);
    Ok((
        source,
        sink,
        DeviceManager {
            stop,
            thread: Some(thread),
        },
    ))
}

/// One direction's device as the manager tracks it.
struct Slot<H> {
    direction: Direction,
    name: Option<String>,
    handoff: Sender<Handoff<H>>,
    open: Option<Running>,
    next_attempt: Instant,
    /// The last failure reported, so repeated retries stay quiet.
    last_failure: Option<String>,
}

/// An open stream and its progress, for stall detection.
struct Running {
    /// Kept alive until the slot drops it; dropping closes the device.
    _stream: cpal::Stream,
    stats: Arc<PathStats>,
    failed: Arc<AtomicBool>,
    description: String,
    callbacks_seen: u64,
    progress_at: Instant,
}

impl<H> Slot<H> {
    // The manager thread is an adapter that retries devices on the wall
    // clock; nothing deterministic depends on it.
    #[allow(clippy::disallowed_methods)]
    fn new(direction: Direction, name: Option<String>, handoff: Sender<Handoff<H>>) -> Self {
        Slot {
            direction,
            name,
            handoff,
            open: None,
            next_attempt: Instant::now(),
            last_failure: None,
        }
    }

    /// Returns why the open stream should be dropped, if it should.
    fn check_running(&mut self, now: Instant) -> Option<String> {
        let running = self.open.as_mut()?;
        if running.failed.load(Ordering::Relaxed) {
            return Some("the device is no longer available".to_string());
        }
        let callbacks = running.stats.callbacks.load(Ordering::Relaxed);
        if callbacks != running.callbacks_seen {
            running.callbacks_seen = callbacks;
            running.progress_at = now;
            return None;
        }
        if now.duration_since(running.progress_at) >= STALL_TIMEOUT {
            return Some(format!(
                "it stopped delivering audio for {} s",
                STALL_TIMEOUT.as_secs()
            ));
        }
        None
    }

    fn role(&self) -> &'static str {
        match self.direction {
            Direction::Input => "microphone",
            Direction::Output => "speakers",
        }
    }
}

struct Manager {
    /// What the capture side does while no device is open, for messages.
    capture_fallback_label: &'static str,
    capture: Option<Slot<convert::CaptureReader>>,
    playback: Option<Slot<convert::PlaybackWriter>>,
    retry_interval: Duration,
    notices: Sender<DeviceNotice>,
    reported_library_output: bool,
    stop: Arc<AtomicBool>,
}

impl Manager {
    // Retries and stall checks run on the wall clock; see `Slot::new`.
    #[allow(clippy::disallowed_methods)]
    fn run(mut self) {
        let (host, captured) = quiet::capture_stderr(cpal::default_host);
        self.report_library_output(&captured);
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if let Some(mut slot) = self.capture.take() {
                self.tick(&mut slot, now, |name| open::open_capture(&host, name));
                self.capture = Some(slot);
            }
            if let Some(mut slot) = self.playback.take() {
                self.tick(&mut slot, now, |name| open::open_playback(&host, name));
                self.playback = Some(slot);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        // Dropping the slots closes the streams; the client side notices
        // the closed channels and falls back.
    }

    fn tick<H>(
        &mut self,
        slot: &mut Slot<H>,
        now: Instant,
        open: impl FnOnce(Option<&str>) -> Result<OpenStream<H>, DeviceError>,
    ) {
        if let Some(reason) = slot.check_running(now) {
            let description = slot
                .open
                .take()
                .map(|running| running.description)
                .unwrap_or_default();
            let _ = slot.handoff.send(Handoff::Detach);
            let message = format!(
                "{} {description} failed: {reason}; {}, retrying every {} s",
                slot.role(),
                self.fallback(slot.direction),
                self.retry_interval.as_secs_f32()
            );
            tracing::warn!(direction = %slot.direction, "{message}");
            self.notify(NoticeKind::Unavailable(slot.direction), message);
            slot.last_failure = None;
            slot.next_attempt = now + self.retry_interval;
            return;
        }
        if slot.open.is_some() || now < slot.next_attempt {
            return;
        }

        let (opened, captured) = quiet::capture_stderr(|| open(slot.name.as_deref()));
        self.report_library_output(&captured);
        slot.next_attempt = now + self.retry_interval;
        match opened {
            Ok(stream) => {
                let message = format!("{}: {}", slot.role(), stream.description);
                tracing::info!(direction = %slot.direction, "{message}");
                if slot.handoff.send(Handoff::Attach(stream.half)).is_err() {
                    // The client side is gone, so the session is ending.
                    return;
                }
                slot.open = Some(Running {
                    _stream: stream.stream,
                    stats: stream.stats,
                    failed: stream.failed,
                    description: stream.description,
                    callbacks_seen: 0,
                    progress_at: now,
                });
                slot.last_failure = None;
                self.notify(NoticeKind::Opened(slot.direction), message);
            }
            Err(error) => {
                let error = error.to_string();
                if slot.last_failure.as_deref() == Some(error.as_str()) {
                    tracing::debug!(direction = %slot.direction, %error, "device still unavailable");
                    return;
                }
                let message = format!(
                    "no {}: {error}; {}, retrying every {} s",
                    slot.role(),
                    self.fallback(slot.direction),
                    self.retry_interval.as_secs_f32()
                );
                tracing::warn!(direction = %slot.direction, "{message}");
                self.notify(NoticeKind::Unavailable(slot.direction), message);
                slot.last_failure = Some(error);
            }
        }
    }

    fn fallback(&self, direction: Direction) -> &'static str {
        match direction {
            Direction::Input => self.capture_fallback_label,
            Direction::Output => "discarding what you hear",
        }
    }

    fn notify(&self, kind: NoticeKind, message: String) {
        let _ = self.notices.send(DeviceNotice { kind, message });
    }

    /// Logs library output at debug level, and reports the first batch to
    /// the user as a one-line summary.
    fn report_library_output(&mut self, captured: &str) {
        let Some(summary) = quiet::summarize(captured) else {
            return;
        };
        tracing::debug!(output = %captured, "audio library output on stderr");
        if !self.reported_library_output {
            self.reported_library_output = true;
            self.notify(NoticeKind::LibraryOutput, summary);
        }
    }
}

#[cfg(test)]
mod tests;
