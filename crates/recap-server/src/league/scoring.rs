//! The league's NBA-style metrics per commit (contract `thegitleague.md` §10).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldError};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Coefficients {
    pub additions_weight: f64,
    pub deletions_weight: f64,
    pub commit_base: i64,
    pub multi_file_bonus: i64,
    pub fix_bonus: i64,
    pub wip_penalty: i64,
    pub max_additions_cap: i64,
    pub max_deletions_cap: i64,
}

impl Default for Coefficients {
    fn default() -> Self {
        Coefficients {
            additions_weight: 1.0,
            deletions_weight: 0.6,
            commit_base: 10,
            multi_file_bonus: 5,
            fix_bonus: 15,
            wip_penalty: -10,
            max_additions_cap: 1000,
            max_deletions_cap: 1000,
        }
    }
}

impl Coefficients {
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, name: &str, msg: &str| {
            if !ok {
                errors.push(FieldError::new(
                    vec!["body".into(), "scoring_coefficients".into(), name.into()],
                    msg,
                    "value_error",
                ));
            }
        };
        check(self.additions_weight >= 0.0 && self.additions_weight.is_finite(), "additions_weight", "must be ≥ 0");
        check(self.deletions_weight >= 0.0 && self.deletions_weight.is_finite(), "deletions_weight", "must be ≥ 0");
        check(self.commit_base >= 0, "commit_base", "must be ≥ 0");
        check(self.multi_file_bonus >= 0, "multi_file_bonus", "must be ≥ 0");
        check(self.fix_bonus >= 0, "fix_bonus", "must be ≥ 0");
        check(self.wip_penalty <= 0, "wip_penalty", "must be ≤ 0");
        check(self.max_additions_cap >= 0, "max_additions_cap", "must be ≥ 0");
        check(self.max_deletions_cap >= 0, "max_deletions_cap", "must be ≥ 0");
        // Upper bounds keep every figure (and the boards' sums over millions of commits) far from
        // overflowing.
        check(self.additions_weight <= 1000.0, "additions_weight", "must be ≤ 1000");
        check(self.deletions_weight <= 1000.0, "deletions_weight", "must be ≤ 1000");
        for (value, name) in [
            (self.commit_base, "commit_base"),
            (self.multi_file_bonus, "multi_file_bonus"),
            (self.fix_bonus, "fix_bonus"),
            (-self.wip_penalty.max(-1_000_001), "wip_penalty"),
            (self.max_additions_cap, "max_additions_cap"),
            (self.max_deletions_cap, "max_deletions_cap"),
        ] {
            check(value <= 1_000_000, name, "must be at most 1000000 in size");
        }
        if errors.is_empty() { Ok(()) } else { Err(ApiError::validation(errors)) }
    }
}

/// One commit's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Metrics {
    pub pts: i64,
    pub reb: i64,
    pub ast: i64,
    pub blk: i64,
    pub tov: i64,
    pub impact: f64,
}

pub const FIX_WORDS: [&str; 4] = ["fix", "bug", "hotfix", "revert"];
pub const WIP_WORDS: [&str; 4] = ["wip", "tmp", "debug", "test"];

/// Plain substring matching on the lower-cased title, as the original scored it (so "prefix"
/// counts as a fix and "latest" as a test: kept for score parity).
pub fn metrics(c: &Coefficients, additions: i64, deletions: i64, files_changed: i64, title: &str) -> Metrics {
    let title = title.to_lowercase();
    let pts =
        (c.commit_base as f64 + additions.min(c.max_additions_cap).max(0) as f64 * c.additions_weight).trunc() as i64;
    let reb = (deletions.min(c.max_deletions_cap).max(0) as f64 * c.deletions_weight).trunc() as i64;
    let ast = if files_changed > 3 { c.multi_file_bonus } else { 0 };
    let blk = if FIX_WORDS.iter().any(|w| title.contains(w)) { c.fix_bonus } else { 0 };
    let tov = if WIP_WORDS.iter().any(|w| title.contains(w)) { c.wip_penalty } else { 0 };
    let impact = pts as f64 + reb as f64 * 0.6 + ast as f64 * 0.8 + blk as f64 * 1.2 + tov as f64 * 0.7;
    Metrics { pts, reb, ast, blk, tov, impact }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example() {
        let m = metrics(&Coefficients::default(), 1500, 500, 5, "Fix login bug");
        assert_eq!((m.pts, m.reb, m.ast, m.blk, m.tov), (1010, 300, 5, 15, 0));
        assert!((m.impact - 1212.0).abs() < 1e-9);
    }

    #[test]
    fn substrings_and_both_bonuses() {
        let m = metrics(&Coefficients::default(), 3, 7, 1, "fix flaky test");
        assert_eq!((m.pts, m.reb, m.ast, m.blk, m.tov), (13, 4, 0, 15, -10));
        assert_eq!(metrics(&Coefficients::default(), 0, 0, 0, "Prefix latest").blk, 15);
        assert_eq!(metrics(&Coefficients::default(), 0, 0, 0, "Prefix latest").tov, -10);
    }

    #[test]
    fn coefficients_are_checked() {
        assert!(Coefficients::default().validate().is_ok());
        assert!(Coefficients { wip_penalty: 3, ..Coefficients::default() }.validate().is_err());
        assert!(Coefficients { deletions_weight: -1.0, ..Coefficients::default() }.validate().is_err());
        assert!(Coefficients { commit_base: 9_000_000_000_000_000_000, ..Coefficients::default() }.validate().is_err());
        assert!(Coefficients { wip_penalty: i64::MIN, ..Coefficients::default() }.validate().is_err());
        assert!(Coefficients { additions_weight: 1e300, ..Coefficients::default() }.validate().is_err());
    }
}
