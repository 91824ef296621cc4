//! Per-commit line statistics against the first parent.
//!
//! The reference is `git log --numstat --no-renames --diff-merges=first-parent` with git's default
//! diff settings: the sum of the added / deleted columns (a binary file, shown by git as `-\t-`,
//! adds 0 / 0) and the number of lines it prints (`files_changed`).
//!
//! What makes the counts equal to git's:
//! * the line diff is git's own algorithm ([`crate::xdiff`], a port of xdiff's Myers with git's
//!   heuristics), so the counts are the same line for line, including on large generated files
//!   where other Myers implementations choose a different edit script;
//! * binary detection is git's: the `diff` attribute (`-diff`, `binary`, or a `diff=<driver>` whose
//!   `diff.<driver>.binary` is set), files over `core.bigFileThreshold` (512 MiB), else a NUL byte
//!   in the first 8000 bytes of either side; attributes come from the work tree's `.gitattributes`
//!   files, then the index's (`HEAD`'s in a bare repository), plus `info/attributes` and the global
//!   and system files, as for `git log`;
//! * no rename or copy detection (`--no-renames`): a rename is a deletion plus an addition;
//! * the trees are compared in git's order (a directory sorts as if its name ended in `/`): a
//!   file that becomes a directory is one deletion plus the additions of the directory's files;
//! * a type change (file ⇄ symlink) is one changed file whose contents are diffed, a mode-only
//!   change one file with 0 / 0, a submodule (gitlink) change one file whose text is
//!   `Subproject commit <id>`, i.e. 1 / 1;
//! * no content filters (no CRLF conversion, no textconv): blobs are compared as stored;
//! * `diff.algorithm` in the user's configuration is ignored: the counts are always those of git's
//!   default (Myers), which is what `git log --numstat` prints without such a setting.

use std::cmp::Ordering;
use std::collections::HashMap;

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::objs::Find;
use gix::objs::tree::EntryKind;

use crate::error::{Error, Result};
use crate::xdiff::Scratch;

/// Added lines, deleted lines, changed files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numstat {
    pub additions: u64,
    pub deletions: u64,
    pub files_changed: u64,
}

/// Bytes of "new" blobs a commit's diff keeps for the next commit, whose "old" side they usually
/// are (consecutive commits), so that they are not read and rebuilt from their deltas twice.
const KEEP_BYTES: usize = 2 << 20;
/// Largest blob kept that way.
const KEEP_MAX_BLOB: usize = 256 << 10;
/// A blob buffer that grew past this is shrunk back after use.
const BUFFER_SHRINK_BYTES: usize = 1 << 20;
/// git's `core.bigFileThreshold` default: larger files are binary.
const BIG_FILE_THRESHOLD: u64 = 512 << 20;

/// How the `diff` attribute classifies a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DiffAttr {
    /// not set, or a driver without a `binary` setting: decided by content
    ByContent,
    /// `-diff`, `binary`, or a driver with `diff.<driver>.binary = true`
    Binary,
    /// `diff` set, or a driver with `diff.<driver>.binary = false`: always text
    Text,
}

/// Computes [`Numstat`]s with one repository handle (one per worker).
pub(crate) struct Differ {
    repo: gix::Repository,
    attrs: gix::worktree::Stack,
    attr_outcome: gix::attrs::search::Outcome,
    /// `diff.<driver>.binary`, looked up once per driver name
    drivers: HashMap<Vec<u8>, DiffAttr>,
    big_file_threshold: u64,
    scratch: Scratch,
    /// tree buffers, one per directory depth, reused
    trees: Vec<(Vec<u8>, Vec<u8>)>,
    blob_a: Vec<u8>,
    blob_b: Vec<u8>,
    /// blobs kept from the previous commit, and those of this one
    kept_prev: HashMap<ObjectId, Vec<u8>>,
    kept: HashMap<ObjectId, Vec<u8>>,
    kept_bytes: usize,
    path: Vec<u8>,
    stats: Numstat,
}

#[derive(Clone, Copy)]
struct Entry<'a> {
    name: &'a [u8],
    kind: EntryKind,
    id: &'a gix::oid,
}

