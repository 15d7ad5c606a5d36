//! Drawing the view model: peers and events side by side (stacked on
//! narrow terminals), a device status line, and the input line.
//!
//! Nothing drawn runs past its panel: event lines wrap, and names, ids and
//! the status line are cut to fit with a `…` where text is left out.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, Paragraph};
use ratatui::Frame;

use voicemcu_core::client::RosterEntry;
use voicemcu_core::ids::ClientId;

use super::fit::{truncate, wrap, IdColumn};
use super::model::{EventKind, ViewModel};

/// Terminal width below which the peers panel goes above the events.
const NARROW_WIDTH: u16 = 80;

/// Width of a level meter, in cells.
const METER_CELLS: usize = 8;

/// Level, as RMS fraction of full scale, above which this client counts as
/// talking (about -40 dBFS, the server's default VAD threshold).
const TALKING_LEVEL: f32 = 0.01;

/// Shown before a participant who is talking.
pub const TALKING_MARKER: &str = "●";

/// Cells the id column may take at least, even on a narrow panel.
const MIN_ID_CELLS: usize = 5;

/// Cells a name keeps at least, even when its badges do not fit beside it.
const MIN_NAME_CELLS: usize = 6;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, model: &ViewModel) {
    let [main, status, input] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(3),
    ])
    .areas(frame.area());

    // At least one row inside the borders, and at most half the screen
    // unless the screen is too short for that.
    let peer_rows = u16::try_from(model.peers.len()).unwrap_or(u16::MAX);
    let peer_height = peer_rows
        .saturating_add(2)
        .max(3)
        .min((main.height / 2).max(3));
    let [peers, events] = if main.width < NARROW_WIDTH {
        Layout::vertical([Constraint::Length(peer_height), Constraint::Min(3)]).areas(main)
    } else {
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(main)
    };

    draw_peers(frame, model, peers);
    draw_events(frame, model, events);
    draw_status(frame, model, status);
    draw_input(frame, model, input);
}

/// Returns a meter such as `▮▮▮▯▯▯▯▯` on a dB scale from -60 to 0 dBFS.
fn meter(level: f32) -> String {
    let db = if level > 0.0 {
        20.0 * level.log10()
    } else {
        -60.0
    };
    let filled = (((db + 60.0) / 60.0).clamp(0.0, 1.0) * METER_CELLS as f32).round() as usize;
    let mut text = "▮".repeat(filled);
    text.push_str(&"▯".repeat(METER_CELLS - filled));
    text
}

fn badge(text: &str, color: Color) -> Span<'static> {
    Span::styled(
        format!(" {text}"),
        Style::default().fg(color).add_modifier(Modifier::BOLD),
    )
}

fn draw_peers(frame: &mut Frame, model: &ViewModel, area: Rect) {
    let inner_width = usize::from(area.width.saturating_sub(2));
    let ids: Vec<ClientId> = model.peers.iter().map(|peer| peer.client_id).collect();
    let id_column = IdColumn::fit(&ids, (inner_width / 3).max(MIN_ID_CELLS));
    let items: Vec<ListItem> = model
        .peers
        .iter()
        .map(|peer| ListItem::new(peer_line(model, peer, id_column, inner_width)))
        .collect();

    let title = format!(
        " peers ({}) · hearing {} ",
        model.peers.len(),
        meter(model.hear_level)
    );
    let list = List::new(items).block(Block::bordered().title(title));
    frame.render_widget(list, area);
}

