//! Reading the Git Recap text formats back (contract sections 8.1 and 8.2), and sorting entries into
//! themes. Used by the offline provider, which writes from the activity itself.

/// The entry type of an activity line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    Commit,
    CommitFromPr,
    PullRequest,
    Issue,
    /// A line of text that is not in the activity format.
    Other,
}

impl EntryKind {
    fn from_label(label: &str) -> EntryKind {
        match label {
            "Commit" => EntryKind::Commit,
            "Commit From Pr" => EntryKind::CommitFromPr,
            "Pull Request" => EntryKind::PullRequest,
            "Issue" => EntryKind::Issue,
            _ => EntryKind::Other,
        }
    }
}

/// One activity line (` - [<Type>] in <repo>: <message><extra>`), with its continuation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityEntry {
    /// The `YYYY-MM-DD` day header it appeared under.
    pub date: Option<String>,
    pub kind: EntryKind,
    /// The repository short name; empty for [`EntryKind::Other`] lines.
    pub repo: String,
    /// The message (multi-line for commits with a body), without the ` (PR …)` extra.
    pub message: String,
    /// `(PR #<n>)` of a pull request.
    pub pr_number: Option<u64>,
    /// `(PR: <title>)` of a commit from a pull request.
    pub pr_title: Option<String>,
}

impl ActivityEntry {
    /// The first line of the message.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or("").trim()
    }
}

/// One release block of the release text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseInfo {
    pub date: Option<String>,
    pub name: String,
    pub repo: String,
    pub tag: String,
    pub author: String,
    pub notes: String,
}

/// Everything read from an `actions` text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activity {
    /// In text order (time order).
    pub entries: Vec<ActivityEntry>,
    /// In text order (oldest first).
    pub releases: Vec<ReleaseInfo>,
}

impl Activity {
    /// Repositories in order of first appearance (entries, then releases), without duplicates or empties.
    pub fn repositories(&self) -> Vec<String> {
        let mut repos: Vec<String> = Vec::new();
        let names = self.entries.iter().map(|e| &e.repo).chain(self.releases.iter().map(|r| &r.repo));
        for name in names {
            if !name.is_empty() && !repos.contains(name) {
                repos.push(name.clone());
            }
        }
        repos
    }
}