impl Differ {
    pub(crate) fn new(repo: gix::Repository) -> Result<Differ> {
        use gix::worktree::stack::state::attributes::Source;
        // As `git log` does: the work tree's .gitattributes files (then the index's) in a
        // repository with a work tree, those of the index / HEAD in a bare one; plus
        // $GIT_DIR/info/attributes and the global and system files.
        let index =
            repo.index_or_load_from_head_or_empty().map_err(Error::git("loading the index for .gitattributes"))?;
        let source = if repo.workdir().is_some() { Source::WorktreeThenIdMapping } else { Source::IdMapping };
        let attrs = repo.attributes_only(&index, source).map_err(Error::git("loading .gitattributes"))?.detach();
        let attr_outcome = attrs.selected_attribute_matches(["diff"]);
        let big_file_threshold = repo
            .config_snapshot()
            .integer("core.bigFileThreshold")
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(BIG_FILE_THRESHOLD);
        Ok(Differ {
            repo,
            attrs,
            attr_outcome,
            drivers: HashMap::new(),
            big_file_threshold,
            scratch: Scratch::default(),
            trees: Vec::new(),
            blob_a: Vec::new(),
            blob_b: Vec::new(),
            kept_prev: HashMap::new(),
            kept: HashMap::new(),
            kept_bytes: 0,
            path: Vec::new(),
            stats: Numstat::default(),
        })
    }

    pub(crate) fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// Diffs `parent_tree` (the empty tree when `None`) against `tree`.
    pub(crate) fn numstat(&mut self, parent_tree: Option<ObjectId>, tree: ObjectId) -> Result<Numstat> {
        self.stats = Numstat::default();
        if parent_tree == Some(tree) {
            return Ok(self.stats);
        }
        self.path.clear();
        let result = self.diff_trees(0, parent_tree.as_deref(), Some(&tree));
        // This commit's new blobs are what its child (usually the next commit) starts from.
        self.kept_prev = std::mem::take(&mut self.kept);
        self.kept_bytes = 0;
        result.map(|()| self.stats)
    }

    fn load_tree(&self, id: &gix::oid, buf: &mut Vec<u8>) -> Result<()> {
        match self.repo.objects.try_find(id, buf) {
            Ok(Some(data)) if data.kind == gix::object::Kind::Tree => Ok(()),
            Ok(Some(_)) => Err(Error::MalformedObject { sha: id.to_string() }),
            Ok(None) => Err(Error::Git { context: format!("reading tree {id}"), source: "object not found".into() }),
            Err(e) => Err(Error::git(format!("reading tree {id}"))(e)),
        }
    }

    /// Merge-joins two trees in git's order; `depth` selects the reusable buffers.
    fn diff_trees(&mut self, depth: usize, old: Option<&gix::oid>, new: Option<&gix::oid>) -> Result<()> {
        if self.trees.len() <= depth {
            self.trees.resize_with(depth + 1, Default::default);
        }
        let (mut old_buf, mut new_buf) = std::mem::take(&mut self.trees[depth]);
        old_buf.clear();
        new_buf.clear();
        let result = (|| {
            if let Some(id) = old {
                self.load_tree(id, &mut old_buf)?;
            }
            if let Some(id) = new {
                self.load_tree(id, &mut new_buf)?;
            }
            let hash = self.repo.object_hash();
            let mut olds = gix::objs::TreeRefIter::from_bytes(&old_buf, hash).peekable();
            let mut news = gix::objs::TreeRefIter::from_bytes(&new_buf, hash).peekable();
            let malformed = |id: Option<&gix::oid>| Error::MalformedObject {
                sha: id.map(|id| id.to_hex().to_string()).unwrap_or_default(),
            };
            loop {
                let a = match olds.peek() {
                    Some(Ok(e)) => Some(Entry { name: e.filename.as_bytes(), kind: e.mode.kind(), id: e.oid }),
                    Some(Err(_)) => return Err(malformed(old)),
                    None => None,
                };
                let b = match news.peek() {
                    Some(Ok(e)) => Some(Entry { name: e.filename.as_bytes(), kind: e.mode.kind(), id: e.oid }),
                    Some(Err(_)) => return Err(malformed(new)),
                    None => None,
                };
                match (a, b) {
                    (None, None) => break,
                    (Some(a), None) => {
                        olds.next();
                        self.side(depth, a, true)?;
                    }
                    (None, Some(b)) => {
                        news.next();
                        self.side(depth, b, false)?;
                    }
                    (Some(a), Some(b)) => match git_order(&a, &b) {
                        Ordering::Less => {
                            olds.next();
                            self.side(depth, a, true)?;
                        }
                        Ordering::Greater => {
                            news.next();
                            self.side(depth, b, false)?;
                        }
                        Ordering::Equal => {
                            olds.next();
                            news.next();
                            if a.id == b.id && a.kind == b.kind {
                                continue;
                            }
                            let len = self.push_path(a.name);
                            let r = if a.kind == EntryKind::Tree {
                                self.diff_trees(depth + 1, Some(a.id), Some(b.id))
                            } else {
                                self.file(Some((a.kind, a.id)), Some((b.kind, b.id)))
                            };
                            self.path.truncate(len);
                            r?;
                        }
                    },
                }
            }
            Ok(())
        })();
        self.trees[depth] = (old_buf, new_buf);
        result
    }

