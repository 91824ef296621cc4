//! The commit record the push API takes, and the parsing of raw commit objects into it.
//!
//! Commit objects are parsed here rather than by libgit2's `git_commit` parser so that a commit that
//! libgit2 would refuse (a malformed ident, a missing e-mail, an odd time zone, bytes that are not
//! UTF-8) still yields a record: reading history never fails on a commit's metadata.

use serde::Serialize;
use time::{OffsetDateTime, UtcOffset};

/// Longest `message_title` the server accepts (characters, i.e. Unicode code points).
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest name or e-mail the server accepts (characters).
pub const MAX_IDENT_CHARS: usize = 255;
/// Title sent for a commit whose message is empty or only whitespace. The server rejects an empty
/// `message_title` (1..500 characters) with a 422 for the *whole batch*, so one
/// `git commit --allow-empty-message` would otherwise block every later push of the repository.
pub const EMPTY_MESSAGE_TITLE: &str = "(no message)";
/// Name sent when the commit's author/committer name is empty (the server requires 1..255 characters).
pub const UNKNOWN_NAME: &str = "Unknown";
/// E-mail sent when the commit's author/committer e-mail is empty.
pub const UNKNOWN_EMAIL: &str = "unknown@unknown.local";

/// One commit with the fields of the push API (`POST /api/v1/sync/.../commits`, `CommitMetadata`),
/// plus the author date.
///
/// Serialises to the push API's JSON: dates as RFC 3339 *with the original UTC offset*
/// (e.g. `"2026-01-02T12:00:00+02:00"`), which the server converts to UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRecord {
    /// 40 lowercase hexadecimal characters.
    pub sha: String,
    /// Author name as recorded, or `"Unknown"` when empty; at most 255 characters.
    pub author_name: String,
    /// Author e-mail in its original case (the server lowercases), or `"unknown@unknown.local"`.
    pub author_email: String,
    /// Author date in the author's UTC offset.
    #[serde(with = "time::serde::rfc3339")]
    pub author_date: OffsetDateTime,
    /// Committer name, same rules as `author_name`.
    pub committer_name: String,
    /// Committer e-mail, same rules as `author_email`.
    pub committer_email: String,
    /// Committer date in the committer's UTC offset (the push API's `commit_date`).
    #[serde(with = "time::serde::rfc3339")]
    pub commit_date: OffsetDateTime,
    /// First line of the trimmed message, at most 500 characters; [`EMPTY_MESSAGE_TITLE`] for an
    /// empty message.
    pub message_title: String,
    /// Everything after the first newline of the trimmed message (so it usually starts with `"\n"`),
    /// or `None` for a one-line message.
    pub message_body: Option<String>,
    /// Lines added against the first parent (root commit: against the empty tree).
    pub additions: u64,
    /// Lines deleted against the first parent.
    pub deletions: u64,
    /// Files changed against the first parent, binary files and mode-only changes included.
    pub files_changed: u64,
    /// More than one parent.
    pub is_merge: bool,
    /// Number of parents.
    pub parent_count: u32,
}

/// The parts of a raw commit object this crate needs.
#[derive(Debug, Clone)]
pub(crate) struct RawCommit<'a> {
    pub tree: &'a [u8],
    pub first_parent: Option<&'a [u8]>,
    pub parent_count: u32,
    pub author: &'a [u8],
    pub committer: &'a [u8],
    pub encoding: Option<&'a [u8]>,
    pub message: &'a [u8],
}

/// Parses a raw commit object (`tree`, `parent`*, `author`, `committer`, other headers, blank line,
/// message). Continuation lines (starting with a space, as in `gpgsig`) are skipped. Returns `None`
/// when there is no `tree` header.
pub(crate) fn parse_commit(data: &[u8]) -> Option<RawCommit<'_>> {
    let mut tree = None;
    let mut first_parent = None;
    let mut parent_count = 0u32;
    let mut author: &[u8] = b"";
    let mut committer: &[u8] = b"";
    let mut encoding = None;
    let mut rest = data;
    let message;
    loop {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line.is_empty() {
            message = after;
            break;
        }
        rest = after;
        if line[0] != b' ' {
            let (key, value) = match line.iter().position(|&b| b == b' ') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &line[line.len()..]),
            };
            match key {
                b"tree" if tree.is_none() => tree = Some(value),
                b"parent" => {
                    if first_parent.is_none() {
                        first_parent = Some(value);
                    }
                    parent_count += 1;
                }
                b"author" if author.is_empty() => author = value,
                b"committer" if committer.is_empty() => committer = value,
                b"encoding" if encoding.is_none() => encoding = Some(value),
                _ => {}
            }
        }
        if rest.is_empty() {
            message = rest;
            break;
        }
    }
    Some(RawCommit { tree: tree?, first_parent, parent_count, author, committer, encoding, message })
}

/// A person as git records them: `Name <email> 1700000000 +0200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    pub name: String,
    pub email: String,
    pub date: OffsetDateTime,
}

