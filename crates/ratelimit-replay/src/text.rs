//! Text from the input made safe to show a person: keys and echoed input in
//! the summary and in error messages can carry newlines, terminal escape
//! sequences or bidirectional overrides, which printed raw would forge rows
//! or rewrite the terminal.

use std::borrow::Cow;

/// `text` as it may be printed to a terminal: every character that is not
/// printable (control characters such as `\n` and ESC, C1 controls,
/// bidirectional and other format characters, separators other than the
/// space, combining marks) is written as a Rust escape (`\n`, `\u{1b}`,
/// `\u{202e}`), and a backslash is doubled, so that the escaped form of two
/// different texts differs. Quotes are left alone. Text that needs no
/// escape is returned as it is, without copying.
///
/// ```
/// use ratelimit_replay::printable;
///
/// assert_eq!(printable("alice"), "alice");
/// assert_eq!(printable("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
/// assert_eq!(printable("a\\nb"), "a\\\\nb");
/// ```
#[must_use]
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_shown_as_is) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_shown_as_is(c) {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    Cow::Owned(out)
}

/// The number of characters [`printable`] writes for `text`, without
/// building it.
#[must_use]
pub(crate) fn printable_width(text: &str) -> usize {
    text.chars()
        .map(|c| {
            if is_shown_as_is(c) {
                1
            } else {
                c.escape_debug().count()
            }
        })
        .sum()
}

fn is_shown_as_is(c: char) -> bool {
    match c {
        // Printable ASCII but the backslash, the overwhelmingly common case.
        ' '..='[' | ']'..='~' => true,
        '\\' => false,
        c if c.is_ascii() => false,
        // `escape_debug` leaves exactly the printable characters alone.
        c => c.escape_debug().count() == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_rows_and_escapes_are_neutralized() {
        for (raw, shown) in [
            ("plain key-1", "plain key-1"),
            ("a\r\nb", "a\\r\\nb"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("\u{7f}", "\\u{7f}"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("tab\there", "tab\\there"),
            ("back\\slash", "back\\\\slash"),
            ("quotes \" '", "quotes \" '"),
            ("é ü 東京", "é ü 東京"),
        ] {
            assert_eq!(printable(raw), shown, "{raw:?}");
            assert_eq!(printable_width(raw), shown.chars().count(), "{raw:?}");
            assert!(!printable(raw).chars().any(char::is_control));
        }
        assert!(matches!(printable("as is"), Cow::Borrowed(_)));
    }

    #[test]
    fn distinct_texts_stay_distinct() {
        // A literal backslash-n and a newline must not look alike.
        assert_ne!(printable("a\\nb"), printable("a\nb"));
    }
}
