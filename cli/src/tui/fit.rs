//! Fitting text into terminal cells: wrapping event lines, cutting a line
//! short with an ellipsis, and sizing the peers panel's id column.
//!
//! Widths are display widths in terminal cells, not bytes or characters,
//! so that wide characters in names (CJK, emoji) cannot push text past a
//! panel's border.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
use voicemcu_core::ids::ClientId;

/// Cells by which the second and later rows of a wrapped line are
/// indented, so that they read as the continuation of one event.
const CONTINUATION_INDENT: usize = 2;

/// The marker that stands for cut text.
const ELLIPSIS: char = '…';

/// Digits an abbreviated id keeps at least.
const MIN_SUFFIX_DIGITS: usize = 4;

/// Splits `text` into rows of at most `width` cells, breaking at spaces
/// where it can and inside a word only when the word alone is wider than a
/// row. Rows after the first are indented by two cells when the width
/// leaves room for it. Returns no rows when `width` is zero.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    if width == 0 {
        return Vec::new();
    }
    let indent = if width > 4 * CONTINUATION_INDENT {
        CONTINUATION_INDENT
    } else {
        0
    };

    let mut rows = Vec::new();
    let mut row = Row::default();
    for word in text.split(' ') {
        let word_width = word.width();
        let gap = usize::from(row.has_text);
        if row.width + gap + word_width <= width {
            if row.has_text {
                row.push(" ", 1);
            }
            row.push(word, word_width);
            continue;
        }

        if row.has_text {
            rows.push(std::mem::take(&mut row).text);
            row.indent(indent);
        }
        if row.width + word_width <= width {
            row.push(word, word_width);
            continue;
        }

        // The word alone is wider than a row: break it between characters.
        for character in word.chars() {
            let cells = character.width().unwrap_or(0);
            if row.has_text && row.width + cells > width {
                rows.push(std::mem::take(&mut row).text);
                row.indent(indent);
            }
            let mut buffer = [0u8; 4];
            row.push(character.encode_utf8(&mut buffer), cells);
        }
    }
    rows.push(row.text);
    rows
}

/// One row being filled by [`wrap`].
#[derive(Default)]
struct Row {
    text: String,
    width: usize,
    /// Whether anything besides the indent is in the row.
    has_text: bool,
}

impl Row {
    fn indent(&mut self, cells: usize) {
        self.text.extend(std::iter::repeat_n(' ', cells));
        self.width += cells;
    }

    fn push(&mut self, text: &str, cells: usize) {
        self.text.push_str(text);
        self.width += cells;
        self.has_text = true;
    }
}

/// Returns `text` cut to at most `width` cells, ending in `…` when
/// anything was cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }

    let mut cut = String::new();
    let mut used = 0;
    for character in text.chars() {
        let cells = character.width().unwrap_or(0);
        if used + cells + 1 > width {
            break;
        }
        cut.push(character);
        used += cells;
    }
    cut.push(ELLIPSIS);
    cut
}

/// The peers panel's id column. Ids are shown in full, right-aligned to
/// the widest, when they fit in the space allowed. Otherwise every id is
/// abbreviated the same way, to `…` and its last digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdColumn {
    /// Cells the column takes.
    width: usize,
    /// Digits kept from the end of an abbreviated id, or `None` to show
    /// ids in full.
    suffix_digits: Option<usize>,
}

impl IdColumn {
    /// Sizes the column for `ids` in at most `max_width` cells. Abbreviated
    /// ids keep the fewest last digits (at least four) that still tell
    /// every id in the list apart, within `max_width`.
    pub fn fit(ids: &[ClientId], max_width: usize) -> Self {
        let widest = ids.iter().map(|id| digits(*id)).max().unwrap_or(1);
        if widest <= max_width {
            return IdColumn {
                width: widest,
                suffix_digits: None,
            };
        }

        let most_digits = max_width.saturating_sub(1).max(1);
        let fewest = MIN_SUFFIX_DIGITS.min(most_digits);
        let keep = (fewest..=most_digits)
            .find(|&kept| suffixes_distinct(ids, kept))
            .unwrap_or(most_digits);
        IdColumn {
            width: keep + 1,
            suffix_digits: Some(keep),
        }
    }

