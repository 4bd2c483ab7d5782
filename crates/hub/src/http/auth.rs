//! Bearer tokens on API requests: who is asking, and may they.
//!
//! `Authorization: Bearer <token>`; the token is hashed and looked up in the table of
//! the configuration in force ([`crate::access::Access`]). No or an unknown token is
//! 401 (with `WWW-Authenticate: Bearer`), a known partner without the role is 403.
//! The token is never logged or echoed.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{ApiError, HttpState};
use crate::access::{Partner, Role};

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "authorization", message).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sharedefend\""),
    )
}

/// The partner behind the request's token; `None` when it has no `Authorization`.
pub(super) fn partner(
    state: &HttpState,
    headers: &HeaderMap,
) -> Result<Option<Arc<Partner>>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("expected \"Authorization: Bearer TOKEN\""))?;
    state
        .access()
        .partner(token)
        .map(Some)
        .ok_or_else(|| unauthorized("unknown or revoked token"))
}

/// The partner behind the request's token, which must have one of `roles`.
pub(super) fn require(
    state: &HttpState,
    headers: &HeaderMap,
    roles: &[Role],
) -> Result<Arc<Partner>, ApiError> {
    let partner = partner(state, headers)?
        .ok_or_else(|| unauthorized("this resource needs \"Authorization: Bearer TOKEN\""))?;
    if roles.is_empty() || roles.iter().any(|r| partner.has(*r)) {
        Ok(partner)
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization",
            format!(
                "partner {:?} lacks the role for this: needs {}",
                partner.name,
                names.join(" or ")
            ),
        ))
    }
}
