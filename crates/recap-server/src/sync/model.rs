//! Request and response types of the sync routes and commit queries, and the validation of a push.
//!
//! A push body is parsed once, straight from the request bytes, into loosely typed fields that
//! borrow the body's strings ([`Loose`]); one pass then checks every rule of the league contract
//! and collects every violation with its FastAPI-style location (`["body","commits",3,"sha"]`),
//! so a 1000-commit batch costs one parse and no per-field allocation unless a value must change
//! (an upper-case e-mail, an escaped string).

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer},
};
use serde_json::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::store::{AuthorStatsRow, CommitRow, DayStatsRow, TotalsRow};
use crate::{
    error::{ApiError, FieldError},
    time::rfc3339,
};

/// Most commits one push may carry.
pub const MAX_COMMITS: usize = 1000;

// ----- SHAs -----

/// A full commit SHA: 40 lower-case hexadecimal digits, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha([u8; 40]);

impl Sha {
    /// 40 hexadecimal digits in any case, lower-cased; anything else is `None`.
    pub fn parse(s: &str) -> Option<Sha> {
        let bytes: &[u8; 40] = s.as_bytes().try_into().ok()?;
        let mut out = [0u8; 40];
        for (o, b) in out.iter_mut().zip(bytes) {
            if !b.is_ascii_hexdigit() {
                return None;
            }
            *o = b.to_ascii_lowercase();
        }
        Some(Sha(out))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).expect("a SHA is ASCII")
    }

    /// The SHA folded to 64 bits: hex digits 1–16 XOR 17–32 XOR 33–40, each read as a big-endian
    /// integer. Every digit counts, so SHAs made up by counting (`000…0001`, `000…0002`) fold
    /// apart. SQLite's commit keys are built on it (migration `…07_commit_keys` computes the same
    /// in SQL for the rows it converts).
    pub fn fold64(&self) -> i64 {
        let part = |digits: &[u8]| digits.iter().fold(0u64, |n, d| (n << 4) | u64::from(hex_value(*d)));
        (part(&self.0[..16]) ^ part(&self.0[16..32]) ^ part(&self.0[32..])) as i64
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

impl fmt::Debug for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Sha {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// ----- the validated push -----

/// One commit of a push, validated and normalised (SHA and e-mails lower-cased, date in UTC).
#[derive(Debug, Clone)]
pub struct NewCommit<'a> {
    pub sha: Sha,
    pub author_name: Cow<'a, str>,
    pub author_email: Cow<'a, str>,
    pub committer_name: Cow<'a, str>,
    pub committer_email: Cow<'a, str>,
    pub commit_date: OffsetDateTime,
    pub message_title: Cow<'a, str>,
    pub message_body: Option<Cow<'a, str>>,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub is_merge: bool,
    pub parent_count: i64,
}

/// A validated push body.
#[derive(Debug)]
pub struct PushBatch<'a> {
    pub commits: Vec<NewCommit<'a>>,
    pub client_version: Option<Cow<'a, str>>,
}

// ----- loose parsing -----

/// Any JSON value, kept only as far as validation needs it: scalars (strings borrowed from the
/// body when they contain no escapes) or just the kind of a container.
#[derive(Debug, Default)]
enum Loose<'a> {
    #[default]
    Missing,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    /// An integer beyond `i64`.
    HugeInt,
    Float(f64),
    Bool(bool),
    List,
    Object,
}

struct LooseVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
    type Value = Loose<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose<'a>, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose<'a>, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose<'a>, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Loose::Int(i),
            Err(_) => Loose::HugeInt,
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose<'a>, E> {
        Ok(Loose::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'a>, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose<'a>, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose<'a>, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Loose<'a>, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose<'a>, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose<'a>, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Object)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor(PhantomData))
    }
}

/// The fields of `CommitMetadata`; unknown fields are skipped.
#[derive(Debug, Deserialize)]
struct RawCommit<'a> {
    #[serde(borrow, default)]
    sha: Loose<'a>,
    #[serde(borrow, default)]
    author_name: Loose<'a>,
    #[serde(borrow, default)]
    author_email: Loose<'a>,
    #[serde(borrow, default)]
    committer_name: Loose<'a>,
    #[serde(borrow, default)]
    committer_email: Loose<'a>,
    #[serde(borrow, default)]
    commit_date: Loose<'a>,
    #[serde(borrow, default)]
    message_title: Loose<'a>,
    #[serde(borrow, default)]
    message_body: Loose<'a>,
    #[serde(borrow, default)]
    additions: Loose<'a>,
    #[serde(borrow, default)]
    deletions: Loose<'a>,
    #[serde(borrow, default)]
    files_changed: Loose<'a>,
    #[serde(borrow, default)]
    is_merge: Loose<'a>,
    #[serde(borrow, default)]
    parent_count: Loose<'a>,
}

