//! The activity pipeline of `/actions` (contract section 5.2): collect the window's entries from
//! the session's provider, de-duplicate, sort by time, trim the oldest to the token budget, and
//! render the text the frontend and the LLM prompt show verbatim (section 8.1).
//!
//! Token counting is [`count_tokens`] (tiktoken `o200k_base`, embedded in the binary); it is the
//! one place to switch to the `recap-llm` crate's counter.

use std::collections::HashSet;

use time::{
    Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, format_description::well_known::Rfc3339,
    macros::format_description,
};

use super::{
    model::{ActionsOut, Entry, EntryKind},
    providers,
    sessions::Session,
};
use crate::{
    error::{ApiError, ApiResult, FieldError},
    state::AppState,
};

/// The window and filters of one request (requests are stateless: nothing is remembered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// Inclusive, UTC.
    pub start: OffsetDateTime,
    /// Inclusive, UTC.
    pub end: OffsetDateTime,
    /// Short or full repository names; empty = every repository.
    pub repos: Vec<String>,
    /// `None` = the session's own identity (or, for a Recap project, every author).
    pub authors: Option<Vec<String>>,
}

impl Filters {
    /// The default window: the 7 days up to `end` (or now).
    pub fn new(
        start: Option<OffsetDateTime>,
        end: Option<OffsetDateTime>,
        repos: Vec<String>,
        authors: Option<Vec<String>>,
    ) -> Filters {
        // Parsed times are already UTC and within years 1..9999 (see `parse_date`).
        let end = end.unwrap_or_else(OffsetDateTime::now_utc);
        let start = start.unwrap_or_else(|| end.checked_sub(time::Duration::days(7)).unwrap_or(end));
        Filters { start, end, repos, authors }
    }

    /// `start_date`, `end_date`, `repo_filter` and `authors` of a query string; list parameters
    /// may be repeated and each value comma-separated.
    pub fn from_query(query: &RawQuery) -> ApiResult<Filters> {
        let mut errors = Vec::new();
        let mut date = |name: &str, bound: Bound| match query.first(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(raw) => match parse_date(raw, bound) {
                Some(at) => Some(at),
                None => {
                    errors.push(FieldError::new(
                        vec!["query".into(), name.into()],
                        "Input should be a valid ISO date or datetime",
                        "datetime_parsing",
                    ));
                    None
                }
            },
        };
        let start = date("start_date", Bound::Start);
        let end = date("end_date", Bound::End);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let filters = Filters::new(start, end, query.list("repo_filter").unwrap_or_default(), query.list("authors"));
        if filters.start > filters.end {
            return Err(ApiError::validation(vec![FieldError::new(
                vec!["query".into(), "start_date".into()],
                "start_date must not be after end_date",
                "value_error",
            )]));
        }
        Ok(filters)
    }

    pub fn in_window(&self, at: OffsetDateTime) -> bool {
        self.start <= at && at <= self.end
    }

    /// Whether `repo_filter` lets this repository through (by short or full name).
    pub fn wants_repo(&self, name: &str, full_name: &str) -> bool {
        self.repos.is_empty() || self.repos.iter().any(|r| r == name || r.eq_ignore_ascii_case(full_name))
    }
}

/// A query string as pairs, so repeated keys are kept (serde_urlencoded keeps only one).
#[derive(Debug, Clone, Default)]
pub struct RawQuery {
    pairs: Vec<(String, String)>,
}

impl RawQuery {
    pub fn parse(query: Option<&str>) -> RawQuery {
        let pairs =
            form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()));
        RawQuery { pairs: pairs.collect() }
    }

    /// The first value of `key`.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, each split at commas, trimmed, empties dropped; `None` when that
    /// leaves nothing.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let mut items: Vec<String> = Vec::new();
        for (_, value) in self.pairs.iter().filter(|(k, _)| k == key) {
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                if !items.iter().any(|seen| seen == item) {
                    items.push(item.to_owned());
                }
            }
        }
        (!items.is_empty()).then_some(items)
    }

    /// A required value: 422 `Field required` when absent or empty.
    pub fn required(&self, key: &str) -> ApiResult<&str> {
        self.first(key).map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(vec!["query".into(), key.into()], "Field required", "missing")])
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

