//! The built-in offline provider: writes a real recap, release notes or PR description from the activity
//! itself, without a language model, and streams it in small chunks.
//!
//! Deterministic: the same request gives the same text (its few stylistic choices are picked by a hash
//! of the activity). A recap groups the entries by repository and theme, has exactly N bullets, names
//! every repository of the activity, and says that it was written offline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::LlmError;
use crate::activity::{self, Activity, ActivityEntry, EntryKind, Theme};
use crate::prompt::{DEFAULT_BULLETS, MAX_BULLETS, RecapTask};
use crate::provider::{ChatRequest, ChunkStream, LlmProvider, cancellable};

/// Words per streamed chunk (a line break also ends a chunk).
const WORDS_PER_CHUNK: usize = 4;
/// Items listed by name in one recap bullet.
const ITEMS_PER_BULLET: usize = 4;
/// Items listed per section of release notes and PR descriptions.
const ITEMS_PER_SECTION: usize = 25;

/// The built-in provider (`LLM_PROVIDER=offline`, the default without an API key).
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineProvider;

impl OfflineProvider {
    pub fn new() -> Self {
        OfflineProvider
    }
}

impl LlmProvider for OfflineProvider {
    fn name(&self) -> &str {
        "offline"
    }

    fn model(&self) -> &str {
        "offline"
    }

    fn stream(&self, request: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            let text = write_for_request(&request);
            let chunks: Vec<Result<String, LlmError>> = split_chunks(&text).into_iter().map(Ok).collect();
            Ok(cancellable(futures::stream::iter(chunks), cancel))
        })
    }
}

/// The text the offline provider answers `request` with: the task read back from the prompt
/// ([`RecapTask::from_request`]), or, for a request that is not one of Recap's prompts, a recap of its
/// last user message in 5 bullets.
pub fn write_for_request(request: &ChatRequest) -> String {
    let task = RecapTask::from_request(request)
        .unwrap_or_else(|| RecapTask::recap(request.last_user_message().unwrap_or_default(), DEFAULT_BULLETS));
    write(&task)
}

/// Write the answer to `task`.
pub fn write(task: &RecapTask) -> String {
    let seed = fnv1a(task.actions());
    let activity = activity::parse_activity(task.actions());
    match task {
        RecapTask::Recap { n, .. } => write_recap(&activity, usize::from((*n).clamp(1, MAX_BULLETS)), seed),
        RecapTask::Release { .. } => write_release(&activity),
        RecapTask::PullRequest { source, target, .. } => write_pull_request(&activity, source, target),
    }
}

/// Split `text` into stream chunks of a few words; a chunk never spans a line break. Concatenated, the
/// chunks are exactly `text`.
pub fn split_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if in_word {
                words += 1;
                in_word = false;
            }
            current.push(c);
            if c == '\n' || words >= WORDS_PER_CHUNK {
                chunks.push(std::mem::take(&mut current));
                words = 0;
            }
        } else {
            in_word = true;
            current.push(c);
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn fnv1a(text: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn pick<'a>(list: &[&'a str], seed: u64, salt: u64) -> &'a str {
    list[((seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % list.len() as u64) as usize]
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn tag(repo: &str) -> String {
    if repo.is_empty() { String::new() } else { format!("**[`{repo}`]** ") }
}

/// Join with commas and a final "and".
fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A change, ready to be listed.
#[derive(Debug, Clone)]
struct Item {
    repo: String,
    theme: Theme,
    kind: EntryKind,
    summary: String,
    breaking: bool,
    date: Option<String>,
}

fn items_of(activity: &Activity) -> Vec<Item> {
    activity
        .entries
        .iter()
        .map(|entry| Item {
            repo: entry.repo.clone(),
            theme: activity::classify(entry),
            kind: entry.kind,
            summary: summary(entry),
            breaking: activity::is_breaking(entry),
            date: entry.date.clone(),
        })
        .collect()
}

/// The subject without its Conventional Commits prefix, capitalised, at most 90 characters, with the PR
/// number of a pull request.
fn summary(entry: &ActivityEntry) -> String {
    let subject = entry.subject();
    let text = activity::conventional_prefix(subject).map_or(subject, |(_, _, rest)| rest).trim();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "(no message)".to_owned(),
    };
    if let Some((cut, _)) = out.char_indices().nth(90) {
        out.truncate(cut);
        out.push('…');
    }
    if let Some(number) = entry.pr_number {
        let _ = write!(out, " (PR #{number})");
    }
    out
}