fn is_day_header(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() == 11
        && b[10] == b':'
        && b[4] == b'-'
        && b[7] == b'-'
        && b[..10].iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn parse_entry_line(line: &str, date: &Option<String>) -> Option<ActivityEntry> {
    let rest = line.strip_prefix(" - [").or_else(|| line.strip_prefix("- ["))?;
    let (label, rest) = rest.split_once("] in ")?;
    let (repo, message) = rest.split_once(": ").or_else(|| rest.strip_suffix(':').map(|r| (r, "")))?;
    Some(ActivityEntry {
        date: date.clone(),
        kind: EntryKind::from_label(label),
        repo: repo.trim().to_owned(),
        message: message.to_owned(),
        pr_number: None,
        pr_title: None,
    })
}

/// Strip the ` (PR #n)` / ` (PR: title)` extra from the end of a finished entry.
fn finish_entry(mut entry: ActivityEntry) -> ActivityEntry {
    let message = entry.message.trim_end().to_owned();
    entry.message = message;
    match entry.kind {
        EntryKind::PullRequest => {
            if let Some(start) = entry.message.rfind(" (PR #")
                && entry.message.ends_with(')')
                && let Ok(n) = entry.message[start + 6..entry.message.len() - 1].parse::<u64>()
            {
                entry.pr_number = Some(n);
                entry.message.truncate(start);
            }
        }
        EntryKind::CommitFromPr => {
            if let Some(start) = entry.message.rfind(" (PR: ")
                && entry.message.ends_with(')')
            {
                entry.pr_title = Some(entry.message[start + 6..entry.message.len() - 1].to_owned());
                entry.message.truncate(start);
            }
        }
        _ => {}
    }
    entry.message = entry.message.trim().to_owned();
    entry
}

/// Parse an `actions` text: the activity format, optionally followed by release blocks. When nothing in
/// it is in the activity format, every non-empty line becomes an [`EntryKind::Other`] entry, so that a
/// recap can still be written from free text.
pub fn parse_activity(text: &str) -> Activity {
    let mut activity = Activity::default();
    let mut date: Option<String> = None;
    let mut current: Option<ActivityEntry> = None;
    let mut release: Option<ReleaseInfo> = None;
    let mut release_date: Option<String> = None;
    let mut in_notes = false;

    for line in text.lines() {
        if let Some(rel) = release.as_mut() {
            let trimmed = line.trim();
            if trimmed == "----- Release End -----" {
                let mut done = release.take().unwrap_or_default();
                done.notes = done.notes.trim().to_owned();
                activity.releases.push(done);
                in_notes = false;
            } else if trimmed == "Assets:" {
                in_notes = false;
            } else if in_notes {
                rel.notes.push('\n');
                rel.notes.push_str(line);
            } else if let Some(v) = trimmed.strip_prefix("Release: ") {
                rel.name = v.to_owned();
            } else if let Some(v) = trimmed.strip_prefix("Repository: ") {
                rel.repo = v.to_owned();
            } else if let Some(v) = trimmed.strip_prefix("Tag: ") {
                rel.tag = v.to_owned();
            } else if let Some(v) = trimmed.strip_prefix("Author: ") {
                rel.author = v.to_owned();
            } else if let Some(v) = trimmed.strip_prefix("Notes: ").or((trimmed == "Notes:").then_some("")) {
                rel.notes = v.to_owned();
                in_notes = true;
            }
            continue;
        }
        if line.trim() == "----- Release Start -----" {
            if let Some(entry) = current.take() {
                activity.entries.push(finish_entry(entry));
            }
            release = Some(ReleaseInfo { date: release_date.clone(), ..Default::default() });
            continue;
        }
        if let Some(day) = line.trim().strip_prefix("Date: ")
            && day.len() == 10
        {
            if let Some(entry) = current.take() {
                activity.entries.push(finish_entry(entry));
            }
            release_date = Some(day.to_owned());
            continue;
        }
        if is_day_header(line) {
            if let Some(entry) = current.take() {
                activity.entries.push(finish_entry(entry));
            }
            date = Some(line[..10].to_owned());
            continue;
        }
        if let Some(entry) = parse_entry_line(line, &date) {
            if let Some(previous) = current.replace(entry) {
                activity.entries.push(finish_entry(previous));
            }
            continue;
        }
        if let Some(entry) = current.as_mut() {
            entry.message.push('\n');
            entry.message.push_str(line);
        }
    }
    if let Some(entry) = current.take() {
        activity.entries.push(finish_entry(entry));
    }
    if let Some(mut rel) = release.take() {
        rel.notes = rel.notes.trim().to_owned();
        activity.releases.push(rel);
    }

    if activity.entries.is_empty() && activity.releases.is_empty() {
        activity.entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| ActivityEntry {
                date: None,
                kind: EntryKind::Other,
                repo: String::new(),
                message: l.trim_start_matches(['-', '*', ' ']).to_owned(),
                pr_number: None,
                pr_title: None,
            })
            .collect();
    }
    activity
}

/// What a change is about, from its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Theme {
    Feature,
    Fix,
    Performance,
    Refactor,
    Test,
    Docs,
    Maintenance,
    Other,
    /// Open issues assigned to the user (not work done).
    Issues,
}

impl Theme {
    pub const ALL: [Theme; 9] = [
        Theme::Feature,
        Theme::Fix,
        Theme::Performance,
        Theme::Refactor,
        Theme::Test,
        Theme::Docs,
        Theme::Maintenance,
        Theme::Other,
        Theme::Issues,
    ];

