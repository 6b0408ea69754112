//! The fast path from body bytes to a [`Batch`]: one pass over the input.
//!
//! `serde_json::from_slice::<Batch>` works too, but to keep each event's exact text it must scan
//! every event twice (once as a `RawValue`, once into the typed fields). Here the top-level
//! object and the `events` array are walked by hand, each value is parsed in place by
//! serde_json's `StreamDeserializer`, and its end offset gives the event's text for free. Only
//! the punctuation between values (`{ } [ ] : ,` and whitespace) is handled here; every value,
//! key and number goes through serde_json, so the grammar accepted is serde_json's.

use crate::batch::{Batch, Event};
use crate::wire::{Extra, WireValue};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Why the walk failed; turned into a `Refusal` by the caller.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// Not JSON, or truncated.
    Syntax(String),
    /// JSON, but not a v1 batch.
    Shape(String),
}

struct Cursor<'a> {
    text: &'a str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        self.skip_ws();
        let byte = self.buf.get(self.pos).copied();
        self.pos += usize::from(byte.is_some());
        byte
    }

    fn peek_byte(&mut self) -> Option<u8> {
        self.skip_ws();
        self.buf.get(self.pos).copied()
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<(), WalkError> {
        match self.next_byte() {
            Some(b) if b == want => Ok(()),
            Some(b) => Err(WalkError::Syntax(format!(
                "expected {what} at byte {}, found {:?}",
                self.pos - 1,
                char::from(b)
            ))),
            None => Err(WalkError::Syntax(format!(
                "EOF while parsing, expected {what}"
            ))),
        }
    }

    /// Parses one value in place with serde_json and moves past it.
    fn value<T: serde::Deserialize<'a>>(&mut self) -> Result<T, WalkError> {
        self.skip_ws();
        let start = self.pos;
        // The body was checked as UTF-8 once up front, so serde_json's `StrRead` can skip
        // validating every string again.
        let mut stream = serde_json::Deserializer::from_str(&self.text[start..]).into_iter::<T>();
        match stream.next() {
            Some(Ok(value)) => {
                self.pos = start + stream.byte_offset();
                Ok(value)
            }
            Some(Err(err)) => Err(self.error(&err, start)),
            None => Err(WalkError::Syntax("EOF while parsing a value".to_owned())),
        }
    }

    fn error(&self, err: &serde_json::Error, start: usize) -> WalkError {
        let message = err.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        let at = start + offset_of(&self.buf[start..], err.line(), err.column());
        let text = format!("{message} at byte {at}");
        match err.classify() {
            serde_json::error::Category::Data => WalkError::Shape(text),
            _ => WalkError::Syntax(text),
        }
    }
}

/// A string that borrows from the input when it holds no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Cow<'de, str> as WireValue<'de>>::deserialize_wire(d).map(Text)
    }
}

/// Parses a whole batch body in one pass. Equivalent to `serde_json::from_slice::<Batch>`
/// (a property test checks it), but faster and with byte offsets in error messages.
pub(crate) fn parse(body: &[u8]) -> Result<Batch<'_>, WalkError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| WalkError::Syntax(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut cur = Cursor {
        text,
        buf: body,
        pos: 0,
    };
    let (mut schema_version, mut events, mut count, mut generated_at) = (None, None, None, None);
    let mut extra = Extra::default();
    cur.expect(b'{', "a batch object")?;
    if cur.peek_byte() == Some(b'}') {
        cur.pos += 1;
    } else {
        loop {
            let Text(key) = cur.value()?;
            cur.expect(b':', "':'")?;
            let duplicate = match &*key {
                "schema_version" => schema_version.replace(cur.value::<Text<'_>>()?.0).is_some(),
                "count" => count.replace(cur.value::<u64>()?).is_some(),
                "generated_at" => generated_at.replace(cur.value::<Text<'_>>()?.0).is_some(),
                "events" => events.replace(parse_events(&mut cur)?).is_some(),
                _ => {
                    let value: &RawValue = cur.value()?;
                    extra.0.push((key.clone(), Cow::Borrowed(value)));
                    false
                }
            };
            if duplicate {
                return Err(WalkError::Shape(format!("duplicate field `{key}`")));
            }
            match cur.next_byte() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => {
                    return Err(WalkError::Syntax(format!(
                        "expected ',' or '}}' at byte {}",
                        cur.pos
                    )));
                }
            }
        }
    }
    if cur.peek_byte().is_some() {
        return Err(WalkError::Syntax(format!(
            "trailing characters at byte {}",
            cur.pos
        )));
    }
    let missing = |field: &str| WalkError::Shape(format!("missing field `{field}`"));
    Ok(Batch {
        schema_version: schema_version.ok_or_else(|| missing("schema_version"))?,
        events: events.ok_or_else(|| missing("events"))?,
        count: count.ok_or_else(|| missing("count"))?,
        generated_at: generated_at.ok_or_else(|| missing("generated_at"))?,
        extra,
    })
}

