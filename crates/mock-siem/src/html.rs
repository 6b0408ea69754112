//! HTML escaping: every piece of text the page shows goes through [`escape`], so that an event
//! or a header that contains markup is shown as text.

use std::fmt;

/// Text that formats itself HTML-escaped, for `write!` into a page: `&`, `<`, `>`, `"` and `'`
/// become character references, so the text is safe in element content and in quoted attribute
/// values alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(&'a str);

/// Wraps `text` so that it formats HTML-escaped.
pub(crate) fn escape(text: &str) -> Escaped<'_> {
    Escaped(text)
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_becomes_text() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("zoë, plain").to_string(), "zoë, plain");
        assert_eq!(escape("").to_string(), "");
        assert_eq!(escape("&amp;").to_string(), "&amp;amp;");
    }
}