    /// An entry only on one side: a deleted (`old`) or added file, or every file of such a tree.
    fn side(&mut self, depth: usize, e: Entry<'_>, old: bool) -> Result<()> {
        let len = self.push_path(e.name);
        let r = if e.kind == EntryKind::Tree {
            if old {
                self.diff_trees(depth + 1, Some(e.id), None)
            } else {
                self.diff_trees(depth + 1, None, Some(e.id))
            }
        } else if old {
            self.file(Some((e.kind, e.id)), None)
        } else {
            self.file(None, Some((e.kind, e.id)))
        };
        self.path.truncate(len);
        r
    }

    fn push_path(&mut self, name: &[u8]) -> usize {
        let len = self.path.len();
        if len > 0 {
            self.path.push(b'/');
        }
        self.path.extend_from_slice(name);
        len
    }

    /// One changed file (blob, symlink or gitlink on either side).
    fn file(&mut self, old: Option<(EntryKind, &gix::oid)>, new: Option<(EntryKind, &gix::oid)>) -> Result<()> {
        self.stats.files_changed += 1;
        let kind = new.or(old).map(|(k, _)| k).expect("one side exists");
        let attr = if kind == EntryKind::Commit { DiffAttr::ByContent } else { self.diff_attr(kind)? };
        if attr == DiffAttr::Binary {
            return Ok(());
        }
        let mut a = std::mem::take(&mut self.blob_a);
        let mut b = std::mem::take(&mut self.blob_b);
        let result = (|| {
            self.side_text(old, &mut a)?;
            self.side_text(new, &mut b)?;
            if attr == DiffAttr::Text || !(self.is_binary(&a) || self.is_binary(&b)) {
                let (added, deleted) = self.scratch.line_counts(&a, &b);
                self.stats.additions += added;
                self.stats.deletions += deleted;
            }
            if let Some((k, id)) = new
                && k != EntryKind::Commit
                && b.len() <= KEEP_MAX_BLOB
                && self.kept_bytes + b.len() <= KEEP_BYTES
            {
                self.kept_bytes += b.len();
                self.kept.insert(id.to_owned(), b.clone());
            }
            Ok(())
        })();
        for buf in [&mut a, &mut b] {
            if buf.capacity() > BUFFER_SHRINK_BYTES {
                buf.clear();
                buf.shrink_to(BUFFER_SHRINK_BYTES);
            }
        }
        self.blob_a = a;
        self.blob_b = b;
        result
    }

