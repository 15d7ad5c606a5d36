//! Parsing of the lines a user types into slash commands.
//!
//! Parsing only checks the shape of a line: the command name and whether
//! its argument is present. Resolving a peer name against the roster, and
//! checking whether the command makes sense right now, is the client's job.

/// The change `/mute` makes to the local client's own mute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuteChange {
    Toggle,
    On,
    Off,
}

/// A parsed slash command. Peer arguments are the rest of the line,
/// trimmed, because display names may contain spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Mute(MuteChange),
    Kick(String),
    ForceMute(String),
    ForceUnmute(String),
    Block(String),
    Unblock(String),
    /// Lists the participants.
    Who,
    Leave,
    Help,
}

/// The reason a typed line cannot run as a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("chat is not supported, only commands; type /help to list them")]
    NotACommand,
    #[error("unknown command \"/{name}\"; type /help to list the commands")]
    Unknown { name: String },
    #[error("/{command} needs {argument}; for example /{command} {example}")]
    MissingArgument {
        command: &'static str,
        argument: &'static str,
        example: &'static str,
    },
    #[error("/{command} takes no argument, got \"{argument}\"")]
    UnexpectedArgument {
        command: &'static str,
        argument: String,
    },
    #[error("invalid argument \"{value}\" for /{command}: expected {expected}")]
    InvalidArgument {
        command: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// One line per command, for `/help`.
pub const HELP_LINES: &[&str] = &[
    "commands (PEER is a display name or a numeric id):",
    "  /mute [on|off]      toggle your own mute, or set it",
    "  /kick PEER          remove PEER from the room (host only)",
    "  /forcemute PEER     mute PEER for everyone (host only)",
    "  /forceunmute PEER   undo /forcemute (host only)",
    "  /block PEER         stop hearing PEER; nobody is told",
    "  /unblock PEER       hear PEER again",
    "  /who                list the participants",
    "  /leave              leave the room (also /quit, /q)",
    "  /help               show this list",
];

/// Parses one typed line. Returns `Ok(None)` for a blank line, which the
/// client ignores. Command names are case-insensitive.
pub fn parse_command(line: &str) -> Result<Option<Command>, CommandError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Err(CommandError::NotACommand);
    };

    let (name, argument) = match rest.split_once(char::is_whitespace) {
        Some((name, argument)) => (name, argument.trim()),
        None => (rest, ""),
    };

    let command = match name.to_lowercase().as_str() {
        "mute" => Command::Mute(parse_mute_argument(argument)?),
        "kick" => Command::Kick(peer_argument("kick", argument)?),
        "forcemute" => Command::ForceMute(peer_argument("forcemute", argument)?),
        "forceunmute" => Command::ForceUnmute(peer_argument("forceunmute", argument)?),
        "block" => Command::Block(peer_argument("block", argument)?),
        "unblock" => Command::Unblock(peer_argument("unblock", argument)?),
        "who" => no_argument("who", argument, Command::Who)?,
        "leave" | "quit" | "q" => no_argument("leave", argument, Command::Leave)?,
        "help" => no_argument("help", argument, Command::Help)?,
        _ => {
            return Err(CommandError::Unknown {
                name: name.to_string(),
            })
        }
    };
    Ok(Some(command))
}

fn parse_mute_argument(argument: &str) -> Result<MuteChange, CommandError> {
    match argument.to_lowercase().as_str() {
        "" => Ok(MuteChange::Toggle),
        "on" => Ok(MuteChange::On),
        "off" => Ok(MuteChange::Off),
        _ => Err(CommandError::InvalidArgument {
            command: "mute",
            value: argument.to_string(),
            expected: "on, off or nothing (toggle)",
        }),
    }
}

fn peer_argument(command: &'static str, argument: &str) -> Result<String, CommandError> {
    if argument.is_empty() {
        return Err(CommandError::MissingArgument {
            command,
            argument: "a peer name or id",
            example: "bob",
        });
    }
    Ok(argument.to_string())
}

fn no_argument(
    command: &'static str,
    argument: &str,
    parsed: Command,
) -> Result<Command, CommandError> {
    if argument.is_empty() {
        Ok(parsed)
    } else {
        Err(CommandError::UnexpectedArgument {
            command,
            argument: argument.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn parse_table() {
        let cases: Vec<(&str, Result<Option<Command>, CommandError>)> = vec![
            ("", Ok(None)),
            ("   ", Ok(None)),
            ("/mute", Ok(Some(Command::Mute(MuteChange::Toggle)))),
            ("/mute on", Ok(Some(Command::Mute(MuteChange::On)))),
            ("/MUTE Off", Ok(Some(Command::Mute(MuteChange::Off)))),
            ("  /mute   on  ", Ok(Some(Command::Mute(MuteChange::On)))),
            ("/kick bob", Ok(Some(Command::Kick(peer("bob"))))),
            ("/kick 7", Ok(Some(Command::Kick(peer("7"))))),
            (
                "/kick  bob smith ",
                Ok(Some(Command::Kick(peer("bob smith")))),
            ),
            ("/forcemute bob", Ok(Some(Command::ForceMute(peer("bob"))))),
            (
                "/forceunmute bob",
                Ok(Some(Command::ForceUnmute(peer("bob")))),
            ),
            ("/block bob", Ok(Some(Command::Block(peer("bob"))))),
            ("/unblock bob", Ok(Some(Command::Unblock(peer("bob"))))),
            ("/kick\tbob", Ok(Some(Command::Kick(peer("bob"))))),
            ("/who", Ok(Some(Command::Who))),
            ("/leave", Ok(Some(Command::Leave))),
            ("/quit", Ok(Some(Command::Leave))),
            ("/q", Ok(Some(Command::Leave))),
            ("/help", Ok(Some(Command::Help))),
            ("hello everyone", Err(CommandError::NotACommand)),
            ("mute", Err(CommandError::NotACommand)),
            (
                "/",
                Err(CommandError::Unknown {
                    name: String::new(),
                }),
            ),
            (
                "/dance",
                Err(CommandError::Unknown {
                    name: "dance".to_string(),
                }),
            ),
            (
                "/mute maybe",
                Err(CommandError::InvalidArgument {
                    command: "mute",
                    value: "maybe".to_string(),
                    expected: "on, off or nothing (toggle)",
                }),
            ),
            (
                "/leave now",
                Err(CommandError::UnexpectedArgument {
                    command: "leave",
                    argument: "now".to_string(),
                }),
            ),
            (
                "/help kick",
                Err(CommandError::UnexpectedArgument {
                    command: "help",
                    argument: "kick".to_string(),
                }),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_command(line), expected, "line {line:?}");
        }
    }

    #[test]
    fn peer_commands_need_argument() {
        for name in ["kick", "forcemute", "forceunmute", "block", "unblock"] {
            let line = format!("/{name}  ");
            let error = parse_command(&line).unwrap_err();
            assert!(
                matches!(error, CommandError::MissingArgument { command, .. } if command == name),
                "line {line:?} gave {error:?}"
            );
        }
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            parse_command("/kick").unwrap_err().to_string(),
            "/kick needs a peer name or id; for example /kick bob"
        );
        assert_eq!(
            parse_command("/dance").unwrap_err().to_string(),
            "unknown command \"/dance\"; type /help to list the commands"
        );
        assert_eq!(
            parse_command("hi").unwrap_err().to_string(),
            "chat is not supported, only commands; type /help to list them"
        );
    }
}