/// An ISO date or datetime. A date is the start (00:00) or the end (23:59:59.999999) of that UTC
/// day; a datetime with an offset is converted to UTC; one without is UTC. A `+` that became a
/// space in an unencoded query string is read back as `+`.
pub fn parse_date(raw: &str, bound: Bound) -> Option<OffsetDateTime> {
    parse_any_date(raw.trim(), bound).and_then(crate::time::supported_utc)
}

fn parse_any_date(raw: &str, bound: Bound) -> Option<OffsetDateTime> {
    if let Ok(date) = Date::parse(raw, format_description!("[year]-[month]-[day]")) {
        let time = match bound {
            Bound::Start => Time::MIDNIGHT,
            Bound::End => Time::from_hms_micro(23, 59, 59, 999_999).ok()?,
        };
        return Some(PrimitiveDateTime::new(date, time).assume_utc());
    }
    let mut value = raw.to_owned();
    if value.get(10..11) == Some(" ") {
        value.replace_range(10..11, "T");
    }
    if let Some(i) = value.rfind(' ') {
        value.replace_range(i..=i, "+");
    }
    if let Ok(at) = OffsetDateTime::parse(&value, &Rfc3339) {
        return Some(at);
    }
    let with_offset = format_description!(
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
    );
    if let Ok(at) = OffsetDateTime::parse(&value, with_offset) {
        return Some(at);
    }
    let naive =
        format_description!("[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]");
    PrimitiveDateTime::parse(value.trim_end_matches(['Z', 'z']), naive).ok().map(PrimitiveDateTime::assume_utc)
}

/// The session's activity in the window: fetched, de-duplicated and sorted ascending by time.
/// This is what the WebSocket recap needs too (it renders it with [`render`]).
pub async fn collect(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<Vec<Entry>> {
    let raw = providers::activity(state, session, filters).await?;
    Ok(dedupe_and_sort(raw, filters))
}

/// Drops entries outside the window; keeps the first `commit`/`commit_from_pr` of each SHA (the
/// providers list pull requests first, so a PR's commit beats the same plain commit) and the
/// first of anything else by (type, repo, time); sorts ascending by time (stable).
pub fn dedupe_and_sort(mut raw: Vec<Entry>, filters: &Filters) -> Vec<Entry> {
    raw.sort_by_key(|e| providers::collection_rank(e.kind));
    let mut shas = HashSet::new();
    let mut others = HashSet::new();
    let mut entries: Vec<Entry> = raw
        .into_iter()
        .filter(|e| filters.in_window(e.timestamp))
        .filter(|e| match (&e.kind, &e.sha) {
            (EntryKind::Commit | EntryKind::CommitFromPr, Some(sha)) => shas.insert(sha.to_ascii_lowercase()),
            _ => others.insert((e.kind, e.repo.clone(), e.timestamp, e.pr_number)),
        })
        .collect();
    entries.sort_by_key(|e| e.timestamp);
    entries
}

/// Tokens of `text` with tiktoken's `o200k_base` (the default tokenizer of the contract), as
/// `recap-llm` counts them. The first call builds the tokenizer (a few hundred milliseconds):
/// call it off the async runtime.
pub fn count_tokens(text: &str) -> usize {
    recap_llm::count_tokens(text)
}

/// The line of one entry: ` - [<Type>] in <repo>: <message><extra>`.
pub fn entry_line(e: &Entry) -> String {
    let extra = match e.kind {
        EntryKind::PullRequest => e.pr_number.map(|n| format!(" (PR #{n})")).unwrap_or_default(),
        EntryKind::CommitFromPr => match e.pr_title.as_deref().map(str::trim) {
            Some(title) if !title.is_empty() => format!(" (PR: {title})"),
            _ => String::new(),
        },
        _ => String::new(),
    };
    format!(" - [{}] in {}: {}{}", e.kind.label(), e.repo, e.message.trim(), extra)
}

/// The activity text: one block per UTC day (ascending), a `YYYY-MM-DD:` header, one line per
/// entry (ascending), an empty line; `""` without entries.
pub fn render(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.timestamp);
    let mut lines: Vec<String> = Vec::new();
    let mut day: Option<Date> = None;
    for e in sorted {
        let date = e.timestamp.to_offset(UtcOffset::UTC).date();
        if day != Some(date) {
            if day.is_some() {
                lines.push(String::new());
            }
            lines.push(format!("{:04}-{:02}-{:02}:", date.year(), u8::from(date.month()), date.day()));
            day = Some(date);
        }
        lines.push(entry_line(e));
    }
    if day.is_some() {
        lines.push(String::new());
    }
    lines.join("\n")
}