/// The scalar `visit_*` methods of a visitor that answers `$other` for every scalar (the value
/// is only told apart from the container it should have been).
macro_rules! scalars_are {
    ($value:ty, $other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_str<E>(self, _: &str) -> Result<$value, E> {
            Ok($other)
        }
        fn visit_unit<E>(self) -> Result<$value, E> {
            Ok($other)
        }
    };
}

/// One element of `commits`: an object, or something else (a 422 for that element).
#[derive(Debug)]
enum Item<'a> {
    Commit(Box<RawCommit<'a>>),
    NotAnObject,
}

struct ItemVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ItemVisitor<'a> {
    type Value = Item<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a commit object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'a>, A::Error> {
        RawCommit::deserialize(MapAccessDeserializer::new(map)).map(|c| Item::Commit(Box::new(c)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Item::NotAnObject)
    }
    scalars_are!(Item<'a>, Item::NotAnObject);
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor(PhantomData))
    }
}

/// The `commits` field: a list of items, or the kind of value that came instead.
#[derive(Debug, Default)]
enum Commits<'a> {
    #[default]
    Missing,
    NotAList,
    List(Vec<Item<'a>>),
}

struct CommitsVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for CommitsVisitor<'a> {
    type Value = Commits<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of commits")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Commits<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(16).min(MAX_COMMITS + 1));
        while let Some(item) = seq.next_element::<Item<'a>>()? {
            items.push(item);
        }
        Ok(Commits::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Commits<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Commits::NotAList)
    }
    scalars_are!(Commits<'a>, Commits::NotAList);
}

impl<'de: 'a, 'a> Deserialize<'de> for Commits<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CommitsVisitor(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct RawBody<'a> {
    #[serde(borrow, default)]
    commits: Commits<'a>,
    #[serde(borrow, default)]
    client_version: Loose<'a>,
    #[serde(borrow, default)]
    timestamp: Loose<'a>,
}

// ----- validation -----

fn commit_loc(index: usize, field: &'static str) -> Vec<Value> {
    vec!["body".into(), "commits".into(), index.into(), field.into()]
}

fn body_loc(field: &'static str) -> Vec<Value> {
    vec!["body".into(), field.into()]
}

/// Collects field errors; a location is only built when there is an error.
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, loc: impl FnOnce() -> Vec<Value>, msg: impl Into<String>, kind: &str) {
        self.0.push(FieldError::new(loc(), msg, kind));
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}

fn char_count(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.chars().count() }
}

/// A required string of `min..=max` characters (code points).
fn text<'a>(
    v: Loose<'a>,
    loc: impl FnOnce() -> Vec<Value>,
    min: usize,
    max: usize,
    errors: &mut Errors,
) -> Option<Cow<'a, str>> {
    match v {
        Loose::Missing => {
            errors.push(loc, "Field required", "missing");
            None
        }
        Loose::Str(s) => {
            let n = char_count(&s);
            if n < min {
                errors.push(
                    loc,
                    format!("String should have at least {}", plural(min, "character")),
                    "string_too_short",
                );
                None
            } else if n > max {
                errors.push(loc, format!("String should have at most {}", plural(max, "character")), "string_too_long");
                None
            } else {
                Some(s)
            }
        }
        _ => {
            errors.push(loc, "Input should be a valid string", "string_type");
            None
        }
    }
}

/// Lower-cases without allocating when there is nothing to change.
fn lowercase(s: Cow<'_, str>) -> Cow<'_, str> {
    let changes =
        if s.is_ascii() { s.bytes().any(|b| b.is_ascii_uppercase()) } else { s.chars().any(char::is_uppercase) };
    if changes { Cow::Owned(s.to_lowercase()) } else { s }
}

/// An integer ≥ 0 (JSON integers, integral floats and numeric strings, as pydantic's lax mode).
fn count(v: Loose<'_>, loc: impl FnOnce() -> Vec<Value>, default: Option<i64>, errors: &mut Errors) -> Option<i64> {
    let n = match v {
        Loose::Missing => match default {
            Some(d) => return Some(d),
            None => {
                errors.push(loc, "Field required", "missing");
                return None;
            }
        },
        Loose::Int(i) => i,
        Loose::HugeInt => {
            errors.push(loc, "Input should be less than or equal to 9223372036854775807", "less_than_equal");
            return None;
        }
        Loose::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => f as i64,
        Loose::Float(_) => {
            errors.push(loc, "Input should be a valid integer, got a number with a fractional part", "int_from_float");
            return None;
        }
        Loose::Str(s) => match s.trim().parse::<i64>() {
            Ok(i) => i,
            Err(_) => {
                errors.push(
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    "int_parsing",
                );
                return None;
            }
        },
        _ => {
            errors.push(loc, "Input should be a valid integer", "int_type");
            return None;
        }
    };
    if n < 0 {
        errors.push(loc, "Input should be greater than or equal to 0", "greater_than_equal");
        return None;
    }
    // Far above any real commit, and low enough that the league's sums cannot overflow.
    if n > MAX_COUNT {
        errors.push(loc, format!("Input should be less than or equal to {MAX_COUNT}"), "less_than_equal");
        return None;
    }
    Some(n)
}

/// Largest `additions`, `deletions`, `files_changed` or `parent_count` of one commit.
pub const MAX_COUNT: i64 = 1_000_000_000;

/// A boolean, default `false` (pydantic's lax spellings are accepted).
fn boolean(v: Loose<'_>, loc: impl FnOnce() -> Vec<Value>, errors: &mut Errors) -> Option<bool> {
    match v {
        Loose::Missing => Some(false),
        Loose::Bool(b) => Some(b),
        Loose::Int(0) => Some(false),
        Loose::Int(1) => Some(true),
        Loose::Float(f) if f == 0.0 || f == 1.0 => Some(f == 1.0),
        Loose::Str(s) => match s.to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
            _ => {
                errors.push(loc, "Input should be a valid boolean, unable to interpret input", "bool_parsing");
                None
            }
        },
        Loose::Int(_) | Loose::HugeInt | Loose::Float(_) => {
            errors.push(loc, "Input should be a valid boolean, unable to interpret input", "bool_parsing");
            None
        }
        _ => {
            errors.push(loc, "Input should be a valid boolean", "bool_type");
            None
        }
    }
}