/// "3 commits, 1 pull request and 2 open issues".
fn count_phrase(items: &[&Item]) -> String {
    let commits = items.iter().filter(|i| matches!(i.kind, EntryKind::Commit | EntryKind::CommitFromPr)).count();
    let prs = items.iter().filter(|i| i.kind == EntryKind::PullRequest).count();
    let issues = items.iter().filter(|i| i.kind == EntryKind::Issue).count();
    let other = items.iter().filter(|i| i.kind == EntryKind::Other).count();
    let mut parts = Vec::new();
    if commits > 0 {
        parts.push(plural(commits, "commit", "commits"));
    }
    if prs > 0 {
        parts.push(plural(prs, "pull request", "pull requests"));
    }
    if issues > 0 {
        parts.push(plural(issues, "open issue", "open issues"));
    }
    if other > 0 {
        parts.push(plural(other, "note", "notes"));
    }
    join_and(&parts)
}

/// Distinct summaries in order, a repeated one marked "(×n)".
fn distinct_summaries(items: &[&Item]) -> Vec<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for item in items {
        match seen.iter_mut().find(|(s, _)| *s == item.summary) {
            Some((_, count)) => *count += 1,
            None => seen.push((item.summary.clone(), 1)),
        }
    }
    seen.into_iter().map(|(s, count)| if count > 1 { format!("{s} (×{count})") } else { s }).collect()
}

// ---------------------------------------------------------------------------------------------------
// Recap

const OPENING_QUIPS: [&str; 8] = [
    "no language model was consulted, just careful counting and sorting.",
    "sorted by hand, well, by code, without a language model.",
    "a plain-spoken summary, written without a language model.",
    "assembled straight from your Git log, no language model involved.",
    "the facts, grouped and counted, without a language model's flourish.",
    "written by Recap itself, no language model in the loop.",
    "a no-frills digest, built without a language model.",
    "straight from the log to you, no language model required.",
];

const CLOSING_QUESTIONS: [&str; 6] = [
    "Which of these threads deserves your first hour tomorrow?",
    "Which change are you proudest of, and did anyone notice?",
    "What did this stretch teach you about your codebase?",
    "What is the one thing you would do differently next time?",
    "Which repository will get your attention next, and why?",
    "What would make the next recap even better to read?",
];

struct Group<'a> {
    repo: &'a str,
    repo_rank: usize,
    theme: Theme,
    items: Vec<&'a Item>,
    bullets: usize,
}

