//! Reading one API request into a flat parameter map: query string, form or JSON body.
//!
//! The query string is merged with the body. A name given twice with
//! different values — twice in one part, or once in each — is refused rather
//! than letting one silently win.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use ironrack_common::ApiError;
use serde_json::Value;

/// Adds one parameter, refusing a second, different value for the same name.
fn put(flat: &mut BTreeMap<String, Value>, name: String, value: Value) -> Result<(), ApiError> {
    match flat.get(&name) {
        Some(existing) if existing != &value => {
            Err(ApiError::invalid(name, "given twice with different values"))
        }
        Some(_) => Ok(()),
        None => {
            flat.insert(name, value);
            Ok(())
        }
    }
}

fn put_form(flat: &mut BTreeMap<String, Value>, bytes: &[u8]) -> Result<(), ApiError> {
    for (k, v) in form_urlencoded::parse(bytes) {
        // form_urlencoded decodes invalid UTF-8 lossily; a replacement
        // character means the caller sent bytes that are not text.
        if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
            return Err(ApiError::MalformedBody(
                "a parameter is not valid UTF-8 after percent-decoding".into(),
            ));
        }
        if k.is_empty() {
            continue;
        }
        put(flat, k.into_owned(), Value::String(v.into_owned()))?;
    }
    Ok(())
}

enum BodyKind {
    Json,
    Form,
    Unsupported(String),
}

fn body_kind(headers: &HeaderMap, body: &[u8]) -> BodyKind {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match ct.as_str() {
        "application/json" => BodyKind::Json,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        // No (or a generic) content type: a body that starts like a JSON
        // object is JSON, anything else is a form.
        "" | "text/plain" | "application/octet-stream" => {
            if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
                BodyKind::Json
            } else {
                BodyKind::Form
            }
        }
        other => BodyKind::Unsupported(other.to_owned()),
    }
}

/// Every parameter of the request, flat, as the client signed them.
pub fn parse(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut flat = BTreeMap::new();
    if let Some(q) = query {
        put_form(&mut flat, q.as_bytes())?;
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(flat);
    }
    match body_kind(headers, body) {
        BodyKind::Form => {
            if std::str::from_utf8(body).is_err() {
                return Err(ApiError::MalformedBody("form body is not UTF-8".into()));
            }
            put_form(&mut flat, body)?;
        }
        BodyKind::Json => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::MalformedBody(format!("invalid JSON: {e}")))?;
            let Value::Object(map) = v else {
                return Err(ApiError::MalformedBody(
                    "a JSON body must be an object of parameters".into(),
                ));
            };
            for (k, v) in map {
                put(&mut flat, k, v)?;
            }
        }
        BodyKind::Unsupported(ct) => {
            return Err(ApiError::MalformedBody(format!(
                "content type {ct} is not supported; send a form or JSON"
            )));
        }
    }
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn merges_query_and_form() {
        let flat = parse(
            Some("Action=ListPMV2&Region=r1"),
            &headers("application/x-www-form-urlencoded"),
            b"PMIDs.0=a&PMIDs.1=b&Region=r1",
        )
        .unwrap();
        assert_eq!(flat.len(), 4);
        assert_eq!(flat["PMIDs.1"], Value::String("b".into()));
    }

    #[test]
    fn conflicting_duplicates_are_refused() {
        let err = parse(Some("Region=r1"), &HeaderMap::new(), b"Region=r2").unwrap_err();
        assert!(err.to_string().contains("[Region]"), "{err}");
        let err = parse(None, &HeaderMap::new(), b"A=1&A=2").unwrap_err();
        assert_eq!(err.ret_code().0, 230);
    }

    #[test]
    fn json_bodies_and_bad_bodies() {
        let flat = parse(None, &headers("application/json"), br#"{"Limit": 10}"#).unwrap();
        assert_eq!(flat["Limit"], serde_json::json!(10));
        assert!(parse(None, &HeaderMap::new(), b"{\"a\":").is_err());
        assert!(parse(None, &headers("application/json"), b"[1,2]").is_err());
        assert!(parse(None, &headers("multipart/form-data"), b"x").is_err());
        assert!(
            parse(
                None,
                &headers("application/x-www-form-urlencoded"),
                b"\xff=1"
            )
            .is_err()
        );
    }
}
