//! The league: scoring rules, identities that merge a person's e-mails, and leaderboards.

pub mod routes;
pub mod scoring;
pub mod stats;
pub mod store;

use crate::config::ConfigError;

/// `LEAGUE_BOT_PATTERN`: authors whose name or e-mail matches are left off leaderboards.
#[derive(Debug, Clone)]
pub struct LeagueSettings {
    pub bot_pattern: regex::Regex,
}

pub const DEFAULT_BOT_PATTERN: &str =
    r"(?i)(\[bot\]|^bot@|-bot@|dependabot|renovate|github-actions|noreply@github\.com$)";

impl Default for LeagueSettings {
    fn default() -> Self {
        LeagueSettings { bot_pattern: regex::Regex::new(DEFAULT_BOT_PATTERN).expect("the default pattern compiles") }
    }
}

impl LeagueSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<LeagueSettings, ConfigError> {
        match get("LEAGUE_BOT_PATTERN") {
            None => Ok(LeagueSettings::default()),
            Some(p) => regex::Regex::new(&p).map(|bot_pattern| LeagueSettings { bot_pattern }).map_err(|e| {
                ConfigError { var: "LEAGUE_BOT_PATTERN", message: format!("not a valid regular expression: {e}") }
            }),
        }
    }
}
