//! The records of a generated repository against what `git` itself prints.

mod common;

use std::collections::{HashMap, HashSet};

use common::{GitCommit, Repo, Rng, bytes, git_cmd, git_log, parse_git_date, run};
use recap_git::{CommitRecord, Error, WalkOptions};

/// A history with every case the issue lists, plus submodules, symlinks, type changes,
/// attributes, a file that becomes a directory and a commit git itself would not write.
fn build_corpus() -> (Repo, HashMap<&'static str, String>) {
    let mut r = Repo::new("main");
    let mut named = HashMap::new();

    // root: text, CRLF text, an executable script
    r.write("README.md", "# Demo\n\nSome text.\n");
    r.write("src/lib.rs", (1..=40).map(|i| format!("fn f{i}() {{}}\n")).collect::<String>());
    r.write("windows.txt", "line one\r\nline two\r\nline three\r\n");
    r.write("run.sh", "#!/bin/sh\necho hi\n");
    named.insert("root", r.commit("Initial commit\n\nWith a body.\n"));

    // normal edits
    r.write("README.md", "# Demo\n\nSome better text.\nAnd more.\n");
    r.write(
        "src/lib.rs",
        (1..=40)
            .map(|i| if i % 7 == 0 { format!("fn g{i}() {{}}\n") } else { format!("fn f{i}() {{}}\n") })
            .collect::<String>(),
    );
    named.insert("edits", r.commit("Edit files"));

    // CRLF edits: one line changed, one line loses its CR
    r.write("windows.txt", "line one\r\nline 2\r\nline three\n");
    named.insert("crlf", r.commit("CRLF edits\r\n\r\nbody with CRLF\r\n"));

    // rename with edits (a deletion plus an addition without rename detection)
    r.git(&["mv", "src/lib.rs", "src/core.rs"]);
    let mut moved = std::fs::read_to_string(r.path.join("src/core.rs")).unwrap();
    moved.push_str("fn added_after_move() {}\n");
    r.write("src/core.rs", moved);
    named.insert("rename", r.commit("Rename lib.rs to core.rs and edit it"));

    // binary: add, modify, delete
    let mut blob: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    blob[10] = 0;
    r.write("assets/logo.bin", &blob);
    named.insert("binary-add", r.commit("Add a binary"));
    blob[100] ^= 0xff;
    blob.extend_from_slice(b"\0tail");
    r.write("assets/logo.bin", &blob);
    r.write("README.md", "# Demo\n\nSome better text.\nAnd more.\nEven more.\n");
    named.insert("binary-modify", r.commit("Modify the binary and the readme"));
    // a text file that becomes binary (NUL after the first line): counts as binary, 0 / 0
    r.write("notes.txt", "plain\n");
    r.commit("Add notes");
    r.write("notes.txt", "plain\n\0binary now\n");
    named.insert("text-to-binary", r.commit("Notes become binary"));
    r.remove("assets/logo.bin");
    named.insert("binary-delete", r.commit("Delete the binary"));

    // a NUL byte after the first 8000 bytes: still text for git
    let mut late = "x\n".repeat(4500).into_bytes();
    late.extend_from_slice(b"\0late nul\n");
    r.write("late-nul.txt", &late);
    named.insert("late-nul", r.commit("NUL after 8000 bytes"));

    // a merge whose result differs from its first parent
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("feature.txt", "feature line 1\nfeature line 2\n");
    r.commit("Feature work");
    r.write("README.md", "# Demo\n\nSome better text.\nAnd more.\nEven more.\nFrom feature.\n");
    r.commit("Feature edits the readme");
    r.git(&["checkout", "-q", "main"]);
    r.write("main-only.txt", "main\n");
    r.commit("Main moves on");
    {
        let mut cmd = git_cmd(&r.path);
        r.dates(&mut cmd);
        cmd.args(["merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature"]);
        run(cmd);
    }
    named.insert("merge", r.head());

    // an empty commit, and one with an empty message
    named.insert("empty", r.commit_with(b"Empty commit\n", &[], &[], &[]));
    r.write("main-only.txt", "main\nmore\n");
    named.insert("empty-message", r.commit(""));

    // non-UTF-8: Latin-1 with an encoding header (author name too), and raw bytes without one
    named.insert(
        "latin1",
        r.commit_with(
            b"Caf\xe9 r\xe9sum\xe9\n\nD\xe9tails \xe0 suivre.\n",
            &["i18n.commitEncoding=ISO-8859-1"],
            &[],
            &[("GIT_AUTHOR_NAME", bytes(b"Jos\xe9 Garc\xeda")), ("GIT_AUTHOR_EMAIL", bytes(b"jose@example.es"))],
        ),
    );
    // (`git commit` would re-encode invalid bytes as Latin-1, so this one is written by hand)
    r.write("main-only.txt", "main\nmore\nand more\n");
    r.commit("Prepare a tree");
    named.insert(
        "invalid-utf8",
        literal_commit(&r, b"author A <a@example.com> 1700100000 +0100\ncommitter A <a@example.com> 1700100000 +0100\n\nBad bytes \xff\xfe\n"),
    );

    // a deleted file, a mode change, a long multi-line message
    r.remove("feature.txt");
    named.insert("delete", r.commit("\n\n  Delete feature.txt  \n\n\n"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(r.path.join("README.md"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    named.insert("mode", r.commit_with(format!("{}\nsecond line\n", "T".repeat(600)).as_bytes(), &[], &[], &[]));

    // symlink, then a file that becomes a symlink (type change)
    std::os::unix::fs::symlink("README.md", r.path.join("link")).unwrap();
    named.insert("symlink", r.commit("Add a symlink"));
    std::fs::remove_file(r.path.join("run.sh")).unwrap();
    std::os::unix::fs::symlink("README.md", r.path.join("run.sh")).unwrap();
    named.insert("typechange", r.commit("run.sh becomes a symlink"));

    // a file that becomes a directory
    r.write("thing", "i am a file\n");
    r.commit("Add thing");
    r.remove("thing");
    r.write("thing/inside.txt", "now a directory\nwith two lines\n");
    named.insert("file-to-dir", r.commit("thing becomes a directory"));

    // submodule (gitlink) added, moved, removed
    let sub1 = r.head();
    let sub2 = named["merge"].clone();
    r.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{sub1},vendor/sub")]);
    named.insert("gitlink-add", r.commit_staged(b"Add a submodule\n", &[], &[], &[]));
    r.git(&["update-index", "--cacheinfo", &format!("160000,{sub2},vendor/sub")]);
    named.insert("gitlink-move", r.commit_staged(b"Move the submodule\n", &[], &[], &[]));
    r.git(&["update-index", "--force-remove", "vendor/sub"]);
    named.insert("gitlink-remove", r.commit_staged(b"Remove the submodule\n", &[], &[], &[]));

    // attributes: `-diff` makes text binary, `diff` makes a NUL-containing file text
    r.write(".gitattributes", "*.lock -diff\nforced.txt diff\n");
    r.write("deps.lock", "a\nb\nc\n");
    r.write("forced.txt", "one\n\0two\nthree\n");
    named.insert("attributes", r.commit("Attributes"));
    r.write("deps.lock", "a\nB\nc\nd\n");
    r.write("forced.txt", "one\n\0two\nTHREE\nfour\n");
    named.insert("attributes-edit", r.commit("Edit files with attributes"));

    // a large generated file with many similar lines, edited heavily: where Myers implementations
    // disagree with git
    let mut rng = Rng(0x5eed);
    let alphabet = ["}", "", "    x += 1;", "    return x;", "{", "    y = 2;"];
    let mut lines: Vec<&str> = (0..6000).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]).collect();
    r.write("generated.txt", lines.join("\n") + "\n");
    r.commit("Generated file");
    for round in 0..3 {
        for _ in 0..80 {
            let p = rng.below(lines.len() as u64) as usize;
            let k = 1 + rng.below(120) as usize;
            if rng.below(2) == 0 {
                let end = (p + k).min(lines.len());
                lines.drain(p..end);
            } else {
                for _ in 0..k {
                    lines.insert(p, alphabet[rng.below(alphabet.len() as u64) as usize]);
                }
            }
        }
        for l in lines.iter_mut() {
            if rng.below(4) == 0 {
                *l = alphabet[rng.below(alphabet.len() as u64) as usize];
            }
        }
        r.write("generated.txt", lines.join("\n") + "\n");
        named.insert(["generated-1", "generated-2", "generated-3"][round], r.commit("Regenerate"));
    }

    // a commit git would refuse to write: empty name and e-mail, odd time zone
    named.insert(
        "odd-idents",
        literal_commit(
            &r,
            b"author  <> 1700000000 +1400\ncommitter Bot <bot@example.com> 1700000100 -0130\n\nOdd idents\n",
        ),
    );

    (r, named)
}

/// Writes a commit object by hand on top of HEAD (same tree) and moves `main` to it.
/// `idents_and_message` is everything after the `parent` line, as raw bytes.
fn literal_commit(r: &Repo, idents_and_message: &[u8]) -> String {
    let tree = r.git_str(&["rev-parse", "HEAD^{tree}"]);
    let parent = r.head();
    let mut raw = format!("tree {tree}\nparent {parent}\n").into_bytes();
    raw.extend_from_slice(idents_and_message);
    let mut cmd = git_cmd(&r.path);
    cmd.args(["hash-object", "-t", "commit", "-w", "--literally", "--stdin"]);
    let id = {
        use std::io::Write;
        let mut child = cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(&raw).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    r.git(&["update-ref", "refs/heads/main", &id]);
    r.git(&["reset", "-q", "--hard"]);
    id
}

fn expected_title_body(raw: &str) -> (String, Option<String>) {
    let t = raw.trim();
    if t.is_empty() {
        return ("(no message)".into(), None);
    }
    let (first, body) = match t.split_once('\n') {
        Some((a, b)) => (a, Some(b.to_owned())),
        None => (t, None),
    };
    let first = first.strip_suffix('\r').unwrap_or(first);
    (first.chars().take(500).collect(), body)
}

fn or_unknown(s: &str, default: &str) -> String {
    if s.is_empty() { default.into() } else { s.into() }
}

fn assert_matches_git(rec: &CommitRecord, g: &GitCommit, label: &str) {
    let ctx = format!("{label} {}", rec.sha);
    assert_eq!(
        (rec.additions, rec.deletions, rec.files_changed),
        (g.additions, g.deletions, g.files_changed),
        "numstat of {ctx} ({})",
        rec.message_title
    );
    assert_eq!(rec.author_name, or_unknown(&g.author_name, "Unknown"), "{ctx}");
    assert_eq!(rec.author_email, or_unknown(&g.author_email, "unknown@unknown.local"), "{ctx}");
    assert_eq!(rec.committer_name, or_unknown(&g.committer_name, "Unknown"), "{ctx}");
    assert_eq!(rec.committer_email, or_unknown(&g.committer_email, "unknown@unknown.local"), "{ctx}");
    let cd = parse_git_date(&g.committer_date);
    assert_eq!(rec.commit_date, cd, "{ctx}");
    assert_eq!(rec.commit_date.offset(), cd.offset(), "{ctx}");
    let ad = parse_git_date(&g.author_date);
    assert_eq!(rec.author_date, ad, "{ctx}");
    assert_eq!(rec.author_date.offset(), ad.offset(), "{ctx}");
    let (title, body) = expected_title_body(&g.raw_message);
    assert_eq!(rec.message_title, title, "{ctx}");
    assert_eq!(rec.message_body, body, "{ctx}");
    assert_eq!(rec.parent_count as usize, g.parents, "{ctx}");
    assert_eq!(rec.is_merge, g.parents > 1, "{ctx}");
    assert_eq!(rec.sha.len(), 40);
    assert!(rec.sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

fn walk_all(path: &std::path::Path, tip: &str, stop: Option<&str>, options: &WalkOptions) -> Vec<CommitRecord> {
    recap_git::walk_with(path, tip, stop, options).unwrap().map(|r| r.unwrap()).collect()
}

#[test]
fn every_commit_matches_git_log_numstat_and_metadata() {
    let (r, named) = build_corpus();
    let git = git_log(&r.path, "main");
    let records = walk_all(&r.path, "main", None, &WalkOptions { threads: 1, ..Default::default() });
    assert_eq!(records.len(), git.len());
    let label: HashMap<&String, &str> = named.iter().map(|(k, v)| (v, *k)).collect();
    for rec in &records {
        let g = &git[&rec.sha];
        assert_matches_git(rec, g, label.get(&rec.sha).copied().unwrap_or("-"));
    }

    // spot checks on what the cases are about
    let by: HashMap<&str, &CommitRecord> =
        named.iter().map(|(k, sha)| (*k, records.iter().find(|r| &r.sha == sha).unwrap())).collect();
    let stat = |k: &str| (by[k].additions, by[k].deletions, by[k].files_changed);
    assert_eq!(stat("binary-add"), (0, 0, 1));
    assert_eq!(stat("binary-delete"), (0, 0, 1));
    assert_eq!(stat("binary-modify"), (1, 0, 2));
    assert_eq!(stat("text-to-binary"), (0, 0, 1));
    assert_eq!(stat("empty"), (0, 0, 0));
    assert_eq!(stat("mode"), (0, 0, 1));
    assert_eq!(stat("gitlink-add"), (1, 0, 1));
    assert_eq!(stat("gitlink-move"), (1, 1, 1));
    assert_eq!(stat("gitlink-remove"), (0, 1, 1));
    assert_eq!(stat("rename").2, 2, "a rename is a deletion plus an addition");
    assert_eq!(stat("attributes"), (5, 0, 3), ".gitattributes 2 lines + forced.txt 3 lines, deps.lock binary");
    assert_eq!(stat("attributes-edit"), (2, 1, 2));
    assert!(by["merge"].is_merge && by["merge"].parent_count == 2);
    assert_eq!(by["merge"].files_changed, 2, "merge diffed against its first parent");
    assert_eq!(by["latin1"].message_title, "Café résumé");
    assert_eq!(by["latin1"].message_body.as_deref(), Some("\nDétails à suivre."));
    assert_eq!(by["latin1"].author_name, "José García");
    assert_eq!(by["invalid-utf8"].message_title, "Bad bytes \u{FFFD}\u{FFFD}");
    assert_eq!(by["empty-message"].message_title, "(no message)");
    assert_eq!(by["empty-message"].message_body, None);
    assert_eq!(by["delete"].message_title, "Delete feature.txt");
    assert_eq!(by["delete"].message_body, None);
    assert_eq!(by["mode"].message_title, "T".repeat(500));
    assert_eq!(by["mode"].message_body.as_deref(), Some("second line"));
    assert_eq!(by["crlf"].message_title, "CRLF edits");
    assert_eq!(by["odd-idents"].author_name, "Unknown");
    assert_eq!(by["odd-idents"].author_email, "unknown@unknown.local");
    assert_eq!(by["odd-idents"].commit_date.offset().whole_minutes(), -90);
    assert_eq!(by["root"].message_body.as_deref(), Some("\nWith a body."));
    for k in ["generated-1", "generated-2", "generated-3"] {
        assert!(by[k].additions > 500, "{k} is a heavy edit: {:?}", stat(k));
    }
}

#[test]
fn oldest_first_parents_before_children_and_threads_agree() {
    let (r, _) = build_corpus();
    let one = walk_all(&r.path, "main", None, &WalkOptions { threads: 1, ..Default::default() });
    // a pool of 3 workers on chunks of 2 commits: re-ordering is exercised
    let pool = walk_all(&r.path, "main", None, &WalkOptions { threads: 3, chunk: 2, ..Default::default() });
    assert_eq!(one, pool);

    let rev_list: HashSet<String> = r.git_str(&["rev-list", "main"]).lines().map(str::to_owned).collect();
    let walked: HashSet<String> = one.iter().map(|c| c.sha.clone()).collect();
    assert_eq!(walked, rev_list);
    assert_eq!(one.last().unwrap().sha, r.head(), "the tip is last");
    let mut seen = HashSet::new();
    for c in &one {
        for p in r.git_str(&["rev-list", "--parents", "-n", "1", &c.sha]).split_whitespace().skip(1) {
            assert!(seen.contains(p), "parent {p} of {} comes first", c.sha);
        }
        seen.insert(c.sha.clone());
    }
    assert_eq!(recap_git::count(&r.path, "main", None).unwrap(), one.len());

    let walk = recap_git::walk(&r.path, "main", None).unwrap();
    assert_eq!(walk.len(), one.len());
}

#[test]
fn stop_at_is_exclusive_like_a_range() {
    let (r, named) = build_corpus();
    let stop = &named["merge"];
    let recs = walk_all(&r.path, "main", Some(stop), &WalkOptions::default());
    let expected: HashSet<String> =
        r.git_str(&["rev-list", &format!("{stop}..main")]).lines().map(str::to_owned).collect();
    let got: HashSet<String> = recs.iter().map(|c| c.sha.clone()).collect();
    assert_eq!(got, expected);
    assert!(!got.contains(stop));
    assert_eq!(recap_git::count(&r.path, "main", Some(stop)).unwrap(), expected.len());
    // stopping at the tip yields nothing
    assert_eq!(walk_all(&r.path, "main", Some("main"), &WalkOptions::default()).len(), 0);
    // an unknown stop is an error, not an empty walk
    assert!(matches!(
        recap_git::walk(&r.path, "main", Some("0123456789012345678901234567890123456789")),
        Err(Error::RefNotFound(_))
    ));
}

#[test]
fn resolve_ref_falls_back_from_main_to_the_default_branch() {
    let mut r = Repo::new("master");
    r.write("a.txt", "a\n");
    let first = r.commit("first");
    r.write("a.txt", "b\n");
    let second = r.commit("second");
    r.git(&["tag", "-a", "v1", "-m", "release", &first]);

    let main = recap_git::resolve_ref(&r.path, Some("main")).unwrap();
    assert_eq!((main.name.as_str(), main.sha.as_str(), main.fell_back), ("refs/heads/master", second.as_str(), true));
    let none = recap_git::resolve_ref(&r.path, None).unwrap();
    assert_eq!((none.name.as_str(), none.fell_back), ("refs/heads/master", false));
    let master = recap_git::resolve_ref(&r.path, Some("master")).unwrap();
    assert!(!master.fell_back);
    // annotated tag peeled to its commit; revisions and SHAs work too
    let tag = recap_git::resolve_ref(&r.path, Some("v1")).unwrap();
    assert_eq!((tag.name.as_str(), tag.sha.as_str()), ("refs/tags/v1", first.as_str()));
    assert_eq!(recap_git::resolve_ref(&r.path, Some("HEAD~1")).unwrap().sha, first);
    assert_eq!(recap_git::resolve_ref(&r.path, Some(&second)).unwrap().sha, second);
    // only `main` falls back
    assert!(matches!(recap_git::resolve_ref(&r.path, Some("develop")), Err(Error::RefNotFound(_))));

    // `main` exists: no fallback even though HEAD is elsewhere
    r.git(&["branch", "main", &first]);
    let main = recap_git::resolve_ref(&r.path, Some("main")).unwrap();
    assert_eq!((main.name.as_str(), main.sha.as_str(), main.fell_back), ("refs/heads/main", first.as_str(), false));

    // detached HEAD
    r.git(&["checkout", "-q", "--detach", &first]);
    let head = recap_git::resolve_ref(&r.path, None).unwrap();
    assert_eq!((head.name.as_str(), head.sha.as_str()), ("HEAD", first.as_str()));

    // no commits at all
    let empty = Repo::new("main");
    assert!(matches!(recap_git::resolve_ref(&empty.path, None), Err(Error::NoCommits)));
    assert!(matches!(recap_git::resolve_ref(&empty.path, Some("main")), Err(Error::NoCommits)));
    // not a repository
    assert!(matches!(recap_git::resolve_ref(empty.dir(), None), Err(Error::Open { .. })));
}

#[test]
fn bare_and_shallow_clones_match_git_there_too() {
    let (r, _) = build_corpus();
    let base = r.dir();
    let url = format!("file://{}", r.path.display());
    run({
        let mut c = git_cmd(base);
        c.args(["clone", "-q", "--bare", &url, "bare.git"]);
        c
    });
    run({
        let mut c = git_cmd(base);
        c.args(["clone", "-q", "--depth", "4", "--branch", "main", &url, "shallow"]);
        c
    });
    for dir in ["bare.git", "shallow"] {
        let path = base.join(dir);
        let git = git_log(&path, "HEAD");
        let recs = walk_all(&path, "HEAD", None, &WalkOptions::default());
        assert_eq!(recs.len(), git.len(), "{dir}");
        let shallow: HashSet<String> =
            std::fs::read_to_string(path.join(if dir == "shallow" { ".git/shallow" } else { "shallow" }))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
        for rec in &recs {
            let mut g = git[&rec.sha].clone();
            if shallow.contains(&rec.sha) {
                // git shows a shallow boundary without parents (and diffs it against the empty
                // tree, as we do); the record keeps the parents the commit really has.
                assert!(rec.parent_count > 0 && g.parents == 0);
                g.parents = rec.parent_count as usize;
            }
            assert_matches_git(rec, &g, dir);
        }
    }
}

#[test]
fn records_serialise_with_offsets() {
    let mut r = Repo::new("main");
    r.write("a.txt", "a\n");
    r.commit("Title\n\nBody\n");
    let rec = recap_git::walk(&r.path, "main", None).unwrap().next().unwrap().unwrap();
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["message_title"], "Title");
    assert_eq!(json["message_body"], "\nBody");
    assert_eq!(json["additions"], 1);
    assert_eq!(json["files_changed"], 1);
    assert_eq!(json["is_merge"], false);
    assert_eq!(json["parent_count"], 0);
    let date = json["commit_date"].as_str().unwrap();
    assert!(date.ends_with("-07:00"), "{date}");
    assert_eq!(
        json["commit_date"],
        time::OffsetDateTime::format(rec.commit_date, &time::format_description::well_known::Rfc3339).unwrap()
    );
    assert_eq!(json["author_email"], "Test.User@Example.com");
}

/// With a `.mailmap`, authors and committers come out as `git log`'s `%aN <%aE>` / `%cN <%cE>`
/// (mapped by e-mail case-insensitively, and by name and e-mail); without the option, as recorded.
#[test]
fn the_mailmap_gives_canonical_identities_like_git() {
    let mut r = Repo::new("main");
    let people: [(&str, &str); 4] = [
        ("Ada Lovelace", "ada@example.com"),
        ("ada", "ADA@old-laptop.local"),
        ("Bob", "bob@example.com"),
        ("Robert Build", "ci@example.com"),
    ];
    for (i, (name, email)) in people.iter().enumerate() {
        r.write("file.txt", format!("change {i}\n"));
        let env = [
            ("GIT_AUTHOR_NAME", bytes(name.as_bytes())),
            ("GIT_AUTHOR_EMAIL", bytes(email.as_bytes())),
            ("GIT_COMMITTER_NAME", bytes(name.as_bytes())),
            ("GIT_COMMITTER_EMAIL", bytes(email.as_bytes())),
        ];
        r.commit_with(format!("Change {i}").as_bytes(), &[], &[], &env);
    }
    r.write(
        ".mailmap",
        "Ada Lovelace <ada@example.com> <ada@old-laptop.local>\n\
         Bob Builder <bob@example.com>\n\
         Bob Builder <bob@example.com> Robert Build <ci@example.com>\n",
    );
    r.commit("Add a mailmap");
    let tip = r.head();

    let expected = String::from_utf8(r.git(&["log", "--reverse", "--format=%aN|%aE|%cN|%cE"])).unwrap();
    let mapped = walk_all(&r.path, &tip, None, &WalkOptions::default());
    let got: Vec<String> = mapped
        .iter()
        .filter(|c| c.message_title.starts_with("Change"))
        .map(|c| format!("{}|{}|{}|{}", c.author_name, c.author_email, c.committer_name, c.committer_email))
        .collect();
    let expected: Vec<&str> = expected.lines().take(4).collect();
    assert_eq!(got, expected);
    assert_eq!(got[1], "Ada Lovelace|ada@example.com|Ada Lovelace|ada@example.com");
    assert_eq!(got[3], "Bob Builder|bob@example.com|Bob Builder|bob@example.com");

    let raw = walk_all(&r.path, &tip, None, &WalkOptions { mailmap: false, ..WalkOptions::default() });
    assert_eq!((raw[1].author_name.as_str(), raw[1].author_email.as_str()), ("ada", "ADA@old-laptop.local"));

    // A bare clone reads HEAD:.mailmap.
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().join("bare.git");
    run({
        let mut cmd = git_cmd(bare.path());
        cmd.args(["clone", "-q", "--bare"]).arg(&r.path).arg(&bare_path);
        cmd
    });
    let from_bare = walk_all(&bare_path, &tip, None, &WalkOptions::default());
    assert_eq!(from_bare, mapped);
    // Isolated from the user's and the system's configuration (how the server reads), the
    // repository's own mailmap still applies.
    let isolated = WalkOptions { isolated_config: true, ..WalkOptions::default() };
    assert_eq!(walk_all(&bare_path, &tip, None, &isolated), mapped);
    assert_eq!(recap_git::resolve_ref_with(&bare_path, Some("main"), &isolated).unwrap().sha, tip);
}