    /// The `diff` attribute of the current path, as git's userdiff reads it.
    fn diff_attr(&mut self, kind: EntryKind) -> Result<DiffAttr> {
        use gix::attrs::StateRef;
        let mode = match kind {
            EntryKind::Link => gix::index::entry::Mode::SYMLINK,
            EntryKind::BlobExecutable => gix::index::entry::Mode::FILE_EXECUTABLE,
            _ => gix::index::entry::Mode::FILE,
        };
        let path = BStr::new(&self.path);
        let platform = self
            .attrs
            .at_path(path, Some(mode), &self.repo.objects)
            .map_err(Error::git(format!("reading attributes of {path}")))?;
        platform.matching_attributes(&mut self.attr_outcome);
        let state = self.attr_outcome.iter_selected().next().map(|m| m.assignment.state);
        Ok(match state {
            Some(StateRef::Unset) => DiffAttr::Binary,
            Some(StateRef::Set) => DiffAttr::Text,
            Some(StateRef::Value(driver)) => {
                let name = driver.as_bstr().to_vec();
                if let Some(&known) = self.drivers.get(&name) {
                    known
                } else {
                    let key = format!("diff.{}.binary", name.as_bstr());
                    let attr = match self.repo.config_snapshot().boolean(key.as_str()) {
                        Some(true) => DiffAttr::Binary,
                        // git: a driver's `binary = false` forces text, an unset one decides by content
                        Some(false) => DiffAttr::Text,
                        None => DiffAttr::ByContent,
                    };
                    self.drivers.insert(name, attr);
                    attr
                }
            }
            Some(StateRef::Unspecified) | None => DiffAttr::ByContent,
        })
    }

    /// The text git diffs for one side: nothing when absent, `Subproject commit <id>\n` for a
    /// submodule, else the blob (re-used from the previous commit when it has it).
    fn side_text(&mut self, side: Option<(EntryKind, &gix::oid)>, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        match side {
            None => {}
            Some((EntryKind::Commit, id)) => out.extend_from_slice(format!("Subproject commit {id}\n").as_bytes()),
            Some((_, id)) => {
                if let Some(kept) = self.kept_prev.get(id) {
                    out.extend_from_slice(kept);
                    return Ok(());
                }
                match self.repo.objects.try_find(id, out) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(Error::Git {
                            context: format!("reading blob {id}"),
                            source: "object not found".into(),
                        });
                    }
                    Err(e) => return Err(Error::git(format!("reading blob {id}"))(e)),
                }
            }
        }
        Ok(())
    }

    fn is_binary(&self, data: &[u8]) -> bool {
        data.len() as u64 > self.big_file_threshold || data[..data.len().min(8000)].contains(&0)
    }
}

/// git's tree order: names compared bytewise, a tree as if its name ended with `/`.
fn git_order(a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
    fn key<'a>(e: &Entry<'a>) -> impl Iterator<Item = u8> + 'a {
        e.name.iter().copied().chain((e.kind == EntryKind::Tree).then_some(b'/'))
    }
    key(a).cmp(key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &'static str, tree: bool) -> Entry<'static> {
        static NULL: std::sync::LazyLock<ObjectId> = std::sync::LazyLock::new(|| ObjectId::null(gix::hash::Kind::Sha1));
        Entry { name: name.as_bytes(), kind: if tree { EntryKind::Tree } else { EntryKind::Blob }, id: &NULL }
    }

    #[test]
    fn orders_like_git() {
        // "a" (file) < "a-b" < "a" (tree, as "a/") < "a0"
        assert_eq!(git_order(&e("a", false), &e("a-b", false)), Ordering::Less);
        assert_eq!(git_order(&e("a-b", false), &e("a", true)), Ordering::Less);
        assert_eq!(git_order(&e("a", true), &e("a0", false)), Ordering::Less);
        assert_eq!(git_order(&e("a", false), &e("a", true)), Ordering::Less);
        assert_eq!(git_order(&e("a", true), &e("a", true)), Ordering::Equal);
        assert_eq!(git_order(&e("a", false), &e("a", false)), Ordering::Equal);
        assert_eq!(git_order(&e("ab", false), &e("a", true)), Ordering::Greater);
    }

    #[test]
    fn gitlink_text() {
        assert_eq!(crate::xdiff::count_lines(b"Subproject commit 0123\n"), 1);
    }
}
