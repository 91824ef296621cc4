use recap_llm::tokens::trim_count;
use recap_llm::{
    Encoding, LlmSettings, count_tokens, init_tokenizer, trim_to_budget, trim_to_budget_with, trimmed_message,
};

#[test]
fn token_counts_of_known_strings() {
    init_tokenizer(Encoding::O200kBase);
    assert_eq!(count_tokens(""), 0);
    assert_eq!(Encoding::O200kBase.encode("hello world"), vec![24912, 2375]);
    assert_eq!(count_tokens("hello world"), 2);
    assert_eq!(Encoding::Cl100kBase.encode("hello world"), vec![15339, 1917]);
    // tiktoken's README example for cl100k_base.
    assert_eq!(Encoding::Cl100kBase.encode("tiktoken is great!"), vec![83, 1609, 5963, 374, 2294, 0]);
    // Special-token text counts as ordinary text instead of failing.
    assert!(count_tokens("<|endoftext|>") > 1);
    // A rendered activity line.
    let line = " - [Commit] in api: fix: handle empty token";
    assert!((8..=14).contains(&count_tokens(line)), "{}", count_tokens(line));
}

#[test]
fn encodings_follow_the_model() {
    assert_eq!(Encoding::for_model("gpt-4o-mini"), Encoding::O200kBase);
    assert_eq!(Encoding::for_model("gpt-4"), Encoding::Cl100kBase);
    assert_eq!(Encoding::for_model("gpt-3.5-turbo"), Encoding::Cl100kBase);
    assert_eq!(Encoding::for_model("claude-sonnet-4-5"), Encoding::O200kBase);
    assert_eq!(Encoding::for_model("llama3.1:8b"), Encoding::O200kBase);
    let settings = LlmSettings::from_lookup(|k| match k {
        "LLM_API_KEY" => Some("k".into()),
        "LLM_MODEL" => Some("gpt-4".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(settings.encoding(), Encoding::Cl100kBase);
    assert_eq!(LlmSettings::default().encoding(), Encoding::O200kBase);
}

fn entries(n: usize) -> Vec<String> {
    // Each entry is exactly 2 o200k tokens ("hello world").
    (0..n).map(|_| "hello world".to_owned()).collect()
}

#[test]
fn trimming_drops_the_oldest_first() {
    let mut lines = entries(10);
    for (i, line) in lines.iter_mut().enumerate() {
        // Mark entries so we can see which survived; " world" + digit keeps counts equal per entry.
        *line = format!("hello {i}");
    }
    let per = count_tokens(&lines[0]);
    assert!(lines.iter().all(|l| count_tokens(l) == per));

    let t = trim_to_budget(&lines, 3 * per);
    assert_eq!((t.trimmed_count, t.total_count, t.kept.len()), (7, 10, 3));
    assert_eq!(t.kept, lines[7..].to_vec(), "the newest entries are kept, in order");
    assert_eq!(t.kept_tokens, 3 * per);

    let t = trim_to_budget(&lines, 3 * per + 1);
    assert_eq!(t.trimmed_count, 7, "a partial entry does not fit");

    let t = trim_to_budget(&lines, 10 * per);
    assert_eq!((t.trimmed_count, t.total_count, t.message), (0, 10, None));
    assert_eq!(t.kept, lines);

    let t = trim_to_budget(&lines, 0);
    assert_eq!((t.trimmed_count, t.kept.len(), t.kept_tokens), (10, 0, 0));

    let t = trim_to_budget(&[], 100);
    assert_eq!((t.trimmed_count, t.total_count, t.message), (0, 0, None));
}

#[test]
fn trimming_message_is_the_contract_text() {
    let lines = entries(3);
    let t = trim_to_budget(&lines, 4);
    assert_eq!(t.trimmed_count, 1);
    assert_eq!(
        t.message.as_deref(),
        Some(
            "We're running the free version with a maximum token limit for contextual input. To stay within this limit, \
             we automatically trimmed 1 older Git actionable from the context. We hope you understand!"
        )
    );
    let t = trim_to_budget(&lines, 2);
    assert_eq!(
        t.message.as_deref(),
        Some(
            "We're running the free version with a maximum token limit for contextual input. To stay within this limit, \
             we automatically trimmed 2 older Git actionables from the context. We hope you understand!"
        )
    );
    assert_eq!(trimmed_message(0), None);
}

#[test]
fn trimming_with_cl100k_and_precounted_entries() {
    let lines = vec!["tiktoken is great!".to_owned(), "hello world".to_owned()];
    let t = trim_to_budget_with(Encoding::Cl100kBase, &lines, 2);
    assert_eq!((t.trimmed_count, t.kept.as_slice()), (1, &lines[1..]));
    assert_eq!(trim_count(&[5, 1, 1, 1], 3), 1);
    assert_eq!(trim_count(&[5, 1, 1, 1], 2), 2);
    assert_eq!(trim_count(&[], 0), 0);
}

#[test]
fn trimming_a_realistic_activity_is_fast_enough() {
    // 2,000 rendered lines, budget 16,000 tokens (MAX_HISTORY_TOKENS default).
    let lines: Vec<String> = (0..2000)
        .map(|i| format!(" - [Commit] in repo-{}: fix: handle case {i} in the parser when the input is empty", i % 7))
        .collect();
    let started = std::time::Instant::now();
    let t = trim_to_budget(&lines, recap_llm::DEFAULT_MAX_HISTORY_TOKENS);
    assert!(t.kept_tokens <= 16_000);
    assert!(t.trimmed_count > 0 && t.trimmed_count < 2000);
    assert_eq!(t.kept.last(), lines.last());
    println!("trimmed {} of {} in {:?}", t.trimmed_count, t.total_count, started.elapsed());
}