/// Parses an ident line the way git's `split_ident_line` does: the name is what precedes `<`
/// (whitespace-trimmed), the e-mail is between `<` and the last `>`, then seconds since the epoch
/// and a `+hhmm` offset. Anything missing becomes the documented placeholder (or the epoch in UTC
/// for an unparseable date), never an error.
pub(crate) fn parse_ident(line: &[u8], decode: impl Fn(&[u8]) -> String) -> Ident {
    let (name, email, tail): (&[u8], &[u8], &[u8]) = match line.iter().position(|&b| b == b'<') {
        Some(lt) => match line.iter().rposition(|&b| b == b'>') {
            Some(gt) if gt > lt => (&line[..lt], &line[lt + 1..gt], &line[gt + 1..]),
            _ => (&line[..lt], &line[lt + 1..], b""),
        },
        None => (line, b"", b""),
    };
    let name = clip(decode(name.trim_ascii()), MAX_IDENT_CHARS);
    let email = clip(decode(email.trim_ascii()), MAX_IDENT_CHARS);
    Ident {
        name: if name.is_empty() { UNKNOWN_NAME.to_owned() } else { name },
        email: if email.is_empty() { UNKNOWN_EMAIL.to_owned() } else { email },
        date: parse_date(tail),
    }
}

fn parse_date(tail: &[u8]) -> OffsetDateTime {
    let mut parts = tail.split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty());
    let seconds = parts.next().and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse::<i64>().ok());
    let offset = parts.next().and_then(parse_offset).unwrap_or(UtcOffset::UTC);
    seconds
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or(OffsetDateTime::UNIX_EPOCH, |t| t.to_offset(offset))
}