/// Builds one row of the peers panel: who it is, the talking marker, the
/// id, the name (cut to leave room for the badges) and the badges.
fn peer_line(
    model: &ViewModel,
    peer: &RosterEntry,
    id_column: IdColumn,
    width: usize,
) -> Line<'static> {
    let self_muted = peer.is_self && (peer.muted || peer.server_muted);
    // Others are talking when the server reports them. This client's own
    // entry follows the local capture level, unless it is muted.
    let talking = if peer.is_self {
        !self_muted && model.send_level >= TALKING_LEVEL
    } else {
        peer.talking && !peer.muted && !peer.server_muted && !peer.blocked
    };

    let mut badges = Vec::new();
    if peer.is_self {
        badges.push(Span::raw(" (you)"));
    }
    if model.has_duplicate_name(peer) {
        badges.push(badge("SAME NAME", Color::Yellow));
    }
    if peer.is_host {
        badges.push(badge("HOST", Color::Cyan));
    }
    if peer.muted {
        badges.push(badge("MUTE", Color::Yellow));
    }
    if peer.server_muted {
        badges.push(badge("SILENCED", Color::Red));
    }
    if peer.blocked {
        badges.push(badge("BLOCKED", Color::Magenta));
    }
    if peer.is_self && !self_muted {
        let style = if talking {
            Style::default().fg(Color::Green)
        } else {
            Style::default().fg(Color::DarkGray)
        };
        badges.push(Span::styled(format!(" {}", meter(model.send_level)), style));
    }

    let marker = if peer.is_self { "▶ " } else { "  " };
    let talking_marker = if talking {
        Span::styled(
            format!("{TALKING_MARKER} "),
            Style::default()
                .fg(Color::Green)
                .add_modifier(Modifier::BOLD),
        )
    } else {
        Span::raw("  ")
    };
    let prefix_width = 4 + id_column.width() + 1;
    let badges_width: usize = badges.iter().map(Span::width).sum();
    let name_width = width
        .saturating_sub(prefix_width + badges_width)
        .max(MIN_NAME_CELLS);
    let name_style = if peer.is_self {
        Style::default().add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };

    let mut spans = vec![
        Span::raw(marker),
        talking_marker,
        Span::styled(
            format!("{} ", id_column.format(peer.client_id)),
            Style::default().fg(Color::DarkGray),
        ),
        Span::styled(truncate(&peer.display_name, name_width), name_style),
    ];
    spans.extend(badges);
    Line::from(spans)
}

/// Draws the newest events that fit, each wrapped to the panel's width.
/// Scrolling moves back by whole events.
fn draw_events(frame: &mut Frame, model: &ViewModel, area: Rect) {
    let visible = usize::from(area.height.saturating_sub(2));
    let width = usize::from(area.width.saturating_sub(2));
    let end = model.events.len().saturating_sub(model.scroll);

    let mut rows: Vec<Line> = Vec::new();
    for event in model.events.range(..end).rev() {
        if rows.len() >= visible {
            break;
        }
        let style = match event.kind {
            EventKind::Info => Style::default(),
            EventKind::Warning => Style::default().fg(Color::Yellow),
            EventKind::Error => Style::default().fg(Color::Red),
        };
        let wrapped = wrap(&event.text, width);
        rows.extend(
            wrapped
                .into_iter()
                .rev()
                .map(|row| Line::styled(row, style)),
        );
    }
    rows.reverse();
    // The oldest event shown may have rows above the panel's top.
    let hidden = rows.len().saturating_sub(visible);
    rows.drain(..hidden);

    let title = if model.scroll > 0 {
        format!(" events (scrolled back {}; End for newest) ", model.scroll)
    } else {
        " events ".to_string()
    };
    let paragraph = Paragraph::new(rows).block(Block::bordered().title(title));
    frame.render_widget(paragraph, area);
}

fn draw_status(frame: &mut Frame, model: &ViewModel, area: Rect) {
    let mic = if model.input_device.is_empty() {
        "microphone: -"
    } else {
        &model.input_device
    };
    let speakers = if model.output_device.is_empty() {
        "speakers: -"
    } else {
        &model.output_device
    };
    let text = truncate(&format!(" {mic} | {speakers}"), usize::from(area.width));
    let line = Line::styled(text, Style::default().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_input(frame: &mut Frame, model: &ViewModel, area: Rect) {
    let mut title = vec![Span::raw(format!(" {} in {} ", model.name, model.room))];
    if model.is_host {
        title.push(badge("HOST", Color::Cyan));
    }
    if model.muted {
        title.push(badge("MUTED", Color::Yellow));
    }
    if model.silenced {
        title.push(badge("SILENCED", Color::Red));
    }
    title.push(Span::raw(" "));
    let hint = if model.input.is_empty() {
        Span::styled(
            "type /help · m mutes · Esc leaves",
            Style::default().fg(Color::DarkGray),
        )
    } else {
        Span::raw(model.input.clone())
    };
    let paragraph = Paragraph::new(Line::from(vec![Span::raw("> "), hint]))
        .block(Block::bordered().title(Line::from(title)));
    frame.render_widget(paragraph, area);
    if area.width > 4 && area.height > 2 {
        let column = (model.input.chars().count() as u16 + 3).min(area.width - 2);
        frame.set_cursor_position((area.x + column, area.y + 1));
    }
}
