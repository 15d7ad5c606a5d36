//! The client's terminal UI: a peers panel, an event log and an input
//! line, drawn with ratatui on crossterm while the session runs.
//!
//! [`model::ViewModel`] holds everything shown and is built only from the
//! client's events, device notices and levels; [`render::draw`] draws it.
//! [`run`] owns the terminal: it switches to raw mode and the alternate
//! screen, and restores both on every exit, including a panic (through a
//! panic hook) and an error.

mod fit;
pub mod model;
pub mod render;

#[cfg(test)]
mod tests;

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{self, Event, KeyEvent};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::{mpsc, Notify};
use voicemcu_audio::device::DeviceNotice;
use voicemcu_core::client::ClientEvent;

use model::{Action, ViewModel};

/// How often levels are redrawn.
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// How long the key reader waits for a key before checking whether to stop.
const KEY_POLL: Duration = Duration::from_millis(50);

/// Reads the live send and hear levels for the meters.
pub type LevelReader = Box<dyn Fn() -> (f32, f32) + Send>;

/// Channels the UI reads and writes.
pub struct UiChannels {
    pub events: mpsc::UnboundedReceiver<ClientEvent>,
    pub notices: mpsc::UnboundedReceiver<DeviceNotice>,
    pub commands: mpsc::Sender<String>,
    /// Notified when the user presses Esc or Ctrl+C.
    pub leave: Arc<Notify>,
    pub levels: LevelReader,
}

/// Restores the terminal when dropped.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Chains a panic hook that restores the terminal before the panic message
/// is printed, so the message is readable and the shell usable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
}

fn enter_terminal() -> io::Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>)> {
    enable_raw_mode()?;
    let guard = TerminalGuard;
    execute!(io::stdout(), EnterAlternateScreen)?;
    let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    Ok((guard, terminal))
}

/// Reads keys on a blocking thread until `stop` is set.
fn spawn_key_reader(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<KeyEvent> {
    let (keys_tx, keys) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(KEY_POLL) {
                Ok(true) => match event::read() {
                    Ok(Event::Key(key)) => {
                        if keys_tx.send(key).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "failed to read a key");
                        return;
                    }
                },
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "failed to poll for keys");
                    return;
                }
            }
        }
    });
    keys
}

/// Runs the UI until the client's event channel closes (the session is
/// over). Returns the model as it was last drawn, so the caller can print
/// the last events after the terminal is restored.
pub async fn run(mut model: ViewModel, mut channels: UiChannels) -> io::Result<ViewModel> {
    install_panic_hook();
    let (_guard, mut terminal) = enter_terminal()?;
    let stop_keys = Arc::new(AtomicBool::new(false));
    let mut keys = spawn_key_reader(stop_keys.clone());
    let mut redraw = tokio::time::interval(REDRAW_INTERVAL);
    let mut notices_open = true;
    let mut keys_open = true;

    let result = loop {
        if let Err(error) = terminal.draw(|frame| render::draw(frame, &model)) {
            break Err(error);
        }
        tokio::select! {
            event = channels.events.recv() => match event {
                Some(event) => model.apply(&event),
                None => break Ok(()),
            },
            notice = channels.notices.recv(), if notices_open => match notice {
                Some(notice) => model.apply_device(&notice),
                None => notices_open = false,
            },
            key = keys.recv(), if keys_open => match key {
                Some(key) => match model.handle_key(key) {
                    Action::None => {}
                    Action::Command(line) => {
                        if channels.commands.send(line).await.is_err() {
                            tracing::debug!("command channel closed");
                        }
                    }
                    Action::Leave => channels.leave.notify_one(),
                },
                None => keys_open = false,
            },
            _ = redraw.tick() => {
                let (send, hear) = (channels.levels)();
                model.send_level = send;
                model.hear_level = hear;
            }
        }
    };
    stop_keys.store(true, Ordering::Relaxed);
    result.map(|()| model)
}
