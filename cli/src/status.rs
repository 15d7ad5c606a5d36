//! `voicemcu status`: reads a running server's status from its status socket
//! and prints it as a table per room, or as the server's JSON with `--json`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use serde_json::Value;
use voicemcu_quic::status::{default_status_socket, fetch_status};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The server's status socket, as it printed at start [default:
    /// status.sock in the data directory].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the server's JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.socket.or_else(default_status_socket) else {
        bail!("neither XDG_DATA_HOME nor HOME is set: give the server's status socket with --socket PATH");
    };
    let status = fetch_status(&path).await?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders the status document as a summary line and a table per room.
/// Fields a server of another version leaves out are shown as `-`.
fn render(status: &Value) -> String {
    let mut text = String::new();
    let rooms = status["rooms"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let _ = writeln!(
        text,
        "voicemcu {}, up {}, connections: {}, rooms: {}",
        status["version"].as_str().unwrap_or("-"),
        uptime(status["uptime_seconds"].as_u64()),
        number(&status["connections"]),
        rooms.len()
    );

    for room in rooms {
        let participants = room["participants"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let _ = writeln!(
            text,
            "\nroom {}, participants: {}",
            room["code"],
            participants.len()
        );
        let _ = writeln!(
            text,
            "  {:<20} {:<16} {:<15} {:<21} {:>6} {:>7} {:>9} {:>5}",
            "id", "name", "state", "peer", "loss", "jitter", "concealed", "late"
        );
        for participant in participants {
            let media = &participant["media"]["jitter"];
            let arrival = &participant["arrival"];
            let _ = writeln!(
                text,
                "  {:<20} {:<16} {:<15} {:<21} {:>6} {:>7} {:>9} {:>5}",
                number(&participant["client_id"]),
                participant["name"].as_str().unwrap_or("-"),
                state(participant),
                participant["peer"].as_str().unwrap_or("-"),
                arrival["loss_percent"]
                    .as_f64()
                    .map_or("-".to_string(), |loss| format!("{loss:.1}%")),
                arrival["jitter_ms"]
                    .as_f64()
                    .map_or("-".to_string(), |jitter| format!("{jitter:.1}ms")),
                number(&media["concealed"]),
                number(&media["late"]),
            );
        }
    }
    text
}

/// Returns the flags of one participant: host, self-muted, muted by the
/// host.
fn state(participant: &Value) -> String {
    let flags = [
        ("is_host", "host"),
        ("muted", "muted"),
        ("server_muted", "silenced"),
    ];
    let set: Vec<&str> = flags
        .iter()
        .filter(|(key, _)| participant[*key].as_bool() == Some(true))
        .map(|(_, label)| *label)
        .collect();
    if set.is_empty() {
        "-".to_string()
    } else {
        set.join(",")
    }
}

fn number(value: &Value) -> String {
    value.as_u64().map_or("-".to_string(), |n| n.to_string())
}

fn uptime(seconds: Option<u64>) -> String {
    let Some(seconds) = seconds else {
        return "-".to_string();
    };
    let (hours, minutes) = (seconds / 3_600, seconds / 60 % 60);
    format!("{hours}h{minutes:02}m{:02}s", seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_snapshot() {
        let status = serde_json::json!({
            "version": "0.2.0",
            "uptime_seconds": 3_725,
            "connections": 3,
            "rooms": [{
                "code": "friday",
                "participants": [
                    {
                        "client_id": 18_446_744_073_709_551_615u64,
                        "name": "alice",
                        "muted": false,
                        "server_muted": false,
                        "is_host": true,
                        "peer": "192.0.2.1:50000",
                        "arrival": {"received": 1000, "lost": 12, "loss_percent": 1.19, "jitter_ms": 3.25, "restarts": 0},
                        "media": {"jitter": {"concealed": 14, "late": 2}, "decode_errors": 0, "encode_errors": 0}
                    },
                    {
                        "client_id": 7,
                        "name": "bob",
                        "muted": true,
                        "server_muted": true,
                        "is_host": false,
                        "peer": "[2001:db8::1]:50001",
                        "arrival": {"received": 0, "lost": 0, "loss_percent": 0.0, "jitter_ms": 0.0, "restarts": 0},
                        "media": null
                    }
                ]
            }]
        });
        insta::assert_snapshot!(render(&status));
    }

    #[test]
    fn missing_fields_shown_as_dashes() {
        let rendered = render(&serde_json::json!({"rooms": [{"code": "x", "participants": [{}]}]}));
        assert!(
            rendered.starts_with("voicemcu -, up -, connections: -, rooms: 1"),
            "{rendered}"
        );
        assert!(
            rendered.contains("  -                    -  "),
            "{rendered}"
        );
    }
}