/// `+0200`, `-0530` → an offset; git's own arithmetic (hours = n / 100, minutes = n % 100).
fn parse_offset(tz: &[u8]) -> Option<UtcOffset> {
    let (sign, digits) = match tz.first()? {
        b'+' => (1i32, &tz[1..]),
        b'-' => (-1i32, &tz[1..]),
        _ => (1i32, tz),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: i32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let (hours, minutes) = (n / 100, n % 100);
    if minutes >= 60 {
        return None;
    }
    UtcOffset::from_whole_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Decodes commit text (message and idents) following the commit's `encoding` header, as
/// `git log` does when it re-encodes to UTF-8:
///
/// * no header, or `UTF-8`: UTF-8, invalid sequences replaced by U+FFFD (git would print the raw
///   bytes);
/// * ISO-8859-1 / Latin-1 (and its aliases): each byte is the code point of the same value;
/// * Windows-1252 / CP1252: Latin-1 with the 0x80–0x9F block mapped as Windows does;
/// * any other encoding: UTF-8 if the bytes are valid UTF-8, else lossy UTF-8.
///
/// It never fails.
pub(crate) fn decode(bytes: &[u8], encoding: Option<&[u8]>) -> String {
    match encoding.map(classify_encoding).unwrap_or(Encoding::Utf8) {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        Encoding::Windows1252 => bytes.iter().map(|&b| windows_1252(b)).collect(),
    }
}

enum Encoding {
    Utf8,
    Latin1,
    Windows1252,
}

fn classify_encoding(name: &[u8]) -> Encoding {
    let name = String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase();
    match name.as_str() {
        "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "iso88591" | "latin1" | "latin-1" | "l1" | "cp819" | "ibm819"
        | "iso-ir-100" | "iso_8859-1:1987" => Encoding::Latin1,
        "windows-1252" | "cp1252" | "x-cp1252" => Encoding::Windows1252,
        _ => Encoding::Utf8,
    }
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}',
        '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8D}', '\u{017D}', '\u{8F}', '\u{90}', '\u{2018}',
        '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}',
        '\u{203A}', '\u{0153}', '\u{9D}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// Replaces an author's or committer's name and e-mail by their canonical ones from the
/// repository's mailmap (matching as git does: by e-mail, case-insensitively, and by name and
/// e-mail when the entry names both), within the same length limits.
pub(crate) fn apply_mailmap(mailmap: &gix::mailmap::Snapshot, name: &mut String, email: &mut String) {
    use gix::bstr::{ByteSlice, ByteVec};
    let signature =
        gix::actor::SignatureRef { name: name.as_bytes().as_bstr(), email: email.as_bytes().as_bstr(), time: "" };
    let Some(resolved) = mailmap.try_resolve_ref(signature) else { return };
    let text = |value: &gix::bstr::BStr| clip(Vec::from(value.as_bytes()).into_string_lossy(), MAX_IDENT_CHARS);
    let (new_name, new_email) = (resolved.name.map(text), resolved.email.map(text));
    if let Some(new_name) = new_name.filter(|n| !n.trim().is_empty()) {
        *name = new_name;
    }
    if let Some(new_email) = new_email.filter(|e| !e.trim().is_empty()) {
        *email = new_email;
    }
}

/// Splits a decoded message into the push API's title and body.
///
/// The message is trimmed (Unicode whitespace, like the original client's Python `str.strip()`);
/// the title is its first line (a trailing `\r` of a CRLF message dropped) cut to 500 characters;
/// the body is everything after the first `\n`, or `None`. An empty message gets
/// [`EMPTY_MESSAGE_TITLE`] because the server rejects empty titles.
pub fn split_message(message: &str) -> (String, Option<String>) {
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return (EMPTY_MESSAGE_TITLE.to_owned(), None);
    }
    let (first, body) = match trimmed.split_once('\n') {
        Some((first, rest)) => (first, Some(rest.to_owned())),
        None => (trimmed, None),
    };
    let first = first.strip_suffix('\r').unwrap_or(first);
    (clip(first.to_owned(), MAX_TITLE_CHARS), body)
}

/// Cuts a string to at most `max` characters (code points).
pub(crate) fn clip(mut s: String, max: usize) -> String {
    if let Some((byte, _)) = s.char_indices().nth(max) {
        s.truncate(byte);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_message() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
parent 1111111111111111111111111111111111111111\n\
parent 2222222222222222222222222222222222222222\n\
author A U Thor <a@x.org> 1700000000 +0530\n\
committer C <c@x.org> 1700000100 -0800\n\
encoding ISO-8859-1\n\
gpgsig -----BEGIN PGP SIGNATURE-----\n \n encoding UTF-8\n -----END PGP SIGNATURE-----\n\
\n\
Title\n\nBody\n";
        let c = parse_commit(raw).unwrap();
        assert_eq!(c.tree, b"4b825dc642cb6eb9a060e54bf8d69288fbee4904");
        assert_eq!(c.first_parent.unwrap(), b"1111111111111111111111111111111111111111");
        assert_eq!(c.parent_count, 2);
        assert_eq!(c.encoding.unwrap(), b"ISO-8859-1");
        assert_eq!(c.message, b"Title\n\nBody\n");
        let a = parse_ident(c.author, |b| decode(b, None));
        assert_eq!(a.name, "A U Thor");
        assert_eq!(a.email, "a@x.org");
        assert_eq!(a.date.offset(), UtcOffset::from_hms(5, 30, 0).unwrap());
        assert_eq!(a.date.unix_timestamp(), 1_700_000_000);
        let c2 = parse_ident(c.committer, |b| decode(b, None));
        assert_eq!(c2.date.offset(), UtcOffset::from_hms(-8, 0, 0).unwrap());
    }

    #[test]
    fn commit_without_message_or_blank_line() {
        let c = parse_commit(b"tree abc\nauthor A <a> 1 +0000\ncommitter A <a> 1 +0000\n").unwrap();
        assert_eq!(c.message, b"");
        assert_eq!(c.parent_count, 0);
        assert!(parse_commit(b"author A <a> 1 +0000\n\nmsg").is_none());
    }

    #[test]
    fn odd_idents_never_fail() {
        let d = |b: &[u8]| decode(b, None);
        let i = parse_ident(b" <> 1 +0000", d);
        assert_eq!((i.name.as_str(), i.email.as_str()), (UNKNOWN_NAME, UNKNOWN_EMAIL));
        let i = parse_ident(b"Just A Name", d);
        assert_eq!(i.name, "Just A Name");
        assert_eq!(i.email, UNKNOWN_EMAIL);
        assert_eq!(i.date, OffsetDateTime::UNIX_EPOCH);
        let i = parse_ident(b"N <e> notanumber +zz", d);
        assert_eq!(i.date, OffsetDateTime::UNIX_EPOCH);
        let i = parse_ident(b"N <e> 100 +9999", d);
        assert_eq!(i.date.offset(), UtcOffset::UTC);
        assert_eq!(i.date.unix_timestamp(), 100);
        let long = format!("{} <e> 1 +0000", "é".repeat(300));
        assert_eq!(parse_ident(long.as_bytes(), d).name.chars().count(), MAX_IDENT_CHARS);
    }

    #[test]
    fn decodes_by_encoding_header() {
        assert_eq!(decode(b"caf\xe9", Some(b"ISO-8859-1")), "café");
        assert_eq!(decode(b"caf\xe9", Some(b"latin1")), "café");
        assert_eq!(decode(b"\x80 \x93x\x94", Some(b"cp1252")), "€ “x”");
        assert_eq!(decode(b"caf\xe9", None), "caf\u{FFFD}");
        assert_eq!(decode("café".as_bytes(), Some(b"KOI8-R")), "café");
    }

    #[test]
    fn splits_title_and_body() {
        assert_eq!(split_message(""), (EMPTY_MESSAGE_TITLE.into(), None));
        assert_eq!(split_message(" \n\t\n"), (EMPTY_MESSAGE_TITLE.into(), None));
        assert_eq!(split_message("one line\n"), ("one line".into(), None));
        assert_eq!(split_message("\n\n  Title\n\nBody\nmore\n\n"), ("Title".into(), Some("\nBody\nmore".into())));
        assert_eq!(split_message("Title\r\n\r\nBody\r\n"), ("Title".into(), Some("\r\nBody".into())));
        let long = "x".repeat(600);
        assert_eq!(split_message(&long).0.len(), MAX_TITLE_CHARS);
        let wide = "é".repeat(600);
        assert_eq!(split_message(&wide).0.chars().count(), MAX_TITLE_CHARS);
    }
}
