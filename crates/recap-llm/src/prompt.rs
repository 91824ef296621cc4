//! The Git Recap prompts (contract section 6.5): one system and one user message per generation, for
//! each action type. Every provider gets the same request; the offline provider reads its task back
//! from the user message with [`RecapTask::from_request`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::provider::{ChatRequest, Message};

/// Bullet count when the client sends none.
pub const DEFAULT_BULLETS: u8 = 5;
/// The most bullets a recap may ask for.
pub const MAX_BULLETS: u8 = 15;

/// The WebSocket action type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecapKind {
    /// A recap of the activity in N bullets (`recap`).
    Recap,
    /// Release notes for the next release (`release`).
    Release,
    /// A pull request description (`pull_request`).
    PullRequest,
}

impl RecapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecapKind::Recap => "recap",
            RecapKind::Release => "release",
            RecapKind::PullRequest => "pull_request",
        }
    }
}

impl fmt::Display for RecapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action type that is not `recap`, `release` or `pull_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid action type")]
pub struct InvalidKind;

impl FromStr for RecapKind {
    type Err = InvalidKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "recap" => Ok(RecapKind::Recap),
            "release" => Ok(RecapKind::Release),
            "pull_request" => Ok(RecapKind::PullRequest),
            _ => Err(InvalidKind),
        }
    }
}

/// One generation: the action type with its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecapTask {
    /// `actions` is the `/actions` text; `n` the number of bullets (1–15).
    Recap { actions: String, n: u8 },
    /// `actions` is the `/release_notes` text: the activity since the latest release, a blank line, then
    /// the previous releases.
    Release { actions: String },
    /// `actions` is the `/get-pull-request-diff` text; `source` is merged into `target`.
    PullRequest { actions: String, source: String, target: String },
}

const RECAP_PREFIX: &str =
    "Consider the following history of actionables from Git and return me the summary with N = '";
const RECAP_PREFIX_END: &str = "' bullet points:\n\n";

const RELEASE_PREFIX: &str = "Write the release notes of the next release from the new actionables below. The text \
starts with the Git activity since the latest release; the previous release notes follow it, each between \
`----- Release Start -----` and `----- Release End -----`. Match the style and structure of those previous release \
notes.\n\n";

const PR_PREFIX: &str = "Write a pull request description for merging `";
const PR_INTO: &str = "` into `";
const PR_PREFIX_END: &str = "`.\n\nCommits:\n";
const PR_SUFFIX: &str = "\n\nGroup the changes under markdown headers, add a short summary paragraph, and answer with \
the pull request description only.";

impl RecapTask {
    /// A recap task; `n` is clamped to 1–15 (the server validates it first, with the contract's messages).
    pub fn recap(actions: impl Into<String>, n: u8) -> Self {
        RecapTask::Recap { actions: actions.into(), n: n.clamp(1, MAX_BULLETS) }
    }

    pub fn kind(&self) -> RecapKind {
        match self {
            RecapTask::Recap { .. } => RecapKind::Recap,
            RecapTask::Release { .. } => RecapKind::Release,
            RecapTask::PullRequest { .. } => RecapKind::PullRequest,
        }
    }

    /// The activity text of the task.
    pub fn actions(&self) -> &str {
        match self {
            RecapTask::Recap { actions, .. }
            | RecapTask::Release { actions }
            | RecapTask::PullRequest { actions, .. } => actions,
        }
    }

    /// The system prompt. `remarks` are the example one-liners of the recap's "quirky remark" section
    /// (the contract draws 5 at random once per socket: see [`pick_remarks`]); other kinds ignore them.
    pub fn system_prompt(&self, remarks: &[&str]) -> String {
        match self {
            RecapTask::Recap { .. } => {
                let mut prompt = RECAP_SYSTEM.to_owned();
                prompt.push_str(QUIRKY_SECTION);
                for remark in remarks {
                    prompt.push_str("\n- ");
                    prompt.push_str(remark);
                }
                prompt.push('\n');
                prompt
            }
            RecapTask::Release { .. } => RELEASE_SYSTEM.to_owned(),
            RecapTask::PullRequest { .. } => PR_SYSTEM.to_owned(),
        }
    }

