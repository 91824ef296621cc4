//! Line counts of git's default diff (xdiff's Myers with git's heuristics), ported to Rust.
//!
//! `git diff --numstat` counts the lines that xdiff marks as changed. Other Myers implementations
//! (imara-diff, which gix uses, among them) find a minimal or differently-cut edit script on large
//! or repetitive inputs and then disagree with git by up to a factor of two on such files (see the
//! crate's README.md). This module is a line-for-line port of the parts of xdiff that decide
//! *which* lines change — `xdl_prepare_env` (line classes, trimming of the common head and tail,
//! discarding of lines without a match and of multi-match runs) and `xdl_recs_cmp` / `xdl_split`
//! (divide and conquer with git's cost limits and snake heuristics) — from the xdiff that git and
//! libgit2 share (`xdiff/xprepare.c`, `xdiff/xdiffi.c`). Post-processing (`xdl_change_compact`,
//! the indent heuristic) only slides change groups and never changes how many lines change, so it
//! is not needed for counting.
//!
//! Options are git's defaults: no whitespace flags, not `--minimal`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const XDL_MAX_EQLIMIT: i64 = 1024;
const XDL_SIMSCAN_WINDOW: i64 = 100;
const XDL_KPDIS_RUN: i64 = 4;
const XDL_MAX_COST_MIN: i64 = 256;
const XDL_HEUR_MIN_COST: i64 = 256;
const XDL_SNAKE_CNT: i64 = 20;
const XDL_K_HEUR: i64 = 4;
const XDL_LINE_MAX: i64 = i64::MAX;

/// Lines added and deleted between `old` and `new`, as `git diff --numstat` counts them for two
/// text files (git's default algorithm and options).
pub fn line_counts(old: &[u8], new: &[u8]) -> (u64, u64) {
    let mut scratch = Scratch::default();
    scratch.line_counts(old, new)
}

/// Reusable buffers for [`line_counts`]; one per thread keeps allocations out of the hot loop.
#[derive(Default)]
pub struct Scratch {
    /// occurrences of each class in the old (`.0`) and new (`.1`) file
    counts: Vec<(u32, u32)>,
    rec1: Vec<u32>,
    rec2: Vec<u32>,
}

impl Scratch {
    /// See [`line_counts`].
    pub fn line_counts(&mut self, old: &[u8], new: &[u8]) -> (u64, u64) {
        if old == new {
            return (0, 0);
        }
        if old.is_empty() {
            return (count_lines(new), 0);
        }
        if new.is_empty() {
            return (0, count_lines(old));
        }
        self.classify(old, new);
        let (rec1, rec2) = (std::mem::take(&mut self.rec1), std::mem::take(&mut self.rec2));
        let result = diff_classes(&rec1, &rec2, &self.counts);
        self.rec1 = rec1;
        self.rec2 = rec2;
        result
    }

