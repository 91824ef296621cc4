use std::time::{Duration, Instant};

use futures::StreamExt;
use recap_llm::offline::{self, OfflineProvider};
use recap_llm::{LlmError, LlmProvider, LlmSettings, RecapTask};
use tokio_util::sync::CancellationToken;

use crate::fake::drain;

/// Render entries in the contract's activity format (section 8.1): `(day, type label, repo, message)`.
fn activity(entries: &[(&str, &str, &str, &str)]) -> String {
    let mut out = String::new();
    let mut day = "";
    for (date, label, repo, message) in entries {
        if *date != day {
            if !day.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("{date}:\n"));
            day = date;
        }
        out.push_str(&format!(" - [{label}] in {repo}: {message}\n"));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn sample() -> String {
    activity(&[
        ("2025-03-14", "Commit From Pr", "api", "feat: add login endpoint (PR: Add login)"),
        ("2025-03-14", "Pull Request", "api", "Add login (PR #42)"),
        ("2025-03-14", "Commit", "api", "fix: handle empty token"),
        ("2025-03-15", "Commit", "web", "fix(ui): broken redirect after sign-in\n\nThe callback lost its state."),
        ("2025-03-15", "Commit", "web", "docs: describe the sign-in flow"),
        ("2025-03-15", "Issue", "web", "Dark mode flickers"),
        ("2025-03-16", "Commit", "cli", "chore(deps): bump clap to 4.5"),
        ("2025-03-16", "Commit", "cli", "Add --json output"),
        ("2025-03-16", "Commit", "cli", "Refactor config loading"),
    ])
}

/// Many repositories and entries, generated deterministically.
fn big(repos: usize, per_repo: usize) -> String {
    let subjects = [
        "feat: add thing",
        "fix: crash in parser",
        "docs: update readme",
        "test: cover edge case",
        "refactor: split module",
        "chore: bump deps",
        "Tweak colours",
    ];
    let mut entries = Vec::new();
    let names: Vec<String> = (0..repos).map(|r| format!("repo-{r:02}")).collect();
    let dates: Vec<String> = (0..per_repo).map(|i| format!("2025-04-{:02}", 1 + i % 28)).collect();
    let mut owned: Vec<(String, &str, String, String)> = Vec::new();
    for i in 0..per_repo {
        for (r, name) in names.iter().enumerate() {
            owned.push((
                dates[i].clone(),
                "Commit",
                name.clone(),
                format!("{} #{i}", subjects[(i + r) % subjects.len()]),
            ));
        }
    }
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    for (d, l, r, m) in &owned {
        entries.push((d.as_str(), *l, r.as_str(), m.as_str()));
    }
    activity(&entries)
}

fn bullets(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("- ")).collect()
}

async fn stream_text(task: &RecapTask) -> (Vec<String>, String) {
    let provider = OfflineProvider::new();
    let stream = provider.stream(task.to_request_seeded(1), CancellationToken::new()).await.unwrap();
    let (chunks, error) = drain(stream).await;
    assert_eq!(error, None);
    let text = chunks.concat();
    (chunks, text)
}

#[tokio::test]
async fn offline_recap_mentions_every_repository() {
    for (actions, repos) in [
        (sample(), vec!["api".to_owned(), "web".to_owned(), "cli".to_owned()]),
        (big(20, 3), (0..20).map(|r| format!("repo-{r:02}")).collect()),
    ] {
        for n in [1u8, 3, 5, 15] {
            let (_, text) = stream_text(&RecapTask::recap(actions.clone(), n)).await;
            let bullet_text = bullets(&text).join("\n");
            for repo in &repos {
                assert!(bullet_text.contains(&format!("**[`{repo}`]**")), "n={n}: {repo} missing in\n{text}");
            }
        }
    }
}

#[tokio::test]
async fn offline_recap_has_exactly_n_bullets() {
    let inputs = [
        sample(),
        big(1, 40),
        big(4, 10),
        big(20, 2),
        activity(&[("2025-01-01", "Commit", "solo", "Initial commit")]),
        "just some free text\nand another line\n".to_owned(),
    ];
    for actions in &inputs {
        for n in 1..=15u8 {
            let text = offline::write(&RecapTask::recap(actions.clone(), n));
            assert_eq!(bullets(&text).len(), usize::from(n), "n={n}\n{text}");
        }
    }
}

#[tokio::test]
async fn offline_recap_is_deterministic_honest_and_streamed_in_chunks() {
    let task = RecapTask::recap(sample(), 5);
    let (chunks_a, text_a) = stream_text(&task).await;
    let (chunks_b, text_b) = stream_text(&task).await;
    assert_eq!(chunks_a, chunks_b);
    assert_eq!(text_a, text_b);
    assert_eq!(text_a, offline::write(&task));
    assert!(chunks_a.len() > 10, "{} chunks", chunks_a.len());
    assert!(chunks_a.iter().all(|c| !c.is_empty() && c.trim() != "</end>"));

    let first = text_a.lines().next().unwrap();
    assert!(first.starts_with('_') && first.ends_with('_'), "italic opening line: {first}");
    assert!(text_a.contains("without a language model"), "{text_a}");
    assert!(text_a.to_lowercase().contains("offline"));
    assert!(!text_a.contains("2025-03"), "no dates in the recap:\n{text_a}");
    assert!(text_a.contains("PR #42"), "mentions the pull request:\n{text_a}");
    assert!(text_a.contains("Dark mode flickers"), "mentions the issue:\n{text_a}");
    // A closing question in italics and numbered suggestions.
    assert!(text_a.lines().any(|l| l.starts_with('_') && l.ends_with("?_")), "{text_a}");
    assert!(text_a.lines().any(|l| l.starts_with("1. ")), "{text_a}");

    let other = stream_text(&RecapTask::recap(sample().replace("Dark mode", "Light mode"), 5)).await.1;
    assert_ne!(other, text_a);
    println!("{text_a}");
}

