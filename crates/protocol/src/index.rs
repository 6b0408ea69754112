//! The fast check of a batch body: one pass that validates the whole body against schema v1
//! (JSON grammar, every field's presence and type, no duplicate known field) without building
//! typed events, recording only each event's byte range and its `data.uuid`.
//!
//! It is deliberately a *conservative* check: it answers `None` ("not sure") for anything
//! unusual — an escaped key, a lone surrogate escape, `-0`, deep nesting, any error at all — and
//! the caller then runs the typed parser ([`crate::parse`]), which decides and names the reason.
//! So a body it accepts is one the typed parser accepts too (property tests check this against
//! the typed parser on valid, damaged and truncated bodies), and every refusal keeps the reason
//! code and message the typed parser gives. What it accepts needs no allocation but two vectors.

use crate::{EventIdError, EventIds, event_key};
use std::ops::Range;
use uuid::Uuid;

/// Nesting allowed inside the batch object before the scan gives up and lets the typed parser
/// decide (serde_json's own limit is 128 levels per value; real events nest three deep).
const MAX_DEPTH: u32 = 64;

/// What the scan found in a body it fully validated.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Each event's JSON text, as a byte range of the body.
    pub(crate) events: Vec<Range<usize>>,
    /// Each event's deduplication key ([`event_key`]); `Uuid::nil()` where its id is refused.
    pub(crate) uuids: Vec<Uuid>,
    /// The first event whose `data.uuid` is refused, and why.
    pub(crate) bad_uuid: Option<(usize, EventIdError)>,
    /// The `count` field.
    pub(crate) count: u64,
    /// The `generated_at` string's content (without quotes, no escapes in it).
    pub(crate) generated_at: Range<usize>,
}