    /// The user message.
    pub fn user_message(&self) -> String {
        match self {
            RecapTask::Recap { actions, n } => format!("{RECAP_PREFIX}{n}{RECAP_PREFIX_END}{actions}"),
            RecapTask::Release { actions } => format!("{RELEASE_PREFIX}{actions}"),
            RecapTask::PullRequest { actions, source, target } => format!(
                "{PR_PREFIX}{}{PR_INTO}{}{PR_PREFIX_END}{actions}{PR_SUFFIX}",
                branch_for_prompt(source),
                branch_for_prompt(target)
            ),
        }
    }

    /// The request for any provider: one system and one user message, no history; `max_tokens` and
    /// `temperature` left to the provider's configuration.
    pub fn to_request(&self, remarks: &[&str]) -> ChatRequest {
        ChatRequest {
            system: self.system_prompt(remarks),
            messages: vec![Message::user(self.user_message())],
            max_tokens: None,
            temperature: None,
        }
    }

    /// [`RecapTask::to_request`] with the 5 example remarks picked by `seed` (draw it at random once per
    /// socket).
    pub fn to_request_seeded(&self, seed: u64) -> ChatRequest {
        self.to_request(&pick_remarks(seed))
    }

    /// Read the task back from a request built by [`RecapTask::to_request`] (its last user message).
    /// `None` when the message is not one of ours.
    pub fn from_request(request: &ChatRequest) -> Option<RecapTask> {
        Self::from_user_message(request.last_user_message()?)
    }

    /// Read the task back from a user message built by [`RecapTask::user_message`].
    pub fn from_user_message(message: &str) -> Option<RecapTask> {
        if let Some(rest) = message.strip_prefix(RECAP_PREFIX) {
            let (n, actions) = rest.split_once(RECAP_PREFIX_END)?;
            let n: u8 = n.trim().parse().ok()?;
            return Some(RecapTask::recap(actions, n));
        }
        if let Some(actions) = message.strip_prefix(RELEASE_PREFIX) {
            return Some(RecapTask::Release { actions: actions.to_owned() });
        }
        if let Some(rest) = message.strip_prefix(PR_PREFIX) {
            let (branches, rest) = rest.split_once(PR_PREFIX_END)?;
            let (source, target) = branches.split_once(PR_INTO)?;
            let actions = rest.strip_suffix(PR_SUFFIX)?;
            return Some(RecapTask::PullRequest {
                actions: actions.to_owned(),
                source: source.to_owned(),
                target: target.to_owned(),
            });
        }
        None
    }
}

/// Branch names go between backticks on one line: a backtick or line break in one is replaced.
fn branch_for_prompt(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c == '`' {
                '\''
            } else if c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect()
}

const RECAP_SYSTEM: &str = "You are Recap, a witty assistant who turns a developer's Git activity into a short recap \
they will enjoy reading.

The activity lists commits, pull requests and issues grouped by day, one per line, like \
` - [Commit] in <repo>: <message>`, ` - [Pull Request] in <repo>: <title> (PR #<number>)` or \
` - [Issue] in <repo>: <title>`.

