//! Drawing the view model: peers and events side by side (stacked on
//! narrow terminals), a device status line, and the input line.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, Paragraph};
use ratatui::Frame;

use super::model::{EventKind, ViewModel};

/// Terminal width below which the peers panel goes above the events.
const NARROW_WIDTH: u16 = 80;

/// Width of a level meter, in cells.
const METER_CELLS: usize = 8;

/// Level, as RMS fraction of full scale, above which someone counts as
/// talking (about -40 dBFS).
const TALKING_LEVEL: f32 = 0.01;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, model: &ViewModel) {
    let [main, status, input] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(3),
    ])
    .areas(frame.area());

    let peer_height = (model.peers.len() as u16 + 2).clamp(3, main.height / 2);
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
    let items: Vec<ListItem> = model
        .peers
        .iter()
        .map(|peer| {
            let marker = if peer.is_self { "▶ " } else { "  " };
            let name_style = if peer.is_self {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            let mut spans = vec![
                Span::raw(marker),
                Span::styled(
                    format!("{:>4} ", peer.client_id),
                    Style::default().fg(Color::DarkGray),
                ),
                Span::styled(peer.display_name.clone(), name_style),
            ];
            if peer.is_self {
                spans.push(Span::raw(" (you)"));
            }
            if model.has_duplicate_name(peer) {
                spans.push(badge("SAME NAME", Color::Yellow));
            }
            if peer.is_host {
                spans.push(badge("HOST", Color::Cyan));
            }
            if peer.muted {
                spans.push(badge("MUTE", Color::Yellow));
            }
            if peer.server_muted {
                spans.push(badge("SILENCED", Color::Red));
            }
            if peer.blocked {
                spans.push(badge("BLOCKED", Color::Magenta));
            }
            if peer.is_self && !peer.muted && !peer.server_muted {
                let style = if model.send_level >= TALKING_LEVEL {
                    Style::default().fg(Color::Green)
                } else {
                    Style::default().fg(Color::DarkGray)
                };
                spans.push(Span::styled(format!(" {}", meter(model.send_level)), style));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();

    // The server sends one mixed stream, so only the mix's level is known,
    // not which peer in it is talking.
    let title = format!(
        " peers ({}) · hearing {} ",
        model.peers.len(),
        meter(model.hear_level)
    );
    let list = List::new(items).block(Block::bordered().title(title));
    frame.render_widget(list, area);
}

fn draw_events(frame: &mut Frame, model: &ViewModel, area: Rect) {
    let visible = area.height.saturating_sub(2) as usize;
    let end = model.events.len().saturating_sub(model.scroll);
    let start = end.saturating_sub(visible);
    let lines: Vec<Line> = model
        .events
        .range(start..end)
        .map(|event| {
            let style = match event.kind {
                EventKind::Info => Style::default(),
                EventKind::Warning => Style::default().fg(Color::Yellow),
                EventKind::Error => Style::default().fg(Color::Red),
            };
            Line::styled(event.text.clone(), style)
        })
        .collect();
    let title = if model.scroll > 0 {
        format!(" events (scrolled back {}; End for newest) ", model.scroll)
    } else {
        " events ".to_string()
    };
    let paragraph = Paragraph::new(lines).block(Block::bordered().title(title));
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
    let line = Line::styled(
        format!(" {mic} | {speakers}"),
        Style::default().fg(Color::DarkGray),
    );
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
