//! A throw-away repository built with the real `git` CLI, and git's own answers to compare with.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Repo {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    clock: i64,
    n: usize,
}

const OFFSETS: [&str; 5] = ["+0200", "-0700", "+0000", "+0530", "-0330"];

/// A `git` command isolated from the machine's configuration.
pub fn git_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", cwd)
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .args(["-c", "user.name=Test User", "-c", "user.email=Test.User@Example.com"])
        .args(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", "-c", "protocol.file.allow=always"]);
    cmd
}

pub fn run(mut cmd: Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().expect("running git");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

impl Repo {
    pub fn new(branch: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        std::fs::create_dir(&path).unwrap();
        let repo = Repo { _dir: dir, path, clock: 1_700_000_000, n: 0 };
        repo.git(&["init", "-q", "-b", branch]);
        repo
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn git(&self, args: &[&str]) -> Vec<u8> {
        let mut cmd = git_cmd(&self.path);
        cmd.args(args);
        run(cmd)
    }

    pub fn git_str(&self, args: &[&str]) -> String {
        String::from_utf8(self.git(args)).unwrap().trim().to_owned()
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        self.git(&["rm", "-q", "-r", rel]);
    }

    /// `git add -A && git commit` with deterministic dates in varying UTC offsets.
    pub fn commit(&mut self, message: &str) -> String {
        self.commit_with(message.as_bytes(), &[], &[], &[])
    }

    /// Commits with the message read from a file (raw bytes), extra `git -c` settings, extra
    /// `git commit` arguments and environment.
    pub fn commit_with(&mut self, message: &[u8], config: &[&str], args: &[&str], env: &[(&str, &OsStr)]) -> String {
        self.git(&["add", "-A"]);
        self.commit_staged(message, config, args, env)
    }

    /// Commits the index as it is (no `git add -A`).
    pub fn commit_staged(&mut self, message: &[u8], config: &[&str], args: &[&str], env: &[(&str, &OsStr)]) -> String {
        let msg_file = self.dir().join(format!("msg-{}", self.n));
        std::fs::write(&msg_file, message).unwrap();
        let mut cmd = git_cmd(&self.path);
        self.dates(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        for c in config {
            cmd.args(["-c", c]);
        }
        cmd.args(["commit", "-q", "--allow-empty", "--allow-empty-message", "--cleanup=verbatim", "-F"])
            .arg(&msg_file)
            .args(args);
        run(cmd);
        self.head()
    }

    pub fn dates(&mut self, cmd: &mut Command) {
        self.n += 1;
        self.clock += 3_600 + (self.n as i64 * 37) % 1000;
        let off = OFFSETS[self.n % OFFSETS.len()];
        cmd.env("GIT_AUTHOR_DATE", format!("{} {off}", self.clock - 120))
            .env("GIT_COMMITTER_DATE", format!("{} {off}", self.clock));
    }

    pub fn head(&self) -> String {
        self.git_str(&["rev-parse", "HEAD"])
    }
}

/// What git itself says about a commit.
#[derive(Debug, Clone, Default)]
pub struct GitCommit {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub author_date: String,
    pub committer_name: String,
    pub committer_email: String,
    pub committer_date: String,
    pub parents: usize,
    pub raw_message: String,
    pub additions: u64,
    pub deletions: u64,
    pub files_changed: u64,
}

/// `git log` for `range` (in `cwd`): metadata with `--format`, line counts with
/// `--numstat --no-renames --diff-merges=first-parent` (the reference this crate matches).
pub fn git_log(cwd: &Path, range: &str) -> HashMap<String, GitCommit> {
    let mut cmd = git_cmd(cwd);
    cmd.args(["log", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%P%x1f%B%x1e", range]);
    let raw = run(cmd);
    let mut out = HashMap::new();
    for rec in raw.split(|&b| b == 0x1e) {
        let rec = rec.strip_prefix(b"\n").unwrap_or(rec);
        if rec.is_empty() {
            continue;
        }
        let f: Vec<String> = rec.split(|&b| b == 0x1f).map(|x| String::from_utf8_lossy(x).into_owned()).collect();
        assert_eq!(f.len(), 9, "unexpected git log record {f:?}");
        let c = GitCommit {
            sha: f[0].clone(),
            author_name: f[1].clone(),
            author_email: f[2].clone(),
            author_date: f[3].clone(),
            committer_name: f[4].clone(),
            committer_email: f[5].clone(),
            committer_date: f[6].clone(),
            parents: f[7].split_whitespace().count(),
            raw_message: f[8].clone(),
            ..Default::default()
        };
        out.insert(c.sha.clone(), c);
    }

    let mut cmd = git_cmd(cwd);
    cmd.args([
        "log",
        "--numstat",
        "--no-renames",
        "--diff-merges=first-parent",
        "--no-textconv",
        "--format=@%H",
        range,
    ]);
    let raw = String::from_utf8(run(cmd)).unwrap();
    let mut current: Option<String> = None;
    for line in raw.lines() {
        if let Some(sha) = line.strip_prefix('@') {
            current = Some(sha.to_owned());
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let c = out.get_mut(current.as_ref().unwrap()).unwrap();
        let mut cols = line.splitn(3, '\t');
        let (a, d) = (cols.next().unwrap(), cols.next().unwrap());
        c.files_changed += 1;
        if a != "-" {
            c.additions += a.parse::<u64>().unwrap();
            c.deletions += d.parse::<u64>().unwrap();
        }
    }
    out
}

pub fn parse_git_date(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("git date {s:?}: {e}"))
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn bytes(s: &[u8]) -> &OsStr {
    OsStr::from_bytes(s)
}
