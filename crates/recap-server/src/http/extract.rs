//! Our own extractors, so every rejection is answered in the error envelope:
//! malformed or mistyped JSON and query strings → 422 with a FastAPI-style `detail` list;
//! a path parameter that does not parse (a malformed id) → 404, never 422.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// A JSON body. The content type is not checked: some real clients (the Git Recap frontend) post
/// JSON as `text/plain`, and parsing it is both stricter and friendlier than refusing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            Bytes::from_request(req, state).await.map_err(|rejection| ApiError::from_status(rejection.status()))?;
        parse_json(&bytes).map(Json)
    }
}

/// For `#[serde(default, deserialize_with = "crate::http::extract::present")]` on an
/// `Option<Option<T>>` field of a partial update: a field sent as `null` is `Some(None)`, a field
/// not sent stays `None`.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(de).map(Some)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(vec![FieldError::new(vec!["body".into()], "Field required", "missing")]));
    }
    refuse_nul_escape(bytes)?;
    let invalid_json = |e: &serde_json::Error| {
        let offset = byte_offset(bytes, e.line(), e.column());
        ApiError::validation(vec![FieldError::new(
            vec!["body".into(), offset.into()],
            format!("JSON decode error: {}", strip_position(&e.to_string())),
            "json_invalid",
        )])
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().clone();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::validation(vec![field_error(Value::from("body"), &path, &strip_position(&inner.to_string()))])
            }
            _ => invalid_json(&inner),
        }
    })?;
    // Trailing garbage after the document is malformed JSON too.
    de.end().map_err(|e| invalid_json(&e))?;
    Ok(value)
}

/// Text with NUL characters is refused at the edge: PostgreSQL cannot store them (an insert would
/// fail with a 500 on that engine only), and no field of this API needs one. In JSON a NUL can
/// only be the escape `\u0000` (an escaped backslash before `u0000` is not one).
pub fn refuse_nul_escape(bytes: &[u8]) -> Result<(), ApiError> {
    let nul = bytes
        .windows(6)
        .enumerate()
        .any(|(i, w)| w == b"\\u0000" && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0);
    if nul {
        return Err(ApiError::validation(vec![FieldError::new(
            vec!["body".into()],
            "NUL characters (\\u0000) are not accepted in text",
            "string_nul",
        )]));
    }
    Ok(())
}

/// A query string, parsed with the same error shape (`loc` starts with `"query"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if query.contains("%00") {
            return Err(ApiError::validation(vec![FieldError::new(
                vec!["query".into()],
                "NUL characters (%00) are not accepted",
                "string_nul",
            )]));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de).map(Query).map_err(|err| {
            let path = err.path().clone();
            ApiError::validation(vec![field_error(Value::from("query"), &path, &err.into_inner().to_string())])
        })
    }
}

/// Path parameters. Anything that does not parse is a resource that does not exist: 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // No resource is named with a NUL character.
        if parts.uri.path().contains("%00") {
            return Err(ApiError::not_found("Not found"));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| ApiError::not_found("Not found"))
    }
}

fn field_error(root: Value, path: &serde_path_to_error::Path, message: &str) -> FieldError {
    let mut loc = vec![root];
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => loc.push((*index).into()),
            serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                loc.push(key.clone().into())
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        loc.push(field.into());
        return FieldError::new(loc, "Field required", "missing");
    }
    let kind = if message.starts_with("invalid type") {
        "type_error"
    } else if message.starts_with("unknown variant") {
        "enum"
    } else {
        "value_error"
    };
    FieldError::new(loc, message, kind)
}

/// serde_json appends " at line L column C"; the location is already in `loc`.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in bytes.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return (offset + column.saturating_sub(1)).min(bytes.len());
        }
        offset += l.len() + 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        commits: Vec<Commit>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Commit {
        additions: u32,
    }

    fn detail(bytes: &[u8]) -> FieldError {
        let err = parse_json::<Body>(bytes).unwrap_err();
        err.report.field_errors.unwrap().remove(0)
    }

    #[test]
    fn wrong_type_points_at_the_field() {
        let e = detail(br#"{"name": "x", "commits": [{"additions": 1}, {"additions": "3"}]}"#);
        assert_eq!(e.loc, vec![Value::from("body"), "commits".into(), 1.into(), "additions".into()]);
        assert_eq!(e.kind, "type_error");
        assert!(!e.msg.contains("line"), "{}", e.msg);
        // The right type with an impossible value is a value error.
        let e = detail(br#"{"name": "x", "commits": [{"additions": -3}]}"#);
        assert_eq!(e.kind, "value_error");
    }

    #[test]
    fn missing_field_is_named() {
        let e = detail(br#"{"commits": []}"#);
        assert_eq!(e.loc, vec![Value::from("body"), "name".into()]);
        assert_eq!((e.msg.as_str(), e.kind.as_str()), ("Field required", "missing"));
    }

    #[test]
    fn malformed_json_reports_the_byte_offset() {
        let body = b"{\"name\": \"x\",\n \"commits\": [}";
        let e = detail(body);
        assert_eq!(e.kind, "json_invalid");
        let bad_byte = body.iter().position(|b| *b == b'}').unwrap();
        assert_eq!(e.loc, vec![Value::from("body"), bad_byte.into()]);
        assert_eq!(detail(br#"{"name": "x", "commits": []} extra"#).kind, "json_invalid");
        assert_eq!(detail(b"  ").kind, "missing");
    }
}