/// A datetime in any accepted format (see [`parse_datetime`]), in UTC.
fn datetime(v: Loose<'_>, loc: impl FnOnce() -> Vec<Value>, errors: &mut Errors) -> Option<OffsetDateTime> {
    let parsed = match v {
        Loose::Missing => {
            errors.push(loc, "Field required", "missing");
            return None;
        }
        Loose::Str(s) => parse_datetime(&s),
        Loose::Int(i) => from_epoch_int(i),
        Loose::HugeInt => Err("dates after 9999 are not supported"),
        Loose::Float(f) => from_epoch_float(f),
        _ => {
            errors.push(loc, "Input should be a valid datetime", "datetime_type");
            return None;
        }
    };
    match parsed {
        Ok(at) => Some(at),
        Err(reason) => {
            errors.push(loc, format!("Input should be a valid datetime, {reason}"), "datetime_parsing");
            None
        }
    }
}

fn validate_commit<'a>(i: usize, raw: RawCommit<'a>, errors: &mut Errors) -> Option<NewCommit<'a>> {
    let loc = |field: &'static str| move || commit_loc(i, field);
    let sha = text(raw.sha, loc("sha"), 40, 40, errors).and_then(|s| {
        let sha = Sha::parse(&s);
        if sha.is_none() {
            errors.push(loc("sha"), "Value error, SHA must be 40 hexadecimal characters", "value_error");
        }
        sha
    });
    let author_name = text(raw.author_name, loc("author_name"), 1, 255, errors);
    let author_email = text(raw.author_email, loc("author_email"), 1, 255, errors).map(lowercase);
    let committer_name = text(raw.committer_name, loc("committer_name"), 1, 255, errors);
    let committer_email = text(raw.committer_email, loc("committer_email"), 1, 255, errors).map(lowercase);
    let commit_date = datetime(raw.commit_date, loc("commit_date"), errors);
    let message_title = text(raw.message_title, loc("message_title"), 1, 500, errors);
    let message_body = match raw.message_body {
        Loose::Missing | Loose::Null => Some(None),
        Loose::Str(s) => Some(Some(s)),
        _ => {
            errors.push(loc("message_body"), "Input should be a valid string", "string_type");
            None
        }
    };
    let additions = count(raw.additions, loc("additions"), None, errors);
    let deletions = count(raw.deletions, loc("deletions"), None, errors);
    let files_changed = count(raw.files_changed, loc("files_changed"), None, errors);
    let is_merge = boolean(raw.is_merge, loc("is_merge"), errors);
    let parent_count = count(raw.parent_count, loc("parent_count"), Some(1), errors);
    Some(NewCommit {
        sha: sha?,
        author_name: author_name?,
        author_email: author_email?,
        committer_name: committer_name?,
        committer_email: committer_email?,
        commit_date: commit_date?,
        message_title: message_title?,
        message_body: message_body?,
        additions: additions?,
        deletions: deletions?,
        files_changed: files_changed?,
        is_merge: is_merge?,
        parent_count: parent_count?,
    })
}

