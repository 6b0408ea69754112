//! Pretty-printing an event's raw JSON for the page without parsing it into values: the text is
//! re-indented token by token, so numbers keep their exact digits (`ts` and `created_at` exceed
//! 2^53) and strings their exact escapes.

/// Indents `raw` two spaces per level, one member or element per line. `raw` is JSON the
/// receiver SDK already accepted; any other text comes back re-indented as far as its brackets
/// go, never lost.
pub(crate) fn pretty(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn indents_and_keeps_every_token() {
        let raw = r#"{"a":1706000000123456789,"s":"x, {y}: \"z\" \\","e":{},"l":[1.50e3, [], {"k":null}]}"#;
        let expected = r#"{
  "a": 1706000000123456789,
  "s": "x, {y}: \"z\" \\",
  "e": {},
  "l": [
    1.50e3,
    [],
    {
      "k": null
    }
  ]
}"#;
        assert_eq!(pretty(raw), expected);
        // The same JSON, every digit and escape kept.
        let back: serde_json::Value = serde_json::from_str(&pretty(raw)).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(raw).unwrap()
        );
        assert_eq!(pretty(&pretty(raw)), expected);
    }

    #[test]
    fn text_that_is_not_json_is_kept() {
        assert_eq!(pretty("]]oops"), "\n]\n]oops");
        assert_eq!(pretty(r#""unterminated"#), r#""unterminated"#);
    }
}