fn parse_events<'a>(cur: &mut Cursor<'a>) -> Result<Vec<Event<'a>>, WalkError> {
    match cur.peek_byte() {
        Some(b'[') => cur.pos += 1,
        Some(_) => {
            return Err(WalkError::Shape(format!(
                "events is not an array (byte {})",
                cur.pos
            )));
        }
        None => return Err(WalkError::Syntax("EOF while parsing events".to_owned())),
    }
    // Real events are 300 bytes or more: reserve once, so a megabyte batch is never copied by
    // a reallocation of its (about 450-byte) parsed events.
    let mut events = Vec::with_capacity((cur.buf.len() - cur.pos) / 300 + 1);
    if cur.peek_byte() == Some(b']') {
        cur.pos += 1;
        return Ok(events);
    }
    loop {
        cur.skip_ws();
        let start = cur.pos;
        let mut event: Event<'a> = cur.value().map_err(|e| match e {
            WalkError::Shape(m) => WalkError::Shape(format!("event {}: {m}", events.len())),
            syntax @ WalkError::Syntax(_) => syntax,
        })?;
        // Both ends are ASCII punctuation, so they are character boundaries.
        event.set_raw(&cur.text[start..cur.pos]);
        events.push(event);
        match cur.next_byte() {
            Some(b',') => continue,
            Some(b']') => return Ok(events),
            _ => {
                return Err(WalkError::Syntax(format!(
                    "expected ',' or ']' at byte {}",
                    cur.pos
                )));
            }
        }
    }
}