/// What trimming kept and dropped.
#[derive(Debug, Clone)]
pub struct Trimmed {
    pub kept: Vec<Entry>,
    pub trimmed: usize,
    pub total: usize,
}

/// Drops the oldest entries (the list is sorted ascending) until the tokens of the rendered
/// lines fit `budget`. Each line is counted once.
pub fn trim(entries: Vec<Entry>, budget: usize) -> Trimmed {
    let counts: Vec<usize> = entries.iter().map(|e| count_tokens(&entry_line(e))).collect();
    let total = entries.len();
    let mut sum: usize = counts.iter().sum();
    let mut dropped = 0;
    while sum > budget && dropped < total {
        sum -= counts[dropped];
        dropped += 1;
    }
    Trimmed { kept: entries.into_iter().skip(dropped).collect(), trimmed: dropped, total }
}

/// The `message` of `/actions` when entries were trimmed.
pub fn trim_message(trimmed: usize) -> Option<String> {
    (trimmed > 0).then(|| {
        let plural = if trimmed == 1 { "" } else { "s" };
        format!(
            "We're running the free version with a maximum token limit for contextual input. To stay within this \
             limit, we automatically trimmed {trimmed} older Git actionable{plural} from the context. We hope you understand!"
        )
    })
}

/// `GET /actions`: collected, trimmed to `MAX_HISTORY_TOKENS`, rendered.
pub async fn actions(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<ActionsOut> {
    let entries = collect(state, session, filters).await?;
    let budget = state.settings.gitrecap.max_history_tokens;
    let (trimmed, text) = tokio::task::spawn_blocking(move || {
        let trimmed = trim(entries, budget);
        let text = render(&trimmed.kept);
        (trimmed, text)
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(ActionsOut {
        actions: text,
        message: trim_message(trimmed.trimmed),
        trimmed_count: trimmed.trimmed,
        total_count: trimmed.total,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn entry(kind: EntryKind, repo: &str, message: &str, at: OffsetDateTime) -> Entry {
        Entry::new(kind, repo, message, at)
    }

    #[test]
    fn renders_the_contract_example() {
        let entries = vec![
            entry(EntryKind::Commit, "web", "fix: y", datetime!(2025-03-15 09:00 UTC)),
            entry(EntryKind::CommitFromPr, "api", "feat: x", datetime!(2025-03-14 09:00 UTC)).pr_title("Add endpoint"),
            entry(EntryKind::PullRequest, "api", "Add endpoint", datetime!(2025-03-14 10:00 UTC)).pr(42),
            entry(EntryKind::Issue, "web", "  Bug in login ", datetime!(2025-03-15 10:00 UTC)),
        ];
        let expected = "2025-03-14:\n - [Commit From Pr] in api: feat: x (PR: Add endpoint)\n - [Pull Request] in api: Add endpoint (PR #42)\n\n2025-03-15:\n - [Commit] in web: fix: y\n - [Issue] in web: Bug in login\n";
        assert_eq!(render(&entries), expected);
        assert_eq!(render(&[]), "");
        let single = [entry(EntryKind::Commit, "api", "fix: y\n\nbody line", datetime!(2025-03-14 12:00 +02:00))];
        assert_eq!(render(&single), "2025-03-14:\n - [Commit] in api: fix: y\n\nbody line\n");
        let untitled = entry(EntryKind::CommitFromPr, "api", "x", datetime!(2025-03-14 12:00 UTC)).pr_title(" ");
        assert_eq!(entry_line(&untitled), " - [Commit From Pr] in api: x");
    }

    #[test]
    fn dates_follow_the_contract() {
        assert_eq!(parse_date("2025-03-14", Bound::Start), Some(datetime!(2025-03-14 00:00 UTC)));
        assert_eq!(parse_date("2025-03-14", Bound::End), Some(datetime!(2025-03-14 23:59:59.999999 UTC)));
        assert_eq!(parse_date("2025-03-14T10:00:00+02:00", Bound::End), Some(datetime!(2025-03-14 08:00 UTC)));
        assert_eq!(parse_date("2025-03-14T10:00:00 02:00", Bound::End), Some(datetime!(2025-03-14 08:00 UTC)));
        assert_eq!(parse_date("2025-03-14T10:00:00Z", Bound::End), Some(datetime!(2025-03-14 10:00 UTC)));
        assert_eq!(parse_date("2025-03-14T10:00:00", Bound::End), Some(datetime!(2025-03-14 10:00 UTC)));
        assert_eq!(parse_date("2025-03-14 10:00", Bound::End), Some(datetime!(2025-03-14 10:00 UTC)));
        assert_eq!(parse_date("2025-03-14T10:00:00.5-0130", Bound::End), Some(datetime!(2025-03-14 11:30:00.5 UTC)));
        for bad in ["yesterday", "2025-13-01", "14/03/2025", "2025-03-14T25:00:00"] {
            assert_eq!(parse_date(bad, Bound::Start), None, "{bad}");
        }
    }

    #[test]
    fn list_parameters_repeat_or_split() {
        let q = RawQuery::parse(Some("repo_filter=a,b&repo_filter=c&repo_filter=&authors=%20x%20,,y&repo_filter=a"));
        assert_eq!(q.list("repo_filter").unwrap(), ["a", "b", "c"]);
        assert_eq!(q.list("authors").unwrap(), ["x", "y"]);
        assert_eq!(q.list("missing"), None);
        assert_eq!(RawQuery::parse(Some("authors=,")).list("authors"), None);
        let filters = Filters::from_query(&RawQuery::parse(Some("start_date=2025-03-01&end_date=2025-03-14"))).unwrap();
        assert_eq!(
            (filters.start, filters.end),
            (datetime!(2025-03-01 00:00 UTC), datetime!(2025-03-14 23:59:59.999999 UTC))
        );
        let filters = Filters::from_query(&RawQuery::parse(Some("end_date=2025-03-14"))).unwrap();
        assert_eq!(filters.start, datetime!(2025-03-07 23:59:59.999999 UTC));
        let err = Filters::from_query(&RawQuery::parse(Some("start_date=nope&end_date=2025-01-01"))).unwrap_err();
        assert_eq!(
            err.report.field_errors.unwrap()[0].loc,
            vec![serde_json::Value::from("query"), "start_date".into()]
        );
        assert!(Filters::from_query(&RawQuery::parse(Some("start_date=2025-03-15&end_date=2025-03-14"))).is_err());
    }

    #[test]
    fn duplicates_go_and_pr_commits_win() {
        let filters =
            Filters::new(Some(datetime!(2025-03-01 00:00 UTC)), Some(datetime!(2025-03-31 00:00 UTC)), vec![], None);
        let at = datetime!(2025-03-14 09:00 UTC);
        let raw = vec![
            entry(EntryKind::PullRequest, "api", "PR", at).pr(1),
            entry(EntryKind::CommitFromPr, "api", "feat", at).sha("ABC").pr_title("PR"),
            entry(EntryKind::Commit, "api", "feat", at).sha("abc"),
            entry(EntryKind::Commit, "api", "older", datetime!(2025-03-02 00:00 UTC)).sha("def"),
            entry(EntryKind::Commit, "api", "outside", datetime!(2025-02-02 00:00 UTC)).sha("0123"),
            entry(EntryKind::PullRequest, "api", "PR", at).pr(1),
        ];
        let out = dedupe_and_sort(raw, &filters);
        let kinds: Vec<_> = out.iter().map(|e| (e.kind, e.message.as_str())).collect();
        assert_eq!(
            kinds,
            [(EntryKind::Commit, "older"), (EntryKind::PullRequest, "PR"), (EntryKind::CommitFromPr, "feat")]
        );
    }

    #[test]
    fn trimming_drops_the_oldest_and_counts_each_line_once() {
        let entries: Vec<Entry> = (0..10)
            .map(|i| {
                entry(
                    EntryKind::Commit,
                    "api",
                    &format!("change number {i}"),
                    datetime!(2025-03-14 09:00 UTC) + time::Duration::minutes(i),
                )
            })
            .collect();
        let per_line = count_tokens(&entry_line(&entries[0]));
        assert!(per_line > 3);
        let out = trim(entries.clone(), per_line * 3);
        assert_eq!((out.total, out.trimmed, out.kept.len()), (10, 7, 3));
        assert_eq!(out.kept[0].message, "change number 7");
        assert_eq!(trim(entries.clone(), usize::MAX).trimmed, 0);
        assert_eq!(trim(entries, 0).kept.len(), 0);
        assert!(trim_message(1).unwrap().contains("trimmed 1 older Git actionable from"));
        assert!(trim_message(7).unwrap().contains("trimmed 7 older Git actionables from"));
        assert_eq!(trim_message(0), None);
    }
}