    /// Splits both files into records (lines including their `\n`; a last line without one is a
    /// different record from the same text with one) and gives equal records the same class.
    fn classify(&mut self, old: &[u8], new: &[u8]) {
        self.counts.clear();
        self.rec1.clear();
        self.rec2.clear();
        let guess = (old.len() + new.len()) / 32 + 16;
        let mut classes: HashMap<&[u8], u32, BuildHasherDefault<LineHasher>> =
            HashMap::with_capacity_and_hasher(guess, Default::default());
        for (data, which) in [(old, 0usize), (new, 1usize)] {
            let mut start = 0;
            while start < data.len() {
                let end = match memchr(b'\n', &data[start..]) {
                    Some(i) => start + i + 1,
                    None => data.len(),
                };
                let line = &data[start..end];
                start = end;
                let next = self.counts.len() as u32;
                let class = *classes.entry(line).or_insert(next);
                if class == next {
                    self.counts.push((0, 0));
                }
                let c = &mut self.counts[class as usize];
                if which == 0 {
                    c.0 += 1;
                    self.rec1.push(class);
                } else {
                    c.1 += 1;
                    self.rec2.push(class);
                }
            }
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Lines of a text as git counts them: the `\n`s, plus one for a last line without `\n`.
pub fn count_lines(data: &[u8]) -> u64 {
    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(data.last().is_some_and(|&b| b != b'\n'))
}

/// `xdl_bogosqrt`: the integer square-root approximation xdiff uses for its limits.
fn bogosqrt(mut n: i64) -> i64 {
    let mut i = 1;
    while n > 0 {
        i <<= 1;
        n >>= 2;
    }
    i
}

/// `xdl_prepare_env` (minus the classification done above) + `xdl_do_diff` for Myers; returns
/// (added, deleted).
fn diff_classes(rec1: &[u32], rec2: &[u32], counts: &[(u32, u32)]) -> (u64, u64) {
    let nrec1 = rec1.len() as i64;
    let nrec2 = rec2.len() as i64;

    // xdl_trim_ends
    let lim = nrec1.min(nrec2);
    let mut i = 0;
    while i < lim && rec1[i as usize] == rec2[i as usize] {
        i += 1;
    }
    let dstart = i;
    let lim = lim - i;
    let mut j = 0;
    while j < lim && rec1[(nrec1 - 1 - j) as usize] == rec2[(nrec2 - 1 - j) as usize] {
        j += 1;
    }
    let dend1 = nrec1 - j - 1;
    let dend2 = nrec2 - j - 1;

    // xdl_cleanup_records
    let mut rchg1 = vec![false; rec1.len()];
    let mut rchg2 = vec![false; rec2.len()];
    let (ha1, rindex1) = cleanup(rec1, dstart, dend1, |c| counts[c as usize].1, &mut rchg1);
    let (ha2, rindex2) = cleanup(rec2, dstart, dend2, |c| counts[c as usize].0, &mut rchg2);

    // xdl_do_diff
    let nreff1 = ha1.len() as i64;
    let nreff2 = ha2.len() as i64;
    let ndiags = nreff1 + nreff2 + 3;
    let mut kv = Kv { f: vec![0; ndiags as usize], b: vec![0; ndiags as usize], base: nreff2 + 1 };
    let env = AlgoEnv {
        mxcost: bogosqrt(ndiags).max(XDL_MAX_COST_MIN),
        snake_cnt: XDL_SNAKE_CNT,
        heur_min: XDL_HEUR_MIN_COST,
    };
    let mut dd1 = DiffData { ha: &ha1, rindex: &rindex1, rchg: &mut rchg1 };
    let mut dd2 = DiffData { ha: &ha2, rindex: &rindex2, rchg: &mut rchg2 };
    recs_cmp(&mut dd1, &mut dd2, nreff1, nreff2, &mut kv, &env);

    let added = rchg2.iter().filter(|&&c| c).count() as u64;
    let deleted = rchg1.iter().filter(|&&c| c).count() as u64;
    (added, deleted)
}

/// One side of `xdl_cleanup_records`: lines without a match in the other file are discarded
/// (marked changed at once), lines with many matches are discarded when they sit in a run of
/// discardable lines (`xdl_clean_mmatch`). Returns the classes and real indices of the lines kept.
fn cleanup(
    rec: &[u32],
    dstart: i64,
    dend: i64,
    matches_in_other: impl Fn(u32) -> u32,
    rchg: &mut [bool],
) -> (Vec<u32>, Vec<i64>) {
    let mlim = bogosqrt(rec.len() as i64).min(XDL_MAX_EQLIMIT);
    // dis: 0 = no match, 1 = some matches, 2 = many matches (indexed like `rec`)
    let mut dis = vec![0u8; rec.len() + 1];
    let mut i = dstart;
    while i <= dend {
        let nm = i64::from(matches_in_other(rec[i as usize]));
        dis[i as usize] = if nm == 0 {
            0
        } else if nm >= mlim {
            2
        } else {
            1
        };
        i += 1;
    }
    let mut ha = Vec::new();
    let mut rindex = Vec::new();
    let mut i = dstart;
    while i <= dend {
        let d = dis[i as usize];
        if d == 1 || (d == 2 && !clean_mmatch(&dis, i, dstart, dend)) {
            rindex.push(i);
            ha.push(rec[i as usize]);
        } else {
            rchg[i as usize] = true;
        }
        i += 1;
    }
    (ha, rindex)
}

/// `xdl_clean_mmatch`: whether multi-match line `i` lies in a run that is mostly unmatched lines.
fn clean_mmatch(dis: &[u8], i: i64, mut s: i64, mut e: i64) -> bool {
    if i - s > XDL_SIMSCAN_WINDOW {
        s = i - XDL_SIMSCAN_WINDOW;
    }
    if e - i > XDL_SIMSCAN_WINDOW {
        e = i + XDL_SIMSCAN_WINDOW;
    }
    let (mut rdis0, mut rpdis0) = (0i64, 1i64);
    let mut r = 1;
    while i - r >= s {
        match dis[(i - r) as usize] {
            0 => rdis0 += 1,
            2 => rpdis0 += 1,
            _ => break,
        }
        r += 1;
    }
    if rdis0 == 0 {
        return false;
    }
    let (mut rdis1, mut rpdis1) = (0i64, 1i64);
    let mut r = 1;
    while i + r <= e {
        match dis[(i + r) as usize] {
            0 => rdis1 += 1,
            2 => rpdis1 += 1,
            _ => break,
        }
        r += 1;
    }
    if rdis1 == 0 {
        return false;
    }
    rdis1 += rdis0;
    rpdis1 += rpdis0;
    rpdis1 * XDL_KPDIS_RUN < rpdis1 + rdis1
}

struct DiffData<'a> {
    ha: &'a [u32],
    rindex: &'a [i64],
    rchg: &'a mut [bool],
}

struct AlgoEnv {
    mxcost: i64,
    snake_cnt: i64,
    heur_min: i64,
}

/// The forward and backward K vectors, indexed by diagonal (which may be negative).
struct Kv {
    f: Vec<i64>,
    b: Vec<i64>,
    base: i64,
}

impl Kv {
    #[inline]
    fn f(&self, d: i64) -> i64 {
        self.f[(d + self.base) as usize]
    }
    #[inline]
    fn set_f(&mut self, d: i64, v: i64) {
        self.f[(d + self.base) as usize] = v;
    }
    #[inline]
    fn b(&self, d: i64) -> i64 {
        self.b[(d + self.base) as usize]
    }
    #[inline]
    fn set_b(&mut self, d: i64, v: i64) {
        self.b[(d + self.base) as usize] = v;
    }
}

struct Split {
    i1: i64,
    i2: i64,
    min_lo: bool,
    min_hi: bool,
}

/// `xdl_recs_cmp`, with an explicit stack instead of recursion (same order: low box first).
fn recs_cmp(dd1: &mut DiffData<'_>, dd2: &mut DiffData<'_>, lim1: i64, lim2: i64, kv: &mut Kv, env: &AlgoEnv) {
    let mut stack = vec![(0i64, lim1, 0i64, lim2, false)];
    while let Some((mut off1, mut lim1, mut off2, mut lim2, need_min)) = stack.pop() {
        let (ha1, ha2) = (dd1.ha, dd2.ha);
        while off1 < lim1 && off2 < lim2 && ha1[off1 as usize] == ha2[off2 as usize] {
            off1 += 1;
            off2 += 1;
        }
        while off1 < lim1 && off2 < lim2 && ha1[(lim1 - 1) as usize] == ha2[(lim2 - 1) as usize] {
            lim1 -= 1;
            lim2 -= 1;
        }
        if off1 == lim1 {
            for k in off2..lim2 {
                dd2.rchg[dd2.rindex[k as usize] as usize] = true;
            }
        } else if off2 == lim2 {
            for k in off1..lim1 {
                dd1.rchg[dd1.rindex[k as usize] as usize] = true;
            }
        } else {
            let spl = split(ha1, off1, lim1, ha2, off2, lim2, kv, need_min, env);
            stack.push((spl.i1, lim1, spl.i2, lim2, spl.min_hi));
            stack.push((off1, spl.i1, off2, spl.i2, spl.min_lo));
        }
    }
}

/// `xdl_split`: the middle snake of the box (off1, off2)–(lim1, lim2), or, past git's cost
/// limits, the heuristic cut git would choose.
#[allow(clippy::too_many_arguments)]
fn split(
    ha1: &[u32],
    off1: i64,
    lim1: i64,
    ha2: &[u32],
    off2: i64,
    lim2: i64,
    kv: &mut Kv,
    need_min: bool,
    env: &AlgoEnv,
) -> Split {
    let h1 = |i: i64| ha1[i as usize];
    let h2 = |i: i64| ha2[i as usize];
    let dmin = off1 - lim2;
    let dmax = lim1 - off2;
    let fmid = off1 - off2;
    let bmid = lim1 - lim2;
    let odd = (fmid - bmid) & 1 != 0;
    let (mut fmin, mut fmax) = (fmid, fmid);
    let (mut bmin, mut bmax) = (bmid, bmid);

    kv.set_f(fmid, off1);
    kv.set_b(bmid, lim1);

    let mut ec: i64 = 1;
    loop {
        let mut got_snake = false;

        if fmin > dmin {
            fmin -= 1;
            kv.set_f(fmin - 1, -1);
        } else {
            fmin += 1;
        }
        if fmax < dmax {
            fmax += 1;
            kv.set_f(fmax + 1, -1);
        } else {
            fmax -= 1;
        }

        let mut d = fmax;
        while d >= fmin {
            let mut i1 = if kv.f(d - 1) >= kv.f(d + 1) { kv.f(d - 1) + 1 } else { kv.f(d + 1) };
            let prev1 = i1;
            let mut i2 = i1 - d;
            while i1 < lim1 && i2 < lim2 && h1(i1) == h2(i2) {
                i1 += 1;
                i2 += 1;
            }
            if i1 - prev1 > env.snake_cnt {
                got_snake = true;
            }
            kv.set_f(d, i1);
            if odd && bmin <= d && d <= bmax && kv.b(d) <= i1 {
                return Split { i1, i2, min_lo: true, min_hi: true };
            }
            d -= 2;
        }

        if bmin > dmin {
            bmin -= 1;
            kv.set_b(bmin - 1, XDL_LINE_MAX);
        } else {
            bmin += 1;
        }
        if bmax < dmax {
            bmax += 1;
            kv.set_b(bmax + 1, XDL_LINE_MAX);
        } else {
            bmax -= 1;
        }

        let mut d = bmax;
        while d >= bmin {
            let mut i1 = if kv.b(d - 1) < kv.b(d + 1) { kv.b(d - 1) } else { kv.b(d + 1) - 1 };
            let prev1 = i1;
            let mut i2 = i1 - d;
            while i1 > off1 && i2 > off2 && h1(i1 - 1) == h2(i2 - 1) {
                i1 -= 1;
                i2 -= 1;
            }
            if prev1 - i1 > env.snake_cnt {
                got_snake = true;
            }
            kv.set_b(d, i1);
            if !odd && fmin <= d && d <= fmax && i1 <= kv.f(d) {
                return Split { i1, i2, min_lo: true, min_hi: true };
            }
            d -= 2;
        }

        if need_min {
            ec += 1;
            continue;
        }

        if got_snake && ec > env.heur_min {
            let mut best = 0;
            let mut spl = Split { i1: 0, i2: 0, min_lo: true, min_hi: false };
            let mut d = fmax;
            while d >= fmin {
                let dd = if d > fmid { d - fmid } else { fmid - d };
                let i1 = kv.f(d);
                let i2 = i1 - d;
                let v = (i1 - off1) + (i2 - off2) - dd;
                if v > XDL_K_HEUR * ec
                    && v > best
                    && off1 + env.snake_cnt <= i1
                    && i1 < lim1
                    && off2 + env.snake_cnt <= i2
                    && i2 < lim2
                {
                    let mut k = 1;
                    while h1(i1 - k) == h2(i2 - k) {
                        if k == env.snake_cnt {
                            best = v;
                            spl.i1 = i1;
                            spl.i2 = i2;
                            break;
                        }
                        k += 1;
                    }
                }
                d -= 2;
            }
            if best > 0 {
                return spl;
            }

            let mut best = 0;
            let mut spl = Split { i1: 0, i2: 0, min_lo: false, min_hi: true };
            let mut d = bmax;
            while d >= bmin {
                let dd = if d > bmid { d - bmid } else { bmid - d };
                let i1 = kv.b(d);
                let i2 = i1 - d;
                let v = (lim1 - i1) + (lim2 - i2) - dd;
                if v > XDL_K_HEUR * ec
                    && v > best
                    && off1 < i1
                    && i1 <= lim1 - env.snake_cnt
                    && off2 < i2
                    && i2 <= lim2 - env.snake_cnt
                {
                    let mut k = 0;
                    while h1(i1 + k) == h2(i2 + k) {
                        if k == env.snake_cnt - 1 {
                            best = v;
                            spl.i1 = i1;
                            spl.i2 = i2;
                            break;
                        }
                        k += 1;
                    }
                }
                d -= 2;
            }
            if best > 0 {
                return spl;
            }
        }

        if ec >= env.mxcost {
            let (mut fbest, mut fbest1) = (-1i64, -1i64);
            let mut d = fmax;
            while d >= fmin {
                let mut i1 = kv.f(d).min(lim1);
                let mut i2 = i1 - d;
                if lim2 < i2 {
                    i1 = lim2 + d;
                    i2 = lim2;
                }
                if fbest < i1 + i2 {
                    fbest = i1 + i2;
                    fbest1 = i1;
                }
                d -= 2;
            }
            let (mut bbest, mut bbest1) = (XDL_LINE_MAX, XDL_LINE_MAX);
            let mut d = bmax;
            while d >= bmin {
                let mut i1 = off1.max(kv.b(d));
                let mut i2 = i1 - d;
                if i2 < off2 {
                    i1 = off2 + d;
                    i2 = off2;
                }
                if i1 + i2 < bbest {
                    bbest = i1 + i2;
                    bbest1 = i1;
                }
                d -= 2;
            }
            return if (lim1 + lim2) - bbest < fbest - (off1 + off2) {
                Split { i1: fbest1, i2: fbest - fbest1, min_lo: true, min_hi: false }
            } else {
                Split { i1: bbest1, i2: bbest - bbest1, min_lo: false, min_hi: true }
            };
        }
        ec += 1;
    }
}

/// FxHash-style hasher for line classification (lines are hashed once per diff; SipHash would
/// cost more than the diff itself on typical files).
#[derive(Default, Clone, Copy)]
struct LineHasher(u64);

impl Hasher for LineHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h.rotate_left(5) ^ v).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
        }
        self.0 = h;
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_cases() {
        assert_eq!(line_counts(b"", b""), (0, 0));
        assert_eq!(line_counts(b"", b"a\nb\n"), (2, 0));
        assert_eq!(line_counts(b"a\nb", b""), (0, 2));
        assert_eq!(line_counts(b"a\nb\nc\n", b"a\nb\nc\n"), (0, 0));
        assert_eq!(line_counts(b"a\nb\nc\n", b"a\nB\nc\n"), (1, 1));
        assert_eq!(line_counts(b"a\nb\nc\n", b"a\nc\n"), (0, 1));
        assert_eq!(line_counts(b"a\nc\n", b"a\nb\nc\n"), (1, 0));
        // a missing final newline makes the last line a different line
        assert_eq!(line_counts(b"a\nb", b"a\nb\n"), (1, 1));
        assert_eq!(line_counts(b"x\r\ny\r\n", b"x\ny\r\n"), (1, 1));
    }

    #[test]
    fn counts_lines() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\n"), 1);
        assert_eq!(count_lines(b"a\n\nb"), 3);
    }

    #[test]
    fn bogosqrt_matches_xdiff() {
        assert_eq!(bogosqrt(0), 1);
        assert_eq!(bogosqrt(1), 2);
        assert_eq!(bogosqrt(3), 2);
        assert_eq!(bogosqrt(4), 4);
        assert_eq!(bogosqrt(1000), 32);
    }

    #[test]
    fn scratch_reuse_gives_the_same_answers() {
        let mut s = Scratch::default();
        for _ in 0..3 {
            assert_eq!(s.line_counts(b"a\nb\nc\n", b"a\nB\nc\nd\n"), (2, 1));
            assert_eq!(s.line_counts(b"1\n2\n", b"2\n1\n"), (1, 1));
        }
    }
}