#[tokio::test]
async fn offline_first_chunk_is_fast() {
    let task = RecapTask::recap(big(10, 50), 15);
    let request = task.to_request_seeded(3);
    let provider = OfflineProvider::new();
    let started = Instant::now();
    let mut stream = provider.stream(request, CancellationToken::new()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert!(!first.is_empty());
    println!("first offline chunk after {elapsed:?}");
    // Generous for an unoptimised build on a shared machine; the release target is < 20 ms.
    assert!(elapsed < Duration::from_millis(250), "{elapsed:?}");
}

#[tokio::test]
async fn offline_release_notes_have_the_release_shape() {
    let actions = format!(
        "{}\nDate: 2025-02-01\n----- Release Start -----\nRelease: v1.4.0\nRepository: api\nTag: v1.4.0\nAuthor: alice\nNotes: ## Highlights\n- Faster sync\n----- Release End -----\n\n",
        activity(&[
            ("2025-03-14", "Commit", "api", "feat: add login endpoint"),
            ("2025-03-15", "Commit", "api", "fix: handle empty token"),
            ("2025-03-15", "Pull Request", "api", "Add login (PR #42)"),
        ])
    );
    let (chunks, text) = stream_text(&RecapTask::Release { actions }).await;
    assert!(chunks.len() > 1);
    assert!(text.starts_with("## api v1.5.0\n"), "{text}");
    assert!(text.contains("**Release type:** minor"), "{text}");
    assert!(text.contains("Previous release: `v1.4.0`"), "{text}");
    assert!(text.contains("### ✨ New features\n- Add login endpoint\n- Add login (PR #42)"), "{text}");
    assert!(text.contains("### 🐛 Bug fixes\n- Handle empty token"), "{text}");
    assert!(text.contains("without a language model"));
    assert!(text.trim_end().ends_with("tell us what you think!"), "call to action:\n{text}");

    let breaking = "2025-03-14:\n - [Commit] in api: feat!: drop the v1 API\n\nDate: 2025-02-01\n----- Release Start -----\nRelease: 2.3.1\nRepository: api\nTag: 2.3.1\nAuthor: a\n----- Release End -----\n\n";
    let text = offline::write(&RecapTask::Release { actions: breaking.into() });
    assert!(
        text.contains("**Release type:** major") && text.contains("`3.0.0`") && text.contains("Breaking changes"),
        "{text}"
    );
}

#[tokio::test]
async fn offline_pull_request_description_has_a_title_line_and_sections() {
    let actions = activity(&[
        ("2025-03-14", "Commit", "api", "feat: add login endpoint"),
        ("2025-03-14", "Commit", "api", "feat: add logout endpoint"),
        ("2025-03-15", "Commit", "api", "fix: handle empty token"),
        ("2025-03-15", "Commit", "api", "docs: document auth"),
    ]);
    let task = RecapTask::PullRequest { actions, source: "feature/login-flow".into(), target: "main".into() };
    let (chunks, text) = stream_text(&task).await;
    assert!(chunks.len() > 1);
    let first = text.lines().next().unwrap();
    assert_eq!(first, "Title: Add login flow");
    assert!(first.len() < 72 + "Title: ".len());
    assert!(text.contains("## Summary\nThis pull request merges `feature/login-flow` into `main` in `api`"), "{text}");
    assert!(text.contains("## Features\n- Add login endpoint\n- Add logout endpoint"), "{text}");
    assert!(text.contains("## Bug fixes\n- Handle empty token"), "{text}");
    assert!(text.contains("## Documentation\n- Document auth"), "{text}");

    let single = RecapTask::PullRequest {
        actions: activity(&[("2025-03-14", "Commit", "api", "fix(auth): reject expired refresh tokens")]),
        source: "fix-refresh".into(),
        target: "main".into(),
    };
    assert!(offline::write(&single).starts_with("Title: Reject expired refresh tokens\n"));
}

#[tokio::test]
async fn offline_honours_cancellation() {
    let provider = OfflineProvider::new();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let error = provider.stream(RecapTask::recap(sample(), 5).to_request(&[]), cancel).await.err().unwrap();
    assert_eq!(error, LlmError::Cancelled);

    let cancel = CancellationToken::new();
    let mut stream = provider.stream(RecapTask::recap(sample(), 5).to_request(&[]), cancel.clone()).await.unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    cancel.cancel();
    assert_eq!(stream.next().await.unwrap(), Err(LlmError::Cancelled));
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn offline_is_the_default_provider_and_handles_foreign_prompts() {
    let settings = LlmSettings::from_lookup(|_| None).unwrap();
    let provider = settings.build_provider().unwrap();
    assert_eq!((provider.name(), provider.model()), ("offline", "offline"));
    // A request that is not one of Recap's prompts: a recap of the last user message in 5 bullets.
    let request = recap_llm::ChatRequest { messages: vec![recap_llm::Message::user(sample())], ..Default::default() };
    let text = recap_llm::complete(provider.as_ref(), request, CancellationToken::new()).await.unwrap();
    assert_eq!(bullets(&text).len(), 5);
}