    /// A heading for the theme.
    pub fn label(self) -> &'static str {
        match self {
            Theme::Feature => "New features",
            Theme::Fix => "Bug fixes",
            Theme::Performance => "Performance",
            Theme::Refactor => "Refactoring",
            Theme::Test => "Tests",
            Theme::Docs => "Documentation",
            Theme::Maintenance => "Maintenance",
            Theme::Other => "Other changes",
            Theme::Issues => "Open issues",
        }
    }

    /// A lower-case noun phrase for running text.
    pub fn phrase(self) -> &'static str {
        match self {
            Theme::Feature => "new features",
            Theme::Fix => "bug fixes",
            Theme::Performance => "performance work",
            Theme::Refactor => "refactoring",
            Theme::Test => "tests",
            Theme::Docs => "documentation",
            Theme::Maintenance => "maintenance",
            Theme::Other => "other changes",
            Theme::Issues => "open issues",
        }
    }
}

/// The theme of an entry: issues are [`Theme::Issues`]; otherwise a Conventional Commits type when the
/// subject has one (`fix(api): …`), else keywords of the subject.
pub fn classify(entry: &ActivityEntry) -> Theme {
    if entry.kind == EntryKind::Issue {
        return Theme::Issues;
    }
    classify_message(entry.subject())
}

/// The theme of a commit subject or PR title.
pub fn classify_message(subject: &str) -> Theme {
    if let Some((kind, _, _)) = conventional_prefix(subject) {
        let theme = match kind.to_ascii_lowercase().as_str() {
            "feat" | "feature" => Some(Theme::Feature),
            "fix" | "bugfix" | "hotfix" => Some(Theme::Fix),
            "perf" => Some(Theme::Performance),
            "refactor" | "style" => Some(Theme::Refactor),
            "test" | "tests" => Some(Theme::Test),
            "docs" | "doc" => Some(Theme::Docs),
            "chore" | "build" | "ci" | "deps" | "release" | "revert" => Some(Theme::Maintenance),
            _ => None,
        };
        if let Some(theme) = theme {
            return theme;
        }
    }
    let lower = subject.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    if has(&[
        "fix",
        "fixes",
        "fixed",
        "fixing",
        "bug",
        "bugs",
        "bugfix",
        "hotfix",
        "crash",
        "crashes",
        "broken",
        "regression",
        "resolve",
        "resolves",
        "resolved",
        "patch",
    ]) {
        Theme::Fix
    } else if has(&["test", "tests", "testing", "spec", "specs", "coverage", "e2e"]) {
        Theme::Test
    } else if has(&["doc", "docs", "readme", "documentation", "document", "changelog", "typo", "typos", "comments"]) {
        Theme::Docs
    } else if has(&[
        "perf",
        "performance",
        "faster",
        "speed",
        "optimize",
        "optimise",
        "optimization",
        "cache",
        "caching",
    ]) {
        Theme::Performance
    } else if has(&[
        "refactor",
        "refactoring",
        "refactored",
        "cleanup",
        "clean",
        "rename",
        "renamed",
        "restructure",
        "simplify",
        "tidy",
        "reorganize",
        "extract",
    ]) {
        Theme::Refactor
    } else if has(&[
        "bump",
        "bumps",
        "deps",
        "dependency",
        "dependencies",
        "upgrade",
        "chore",
        "ci",
        "build",
        "release",
        "version",
        "lint",
        "format",
        "merge",
        "merged",
        "dependabot",
        "renovate",
    ]) {
        Theme::Maintenance
    } else if has(&[
        "add",
        "adds",
        "added",
        "adding",
        "feat",
        "feature",
        "features",
        "implement",
        "implements",
        "implemented",
        "introduce",
        "introduces",
        "support",
        "supports",
        "new",
        "create",
        "creates",
        "enable",
        "allow",
        "allows",
    ]) {
        Theme::Feature
    } else {
        Theme::Other
    }
}

/// `type(scope)!: rest` → (`type`, breaking, `rest`).
pub fn conventional_prefix(subject: &str) -> Option<(&str, bool, &str)> {
    let (head, rest) = subject.split_once(": ")?;
    let (head, breaking) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let kind = match head.find('(') {
        Some(open) if head.ends_with(')') => &head[..open],
        Some(_) => return None,
        None => head,
    };
    if kind.is_empty() || kind.len() > 12 || !kind.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((kind, breaking, rest))
}

