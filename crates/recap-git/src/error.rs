use std::path::PathBuf;

/// A boxed underlying error (from gix or the file system).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while reading history.
///
/// Per-commit problems are reported as an `Err` item of the [`Walk`](crate::Walk) iterator, and the
/// walk goes on with the next commit; problems before the walk starts are returned by
/// [`walk`](crate::walk) / [`resolve_ref`](crate::resolve_ref) / [`count`](crate::count) themselves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path is not a git repository (or cannot be read).
    #[error("cannot open git repository at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    /// A ref, branch, tag or revision that does not resolve to a commit.
    #[error("reference `{0}` not found")]
    RefNotFound(String),
    /// HEAD is unborn and no fallback branch exists: the repository has no commits.
    #[error("repository has no commits (HEAD is unborn and neither `main` nor `master` exists)")]
    NoCommits,
    /// A failure while reading objects or diffing; `context` says what was being done.
    #[error("{context}: {source}")]
    Git {
        context: String,
        #[source]
        source: BoxError,
    },
    /// A commit or tree object whose bytes could not be parsed, or an object of the wrong kind.
    #[error("malformed object {sha}")]
    MalformedObject { sha: String },
    /// A diff worker thread panicked (a bug); the commit it was working on is reported with this.
    #[error("a diff worker thread panicked")]
    WorkerPanicked,
}

impl Error {
    pub(crate) fn git<E: Into<BoxError>>(context: impl Into<String>) -> impl FnOnce(E) -> Error {
        let context = context.into();
        move |source| Error::Git { context, source: source.into() }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