/// Parses and validates a push body (`SyncCommitsRequest` of the contract). Every violation is
/// reported at once; any violation rejects the whole request.
pub fn parse_push(bytes: &[u8]) -> Result<PushBatch<'_>, ApiError> {
    crate::http::extract::refuse_nul_escape(bytes)?;
    // Only an object is a body (serde would also read a struct from an array).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
        crate::http::extract::parse_json::<IgnoredAny>(bytes)?;
        return Err(ApiError::validation(vec![FieldError::new(
            vec!["body".into()],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )]));
    }
    let raw: RawBody<'_> = match serde_json::from_slice(bytes) {
        Ok(raw) => raw,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            let message = e.to_string();
            let error = if message.starts_with("invalid type") {
                FieldError::new(
                    vec!["body".into()],
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                )
            } else {
                let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
                FieldError::new(vec!["body".into()], format!("Value error, {message}"), "value_error")
            };
            return Err(ApiError::validation(vec![error]));
        }
        // Malformed JSON: the shared extractor's answer (json_invalid with the byte offset).
        Err(e) => {
            return Err(crate::http::extract::parse_json::<IgnoredAny>(bytes).err().unwrap_or_else(|| {
                ApiError::validation(vec![FieldError::new(vec!["body".into()], e.to_string(), "json_invalid")])
            }));
        }
    };

    let mut errors = Errors(Vec::new());
    let commits = match raw.commits {
        Commits::Missing => {
            errors.push(|| body_loc("commits"), "Field required", "missing");
            Vec::new()
        }
        Commits::NotAList => {
            errors.push(|| body_loc("commits"), "Input should be a valid list", "list_type");
            Vec::new()
        }
        Commits::List(items) if items.is_empty() => {
            errors.push(
                || body_loc("commits"),
                "List should have at least 1 item after validation, not 0",
                "too_short",
            );
            Vec::new()
        }
        Commits::List(items) if items.len() > MAX_COMMITS => {
            errors.push(
                || body_loc("commits"),
                format!("List should have at most {MAX_COMMITS} items after validation, not {}", items.len()),
                "too_long",
            );
            Vec::new()
        }
        Commits::List(items) => {
            let mut commits = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Item::Commit(raw) => {
                        if let Some(c) = validate_commit(i, *raw, &mut errors) {
                            commits.push(c);
                        }
                    }
                    Item::NotAnObject => errors.push(
                        || vec!["body".into(), "commits".into(), i.into()],
                        "Input should be a valid dictionary or instance of CommitMetadata",
                        "model_type",
                    ),
                }
            }
            commits
        }
    };
    let client_version = match raw.client_version {
        Loose::Missing | Loose::Null => None,
        Loose::Str(s) => Some(s),
        _ => {
            errors.push(|| body_loc("client_version"), "Input should be a valid string", "string_type");
            None
        }
    };
    // Accepted and ignored, but it must be a datetime when present.
    if !matches!(raw.timestamp, Loose::Missing | Loose::Null) {
        datetime(raw.timestamp, || body_loc("timestamp"), &mut errors);
    }
    // The list's own rule runs only when every commit is valid (as a pydantic field validator).
    if errors.0.is_empty() {
        let mut shas: Vec<&Sha> = commits.iter().map(|c| &c.sha).collect();
        shas.sort_unstable();
        if shas.windows(2).any(|w| w[0] == w[1]) {
            errors.push(|| body_loc("commits"), "Value error, Duplicate SHAs found in batch", "value_error");
        }
    }
    if errors.0.is_empty() { Ok(PushBatch { commits, client_version }) } else { Err(ApiError::validation(errors.0)) }
}

// ----- dates -----

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Seconds when |value| ≤ 2×10¹⁰, otherwise milliseconds (pydantic's rule).
const EPOCH_SECONDS_LIMIT: f64 = 2e10;

fn in_range(at: OffsetDateTime) -> Result<OffsetDateTime, &'static str> {
    match at.year() {
        1..=9999 => Ok(at),
        y if y < 1 => Err("dates before 0001 are not supported"),
        _ => Err("dates after 9999 are not supported"),
    }
}

pub fn from_epoch_int(v: i64) -> Result<OffsetDateTime, &'static str> {
    let nanos =
        if (v as f64).abs() <= EPOCH_SECONDS_LIMIT { i128::from(v) * 1_000_000_000 } else { i128::from(v) * 1_000_000 };
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|_| "dates after 9999 are not supported")
        .and_then(in_range)
}

pub fn from_epoch_float(v: f64) -> Result<OffsetDateTime, &'static str> {
    if !v.is_finite() {
        return Err("invalid number");
    }
    let secs = if v.abs() <= EPOCH_SECONDS_LIMIT { v } else { v / 1000.0 };
    let micros = (secs * 1e6).round();
    if micros.abs() > 3e17 {
        return Err("dates after 9999 are not supported");
    }
    OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
        .map_err(|_| "dates after 9999 are not supported")
        .and_then(in_range)
}

