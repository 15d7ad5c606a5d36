//! Validation of user-chosen text: display names and room codes.
//!
//! Control characters (Unicode category Cc) and format characters (Cf) are
//! removed, so a right-to-left override or a zero-width joiner cannot
//! disguise one name as another, then surrounding whitespace is trimmed and
//! the length is checked in characters.

use unicode_general_category::{get_general_category, GeneralCategory};

/// Why a name or room code was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters long, over the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Cleans `input` and checks it is non-empty and at most `max_chars` long.
/// `what` names the value in errors ("display name", "room code").
pub fn sanitize(input: &str, max_chars: usize, what: &'static str) -> Result<String, TextError> {
    let cleaned: String = input.chars().filter(|c| !is_hidden(*c)).collect();
    let trimmed = cleaned.trim();

    if trimmed.is_empty() {
        return Err(TextError::Empty { what });
    }

    let len = trimmed.chars().count();
    if len > max_chars {
        return Err(TextError::TooLong {
            what,
            len,
            max: max_chars,
        });
    }

    Ok(trimmed.to_string())
}

/// Whether `c` is a control or format character.
fn is_hidden(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control | GeneralCategory::Format
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_control_and_format_characters() {
        let name = "\u{202e}evil\u{200b}\u{0007}name\n";
        assert_eq!(
            sanitize(name, 64, "display name"),
            Ok("evilname".to_string())
        );
    }

    #[test]
    fn keeps_ordinary_unicode() {
        assert_eq!(
            sanitize("  Zoë 山田 ", 64, "display name"),
            Ok("Zoë 山田".to_string())
        );
    }

    #[test]
    fn empty_after_cleaning_rejected() {
        assert_eq!(
            sanitize("\u{200f}\u{200e} \t", 64, "display name"),
            Err(TextError::Empty {
                what: "display name"
            })
        );
    }

    #[test]
    fn length_counted_in_characters() {
        let code = "é".repeat(128);
        assert!(sanitize(&code, 128, "room code").is_ok());
        assert_eq!(
            sanitize(&"é".repeat(129), 128, "room code"),
            Err(TextError::TooLong {
                what: "room code",
                len: 129,
                max: 128
            })
        );
    }
}