/// Whether the entry announces a breaking change (`type!:` or `BREAKING CHANGE` in the message).
pub fn is_breaking(entry: &ActivityEntry) -> bool {
    conventional_prefix(entry.subject()).is_some_and(|(_, breaking, _)| breaking)
        || entry.message.contains("BREAKING CHANGE")
        || entry.message.contains("BREAKING-CHANGE")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "2025-03-14:
 - [Commit From Pr] in api: feat: x (PR: Add endpoint)
 - [Pull Request] in api: Add endpoint (PR #42)

2025-03-15:
 - [Commit] in web: fix: y

Longer body line one
 - [Issue] in web: Bug in login
";

    #[test]
    fn parses_the_contract_example() {
        let activity = parse_activity(SAMPLE);
        assert_eq!(activity.entries.len(), 4);
        let e = &activity.entries;
        assert_eq!((e[0].kind, e[0].repo.as_str(), e[0].message.as_str()), (EntryKind::CommitFromPr, "api", "feat: x"));
        assert_eq!(e[0].pr_title.as_deref(), Some("Add endpoint"));
        assert_eq!(e[0].date.as_deref(), Some("2025-03-14"));
        assert_eq!(
            (e[1].kind, e[1].message.as_str(), e[1].pr_number),
            (EntryKind::PullRequest, "Add endpoint", Some(42))
        );
        assert_eq!(e[2].message, "fix: y\n\nLonger body line one");
        assert_eq!(e[2].date.as_deref(), Some("2025-03-15"));
        assert_eq!((e[3].kind, e[3].repo.as_str()), (EntryKind::Issue, "web"));
        assert_eq!(activity.repositories(), vec!["api", "web"]);
    }

    #[test]
    fn parses_release_blocks_after_the_activity() {
        let text = "2025-04-01:
 - [Commit] in lib: feat: new parser

Date: 2025-03-01
----- Release Start -----
Release: Version 1.2.0
Repository: lib
Tag: v1.2.0
Author: alice
Status: (prerelease)
Notes: ## What's new
- faster
Assets:
  - lib.tar.gz (100 bytes) - https://example.invalid/lib.tar.gz
----- Release End -----

";
        let activity = parse_activity(text);
        assert_eq!(activity.entries.len(), 1);
        assert_eq!(activity.releases.len(), 1);
        let r = &activity.releases[0];
        assert_eq!((r.tag.as_str(), r.repo.as_str(), r.notes.as_str()), ("v1.2.0", "lib", "## What's new\n- faster"));
        assert_eq!(r.date.as_deref(), Some("2025-03-01"));
    }

    #[test]
    fn free_text_falls_back_to_other_entries() {
        let activity = parse_activity("did some stuff\n\n- more stuff\n");
        assert_eq!(activity.entries.len(), 2);
        assert!(activity.entries.iter().all(|e| e.kind == EntryKind::Other && e.repo.is_empty()));
    }

    #[test]
    fn classifies_by_conventional_type_then_keywords() {
        let cases = [
            ("feat(api): add login", Theme::Feature),
            ("fix: crash on start", Theme::Fix),
            ("docs: update readme", Theme::Docs),
            ("chore(deps): bump serde", Theme::Maintenance),
            ("Fix typo in handler", Theme::Fix),
            ("Add unit tests for parser", Theme::Test),
            ("Update README", Theme::Docs),
            ("Bump tokio from 1.0 to 1.1", Theme::Maintenance),
            ("Implement dark mode", Theme::Feature),
            ("Refactor session store", Theme::Refactor),
            ("Optimize query planner", Theme::Performance),
            ("Tweak colours", Theme::Other),
            ("wip: something", Theme::Other),
        ];
        for (subject, theme) in cases {
            assert_eq!(classify_message(subject), theme, "{subject}");
        }
        assert_eq!(conventional_prefix("feat(api)!: drop v1"), Some(("feat", true, "drop v1")));
        assert_eq!(conventional_prefix("Merge branch: main"), None);
    }
}