/// A `commit_date` string: RFC 3339 / ISO 8601 with `T`, `t`, `_` or a space between date and
/// time, seconds and a fraction optional (digits past the sixth are dropped), `Z` or an offset
/// optional (a naive value is UTC); or a Unix epoch in a numeric string. A date alone is
/// refused. The result is converted to UTC.
pub fn parse_datetime(s: &str) -> Result<OffsetDateTime, &'static str> {
    let b = s.as_bytes();
    let numeric = !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || *c == b'.' || (i == 0 && (*c == b'-' || *c == b'+')))
        && b.iter().any(u8::is_ascii_digit);
    if numeric {
        if let Ok(i) = s.parse::<i64>() {
            return from_epoch_int(i);
        }
        return match s.parse::<f64>() {
            Ok(f) => from_epoch_float(f),
            Err(_) => Err("invalid number"),
        };
    }
    if b.len() < 10 {
        return Err("input is too short");
    }
    let year = digits(&b[0..4]).ok_or("invalid character in year")?;
    if b[4] != b'-' || b[7] != b'-' {
        return Err("invalid date separator, expected `-`");
    }
    let month = digits(&b[5..7]).ok_or("invalid character in month")?;
    let day = digits(&b[8..10]).ok_or("invalid character in day")?;
    if b.len() == 10 {
        // A date alone is not a datetime.
        return Err("input is too short");
    }
    if !matches!(b[10], b'T' | b't' | b'_' | b' ') {
        return Err("invalid datetime separator, expected `T`, `t`, `_` or space");
    }
    if b.len() < 16 {
        return Err("input is too short");
    }
    let hour = digits(&b[11..13]).ok_or("invalid character in hour")?;
    if b[13] != b':' {
        return Err("invalid time separator, expected `:`");
    }
    let minute = digits(&b[14..16]).ok_or("invalid character in minute")?;
    let mut pos = 16;
    let mut second = 0;
    let mut micro = 0;
    if b.get(pos) == Some(&b':') {
        second = b.get(pos + 1..pos + 3).and_then(digits).ok_or("invalid character in second")?;
        pos += 3;
        if matches!(b.get(pos), Some(b'.') | Some(b',')) {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            if pos == start {
                return Err("invalid character in second fraction");
            }
            let frac = &b[start..pos];
            let kept = &frac[..frac.len().min(6)];
            micro = digits(kept).unwrap_or(0) * 10u32.pow(6 - kept.len() as u32);
        }
    }
    let offset = match b.get(pos) {
        None => UtcOffset::UTC,
        Some(b'Z') | Some(b'z') => {
            pos += 1;
            UtcOffset::UTC
        }
        Some(sign @ (b'+' | b'-')) => {
            let negative = *sign == b'-';
            let hours = b.get(pos + 1..pos + 3).and_then(digits).ok_or("invalid timezone hour")?;
            pos += 3;
            if b.get(pos) == Some(&b':') {
                pos += 1;
            }
            let minutes = match b.get(pos..pos + 2) {
                Some(m) if m.iter().all(u8::is_ascii_digit) => {
                    pos += 2;
                    digits(m).unwrap_or(0)
                }
                _ => 0,
            };
            if hours > 23 || minutes > 59 {
                return Err("timezone offset must be less than 24 hours");
            }
            let (h, m) = (hours as i8, minutes as i8);
            let (h, m) = if negative { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).map_err(|_| "timezone offset must be less than 24 hours")?
        }
        Some(_) => return Err("unexpected extra characters at the end of the input"),
    };
    if pos != b.len() {
        return Err("unexpected extra characters at the end of the input");
    }
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or("month value is outside expected range of 1-12")?;
    let date =
        Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| "day value is outside expected range")?;
    if hour > 23 {
        return Err("hour value is outside expected range of 0-23");
    }
    if minute > 59 {
        return Err("minute value is outside expected range of 0-59");
    }
    if second > 59 {
        return Err("second value is outside expected range of 0-59");
    }
    let time = Time::from_hms_micro(hour as u8, minute as u8, second as u8, micro).map_err(|_| "invalid time")?;
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    at.checked_to_offset(UtcOffset::UTC).map_or(Err("dates after 9999 are not supported"), in_range)
}

/// A `since`/`until` query value: anything a commit date accepts, or a date alone (the start of
/// that day for `since`, its last microsecond for `until`), all in UTC.
pub fn parse_query_time(value: &str, end_of_day: bool) -> Option<OffsetDateTime> {
    let value = value.trim();
    if value.len() == 10 {
        let b = value.as_bytes();
        if b[4] == b'-' && b[7] == b'-' {
            let year = digits(&b[0..4])? as i32;
            let month = Month::try_from(u8::try_from(digits(&b[5..7])?).ok()?).ok()?;
            let day = u8::try_from(digits(&b[8..10])?).ok()?;
            let date = Date::from_calendar_date(year, month, day).ok()?;
            let time = if end_of_day { Time::from_hms_micro(23, 59, 59, 999_999).ok()? } else { Time::MIDNIGHT };
            return Some(PrimitiveDateTime::new(date, time).assume_utc());
        }
    }
    parse_datetime(value).ok()
}

// ----- push responses -----

/// What happened to one commit of a push.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommitResultOut {
    #[schema(value_type = String, example = "abc123def456abc123def456abc123def456abc1")]
    pub sha: Sha,
    pub inserted: bool,
    /// `Commit already exists` when skipped; null when inserted.
    #[schema(value_type = Option<String>)]
    pub error: Option<Cow<'static, str>>,
}