    /// Cells the column takes.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Returns `id` as the column shows it, right-aligned to its width.
    pub fn format(&self, id: ClientId) -> String {
        let text = id.to_string();
        let shown = match self.suffix_digits {
            Some(keep) if text.len() > keep => {
                format!("{ELLIPSIS}{}", &text[text.len() - keep..])
            }
            _ => text,
        };
        format!("{shown:>width$}", width = self.width)
    }
}

fn digits(id: ClientId) -> usize {
    id.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Returns whether the last `kept` digits of the ids tell them all apart.
fn suffixes_distinct(ids: &[ClientId], kept: usize) -> bool {
    let Some(modulus) = 10u64.checked_pow(kept as u32) else {
        return true;
    };
    let mut suffixes: Vec<ClientId> = ids.iter().map(|id| id % modulus).collect();
    suffixes.sort_unstable();
    suffixes.windows(2).all(|pair| pair[0] != pair[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_with_indent() {
        let rows = wrap("blocked carol (id 9): you no longer hear them", 20);
        assert_eq!(
            rows,
            ["blocked carol (id", "  9): you no longer", "  hear them"]
        );
        assert!(rows.iter().all(|row| row.width() <= 20));
    }

    #[test]
    fn wrap_keeps_short_lines_whole() {
        assert_eq!(wrap("left the room", 40), ["left the room"]);
        assert_eq!(wrap("", 10), [""]);
        assert!(wrap("anything", 0).is_empty());
    }

    #[test]
    fn wrap_splits_words_wider_than_a_row() {
        let rows = wrap("id 18446744073709551615 joined", 12);
        assert_eq!(rows, ["id", "  1844674407", "  3709551615", "  joined"]);
        assert!(rows.iter().all(|row| row.width() <= 12));
    }

    #[test]
    fn wrap_counts_wide_characters_as_two_cells() {
        let rows = wrap("名前名前名前 joined", 10);
        assert!(rows.iter().all(|row| row.width() <= 10), "{rows:?}");
        assert_eq!(rows.concat().replace(' ', ""), "名前名前名前joined");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("microphone: default", 11), "microphone…");
        assert_eq!(truncate("short", 11), "short");
        assert_eq!(truncate("名前名前", 5), "名前…");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn small_ids_in_full() {
        let column = IdColumn::fit(&[2, 5, 1_234], 12);
        assert_eq!(column.width(), 4);
        assert_eq!(column.format(2), "   2");
        assert_eq!(column.format(1_234), "1234");
    }

    #[test]
    fn largest_id_in_full_when_room_allows() {
        let column = IdColumn::fit(&[u64::MAX, 7], 20);
        assert_eq!(column.format(u64::MAX), "18446744073709551615");
        assert_eq!(column.format(7).len(), 20);
    }

    #[test]
    fn long_ids_abbreviated_to_distinct_suffixes() {
        let ids = [3_270_902_291_614_444, 3_270_902_291_614_445, u64::MAX];
        let column = IdColumn::fit(&ids, 12);
        assert_eq!(column.width(), 5);
        assert_eq!(column.format(ids[0]), "…4444");
        assert_eq!(column.format(ids[1]), "…4445");
        assert_eq!(column.format(u64::MAX), "…1615");

        // Ids that share their last four digits keep more of them.
        let ids = [1_000_000_051_234, 1_000_000_061_234];
        let column = IdColumn::fit(&ids, 12);
        assert_eq!(column.format(ids[0]), "…51234");
        assert_eq!(column.format(ids[1]), "…61234");
    }
}
