//! Request and response types of the items routes, and the validated values they parse into.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::ItemRow;
use crate::{
    error::{ApiError, FieldError},
    time::rfc3339,
};

pub const TITLE_MAX_CHARS: usize = 255;
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;

/// A new item.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ItemIn {
    /// 1 to 255 characters after trimming.
    pub title: String,
    /// Trimmed; empty means none. At most 10000 characters.
    pub description: Option<String>,
}

/// A partial change: only the fields sent change.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ItemPatch {
    /// 1 to 255 characters after trimming; `null` is refused.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    /// `null` (or an empty string) clears it.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `null` is refused.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<bool>)]
    pub is_active: Option<Option<bool>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemOut {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: String,
    /// `null` until the item is first changed.
    pub updated_at: Option<String>,
}

impl From<&ItemRow> for ItemOut {
    fn from(row: &ItemRow) -> Self {
        ItemOut {
            id: row.id,
            title: row.title.clone(),
            description: row.description.clone(),
            is_active: row.is_active,
            created_at: rfc3339(row.created_at),
            updated_at: row.updated_at.map(rfc3339),
        }
    }
}

/// A validated new item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub title: String,
    pub description: Option<String>,
}

/// A validated change. `description: Some(None)` clears the description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
}

fn field(name: &str, msg: &str, kind: &str) -> FieldError {
    FieldError::new(vec!["body".into(), name.into()], msg, kind)
}

fn parse_title(raw: &str) -> Result<String, FieldError> {
    let title = raw.trim();
    match title.chars().count() {
        0 => Err(field("title", "must not be empty", "string_too_short")),
        n if n > TITLE_MAX_CHARS => Err(field("title", "must be at most 255 characters", "string_too_long")),
        _ => Ok(title.to_owned()),
    }
}

fn parse_description(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(description) = raw.map(str::trim).filter(|d| !d.is_empty()) else { return Ok(None) };
    if description.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(field("description", "must be at most 10000 characters", "string_too_long"));
    }
    Ok(Some(description.to_owned()))
}

fn collect<T>(value: Result<T, FieldError>, errors: &mut Vec<FieldError>) -> Option<T> {
    value.map_err(|e| errors.push(e)).ok()
}

impl ItemIn {
    /// Every field error at once, each with its `loc`.
    pub fn validate(self) -> Result<NewItem, ApiError> {
        let mut errors = Vec::new();
        let title = collect(parse_title(&self.title), &mut errors);
        let description = collect(parse_description(self.description.as_deref()), &mut errors);
        match (title, description) {
            (Some(title), Some(description)) => Ok(NewItem { title, description }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

impl ItemPatch {
    pub fn validate(self) -> Result<ItemChanges, ApiError> {
        let mut errors = Vec::new();
        let title = match self.title {
            None => None,
            Some(None) => {
                errors.push(field("title", "must be a string, not null", "type_error"));
                None
            }
            Some(Some(raw)) => collect(parse_title(&raw), &mut errors),
        };
        let description = match self.description {
            None => None,
            Some(raw) => collect(parse_description(raw.as_deref()), &mut errors),
        };
        let is_active = match self.is_active {
            None => None,
            Some(None) => {
                errors.push(field("is_active", "must be a boolean, not null", "type_error"));
                None
            }
            Some(Some(active)) => Some(active),
        };
        if errors.is_empty() {
            Ok(ItemChanges { title, description, is_active })
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::parse_json;

    fn locs(err: ApiError) -> Vec<String> {
        err.report.field_errors.unwrap().into_iter().map(|e| e.loc.last().unwrap().to_string()).collect()
    }

    #[test]
    fn new_items_are_trimmed_and_checked() {
        let ok = ItemIn { title: "  Buy milk ".into(), description: Some("  \n ".into()) }.validate().unwrap();
        assert_eq!(ok, NewItem { title: "Buy milk".into(), description: None });
        let ok = ItemIn { title: "é".repeat(255), description: Some(" x ".into()) }.validate().unwrap();
        assert_eq!(ok.description.as_deref(), Some("x"));

        let err = ItemIn { title: "   ".into(), description: Some("d".repeat(10_001)) }.validate().unwrap_err();
        assert_eq!(locs(err), ["\"title\"", "\"description\""]);
        assert!(ItemIn { title: "a".repeat(256), description: None }.validate().is_err());
    }

    #[test]
    fn patches_tell_null_from_absent() {
        let patch: ItemPatch = parse_json(br#"{"description": null}"#).unwrap();
        assert_eq!(patch.validate().unwrap(), ItemChanges { description: Some(None), ..ItemChanges::default() });
        let patch: ItemPatch = parse_json(b"{}").unwrap();
        assert_eq!(patch.validate().unwrap(), ItemChanges::default());
        let patch: ItemPatch = parse_json(br#"{"title": " New ", "is_active": false}"#).unwrap();
        assert_eq!(
            patch.validate().unwrap(),
            ItemChanges { title: Some("New".into()), is_active: Some(false), ..ItemChanges::default() }
        );
        let patch: ItemPatch = parse_json(br#"{"title": null, "is_active": null}"#).unwrap();
        assert_eq!(locs(patch.validate().unwrap_err()), ["\"title\"", "\"is_active\""]);
        let err = parse_json::<ItemPatch>(br#"{"is_active": "yes"}"#).unwrap_err();
        assert_eq!(locs(err), ["\"is_active\""]);
    }
}