/// The byte offset of a serde_json (line, column) position inside `buf`.
fn offset_of(buf: &[u8], line: usize, column: usize) -> usize {
    let line_start = buf
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    (line_start + column.saturating_sub(1)).min(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event_json(name: &str, ts: i64, extra: Option<&str>) -> serde_json::Value {
        let mut event = serde_json::json!({
            "event_type": "create", "table": "events", "timestamp": "2024-01-15T10:30:00.000Z",
            "data": {
                "uuid": "5f0c7a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "action": name, "status": "Success",
                "actor": {"kind": "User", "name": name}, "origin": {"hostname": "h", "ipaddr": "::1"},
                "target": {"kind": "User", "name": name}, "ts": ts, "created_at": ts,
            },
        });
        if let Some(extra) = extra {
            event["data"]["actor"][extra] = serde_json::json!({"nested": [1, 2.5, null]});
            event[extra] = serde_json::json!(ts);
        }
        event
    }

    fn body(events: &[serde_json::Value], pretty: bool) -> Vec<u8> {
        let batch = serde_json::json!({
            "schema_version": "1", "events": events, "count": events.len(),
            "generated_at": "2024-01-15T10:30:05.123Z", "trace": {"id": "x"},
        });
        if pretty {
            serde_json::to_vec_pretty(&batch).unwrap()
        } else {
            serde_json::to_vec(&batch).unwrap()
        }
    }

    /// The two parsers agree: same outcome, same values, same raw text for every event.
    fn agree(input: &[u8]) -> Result<(), TestCaseError> {
        let fast = parse(input);
        let reference = serde_json::from_slice::<Batch<'_>>(input);
        match (fast, reference) {
            (Ok(fast), Ok(reference)) => {
                prop_assert_eq!(&fast, &reference);
                for (a, b) in fast.events.iter().zip(&reference.events) {
                    prop_assert_eq!(a.raw_json(), b.raw_json());
                }
            }
            (Err(_), Err(_)) => {}
            (fast, reference) => prop_assert!(
                false,
                "disagree: {:?} vs {:?}",
                fast.map(|_| ()),
                reference.map(|_| ())
            ),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn agrees_with_serde_on_batches(
            names in prop::collection::vec("\\PC{0,12}", 0..6),
            ts in any::<i64>(),
            extra in prop::option::of("[a-z_]{1,8}"),
            pretty in any::<bool>(),
        ) {
            let events: Vec<_> = names.iter().map(|n| event_json(n, ts, extra.as_deref())).collect();
            let input = body(&events, pretty);
            agree(&input)?;
            let batch = parse(&input).unwrap();
            prop_assert_eq!(batch.events.len(), names.len());
            for event in &batch.events {
                prop_assert_eq!(event.data.ts, ts);
            }
            // parse -> serialize -> parse: the same values, unknown fields and exact integers.
            let reserialized = serde_json::to_vec(&batch).unwrap();
            let again = parse(&reserialized).unwrap();
            prop_assert_eq!(&again, &batch);
            let before: serde_json::Value = serde_json::from_slice(&input).unwrap();
            let after: serde_json::Value = serde_json::from_slice(&reserialized).unwrap();
            prop_assert_eq!(before, after);
        }

        #[test]
        fn agrees_with_serde_on_damaged_input(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
            let mut input = body(&[event_json("User login", 1_706_000_000_123_456_789, Some("geo"))], false);
            for (at, byte) in flips {
                let i = at.index(input.len());
                input[i] = byte;
            }
            agree(&input)?;
        }

        #[test]
        fn agrees_with_serde_on_truncated_input(cut in any::<prop::sample::Index>()) {
            let input = body(&[event_json("a", 1, None), event_json("b", 2, None)], true);
            agree(&input[..cut.index(input.len())])?;
        }
    }

    #[test]
    fn duplicate_keys_and_trailing_bytes_are_refused() {
        let input = br#"{"schema_version":"1","schema_version":"1","events":[],"count":0,"generated_at":""}"#;
        assert!(
            matches!(parse(input), Err(WalkError::Shape(m)) if m.contains("duplicate field `schema_version`"))
        );
        let input = br#"{"schema_version":"1","events":[],"count":0,"generated_at":""} x"#;
        assert!(
            matches!(parse(input), Err(WalkError::Syntax(m)) if m.contains("trailing characters at byte 63"))
        );
    }

    /// A refusal's detail says which event is wrong and at which byte of the body, so that the
    /// sender's operator can find it: a wrong type names the event, and both kinds of error
    /// point at the offending value, also past the first line of a pretty-printed body.
    #[test]
    fn errors_name_the_event_and_the_byte_of_the_offending_value() {
        let pretty = body(&[event_json("a", 1, None), event_json("b", 2, None)], true);
        let pretty = String::from_utf8(pretty).unwrap();
        assert!(pretty.lines().count() > 20);

        let wrong_type = pretty.replacen("\"ts\": 2", "\"ts\": \"2\"", 1);
        let value = wrong_type.find("\"ts\": \"2\"").unwrap() + "\"ts\": ".len();
        let Err(WalkError::Shape(detail)) = parse(wrong_type.as_bytes()) else {
            panic!("a wrong type is a shape error");
        };
        // serde_json reports the last byte of the value: the closing quote of "2".
        let at = value + 2;
        assert_eq!(
            detail,
            format!("event 1: invalid type: string \"2\", expected i64 at byte {at}")
        );

        let bad_syntax = pretty.replacen("\"ts\": 2", "\"ts\": 2x", 1);
        let x = bad_syntax.find("\"ts\": 2x").unwrap() + "\"ts\": 2".len();
        let Err(WalkError::Syntax(detail)) = parse(bad_syntax.as_bytes()) else {
            panic!("a stray byte is a syntax error");
        };
        assert_eq!(detail, format!("expected `,` or `}}` at byte {x}"));

        let top_level = br#"{"schema_version":"1","count":"x","events":[]}"#;
        let Err(WalkError::Shape(detail)) = parse(top_level) else {
            panic!("a wrong type is a shape error");
        };
        assert_eq!(
            detail,
            "invalid type: string \"x\", expected u64 at byte 32"
        );
    }

    #[test]
    fn an_empty_object_is_a_batch_missing_its_fields() {
        for input in [&b"{}"[..], b"{ }", b" {\n}\n"] {
            assert!(
                matches!(parse(input), Err(WalkError::Shape(m)) if m == "missing field `schema_version`"),
                "{:?}",
                std::str::from_utf8(input)
            );
        }
    }
}