/// Validates `text` as a v1 batch whose `schema_version` is `"1"`; `None` when it is not one, or
/// when the scan is not sure (the typed parser then decides). Event ids are judged by `ids`.
pub(crate) fn scan(text: &str, ids: EventIds) -> Option<Scan> {
    let mut s = Scanner {
        buf: text.as_bytes(),
        pos: 0,
    };
    let capacity = text.len() / 300 + 1;
    let mut out = Scan {
        events: Vec::with_capacity(capacity),
        uuids: Vec::with_capacity(capacity),
        bad_uuid: None,
        count: 0,
        generated_at: 0..0,
    };
    let mut seen = 0u8;
    s.object(|s, key| {
        let bit = match key {
            b"schema_version" => 1,
            b"events" => 2,
            b"count" => 4,
            b"generated_at" => 8,
            _ => return s.value(1),
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match bit {
            1 => {
                let (range, escaped) = s.string()?;
                (!escaped && &s.buf[range] == b"1").then_some(())
            }
            2 => s.events(&mut out, ids),
            4 => {
                out.count = s.unsigned()?;
                Some(())
            }
            _ => {
                let (range, escaped) = s.string()?;
                out.generated_at = range;
                (!escaped).then_some(())
            }
        }
    })?;
    (seen == 0b1111 && s.peek().is_none()).then_some(out)
}

struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit marks the first byte of `word` (little-endian) that ends a plain
/// run of string content: `"`, `\` or a control character. Bits above the first may be wrong.
#[inline]
fn string_stops(word: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

fn hex_digit(byte: u8) -> Option<u32> {
    char::from(byte).to_digit(16)
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.buf.get(self.pos) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.pos += 1;
        }
        None
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.pos += 1)
    }

    /// A string: the range of its content and whether it holds escapes. Control characters, bad
    /// escapes and surrogate escapes (which serde_json treats differently by context) give up.
    #[inline]
    fn string(&mut self) -> Option<(Range<usize>, bool)> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            while let Some(chunk) = self.buf.get(self.pos..self.pos + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                let stops = string_stops(word);
                if stops != 0 {
                    self.pos += (stops.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            match *self.buf.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some((start..self.pos - 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
    }

    fn escape(&mut self) -> Option<()> {
        match *self.buf.get(self.pos + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
            b'u' => {
                let hex = self.buf.get(self.pos + 2..self.pos + 6)?;
                let code = hex
                    .iter()
                    .try_fold(0u32, |acc, &h| Some(acc * 16 + hex_digit(h)?))?;
                if (0xD800..0xE000).contains(&code) {
                    return None;
                }
                self.pos += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// Digits of an integer without sign: `0` or `[1-9][0-9]*`, as a `u64`; a fraction, an
    /// exponent or an overflow (a float to serde_json) gives up.
    #[inline]
    fn digits(&mut self) -> Option<u64> {
        let first = *self.buf.get(self.pos)?;
        let mut value = u64::from(first.checked_sub(b'0').filter(|d| *d <= 9)?);
        self.pos += 1;
        while let Some(&byte @ b'0'..=b'9') = self.buf.get(self.pos) {
            if value == 0 {
                return None; // A leading zero.
            }
            value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
            self.pos += 1;
        }
        match self.buf.get(self.pos) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(value),
        }
    }

    fn unsigned(&mut self) -> Option<u64> {
        self.peek()?;
        self.digits()
    }

    /// An `i64` as serde_json reads one exactly (`-0` is a float to it: give up).
    fn signed(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.pos += 1;
            let magnitude = self.digits()?;
            (1..=1u64 << 63).contains(&magnitude).then_some(())
        } else {
            (self.digits()? <= i64::MAX as u64).then_some(())
        }
    }

    /// Any JSON number, by the grammar serde_json checks when it skips one.
    fn number(&mut self) -> Option<()> {
        let digit_run = |s: &mut Self| {
            let start = s.pos;
            while let Some(b'0'..=b'9') = s.buf.get(s.pos) {
                s.pos += 1;
            }
            (s.pos > start).then_some(())
        };
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match *self.buf.get(self.pos)? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.buf.get(self.pos) {
                    return None;
                }
            }
            b'1'..=b'9' => digit_run(self)?,
            _ => return None,
        }
        if self.buf.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            digit_run(self)?;
        }
        if let Some(b'e' | b'E') = self.buf.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.buf.get(self.pos) {
                self.pos += 1;
            }
            digit_run(self)?;
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.buf.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Any JSON value, at nesting `depth`.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' if depth < MAX_DEPTH => {
                self.pos += 1;
                if self.peek()? == b'}' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b'}' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' if depth < MAX_DEPTH => {
                self.pos += 1;
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object of a wire struct: `field` is called with each key, unescaped (an escaped key
    /// may spell a known field), and must consume the value.
    #[inline]
    fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        let buf = self.buf;
        loop {
            let (key, escaped) = self.string()?;
            self.eat(b':')?;
            if escaped {
                // Rare: unescape it as serde_json does (the escapes were checked above).
                let key: String = serde_json::from_slice(&buf[key.start - 1..=key.end]).ok()?;
                field(self, key.as_bytes())?;
            } else {
                field(self, &buf[key])?;
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn events(&mut self, out: &mut Scan, ids: EventIds) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.peek()?;
            let start = self.pos;
            let uuid = self.event()?;
            out.events.push(start..self.pos);
            let uuid = match event_key(&self.buf[uuid], ids) {
                Ok(key) => key,
                Err(why) => {
                    out.bad_uuid.get_or_insert((out.uuids.len(), why));
                    Uuid::nil()
                }
            };
            out.uuids.push(uuid);
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// One event; returns the range of its `data.uuid` text.
    fn event(&mut self) -> Option<Range<usize>> {
        let mut seen = 0u8;
        let mut uuid = None;
        self.object(|s, key| {
            let bit = match key {
                b"event_type" => 1,
                b"table" => 2,
                b"timestamp" => 4,
                b"data" => 8,
                _ => return s.value(2),
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            if bit == 8 {
                uuid = Some(s.data()?);
            } else {
                s.string()?;
            }
            Some(())
        })?;
        if seen == 0b1111 { uuid } else { None }
    }

    /// An event's `data`; returns the range of its `uuid` text (which must hold no escape).
    fn data(&mut self) -> Option<Range<usize>> {
        let mut seen = 0u8;
        let mut uuid = None;
        self.object(|s, key| {
            let bit = match key {
                b"uuid" => 1,
                b"action" => 2,
                b"status" => 4,
                b"actor" => 8,
                b"origin" => 16,
                b"target" => 32,
                b"ts" => 64,
                b"created_at" => 128,
                _ => return s.value(3),
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match bit {
                1 => {
                    let (range, escaped) = s.string()?;
                    uuid = (!escaped).then_some(range);
                    uuid.as_ref().map(drop)
                }
                2 | 4 => s.string().map(drop),
                8 | 32 => s.pair(b"kind", b"name"),
                16 => s.pair(b"hostname", b"ipaddr"),
                _ => s.signed(),
            }
        })?;
        if seen == 0xFF { uuid } else { None }
    }

    /// An object with two required string fields (`Entity`, `Origin`).
    fn pair(&mut self, first: &[u8], second: &[u8]) -> Option<()> {
        let mut seen = 0u8;
        self.object(|s, key| {
            let bit = if key == first {
                1
            } else if key == second {
                2
            } else {
                return s.value(4);
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            s.string().map(drop)
        })?;
        (seen == 0b11).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Refusal, Verifier};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const GENERATED_AT: &str = "2024-01-15T10:30:05.123Z";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_705_314_605_123)
    }

    /// The fast path and the typed path give the same answer: the same refusal (reason code and
    /// message), or the same events, UUIDs, raw texts and typed values. Returns whether the
    /// scan itself accepted the body (as opposed to the typed path deciding).
    fn agree(body: &[u8]) -> Result<bool, TestCaseError> {
        let verifier = Verifier::unsigned();
        let typed = verifier.verify(body, None, now());
        let indexed = verifier.verify_indexed(body, None, now());
        let scanned = std::str::from_utf8(body)
            .ok()
            .and_then(|t| scan(t, EventIds::Any));
        if let Some(scan) = &scanned {
            // What the scan accepts, the typed parser accepts, with the same events.
            let batch = crate::parse_batch(body);
            prop_assert!(
                batch.is_ok(),
                "scan accepted, typed parse refused: {:?}",
                batch
            );
            let batch = batch.unwrap();
            prop_assert_eq!(scan.events.len(), batch.events.len());
            prop_assert_eq!(scan.count, batch.count);
            let text = std::str::from_utf8(body).unwrap();
            for (range, event) in scan.events.iter().zip(&batch.events) {
                prop_assert_eq!(Some(&text[range.clone()]), event.raw_json());
            }
        }
        match (typed, indexed) {
            (Ok(typed), Ok(indexed)) => {
                prop_assert_eq!(&typed.uuids, &indexed.uuids);
                prop_assert_eq!(typed.generated_at, indexed.generated_at);
                prop_assert_eq!(typed.secret_index, indexed.secret_index);
                prop_assert_eq!(typed.batch.events.len(), indexed.len());
                for (i, event) in typed.batch.events.iter().enumerate() {
                    prop_assert_eq!(event.raw_json(), indexed.event_json(i));
                    let lazy = indexed.event(i).unwrap().unwrap();
                    prop_assert_eq!(&lazy, event);
                    prop_assert_eq!(lazy.raw_json(), event.raw_json());
                }
                prop_assert_eq!(indexed.parse().unwrap(), typed.batch);
            }
            (Err(typed), Err(indexed)) => {
                prop_assert_eq!(typed.reason_code(), indexed.reason_code());
                prop_assert_eq!(typed, indexed);
            }
            (typed, indexed) => prop_assert!(
                false,
                "disagree: typed {:?}, indexed {:?}",
                typed.map(|v| v.uuids),
                indexed.map(|v| v.uuids)
            ),
        }
        Ok(scanned.is_some())
    }

    /// Strings that need escaping, non-ASCII text and control characters.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 @._-]{0,24}",
            "\\PC{0,12}",
            prop::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('/'),
                    Just('\n'),
                    Just('\u{1f}'),
                    Just('\u{0}'),
                    Just('é'),
                    Just('😀'),
                    Just('a')
                ],
                0..12
            )
            .prop_map(|c| c.into_iter().collect()),
        ]
    }

    /// Unknown values: nested objects and arrays, numbers of every shape, literals.
    fn unknown() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            text().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn uuid_text() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => any::<u128>().prop_map(|v| Uuid::from_u128(v).hyphenated().to_string()),
            1 => any::<u128>().prop_map(|v| Uuid::from_u128(v).simple().to_string()),
            1 => any::<u128>().prop_map(|v| Uuid::from_u128(v).braced().to_string()),
            1 => any::<u128>().prop_map(|v| Uuid::from_u128(v).urn().to_string()),
            1 => any::<u128>().prop_map(|v| Uuid::from_u128(v).hyphenated().to_string().to_uppercase()),
            1 => text(),
        ]
    }

    prop_compose! {
        fn event()(
            names in prop::collection::vec(text(), 6),
            uuid in uuid_text(),
            ts in any::<i64>(),
            created_at in any::<i64>(),
            extra in prop::option::of((text(), unknown())),
        ) -> serde_json::Value {
            let mut event = serde_json::json!({
                "event_type": names[0], "table": "events", "timestamp": "2024-01-15T10:30:00.000Z",
                "data": {
                    "uuid": uuid, "action": names[1], "status": names[2],
                    "actor": {"kind": "User", "name": names[3]},
                    "origin": {"hostname": names[4], "ipaddr": "192.0.2.1"},
                    "target": {"kind": "User", "name": names[5]},
                    "ts": ts, "created_at": created_at,
                },
            });
            if let Some((name, value)) = extra {
                event["data"]["actor"][&name] = value.clone();
                event["data"][&name] = value.clone();
                event[&name] = value;
            }
            event
        }
    }

    prop_compose! {
        fn batch()(
            events in prop::collection::vec(event(), 0..5),
            count_offset in prop_oneof![8 => Just(0i64), 1 => -2i64..3],
            schema in prop_oneof![8 => Just("1".to_owned()), 1 => text()],
            generated_at in prop_oneof![8 => Just(GENERATED_AT.to_owned()), 1 => Just("2024-01-15T10:20:05.123Z".to_owned()), 1 => text()],
            extra in prop::option::of((text(), unknown())),
            pretty in any::<bool>(),
        ) -> Vec<u8> {
            let count = (events.len() as i64 + count_offset).max(0);
            let mut batch = serde_json::json!({
                "schema_version": schema, "events": events, "count": count,
                "generated_at": generated_at,
            });
            if let Some((name, value)) = extra {
                batch[&name] = value;
            }
            if pretty { serde_json::to_vec_pretty(&batch).unwrap() } else { serde_json::to_vec(&batch).unwrap() }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn agrees_with_the_typed_path_on_batches(body in batch()) {
            agree(&body)?;
        }

        #[test]
        fn agrees_with_the_typed_path_on_damaged_batches(
            body in batch(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(&b"\"{}[],:-0.e1 \\u\x01\xff"[..])), 1..4),
        ) {
            let mut body = body;
            for (at, byte) in flips {
                let i = at.index(body.len());
                body[i] = byte;
            }
            agree(&body)?;
        }

        #[test]
        fn agrees_with_the_typed_path_on_truncated_batches(body in batch(), cut in any::<prop::sample::Index>()) {
            agree(&body[..cut.index(body.len() + 1)])?;
        }

        #[test]
        fn agrees_with_the_typed_path_on_edited_tokens(
            body in batch(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                "-0", "1.0", "1e3", "01", "9223372036854775808", "-9223372036854775809", "\"\\ud800\"",
                "\"\\u0031\"", "true", "null", "[]", "{}", "\"x\"", "18446744073709551616", "\"uuid\":\"x\",",
            ])), 1..3),
        ) {
            // Replace the token after a random ':' with another value.
            let mut body = String::from_utf8(body).unwrap();
            for (at, token) in edits {
                let colons: Vec<usize> = body.match_indices(':').map(|(i, _)| i).collect();
                if colons.is_empty() { break; }
                let start = colons[at.index(colons.len())] + 1;
                let end = body[start..].find([',', '}', ']']).map_or(body.len(), |e| start + e);
                body.replace_range(start..end, token);
            }
            agree(body.as_bytes())?;
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_typed_path_on_repeated_members(body in batch(), at in any::<prop::sample::Index>()) {
            // Repeat one member (`"key":value`) right after itself: a duplicate field.
            let body = String::from_utf8(body).unwrap();
            let starts: Vec<usize> = body.match_indices([',', '{']).map(|(i, _)| i + 1).collect();
            let start = starts[at.index(starts.len())];
            let end = body[start..].find([',', '}']).map_or(body.len(), |e| start + e);
            let repeated = format!("{}{},{}", &body[..start], &body[start..end], &body[start..]);
            agree(repeated.as_bytes())?;
        }
    }

    /// Valid batches of every shape go through the scan itself, not only through the typed path.
    #[test]
    fn the_scan_accepts_valid_batches() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut valid, mut scanned) = (0, 0);
        for _ in 0..256 {
            let body = batch().new_tree(&mut runner).unwrap().current();
            let verifier = Verifier::unsigned();
            if verifier.verify(&body, None, now()).is_ok() {
                valid += 1;
                scanned += usize::from(agree(&body).unwrap());
            }
        }
        assert!(valid > 64, "{valid} valid batches");
        // Only lone surrogates (never generated) skip the scan.
        assert_eq!(scanned, valid);
    }

    #[test]
    fn hand_written_edge_cases_agree() {
        let event = |data: &str| {
            format!(
                r#"{{"event_type":"create","table":"events","timestamp":"t","data":{{{data}}}}}"#
            )
        };
        let good = r#""uuid":"0b9e3a4c-6d0f-4a53-9a43-0c1b2c3d4e5f","action":"a","status":"s","actor":{"kind":"k","name":"n"},"origin":{"hostname":"h","ipaddr":"i"},"target":{"kind":"k","name":"n"},"ts":1,"created_at":2"#;
        let batch = |events: &str, count: usize| {
            format!(
                r#"{{"schema_version":"1","events":[{events}],"count":{count},"generated_at":"{GENERATED_AT}"}}"#
            )
        };
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let deep_ok = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        let cases = [
            (batch(&event(good), 1), true),
            (
                batch(&event(&good.replace("\"action\"", "\"\\u0061ction\"")), 1),
                true,
            ),
            (
                batch(
                    &event(&good.replace("\"ts\":1", "\"t\\u0073\":1,\"ts\":1")),
                    1,
                ),
                false,
            ),
            (
                batch(&event(&good.replace("\"a\",", "\"\\ud83d\\ude00\",")), 1),
                false,
            ),
            (
                batch(&event(&good.replace("\"a\",", "\"\\ud83d\",")), 1),
                false,
            ),
            (
                batch(&event(&good.replace("\"ts\":1", "\"ts\":-0")), 1),
                false,
            ),
            (
                batch(&event(&good.replace("\"ts\":1", "\"ts\":1.0")), 1),
                false,
            ),
            (
                batch(&event(&good.replace("\"ts\":1", "\"ts\":1,\"ts\":1")), 1),
                false,
            ),
            (
                batch(
                    &event(&good.replace("\"ts\":1", "\"x\":1,\"x\":2,\"ts\":1")),
                    1,
                ),
                true,
            ),
            (batch(&event(&format!("{good},\"deep\":{deep}")), 1), false),
            (
                batch(&event(&format!("{good},\"deep\":{deep_ok}")), 1),
                true,
            ),
            (
                batch(&event(&good.replace("0b9e3a4c", "\\u0030b9e3a4c")), 1),
                false,
            ),
            (
                batch(&event(&good.replace("0b9e3a4c-", "zzzzzzzz-")), 1),
                true,
            ),
            (batch(&event(&good.replace("\"s\"", "\"\u{1}\"")), 1), false),
            (batch(&format!("{}, {}", event(good), event(good)), 2), true),
            (batch(&event(good), 2), true),
            (batch("", 0), true),
            (batch(&event(good), 1).replace("\"1\"", "\"2\""), false),
            (
                batch(&event(good), 1).replace("\"count\":1", "\"count\":01"),
                false,
            ),
            (format!(" \n{}\t ", batch(&event(good), 1)), true),
            (format!("{} x", batch(&event(good), 1)), false),
            (format!("\u{feff}{}", batch(&event(good), 1)), false),
            ("[]".to_owned(), false),
            ("{}".to_owned(), false),
            ("".to_owned(), false),
        ];
        for (body, scanned) in &cases {
            let accepted = agree(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(accepted, *scanned, "{body}");
        }
        let mut invalid_utf8 = batch(&event(good), 1).into_bytes();
        invalid_utf8[40] = 0xff;
        assert!(!agree(&invalid_utf8).unwrap());
        assert!(matches!(
            Verifier::unsigned().verify_indexed(&invalid_utf8, None, now()),
            Err(Refusal::MalformedJson { .. })
        ));
    }

    #[test]
    fn string_stops_finds_the_first_special_byte() {
        for (text, at) in [
            (&b"abcdefgh"[..], None),
            (b"abc\"efgh", Some(3)),
            (b"\\bcdefgh", Some(0)),
            (b"abcdefg\x1f", Some(7)),
            (b"\xc3\xa9\xe2\x82\xacx\"\\", Some(6)),
            (b"a\x00\"\\\x01xyz", Some(1)),
        ] {
            let stops = string_stops(u64::from_le_bytes(text.try_into().unwrap()));
            let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
            assert_eq!(found, at, "{text:?}");
        }
    }

    #[test]
    fn numbers_follow_serde_json() {
        let integer = |text: &str| {
            let mut s = Scanner {
                buf: text.as_bytes(),
                pos: 0,
            };
            s.signed().map(|()| s.pos)
        };
        assert_eq!(integer("0"), Some(1));
        assert_eq!(integer("-9223372036854775808"), Some(20));
        assert_eq!(integer("9223372036854775807"), Some(19));
        for refused in [
            "-0",
            "01",
            "9223372036854775808",
            "-9223372036854775809",
            "1.0",
            "1e3",
            "-",
            "",
        ] {
            assert_eq!(integer(refused), None, "{refused}");
        }
        let any = |text: &str| {
            let mut s = Scanner {
                buf: text.as_bytes(),
                pos: 0,
            };
            s.number().map(|()| s.pos)
        };
        assert_eq!(any("-0.5e+10,"), Some(8));
        assert_eq!(any("1E9"), Some(3));
        for refused in ["01", "1.", "1.e3", "1e", "-", "+1", ".5"] {
            assert_eq!(any(refused), None, "{refused}");
        }
    }
}
