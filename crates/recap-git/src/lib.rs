//! Reads a local repository's history as the push API's commit records.
//!
//! ```no_run
//! let tip = recap_git::resolve_ref("/path/to/repo", Some("main"))?; // falls back to HEAD
//! for record in recap_git::walk("/path/to/repo", &tip.sha, None)? {
//!     let record = record?; // oldest first
//!     println!("{} +{} -{} {}", &record.sha[..7], record.additions, record.deletions, record.message_title);
//! }
//! # Ok::<(), recap_git::Error>(())
//! ```
//!
//! * [`resolve_ref`]: a branch / tag / revision → a commit, with the `main` → default branch
//!   fallback.
//! * [`walk`] / [`walk_with`]: `stop_at..tip`, oldest first, one [`CommitRecord`] per commit, diffs
//!   computed in parallel and yielded in order; [`count`] counts the same range without diffing.
//! * `additions` / `deletions` / `files_changed` equal
//!   `git log --numstat --no-renames --diff-merges=first-parent` (see the [`numstat`] module, the
//!   [`xdiff`] module and the crate's README.md for how, and why not gix's own diff).
//!
//! Everything here blocks: call it from `spawn_blocking` or a dedicated thread in async code.

mod error;
pub mod numstat;
mod record;
mod walk;
pub mod xdiff;

pub use error::{BoxError, Error, Result};
pub use record::{
    CommitRecord, EMPTY_MESSAGE_TITLE, MAX_IDENT_CHARS, MAX_TITLE_CHARS, UNKNOWN_EMAIL, UNKNOWN_NAME, split_message,
};
pub use walk::{ResolvedRef, Walk, WalkOptions, count, resolve_ref, resolve_ref_with, walk, walk_with};