fn write_recap(activity: &Activity, n: usize, seed: u64) -> String {
    let items = items_of(activity);
    if items.is_empty() {
        return "_Offline recap: there is no activity to summarise, so there is nothing to report. (Written by \
                Recap without a language model.)_\n"
            .to_owned();
    }

    // Repositories, busiest first, then by name.
    let mut repo_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        *repo_counts.entry(item.repo.as_str()).or_default() += 1;
    }
    let mut repos: Vec<(&str, usize)> = repo_counts.into_iter().collect();
    repos.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let rank_of = |repo: &str| repos.iter().position(|(r, _)| *r == repo).unwrap_or(usize::MAX);

    // Groups by (repository, theme).
    let mut by_key: BTreeMap<(usize, Theme), Vec<&Item>> = BTreeMap::new();
    for item in &items {
        by_key.entry((rank_of(&item.repo), item.theme)).or_default().push(item);
    }
    let mut groups: Vec<Group> = by_key
        .into_iter()
        .map(|((repo_rank, theme), items)| Group { repo: repos[repo_rank].0, repo_rank, theme, items, bullets: 0 })
        .collect();

    // The largest group of each repository first.
    let largest_of = |groups: &[Group], rank: usize| -> Option<usize> {
        (0..groups.len()).filter(|&g| groups[g].repo_rank == rank).min_by(|&a, &b| {
            groups[b].items.len().cmp(&groups[a].items.len()).then(groups[a].theme.cmp(&groups[b].theme))
        })
    };

    let mut lines: Vec<String> = Vec::new();
    let total_items = items.len();
    let named_repos = repos.iter().filter(|(r, _)| !r.is_empty()).count();

    if repos.len() > n {
        // More repositories than bullets: one bullet for each of the busiest n-1, one for the rest.
        for rank in 0..n - 1 {
            if let Some(g) = largest_of(&groups, rank) {
                groups[g].bullets = 1;
            }
        }
        let mut bullets = bullet_lines(&groups);
        let rest: Vec<String> = repos[n - 1..]
            .iter()
            .map(|(repo, _)| {
                let repo_items: Vec<&Item> = items.iter().filter(|i| i.repo == *repo).collect();
                format!("{}({})", tag(repo), count_phrase(&repo_items))
            })
            .collect();
        let lead = if n == 1 { "Activity across" } else { "Also active:" };
        bullets.push(format!("- {lead} {}.", join_and(&rest)));
        lines.extend(bullets);
    } else {
        for rank in 0..repos.len() {
            if let Some(g) = largest_of(&groups, rank) {
                groups[g].bullets = 1;
            }
        }
        let mut slots = n - repos.len();
        let mut candidates: Vec<usize> = (0..groups.len()).filter(|&g| groups[g].bullets == 0).collect();
        candidates.sort_by(|&a, &b| {
            groups[b]
                .items
                .len()
                .cmp(&groups[a].items.len())
                .then((groups[a].repo_rank, groups[a].theme).cmp(&(groups[b].repo_rank, groups[b].theme)))
        });
        for g in candidates {
            if slots == 0 {
                break;
            }
            groups[g].bullets = 1;
            slots -= 1;
        }
        // Still short: split the groups with the most items per bullet.
        while slots > 0 {
            let best = (0..groups.len())
                .filter(|&g| groups[g].bullets > 0 && groups[g].bullets < groups[g].items.len())
                .max_by(|&a, &b| {
                    let (ia, ba) = (groups[a].items.len(), groups[a].bullets);
                    let (ib, bb) = (groups[b].items.len(), groups[b].bullets);
                    (ia * bb)
                        .cmp(&(ib * ba))
                        .then((groups[b].repo_rank, groups[b].theme).cmp(&(groups[a].repo_rank, groups[a].theme)))
                });
            let Some(g) = best else { break };
            groups[g].bullets += 1;
            slots -= 1;
        }
        lines.extend(bullet_lines(&groups));
        // Still short: every item has a bullet of its own; add honest filler about the activity.
        let mut round = 0;
        while slots > 0 {
            for (repo, _) in &repos {
                if slots == 0 {
                    break;
                }
                let repo_items: Vec<&Item> = items.iter().filter(|i| i.repo == *repo).collect();
                lines.push(filler_bullet(repo, &repo_items, round, n));
                slots -= 1;
            }
            round += 1;
        }
    }

    let mut out = String::new();
    let scope = if named_repos == 0 {
        plural(total_items, "note", "notes")
    } else {
        format!("{} across {}", plural(total_items, "item", "items"), plural(named_repos, "repository", "repositories"))
    };
    let _ = writeln!(out, "_Offline recap of {scope}: {}_", pick(&OPENING_QUIPS, seed, 1));
    out.push('\n');
    for line in &lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    let _ = writeln!(out, "_{}_", pick(&CLOSING_QUESTIONS, seed, 2));
    out.push('\n');
    for (i, suggestion) in suggestions(&items, &repos).iter().enumerate() {
        let _ = writeln!(out, "{}. {suggestion}", i + 1);
    }
    out.push('\n');
    out.push_str("*Written offline by Recap from the activity itself, without a language model.*\n");
    out
}

