#!/usr/bin/env python3
"""Writes a `git fast-import` stream of a synthetic but realistic history (used by bench/git-scan.sh).

    python3 bench/git-history.py COMMITS [SEED] | git fast-import --quiet

Starts with ~200 source-like files (20 to 3,000 lines) in a few directories, then each commit edits
1-4 files with small hunks (insertions, deletions, modified lines); now and then a file is added,
deleted or renamed (with edits), a binary file (NUL bytes) is added, changed or deleted, a mode
changes, or the message is empty / multi-line / Latin-1. Every ~60 commits a short feature branch
is merged back with a merge commit. Authors, e-mails and UTC offsets vary. Deterministic for a seed.
"""
import random
import sys

commits = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 42)
out = sys.stdout.buffer

WORDS = ("self value result items config request response error index count buffer name path "
         "state cache token user repo commit handle options client server context data key len").split()
AUTHORS = [("Alice Developer", "Alice@Example.com"), ("Bob", "bob@example.org"), ("Chloé Martin", "chloe@example.fr"),
           ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com"), ("Dan O'Neil", "dan@example.com")]
OFFSETS = ["+0000", "+0100", "+0200", "-0500", "-0800", "+0530", "+0900"]
DIRS = ["src", "src/http", "src/db", "src/util", "tests", "docs", "scripts"]


def code_line():
    r = rng.random()
    ind = "    " * rng.choice([0, 1, 1, 2, 2, 3])
    if r < 0.12:
        return ""
    if r < 0.22:
        return ind + "}"
    if r < 0.30:
        return ind + "// " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
    if r < 0.45:
        return ind + "if %s.%s() {" % (rng.choice(WORDS), rng.choice(WORDS))
    if r < 0.60:
        return ind + "return %s;" % rng.choice(WORDS)
    return ind + "let %s = %s(%s, %d);" % (rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS), rng.randint(0, 999))


def new_file():
    n = int(min(3000, max(20, rng.lognormvariate(5.3, 0.9))))
    return [code_line() for _ in range(n)]


def blob(lines):
    return ("\n".join(lines) + "\n").encode()


def binary():
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1000, 30000))) + b"\0"


def data(b):
    out.write(b"data %d\n" % len(b))
    out.write(b)
    out.write(b"\n")


def edit(lines):
    for _ in range(rng.randint(1, 3)):
        p = rng.randint(0, len(lines))
        r = rng.random()
        if r < 0.4:
            lines[p:p] = [code_line() for _ in range(rng.randint(1, 20))]
        elif r < 0.6 and lines:
            del lines[p:p + rng.randint(1, 10)]
        else:
            for i in range(p, min(len(lines), p + rng.randint(1, 5))):
                lines[i] = code_line()


files = {}
for d in DIRS:
    for i in range(rng.randint(20, 40)):
        files["%s/%s_%d.rs" % (d, rng.choice(WORDS), i)] = new_file()
binaries = {}
executables = set()
t = 1_600_000_000
mark = 0
main_mark = None
feature = None  # (mark, {path: lines}) of an open feature branch


def header(ref, message, parent, merge=None):
    global mark, t
    mark += 1
    t += rng.randint(60, 20000)
    name, email = rng.choice(AUTHORS)
    tz = rng.choice(OFFSETS)
    out.write(b"commit %s\nmark :%d\n" % (ref, mark))
    out.write(("author %s <%s> %d %s\n" % (name, email, t - rng.randint(0, 5000), tz)).encode())
    out.write(("committer %s <%s> %d %s\n" % (name, email, t, tz)).encode())
    data(message)
    if parent is not None:
        out.write(b"from :%d\n" % parent)
    if merge is not None:
        out.write(b"merge :%d\n" % merge)
    return mark


def message(i):
    r = rng.random()
    title = "%s %s %s (#%d)" % (rng.choice(["Fix", "Add", "Refactor", "Update", "Remove", "wip"]),
                                rng.choice(WORDS), rng.choice(WORDS), i)
    if r < 0.01:
        return b""
    if r < 0.02:
        return ("Caf\xe9 %d: r\xe9sum\xe9" % i).encode("latin-1")  # not UTF-8, no encoding header
    if r < 0.35:
        body = "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(rng.randint(1, 6)))
        return ("%s\n\n%s\n" % (title, body)).encode()
    return (title + "\n").encode()


for i in range(commits):
    if feature is None and i % 60 == 30:
        feature = (main_mark, {})
    if feature is not None and i % 60 == 40:
        # merge the feature branch: the merge brings its files into main
        fmark, ffiles = feature
        main_mark = header(b"refs/heads/main", b"Merge branch 'feature-%d'\n" % i, main_mark, fmark)
        for path, lines in ffiles.items():
            files[path] = lines
            out.write(b"M 100644 inline %s\n" % path.encode())
            data(blob(lines))
        out.write(b"\n")
        feature = None
        continue
    on_feature = feature is not None and rng.random() < 0.5
    if on_feature:
        fmark, ffiles = feature
        m = header(b"refs/heads/feature", message(i), fmark)
        path = "src/feature_%d_%d.rs" % (i // 60, rng.randint(0, 2))
        lines = ffiles.setdefault(path, new_file())
        edit(lines)
        out.write(b"M 100644 inline %s\n" % path.encode())
        data(blob(lines))
        out.write(b"\n")
        feature = (m, ffiles)
        continue
    main_mark = header(b"refs/heads/main", message(i), main_mark)
    r = rng.random()
    if r < 0.03:
        path = "%s/%s_new_%d.rs" % (rng.choice(DIRS), rng.choice(WORDS), i)
        files[path] = new_file()
        out.write(b"M 100644 inline %s\n" % path.encode())
        data(blob(files[path]))
    elif r < 0.04 and len(files) > 50:
        path = rng.choice(sorted(files))
        del files[path]
        out.write(b"D %s\n" % path.encode())
    elif r < 0.05:
        old = rng.choice(sorted(files))
        new = "%s/%s_moved_%d.rs" % (rng.choice(DIRS), rng.choice(WORDS), i)
        lines = files.pop(old)
        edit(lines)
        files[new] = lines
        out.write(b"D %s\n" % old.encode())
        out.write(b"M 100644 inline %s\n" % new.encode())
        data(blob(lines))
    elif r < 0.07:
        path = "assets/blob_%d.bin" % rng.randint(0, 15)
        if path in binaries and rng.random() < 0.2:
            del binaries[path]
            out.write(b"D %s\n" % path.encode())
        else:
            binaries[path] = True
            out.write(b"M 100644 inline %s\n" % path.encode())
            data(binary())
    elif r < 0.075:
        path = rng.choice(sorted(files))
        mode = b"100644" if path in executables else b"100755"
        executables.symmetric_difference_update([path])
        out.write(b"M %s inline %s\n" % (mode, path.encode()))
        data(blob(files[path]))
    if r >= 0.01:  # most commits also edit a few files
        for path in rng.sample(sorted(files), rng.randint(1, 4)):
            edit(files[path])
            mode = b"100755" if path in executables else b"100644"
            out.write(b"M %s inline %s\n" % (mode, path.encode()))
            data(blob(files[path]))
    out.write(b"\n")