/// The answer of a push (always 201, even when every commit was skipped).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncCommitsOut {
    /// Commits in the request.
    pub total: usize,
    /// Commits stored by this call.
    pub inserted: usize,
    /// Commits already present in this repository.
    pub skipped: usize,
    /// Commits that failed individually.
    pub errors: usize,
    /// The last SHA inserted by this call, in request order; null when nothing was inserted.
    #[schema(value_type = Option<String>)]
    pub last_ingested_sha: Option<Sha>,
    /// One entry per request commit, in request order.
    pub details: Vec<CommitResultOut>,
}

/// The push body, for the OpenAPI document (the route parses it with [`parse_push`]).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SyncCommitsIn {
    /// 1 to 1000 commits; SHAs must be unique within the batch.
    pub commits: Vec<CommitMetadataIn>,
    /// Recorded in the audit row.
    pub client_version: Option<String>,
    /// Accepted and ignored.
    pub timestamp: Option<String>,
}

/// One commit of a push (`CommitMetadata` of the league contract).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommitMetadataIn {
    /// 40 hexadecimal digits, any case; stored lower-cased.
    #[schema(example = "abc123def456abc123def456abc123def456abc1")]
    pub sha: String,
    /// 1 to 255 characters.
    pub author_name: String,
    /// 1 to 255 characters; stored lower-cased.
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    /// RFC 3339 / ISO 8601 (with `T`, `t`, `_` or a space; a naive value is UTC; offsets are
    /// converted to UTC) or a Unix epoch (seconds up to 2×10¹⁰, milliseconds beyond). A date alone
    /// is refused.
    #[schema(example = "2026-01-02T12:00:00")]
    pub commit_date: String,
    /// 1 to 500 characters.
    pub message_title: String,
    pub message_body: Option<String>,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    /// Default false.
    pub is_merge: Option<bool>,
    /// Default 1.
    pub parent_count: Option<i64>,
}

/// The sync status of a repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStatusOut {
    pub repo_id: Uuid,
    /// `pending`, `syncing`, `healthy` or `error`.
    pub status: String,
    pub last_sync_at: Option<String>,
    /// The last SHA inserted by a push.
    pub last_ingested_sha: Option<String>,
    pub total_commits: i64,
    pub error_message: Option<String>,
}

// ----- commit queries -----

/// A stored commit.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitOut {
    /// `<repo_id>:<sha>`, the id of `GET /api/v1/commits/commits/{commit_id}`.
    pub id: String,
    pub repo_id: Uuid,
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    pub commit_date: String,
    pub message_title: String,
    pub message_body: Option<String>,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub is_merge: bool,
    pub parent_count: i64,
    /// When the commit was ingested.
    pub created_at: String,
}

impl From<CommitRow> for CommitOut {
    fn from(r: CommitRow) -> Self {
        CommitOut {
            id: format!("{}:{}", r.repo_id, r.sha),
            repo_id: r.repo_id,
            sha: r.sha,
            author_name: r.author_name,
            author_email: r.author_email,
            committer_name: r.committer_name,
            committer_email: r.committer_email,
            commit_date: rfc3339(r.commit_date),
            message_title: r.message_title,
            message_body: r.message_body,
            additions: r.additions,
            deletions: r.deletions,
            files_changed: r.files_changed,
            is_merge: r.is_merge,
            parent_count: r.parent_count,
            created_at: rfc3339(r.ingested_at),
        }
    }
}

/// Filters of `GET /api/v1/repos/{repo_id}/commits`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommitsQuery {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 50).
    pub size: Option<i64>,
    /// Author name or e-mail (exact, case-insensitive).
    pub author: Option<String>,
    /// Commits at or after this time (RFC 3339, or a date: its start, UTC).
    pub since: Option<String>,
    /// Commits at or before this time (RFC 3339, or a date: its end, UTC).
    pub until: Option<String>,
    /// `true`: merges only; `false`: no merges.
    pub merges: Option<bool>,
}

/// Filters of the original `GET /api/v1/commits/repos/{repo_id}/commits`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyCommitsQuery {
    pub page: Option<i64>,
    /// 1 to 100 (default 50).
    pub per_page: Option<i64>,
    /// Exact author e-mail (case-insensitive).
    pub author_email: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Filters of the stats routes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Exact author e-mail (case-insensitive); the original stats route's filter.
    pub author_email: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// The original commit list: the page envelope plus `per_page` (= `size`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyCommitPage {
    pub items: Vec<CommitOut>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
    pub pages: i64,
    pub per_page: i64,
}

/// One author's activity in a repository (grouped by author e-mail).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorStatsOut {
    pub author_email: String,
    /// The (alphabetically last) name recorded with this e-mail.
    pub author_name: String,
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    /// Distinct UTC days with at least one commit.
    pub active_days: i64,
    pub first_commit_at: String,
    pub last_commit_at: String,
}