/// The bullets of the groups that have any, in repository order then theme order; a repository's groups
/// without a bullet are mentioned at the end of its first bullet.
fn bullet_lines(groups: &[Group]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut folded_done: Vec<usize> = Vec::new();
    for group in groups.iter().filter(|g| g.bullets > 0) {
        let parts = group.bullets;
        let chunk_sizes = split_sizes(group.items.len(), parts);
        let mut start = 0;
        for (part, size) in chunk_sizes.into_iter().enumerate() {
            let slice = &group.items[start..start + size];
            start += size;
            let label = if parts > 1 {
                format!("{}, part {} of {parts}", group.theme.label(), part + 1)
            } else {
                group.theme.label().to_owned()
            };
            let names = distinct_summaries(slice);
            let listed = names.iter().take(ITEMS_PER_BULLET).cloned().collect::<Vec<_>>().join("; ");
            let more = names.len().saturating_sub(ITEMS_PER_BULLET);
            let counted = if group.theme == Theme::Issues { slice.len().to_string() } else { count_phrase(slice) };
            let mut line = format!("- {}{label} ({counted}): {listed}", tag(group.repo));
            if more > 0 {
                let _ = write!(line, "; and {more} more");
            }
            line.push('.');
            if !folded_done.contains(&group.repo_rank) {
                folded_done.push(group.repo_rank);
                let folded: Vec<String> = groups
                    .iter()
                    .filter(|g| g.repo_rank == group.repo_rank && g.bullets == 0)
                    .map(|g| {
                        let first = &g.items[0].summary;
                        match g.items.len() {
                            1 => format!("{} ({first})", g.theme.phrase()),
                            count => format!("{} ({count}, e.g. {first})", g.theme.phrase()),
                        }
                    })
                    .collect();
                if !folded.is_empty() {
                    let _ = write!(line, " Also: {}.", join_and(&folded));
                }
            }
            lines.push(line);
        }
    }
    lines
}

/// Split `len` items into `parts` contiguous runs of near-equal size.
fn split_sizes(len: usize, parts: usize) -> Vec<usize> {
    let parts = parts.clamp(1, len.max(1));
    (0..parts).map(|p| len / parts + usize::from(p < len % parts)).collect()
}

fn filler_bullet(repo: &str, items: &[&Item], round: usize, n: usize) -> String {
    match round {
        0 => {
            let mut days: Vec<&str> = items.iter().filter_map(|i| i.date.as_deref()).collect();
            days.sort_unstable();
            days.dedup();
            let span = if days.is_empty() {
                String::new()
            } else {
                format!(" over {}", plural(days.len(), "active day", "active days"))
            };
            format!("- {}By the numbers: {}{span}.", tag(repo), count_phrase(items))
        }
        1 => {
            let mut themes: Vec<(Theme, usize)> = Theme::ALL
                .iter()
                .map(|t| (*t, items.iter().filter(|i| i.theme == *t).count()))
                .filter(|(_, c)| *c > 0)
                .collect();
            themes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let parts: Vec<String> = themes.iter().map(|(t, c)| format!("{} ({c})", t.phrase())).collect();
            format!("- {}Themes at a glance: {}.", tag(repo), parts.join(", "))
        }
        _ => format!(
            "- {}Nothing more to report here: the activity holds fewer items than the {n} bullets asked for.",
            tag(repo)
        ),
    }
}

fn suggestions(items: &[Item], repos: &[(&str, usize)]) -> Vec<String> {
    let has = |repo: &str, theme: Theme| items.iter().any(|i| i.repo == repo && i.theme == theme);
    let code = |repo: &str| if repo.is_empty() { "this project".to_owned() } else { format!("`{repo}`") };
    let mut out = Vec::new();
    if let Some((repo, _)) = repos.iter().find(|(r, _)| has(r, Theme::Fix) && !has(r, Theme::Test)) {
        out.push(format!("Add regression tests for the bug fixes in {}.", code(repo)));
    }
    let issues_of = |repo: &str| items.iter().filter(|i| i.repo == repo && i.theme == Theme::Issues).count();
    if let Some((repo, _)) = repos
        .iter()
        .filter(|(r, _)| issues_of(r) > 0)
        .max_by(|a, b| issues_of(a.0).cmp(&issues_of(b.0)).then(b.0.cmp(a.0)))
    {
        let issues = match issues_of(repo) {
            1 => "open issue".to_owned(),
            count => format!("{count} open issues"),
        };
        out.push(format!("Triage the {issues} in {}.", code(repo)));
    }
    if let Some((repo, _)) = repos.iter().find(|(r, _)| has(r, Theme::Feature) && !has(r, Theme::Docs)) {
        out.push(format!("Document the new features in {} while they are fresh.", code(repo)));
    }
    if out.len() < 3
        && let Some((repo, _)) = repos.first()
    {
        out.push(format!("Write down the next step for {} before the context fades.", code(repo)));
    }
    out.truncate(3);
    out
}