Answer in Markdown, with exactly these parts:
1. An opening remark: one line, in italics (see \"Quirky remark\" below).
2. Exactly N bullet points, N being the number the user gives: never more, never fewer (more than N bullets is an \
error). Start each bullet with its repository as **[`repo`]**. Summarise related work together instead of copying \
commit messages, mention issues and pull requests (with their numbers) when there are any, and never mention dates.
3. A closing reflective question in italics, followed by up to 3 short numbered suggestions for what to do next.

Keep the tone light and witty, but stay accurate: describe only work that is in the activity.
";

const QUIRKY_SECTION: &str = "
## Quirky remark
Open with a one-liner that fits this particular log: its mood, its busiest repository, its pile of fixes or its \
suspicious lack of tests. Some examples of the tone (write your own, do not copy them):";

const RELEASE_SYSTEM: &str = "You are Recap's release-notes writer. From the Git activity since the latest release, \
write professional release notes for the next release.
- Match the style, structure and tone of the previous release notes included in the text (each between \
`----- Release Start -----` and `----- Release End -----`).
- Classify the release as major, minor, fix or patch, say which, and give the next version number that follows from \
the latest tag.
- Group the changes (new features, fixes, improvements, documentation, maintenance) and describe what they mean for \
users instead of listing commits.
- End with a short call to action (upgrade, try it out, send feedback).
Answer with the release notes only, in Markdown.
";

const PR_SYSTEM: &str =
    "You are Recap's pull-request writer. From the commits of a branch, write the description of a \
pull request.
- The first line is `Title: <imperative title under 72 characters, optionally starting with one emoji>`.
- Then Markdown sections: `## Summary` with a short paragraph first, then only the sections that apply among \
`## Features`, `## Bug fixes`, `## Refactoring`, `## Documentation`, `## Tests` and `## Maintenance`.
- Describe the net change of the branch rather than listing every commit.
Answer with the pull request description only.
";

/// Recap's own list of example opening remarks; [`pick_remarks`] draws 5.
pub const REMARKS: [&str; 50] = [
    "Another week, another heroic battle against off-by-one errors.",
    "The commits are in, and the keyboard is asking for a vacation.",
    "Somewhere, a linter just shed a single proud tear.",
    "Proof that coffee can, in fact, be converted into code.",
    "The git log reads like a thriller, if thrillers had more semicolons.",
    "Bugs were squashed; no insects were harmed.",
    "Ship it, they said. So you did. Repeatedly.",
    "Your future self sends thanks, and a few questions.",
    "Less a sprint, more a parkour run across the codebase.",
    "The CI pipeline has seen things. Good things, mostly.",
    "Refactoring: because yesterday's clever is today's confusing.",
    "A fine vintage of commits, with notes of caffeine and resolve.",
    "The merge button got a real workout this time.",
    "Rubber duck debugging, but the duck is exhausted.",
    "Nothing says productivity like a wall of green checkmarks.",
    "Today's forecast: scattered commits with a chance of deploys.",
    "You didn't just write code, you negotiated with it.",
    "Tests were written. Someone alert the press.",
    "The TODO list trembled, then shrank.",
    "Even the README got some love. Character development!",
    "A masterclass in turning 'works on my machine' into 'works'.",
    "The stack traces never stood a chance.",
    "Dependencies bumped, nerves intact.",
    "If commits were steps, this would be a marathon.",
    "Git blame will be kind to you this time.",
    "Small commits, big energy.",
    "The code review comments have been addressed, and then some.",
    "Some people collect stamps; you collect merged pull requests.",
    "A tidy history: Marie Kondo would approve of this log.",
    "The backlog called. It wants to know what you've been up to.",
    "Features shipped faster than the coffee cooled.",
    "Debugging is detective work, and the case is closed.",
    "This log has more plot twists than a season finale.",
    "One does not simply push to main. You did it properly.",
    "The compiler and you are finally on speaking terms.",
    "A productive stretch, with only mild existential dread.",
    "Half of engineering is naming things; you named a lot of things.",
    "The issue tracker is looking slightly less haunted.",
    "Legacy code was touched and lived to tell the tale.",
    "Commit messages so clear they could be poetry. Almost.",
    "Velocity: high. Chaos: surprisingly low.",
    "The pull requests lined up like planes at a busy airport.",
    "Every line of code is a tiny promise. You made a few.",
    "The codebase is a garden, and you were busy weeding.",
    "Plot twist: the bug was a feature waiting for documentation.",
    "Keyboard warrior, but the productive kind.",
    "More green squares on the contribution graph than a chessboard.",
    "Your branch game is strong and your merge conflicts are few.",
    "Code was written, tests were run, and nobody panicked. Much.",
    "The repository has never looked so well cared for.",
];

/// Five distinct remarks from [`REMARKS`], chosen by `seed` (deterministic for a seed).
pub fn pick_remarks(seed: u64) -> [&'static str; 5] {
    let mut order: Vec<usize> = (0..REMARKS.len()).collect();
    let mut state = seed;
    for i in 0..5 {
        let j = i + (splitmix64(&mut state) % (REMARKS.len() - i) as u64) as usize;
        order.swap(i, j);
    }
    [REMARKS[order[0]], REMARKS[order[1]], REMARKS[order[2]], REMARKS[order[3]], REMARKS[order[4]]]
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for kind in [RecapKind::Recap, RecapKind::Release, RecapKind::PullRequest] {
            assert_eq!(kind.as_str().parse::<RecapKind>(), Ok(kind));
        }
        assert_eq!("summary".parse::<RecapKind>(), Err(InvalidKind));
        assert_eq!(serde_json::to_string(&RecapKind::PullRequest).unwrap(), "\"pull_request\"");
    }

    #[test]
    fn recap_user_message_is_the_contract_text() {
        let task = RecapTask::recap("2025-03-14:\n - [Commit] in api: fix: x\n\n", 10);
        let request = task.to_request_seeded(7);
        assert_eq!(request.messages.len(), 1);
        assert_eq!(
            request.messages[0].content,
            "Consider the following history of actionables from Git and return me the summary with N = '10' bullet \
             points:\n\n2025-03-14:\n - [Commit] in api: fix: x\n\n"
        );
        assert!(request.system.contains("Exactly N bullet points"));
        assert!(request.system.contains("**[`repo`]**"));
        assert_eq!(request.system.matches("\n- ").count(), 5, "five example remarks");
    }

    #[test]
    fn every_task_round_trips_through_its_request() {
        let tasks = [
            RecapTask::recap("2025-03-14:\n - [Commit] in api: fix: x\n\n", 15),
            RecapTask::Release { actions: "2025-03-14:\n - [Commit] in api: feat: y\n\n\nDate: 2025-03-01\n".into() },
            RecapTask::PullRequest {
                actions: "2025-03-14:\n - [Commit] in api: feat: y\n\n".into(),
                source: "feature/login".into(),
                target: "main".into(),
            },
            RecapTask::PullRequest { actions: String::new(), source: "a".into(), target: "b".into() },
        ];
        for task in tasks {
            let request = task.to_request(&[]);
            assert_eq!(RecapTask::from_request(&request), Some(task.clone()));
        }
        let odd = RecapTask::PullRequest { actions: "x".into(), source: "we`ird\nname".into(), target: "main".into() };
        let back = RecapTask::from_request(&odd.to_request(&[])).unwrap();
        assert_eq!(
            back,
            RecapTask::PullRequest { actions: "x".into(), source: "we'ird name".into(), target: "main".into() }
        );
        assert_eq!(RecapTask::from_user_message("hello"), None);
    }

    #[test]
    fn pr_prompt_asks_for_a_title_line() {
        let task = RecapTask::PullRequest { actions: "a".into(), source: "dev".into(), target: "main".into() };
        let request = task.to_request(&[]);
        assert!(request.system.contains("Title: <imperative title under 72 characters"));
        assert!(request.messages[0].content.contains("merging `dev` into `main`"));
        assert!(request.messages[0].content.contains("\n\nCommits:\na"));
    }

    #[test]
    fn remarks_are_five_distinct_and_seeded() {
        for seed in 0..200 {
            let picked = pick_remarks(seed);
            let mut unique = picked.to_vec();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 5);
            assert_eq!(pick_remarks(seed), picked);
        }
        assert_ne!(pick_remarks(1), pick_remarks(2));
    }
}
