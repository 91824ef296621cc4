//! The page envelope of every list: `{items, total, page, size, pages}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, FieldError};

#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 50).
    pub size: Option<i64>,
}

/// Validated paging: `page ≥ 1`, `1 ≤ size ≤ 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: i64,
    pub size: i64,
}

impl Paging {
    /// Saturates: a page far past the end (`page=9223372036854775807`) is an empty page, not an
    /// overflow.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.size)
    }
}

impl PageParams {
    pub fn validate(self) -> Result<Paging, ApiError> {
        self.validate_as("size")
    }

    /// [`PageParams::validate`] for a route whose size parameter has another name (the league
    /// contract's `per_page`), which the error's `loc` names.
    pub fn validate_as(self, size_name: &'static str) -> Result<Paging, ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.size.unwrap_or(50);
        let mut errors = Vec::new();
        if page < 1 {
            errors.push(FieldError::new(
                vec!["query".into(), "page".into()],
                "must be at least 1",
                "greater_than_equal",
            ));
        }
        if !(1..=100).contains(&size) {
            errors.push(FieldError::new(
                vec!["query".into(), size_name.into()],
                "must be between 1 and 100",
                "value_error",
            ));
        }
        if errors.is_empty() { Ok(Paging { page, size }) } else { Err(ApiError::validation(errors)) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
    pub pages: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, paging: Paging) -> Page<T> {
        let pages = if total == 0 { 0 } else { (total + paging.size - 1) / paging.size };
        Page { items, total, page: paging.page, size: paging.size, pages }
    }
}