// ---------------------------------------------------------------------------------------------------
// Release notes

fn emoji(theme: Theme) -> &'static str {
    match theme {
        Theme::Feature => "✨",
        Theme::Fix => "🐛",
        Theme::Performance => "⚡",
        Theme::Refactor => "♻️",
        Theme::Test => "🧪",
        Theme::Docs => "📚",
        Theme::Maintenance => "🔧",
        Theme::Other => "📦",
        Theme::Issues => "📌",
    }
}

/// The release class the contract asks for, from the changes.
fn release_class(items: &[Item]) -> (&'static str, &'static str) {
    if items.iter().any(|i| i.breaking) {
        ("major", "it contains breaking changes")
    } else if items.iter().any(|i| i.theme == Theme::Feature) {
        ("minor", "it adds new features without breaking changes")
    } else if items.iter().any(|i| i.theme == Theme::Fix) {
        ("fix", "it fixes bugs without adding features")
    } else {
        ("patch", "it contains maintenance and small improvements only")
    }
}

/// The next version after `tag` for a release class (`v1.2.3` + minor → `v1.3.0`), keeping the tag's
/// prefix; `None` when the tag has no version number.
pub fn next_version(tag: &str, class: &str) -> Option<String> {
    let start = tag.find(|c: char| c.is_ascii_digit())?;
    let prefix = &tag[..start];
    let version: String = tag[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = version.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    let (major, minor, patch) = match class {
        "major" => (major + 1, 0, 0),
        "minor" => (major, minor + 1, 0),
        _ => (major, minor, patch + 1),
    };
    Some(format!("{prefix}{major}.{minor}.{patch}"))
}

fn section_lines(out: &mut String, items: &[&Item], with_repo: bool) {
    let summaries: Vec<String> = if with_repo {
        let mut seen: Vec<String> = Vec::new();
        for item in items {
            let line = format!("{}{}", tag(&item.repo), item.summary);
            if !seen.contains(&line) {
                seen.push(line);
            }
        }
        seen
    } else {
        distinct_summaries(items)
    };
    for line in summaries.iter().take(ITEMS_PER_SECTION) {
        let _ = writeln!(out, "- {line}");
    }
    if summaries.len() > ITEMS_PER_SECTION {
        let _ = writeln!(out, "- …and {} more", summaries.len() - ITEMS_PER_SECTION);
    }
}

fn write_release(activity: &Activity) -> String {
    let items = items_of(activity);
    let changes: Vec<&Item> = items.iter().filter(|i| i.theme != Theme::Issues).collect();
    let latest = activity.releases.last();
    let repo =
        latest.map(|r| r.repo.clone()).filter(|r| !r.is_empty()).or_else(|| activity.repositories().into_iter().next());
    let repos = activity.repositories();
    let change_items: Vec<Item> = changes.iter().map(|i| (*i).clone()).collect();
    let (class, reason) = release_class(&change_items);
    let next = latest.and_then(|r| next_version(&r.tag, class));

    let mut out = String::new();
    let title = match (&repo, &next) {
        (Some(repo), Some(next)) => format!("{repo} {next}"),
        (Some(repo), None) => format!("{repo}: next release"),
        (None, Some(next)) => next.clone(),
        (None, None) => "Next release".to_owned(),
    };
    let _ = writeln!(out, "## {title}\n");
    out.push_str(
        "_Offline draft of the release notes, written by Recap from the activity itself without a language model._\n\n",
    );
    let _ = write!(out, "**Release type:** {class}, as {reason}.");
    if let Some(latest) = latest {
        let _ = write!(out, " Previous release: `{}`", latest.tag);
        if !latest.name.is_empty() && latest.name != latest.tag {
            let _ = write!(out, " ({})", latest.name);
        }
        out.push('.');
    }
    if let Some(next) = &next {
        let _ = write!(out, " Suggested version: `{next}`.");
    }
    out.push_str("\n\n");

    if changes.is_empty() {
        let since = latest.map_or_else(|| "the last release".to_owned(), |r| format!("`{}`", r.tag));
        let _ = writeln!(out, "No changes since {since} yet.\n");
    } else {
        let where_ = if repos.len() > 1 {
            format!(" across {}", join_and(&repos.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>()))
        } else {
            repo.as_ref().map(|r| format!(" in `{r}`")).unwrap_or_default()
        };
        let _ = writeln!(out, "This release gathers {}{where_}.\n", plural(changes.len(), "change", "changes"));
        let breaking: Vec<&Item> = changes.iter().copied().filter(|i| i.breaking).collect();
        if !breaking.is_empty() {
            out.push_str("### ⚠️ Breaking changes\n");
            section_lines(&mut out, &breaking, repos.len() > 1);
            out.push('\n');
        }
        for theme in Theme::ALL.iter().filter(|t| **t != Theme::Issues) {
            let section: Vec<&Item> = changes.iter().copied().filter(|i| i.theme == *theme && !i.breaking).collect();
            if section.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {} {}", emoji(*theme), theme.label());
            section_lines(&mut out, &section, repos.len() > 1);
            out.push('\n');
        }
    }
    let issues: Vec<&Item> = items.iter().filter(|i| i.theme == Theme::Issues).collect();
    if !issues.is_empty() {
        let _ = writeln!(out, "### {} Known open issues", emoji(Theme::Issues));
        section_lines(&mut out, &issues, repos.len() > 1);
        out.push('\n');
    }
    match &next {
        Some(next) => {
            let _ = writeln!(out, "Upgrade to `{next}`, try the changes out, and tell us what you think!");
        }
        None => out.push_str("Upgrade to the new release, try the changes out, and tell us what you think!\n"),
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Pull request description

fn pr_heading(theme: Theme) -> &'static str {
    match theme {
        Theme::Feature => "Features",
        Theme::Fix => "Bug fixes",
        Theme::Performance => "Performance",
        Theme::Refactor => "Refactoring",
        Theme::Test => "Tests",
        Theme::Docs => "Documentation",
        Theme::Maintenance => "Maintenance",
        Theme::Other => "Other changes",
        Theme::Issues => "Related issues",
    }
}

fn verb(theme: Theme) -> &'static str {
    match theme {
        Theme::Feature => "Add",
        Theme::Fix => "Fix",
        Theme::Performance => "Speed up",
        Theme::Refactor => "Refactor",
        Theme::Test => "Test",
        Theme::Docs => "Document",
        Theme::Maintenance | Theme::Other | Theme::Issues => "Update",
    }
}

fn truncate_title(title: String) -> String {
    const MAX: usize = 71;
    if title.chars().count() <= MAX {
        return title;
    }
    let cut: String = title.chars().take(MAX - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > MAX / 2 => cut[..space].to_owned(),
        _ => cut,
    };
    format!("{}…", cut.trim_end())
}

fn pr_title(items: &[&Item], source: &str, target: &str) -> String {
    if items.is_empty() {
        return truncate_title(format!("Merge {source} into {target}"));
    }
    if items.len() == 1 {
        return truncate_title(items[0].summary.clone());
    }
    let mut counts: Vec<(Theme, usize)> = Theme::ALL
        .iter()
        .map(|t| (*t, items.iter().filter(|i| i.theme == *t).count()))
        .filter(|(_, c)| *c > 0)
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let dominant = counts[0].0;
    let topic: String = source
        .rsplit('/')
        .next()
        .unwrap_or(source)
        .split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    const GENERIC: [&str; 10] =
        ["main", "master", "dev", "develop", "development", "staging", "release", "trunk", "next", "head"];
    let generic = topic.is_empty()
        || topic.chars().all(|c| c.is_ascii_digit())
        || GENERIC.contains(&topic.to_lowercase().as_str());
    let title = if generic {
        let top: Vec<String> = counts.iter().take(2).map(|(t, _)| t.phrase().to_owned()).collect();
        format!("Merge {source} into {target}: {}", join_and(&top))
    } else {
        format!("{} {topic}", verb(dominant))
    };
    truncate_title(title)
}

fn write_pull_request(activity: &Activity, source: &str, target: &str) -> String {
    let items = items_of(activity);
    let refs: Vec<&Item> = items.iter().collect();
    let repos = activity.repositories();
    let mut out = String::new();
    let _ = writeln!(out, "Title: {}\n", pr_title(&refs, source, target));
    out.push_str("## Summary\n");
    let where_ = match repos.as_slice() {
        [] => String::new(),
        [one] => format!(" in `{one}`"),
        many => format!(" across {}", join_and(&many.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>())),
    };
    if items.is_empty() {
        let _ = writeln!(
            out,
            "This pull request merges `{source}` into `{target}`{where_}; no commits differ between the two branches yet."
        );
    } else {
        let mut themes: Vec<(Theme, usize)> = Theme::ALL
            .iter()
            .map(|t| (*t, items.iter().filter(|i| i.theme == *t).count()))
            .filter(|(_, c)| *c > 0)
            .collect();
        themes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let breakdown: Vec<String> = themes.iter().map(|(t, c)| format!("{} ({c})", t.phrase())).collect();
        let _ = writeln!(
            out,
            "This pull request merges `{source}` into `{target}`{where_}: {}, covering {}.",
            count_phrase(&refs),
            join_and(&breakdown)
        );
        if items.iter().any(|i| i.breaking) {
            out.push_str("It contains **breaking changes**: see below.\n");
        }
    }
    out.push_str("\n_Offline draft, written by Recap from the commits without a language model._\n");
    let breaking: Vec<&Item> = refs.iter().copied().filter(|i| i.breaking).collect();
    if !breaking.is_empty() {
        out.push_str("\n## Breaking changes\n");
        section_lines(&mut out, &breaking, repos.len() > 1);
    }
    for theme in Theme::ALL {
        let section: Vec<&Item> = refs.iter().copied().filter(|i| i.theme == theme && !i.breaking).collect();
        if section.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {}", pr_heading(theme));
        section_lines(&mut out, &section, repos.len() > 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_text_and_never_span_lines() {
        let text =
            "_Offline recap_\n\n- **[`api`]** Bug fixes (2 commits): Fix a; Fix b.\n  tail words here and more words\n";
        let chunks = split_chunks(text);
        assert_eq!(chunks.concat(), text);
        assert!(chunks.len() > 3);
        for chunk in &chunks {
            assert!(!chunk.trim_end_matches('\n').contains('\n'), "{chunk:?}");
        }
    }

    #[test]
    fn versions_bump_by_class() {
        assert_eq!(next_version("v1.2.3", "minor").as_deref(), Some("v1.3.0"));
        assert_eq!(next_version("v1.2.3", "major").as_deref(), Some("v2.0.0"));
        assert_eq!(next_version("release-1.2", "fix").as_deref(), Some("release-1.2.1"));
        assert_eq!(next_version("2.0.0-rc.1", "patch").as_deref(), Some("2.0.1"));
        assert_eq!(next_version("latest", "patch"), None);
    }

    #[test]
    fn split_sizes_are_balanced() {
        assert_eq!(split_sizes(5, 2), vec![3, 2]);
        assert_eq!(split_sizes(3, 3), vec![1, 1, 1]);
        assert_eq!(split_sizes(2, 5), vec![1, 1]);
    }

    #[test]
    fn titles_stay_under_72_characters() {
        let long = "x".repeat(50) + " " + &"y".repeat(50);
        assert!(truncate_title(long).chars().count() < 72);
        assert_eq!(truncate_title("Add login".into()), "Add login");
    }
}