impl From<AuthorStatsRow> for AuthorStatsOut {
    fn from(r: AuthorStatsRow) -> Self {
        AuthorStatsOut {
            author_email: r.author_email,
            author_name: r.author_name,
            commits: r.commits,
            additions: r.additions,
            deletions: r.deletions,
            files_changed: r.files_changed,
            active_days: r.active_days,
            first_commit_at: rfc3339(r.first_commit_at),
            last_commit_at: rfc3339(r.last_commit_at),
        }
    }
}

/// One UTC day's activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayStatsOut {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
}

impl From<DayStatsRow> for DayStatsOut {
    fn from(r: DayStatsRow) -> Self {
        DayStatsOut { date: r.day, commits: r.commits, additions: r.additions, deletions: r.deletions }
    }
}

/// Activity of a repository: totals, per author (most commits first), per day (oldest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoStatsOut {
    pub repo_id: Uuid,
    pub since: Option<String>,
    pub until: Option<String>,
    pub total_commits: i64,
    pub total_additions: i64,
    pub total_deletions: i64,
    pub total_files_changed: i64,
    pub merge_commits: i64,
    pub unique_authors: i64,
    pub active_days: i64,
    pub first_commit_at: Option<String>,
    pub last_commit_at: Option<String>,
    pub authors: Vec<AuthorStatsOut>,
    pub days: Vec<DayStatsOut>,
}

/// The original `CommitStatsResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyStatsOut {
    pub total_commits: i64,
    pub total_additions: i64,
    pub total_deletions: i64,
    pub total_files_changed: i64,
    pub merge_commits: i64,
    pub unique_authors: i64,
    /// `{"earliest": <time or null>, "latest": <time or null>}`.
    #[schema(value_type = Object)]
    pub date_range: Value,
}

