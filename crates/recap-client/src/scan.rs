//! `recap push scan PATH`: reads the history exactly as `sync` would and prints totals.

use std::path::Path;

use crate::api::CommitPayload;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanTotals {
    pub branch: String,
    pub commits: u64,
    pub additions: u64,
    pub deletions: u64,
    pub files_changed: u64,
    pub merges: u64,
}

/// Walks the whole branch (`main`, else `branch`, else the default branch) and sums it.
/// Every record goes through the same conversion `sync` sends.
pub fn scan(path: &Path, branch: Option<&str>) -> anyhow::Result<ScanTotals> {
    let resolved = recap_git::resolve_ref(path, Some(branch.unwrap_or("main")))?;
    let mut totals = ScanTotals { branch: resolved.name.clone(), ..Default::default() };
    for record in recap_git::walk(path, &resolved.sha, None)? {
        let c = CommitPayload::from_record(record?);
        totals.commits += 1;
        totals.additions += c.additions;
        totals.deletions += c.deletions;
        totals.files_changed += c.files_changed;
        totals.merges += u64::from(c.is_merge);
    }
    Ok(totals)
}
