//! Scans a repository's history like the push client does and prints what it cost.
//!
//! ```text
//! cargo run --release -p recap-git --example scan -- PATH [--ref REF] [--stop-at SHA] [--threads N] [--chunk N] [--pack-cache-mb N] [--per-commit]
//! ```
//!
//! Prints (to stderr) the ref used, commit count, total additions / deletions / files changed,
//! elapsed wall time, peak resident memory (VmHWM from /proc/self/status) and, at exit, how much
//! of the resident memory is anonymous (heap) and how much is mapped files (pack files). `--per-commit` also
//! prints `<sha> <additions> <deletions> <files_changed>` per commit to stdout, oldest first, for a
//! comparison with `git log --numstat` (bench/git-scan.sh does that).

use std::io::Write;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("scan: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut refname = None;
    let mut stop_at = None;
    let mut per_commit = false;
    let mut options = recap_git::WalkOptions::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ref" => refname = Some(args.next().ok_or("--ref needs a value")?),
            "--stop-at" => stop_at = Some(args.next().ok_or("--stop-at needs a value")?),
            "--threads" => options.threads = args.next().ok_or("--threads needs a value")?.parse()?,
            "--chunk" => options.chunk = args.next().ok_or("--chunk needs a value")?.parse()?,
            "--pack-cache-mb" => {
                options.pack_cache_bytes = args.next().ok_or("--pack-cache-mb needs a value")?.parse::<usize>()? << 20
            }
            "--per-commit" => per_commit = true,
            "-h" | "--help" => {
                eprintln!(
                    "usage: scan PATH [--ref REF] [--stop-at SHA] [--threads N] [--chunk N] [--pack-cache-mb N] [--per-commit]"
                );
                return Ok(());
            }
            _ if path.is_none() => path = Some(arg),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    let path = path.ok_or(
        "usage: scan PATH [--ref REF] [--stop-at SHA] [--threads N] [--chunk N] [--pack-cache-mb N] [--per-commit]",
    )?;

    let started = Instant::now();
    let tip = recap_git::resolve_ref(&path, refname.as_deref())?;
    let walk = recap_git::walk_with(&path, &tip.sha, stop_at.as_deref(), &options)?;
    let total = walk.len();
    let (mut additions, mut deletions, mut files, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for record in walk {
        match record {
            Ok(r) => {
                additions += r.additions;
                deletions += r.deletions;
                files += r.files_changed;
                if per_commit {
                    writeln!(out, "{} {} {} {}", r.sha, r.additions, r.deletions, r.files_changed)?;
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("scan: {e}");
            }
        }
    }
    out.flush()?;
    let elapsed = started.elapsed();
    eprintln!(
        "ref {}{} ({})",
        tip.name,
        if tip.fell_back { " (fallback: main not found)" } else { "" },
        &tip.sha[..12]
    );
    eprintln!("commits {total}  errors {errors}");
    eprintln!("additions {additions}  deletions {deletions}  files_changed {files}");
    eprintln!("elapsed {:.3} s", elapsed.as_secs_f64());
    eprintln!("peak_rss {}", status_field("VmHWM").unwrap_or_else(|| "unknown".into()));
    eprintln!(
        "rss_at_exit anon {} file {}",
        status_field("RssAnon").unwrap_or_default(),
        status_field("RssFile").unwrap_or_default()
    );
    Ok(())
}

/// A field of /proc/self/status, e.g. `VmHWM` (peak resident set size) → "12345 kB".
fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    Some(line[name.len() + 1..].trim().to_owned())
}
