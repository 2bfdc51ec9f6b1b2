//! Untrusted text made safe to print: bodies and header values are whatever
//! a sender put there, so a line shows a bounded preview with every
//! character that could move the cursor, clear the screen, reorder the text
//! or split the line escaped.

/// At most `chars` characters of `bytes` read as UTF-8 (invalid sequences
/// replaced), reading no more of a large body than that needs; and whether
/// anything was left out.
pub(crate) fn preview(bytes: &[u8], chars: usize) -> (String, bool) {
    // A character is at most 4 bytes: this prefix holds `chars` whole ones
    // whenever the body has them.
    let prefix = &bytes[..bytes.len().min(chars.saturating_mul(4).saturating_add(4))];
    let text = String::from_utf8_lossy(prefix);
    let mut shown: String = text.chars().take(chars).collect();
    let cut = shown.len() < text.len() || prefix.len() < bytes.len();
    if cut && shown.ends_with('\u{fffd}') && std::str::from_utf8(bytes).is_ok() {
        // The prefix cut a valid character in two: not the sender's fault.
        shown.pop();
    }
    (shown, cut)
}

/// `text` safe to print: control, format and other non-printable characters
/// (an escape sequence, a bidi override, a newline) as `\u{..}`, backslashes
/// doubled, and with `quote`, `"` escaped too.
#[must_use]
pub fn escaped(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' if quote => out.push_str("\\\""),
            '"' | '\'' => out.push(c),
            c if prints(c) => out.push(c),
            c => out.extend(c.escape_unicode()),
        }
    }
    out
}

/// `text` as it may go to a terminal line among others: what does not print
/// (see [`escaped`]) as `\u{..}`, everything else, backslashes included,
/// unchanged, so ordinary text reads exactly as it was written.
#[must_use]
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    // Printable ASCII (space to `~`) prints as itself: the common case,
    // checked a byte at a time before the per-character Unicode tables (a
    // greeting per name, a million names).
    if text.bytes().all(|b| matches!(b, b' '..=b'~')) || text.chars().all(prints) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if prints(c) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out.into()
}

/// Whether `c` prints as itself. The standard library knows which characters
/// print: the rest it escapes, one character then being several.
/// (Backslashes and quotes print; `escape_debug` escapes them for Rust.)
fn prints(c: char) -> bool {
    matches!(c, '\\' | '"' | '\'') || (!c.is_control() && c.escape_debug().len() == 1)
}

/// `seconds` as `42s`, `5m3s`, `2h10m` or `3d4h`.
#[must_use]
pub fn compact(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_characters_pass_unescaped() {
        assert_eq!(escaped("Zoë 李 \"x\" 'y'", false), "Zoë 李 \"x\" 'y'");
        assert_eq!(escaped("a\"b\\c", true), "a\\\"b\\\\c");
        assert_eq!(
            escaped("\u{1b}[2J\n\t\u{202e}\u{7f}\u{85}", false),
            "\\u{1b}[2J\\u{a}\\u{9}\\u{202e}\\u{7f}\\u{85}"
        );
    }

    #[test]
    fn the_ascii_fast_path_passes_exactly_what_the_unicode_rule_passes() {
        for b in 0..=0x7f_u8 {
            let c = char::from(b);
            let text = format!("hello {c}");
            let shown = printable(&text);
            assert_eq!(shown == text.as_str(), prints(c), "{b:#04x}: {shown}");
        }
        assert_eq!(printable("hello \u{7f}"), "hello \\u{7f}");
        assert_eq!(printable("hello \u{1b}[2J"), "hello \\u{1b}[2J");
    }

    #[test]
    fn a_preview_stops_at_the_limit_and_says_so() {
        assert_eq!(preview(b"abc", 3), ("abc".to_owned(), false));
        assert_eq!(preview(b"abcd", 3), ("abc".to_owned(), true));
        assert_eq!(preview(b"\xffab", 2), ("\u{fffd}a".to_owned(), true));
        // A 100 MB body is not read whole.
        let big = vec![b'x'; 100 << 20];
        assert_eq!(preview(&big, 2), ("xx".to_owned(), true));
    }

    #[test]
    fn ages_are_compact() {
        let shown: Vec<String> = [0, 59, 61, 3599, 3600, 86_399, 90_000]
            .into_iter()
            .map(compact)
            .collect();
        assert_eq!(
            shown,
            ["0s", "59s", "1m1s", "59m59s", "1h0m", "23h59m", "1d1h"]
        );
    }
}