impl From<&TotalsRow> for LegacyStatsOut {
    fn from(t: &TotalsRow) -> Self {
        LegacyStatsOut {
            total_commits: t.commits,
            total_additions: t.additions,
            total_deletions: t.deletions,
            total_files_changed: t.files_changed,
            merge_commits: t.merges,
            unique_authors: t.authors,
            date_range: serde_json::json!({
                "earliest": t.first_commit_at.map(rfc3339),
                "latest": t.last_commit_at.map(rfc3339),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fold64_xors_the_three_parts_of_the_sha() {
        let fold = |s: &str| Sha::parse(s).unwrap().fold64();
        assert_eq!(fold(&"0".repeat(40)), 0);
        assert_eq!(fold(&format!("{}1", "0".repeat(39))), 1);
        assert_eq!(fold(&format!("8{}", "0".repeat(39))), i64::MIN);
        assert_eq!(fold(&format!("{}{}", "f".repeat(16), "0".repeat(24))), -1);
        // -1 ^ -1 ^ 0xffffffff
        assert_eq!(fold(&"F".repeat(40)), 0xffff_ffff);
        // Counting SHAs differ in the last part only, and fold apart.
        assert_eq!(fold(&format!("{:040x}", 0x1234_5678u64)), 0x1234_5678);
        assert_eq!(
            fold("0123456789abcdeffedcba987654321000112233"),
            (0x0123_4567_89ab_cdefu64 ^ 0xfedc_ba98_7654_3210 ^ 0x0011_2233) as i64
        );
    }

    fn commit(sha: &str) -> Value {
        serde_json::json!({
            "sha": sha,
            "author_name": "Alice Developer",
            "author_email": "Alice@Example.com",
            "committer_name": "Alice Developer",
            "committer_email": "alice@example.com",
            "commit_date": "2026-01-02T12:00:00",
            "message_title": "Fix critical bug",
            "message_body": "\nDetailed description...",
            "additions": 42,
            "deletions": 15,
            "files_changed": 3,
            "is_merge": false,
            "parent_count": 1,
            "unknown": {"ignored": [1, 2]}
        })
    }

    fn errors_of(body: Value) -> Vec<FieldError> {
        let bytes = serde_json::to_vec(&body).unwrap();
        parse_push(&bytes).unwrap_err().report.field_errors.unwrap()
    }

    #[test]
    fn a_valid_batch_is_normalised() {
        let body = serde_json::json!({"commits": [commit(&"AB".repeat(20))], "client_version": "0.1.0", "extra": 1});
        let bytes = serde_json::to_vec(&body).unwrap();
        let batch = parse_push(&bytes).unwrap();
        let c = &batch.commits[0];
        assert_eq!(c.sha.as_str(), "ab".repeat(20));
        assert_eq!(c.author_email, "alice@example.com");
        assert!(matches!(c.committer_email, Cow::Borrowed(_)), "nothing to change, nothing copied");
        assert_eq!(c.commit_date, datetime!(2026-01-02 12:00:00 UTC));
        assert_eq!(c.message_body.as_deref(), Some("\nDetailed description..."));
        assert_eq!((c.additions, c.deletions, c.files_changed, c.is_merge, c.parent_count), (42, 15, 3, false, 1));
        assert_eq!(batch.client_version.as_deref(), Some("0.1.0"));
    }

    #[test]
    fn every_violation_is_located() {
        let mut bad = commit("xyz");
        bad["author_email"] = Value::from("");
        bad["additions"] = Value::from(-1);
        bad["message_title"] = Value::from("t".repeat(501));
        bad["is_merge"] = Value::from("maybe");
        bad.as_object_mut().unwrap().remove("deletions");
        let errors = errors_of(serde_json::json!({"commits": [commit(&"a".repeat(40)), bad]}));
        let found: Vec<(String, String)> =
            errors.iter().map(|e| (e.loc[3].as_str().unwrap().to_owned(), e.kind.clone())).collect();
        assert_eq!(
            found,
            [
                ("sha", "string_too_short"),
                ("author_email", "string_too_short"),
                ("message_title", "string_too_long"),
                ("additions", "greater_than_equal"),
                ("deletions", "missing"),
                ("is_merge", "bool_parsing"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(errors.iter().all(|e| e.loc[..3] == [Value::from("body"), "commits".into(), 1.into()]));
        let errors = errors_of(serde_json::json!({"commits": [commit(&"g".repeat(40))]}));
        assert_eq!(errors[0].msg, "Value error, SHA must be 40 hexadecimal characters");
    }

    #[test]
    fn list_rules() {
        let e = &errors_of(serde_json::json!({"commits": []}))[0];
        assert_eq!((e.kind.as_str(), e.loc.clone()), ("too_short", vec![Value::from("body"), "commits".into()]));
        let many: Vec<Value> = (0..1001).map(|i| commit(&format!("{i:040x}"))).collect();
        assert_eq!(errors_of(serde_json::json!({"commits": many}))[0].kind, "too_long");
        let e = &errors_of(serde_json::json!({"commits": [commit(&"A".repeat(40)), commit(&"a".repeat(40))]}))[0];
        assert_eq!(e.msg, "Value error, Duplicate SHAs found in batch");
        assert_eq!(e.loc, vec![Value::from("body"), "commits".into()]);
        assert_eq!(errors_of(serde_json::json!({}))[0].kind, "missing");
        assert_eq!(errors_of(serde_json::json!({"commits": "x"}))[0].kind, "list_type");
        assert_eq!(errors_of(serde_json::json!({"commits": [1]}))[0].kind, "model_type");
        assert_eq!(errors_of(serde_json::json!([1]))[0].kind, "model_attributes_type");
        assert_eq!(parse_push(b"{\"commits\": [").unwrap_err().report.field_errors.unwrap()[0].kind, "json_invalid");
    }

    #[test]
    fn accepted_dates() {
        let utc = datetime!(2026-01-02 12:00:00 UTC);
        for (input, expected) in [
            ("2026-01-02T12:00:00Z", utc),
            ("2026-01-02T12:00:00", utc),
            ("2026-01-02 12:00:00", utc),
            ("2026-01-02t12:00:00z", utc),
            ("2026-01-02_12:00:00", utc),
            ("2026-01-02T12:00", utc),
            ("2026-01-02T14:00:00+02:00", utc),
            ("2026-01-02T14:00:00+0200", utc),
            ("2026-01-02T07:30:00-04:30", utc),
            ("2026-01-02T12:00:00.123456789Z", datetime!(2026-01-02 12:00:00.123456 UTC)),
            ("2026-01-02T12:00:00.5", datetime!(2026-01-02 12:00:00.5 UTC)),
            ("1767355200", utc),
            ("1767355200000", utc),
        ] {
            assert_eq!(parse_datetime(input), Ok(expected), "{input}");
        }
        assert_eq!(from_epoch_int(1_767_355_200), Ok(utc));
        assert_eq!(from_epoch_int(1_767_355_200_000), Ok(utc));
        assert_eq!(from_epoch_float(1_767_355_200.25), Ok(datetime!(2026-01-02 12:00:00.25 UTC)));
        for bad in [
            "2026-01-02",
            "",
            "yesterday",
            "2026-13-02T12:00:00",
            "2026-02-30T12:00:00",
            "2026-01-02T25:00:00",
            "2026-01-02T12:00:00+24:00",
            "2026-01-02T12:00:00 extra",
            "2026-01-02X12:00:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_query_time("2026-01-02", false), Some(datetime!(2026-01-02 0:00 UTC)));
        assert_eq!(parse_query_time("2026-01-02", true), Some(datetime!(2026-01-02 23:59:59.999999 UTC)));
        assert_eq!(parse_query_time("2026-01-02T14:00:00+02:00", true), Some(utc));
        assert_eq!(parse_query_time("soon", true), None);
    }

    #[test]
    fn date_errors_name_the_field() {
        let mut c = commit(&"a".repeat(40));
        c["commit_date"] = Value::from("2026-01-02");
        let e = &errors_of(serde_json::json!({"commits": [c]}))[0];
        assert_eq!(e.loc[3], "commit_date");
        assert_eq!(e.kind, "datetime_parsing");
        c["commit_date"] = Value::from(true);
        assert_eq!(errors_of(serde_json::json!({"commits": [c]}))[0].kind, "datetime_type");
    }
}
