//! A small Server-Sent Events parser, fed with whatever byte chunks the network delivers.
//!
//! Follows the WHATWG event-stream rules that matter to LLM providers: lines end in `\n`, `\r\n` or
//! `\r` (a `\r\n` split across two reads is one line end); `:` starts a comment; `field: value` drops one
//! space after the colon; several `data:` lines of one event are joined with `\n`; an empty line
//! dispatches the event. Bytes are buffered until a line is complete, so a UTF-8 character or a field
//! name split across reads is reassembled before decoding. One deliberate leniency: [`SseParser::finish`]
//! dispatches an event whose final empty line never came (some servers close right after the last
//! `data:` line).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when absent (the spec's default type is `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field seen, if any.
    pub id: Option<String>,
}

/// The longest line we accept, so a misbehaving server cannot make us buffer without bound.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Error: a line exceeded [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event-stream line exceeded {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was a `\r` that ended a line; a following `\n` belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next bytes; complete events are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.line.extend_from_slice(&rest[..end]);
                    if self.line.len() > MAX_LINE_BYTES {
                        return Err(LineTooLong);
                    }
                    self.after_cr = rest[end] == b'\r';
                    rest = &rest[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line, out);
                }
                None => {
                    self.line.extend_from_slice(rest);
                    if self.line.len() > MAX_LINE_BYTES {
                        return Err(LineTooLong);
                    }
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// The stream ended: process an unterminated last line and dispatch a pending event, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
        }
        self.process_line(b"", &mut out);
        out.pop()
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                    id: self.id.clone(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out).unwrap();
        }
        out.extend(parser.finish());
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into(), id: None }
    }

    #[test]
    fn parses_simple_events() {
        let events = parse_all(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]);
        assert_eq!(events, vec![ev("", "{\"a\":1}"), ev("", "[DONE]")]);
    }

    #[test]
    fn handles_crlf_cr_and_lf_line_ends() {
        let events = parse_all(&[b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n"]);
        assert_eq!(events, vec![ev("a", "1"), ev("b", "2"), ev("", "3")]);
    }

    #[test]
    fn joins_multi_line_data_and_skips_comments() {
        let events = parse_all(&[b": keep-alive\ndata: first\ndata:second\n: another comment\ndata:  third\n\n"]);
        assert_eq!(events, vec![ev("", "first\nsecond\n third")]);
    }

    #[test]
    fn ignores_events_without_data_and_unknown_fields() {
        let events = parse_all(&[b"event: ping\n\nretry: 100\nfoo: bar\nid: 7\ndata\n\n"]);
        assert_eq!(events, vec![SseEvent { event: String::new(), data: String::new(), id: Some("7".into()) }]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let input = "event: content_block_delta\r\ndata: {\"text\":\"héllo 👋\"}\r\n\r\n: c\ndata: a\ndata: b\n\ndata: [DONE]\r\n\r\n".as_bytes();
        let expected = parse_all(&[input]);
        assert_eq!(expected.len(), 3);
        for split in 0..=input.len() {
            assert_eq!(parse_all(&[&input[..split], &input[split..]]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_all(&bytes), expected);
    }

    #[test]
    fn finish_dispatches_an_unterminated_event() {
        assert_eq!(parse_all(&[b"data: last"]), vec![ev("", "last")]);
        assert_eq!(parse_all(&[b"data: last\n"]), vec![ev("", "last")]);
        assert_eq!(parse_all(&[b": only a comment"]), vec![]);
    }

    #[test]
    fn rejects_endless_lines() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let big = vec![b'x'; MAX_LINE_BYTES / 2 + 1];
        parser.push(&big, &mut out).unwrap();
        assert_eq!(parser.push(&big, &mut out), Err(LineTooLong));
    }
}
