//! CSRF protection for every form of the page surface, without a server
//! session: a signed double submit. The browser holds a random cookie;
//! each form carries an HMAC, under the service's secret, of that cookie
//! and the form's scope (the advisory link, later a dashboard session).
//! A forged cross-site form has neither the cookie's value nor the secret,
//! so it cannot carry a valid token; a token from one link is no good on
//! another.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Secret;

pub const COOKIE: &str = "varsel_csrf";
/// The hidden field every form carries.
pub const FIELD: &str = "csrf";

/// The browser's CSRF cookie, or a new one to set with the page.
pub struct CsrfCookie {
    value: String,
    fresh: bool,
}

impl CsrfCookie {
    fn new() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self {
            value: hex::encode(bytes),
            fresh: true,
        }
    }

    fn from_header(header: Option<&str>) -> Option<Self> {
        Cookie::split_parse(header?)
            .filter_map(Result::ok)
            .find(|c| c.name() == COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|value| Self {
                value,
                fresh: false,
            })
    }

    /// Whether the browser sent it (a form post without it fails).
    pub fn was_sent(&self) -> bool {
        !self.fresh
    }

    fn mac(&self, secret: &Secret, scope: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"varsel csrf\0");
        mac.update(self.value.as_bytes());
        mac.update(b"\0");
        mac.update(scope.as_bytes());
        mac
    }

    /// The token forms of `scope` carry.
    pub fn token(&self, secret: &Secret, scope: &str) -> String {
        hex::encode(self.mac(secret, scope).finalize().into_bytes())
    }

    /// Whether `presented` is this cookie's token for `scope` (compared in
    /// constant time).
    pub fn verify(&self, secret: &Secret, scope: &str, presented: Option<&str>) -> bool {
        let Some(bytes) = presented.and_then(|p| hex::decode(p).ok()) else {
            return false;
        };
        self.was_sent() && self.mac(secret, scope).verify_slice(&bytes).is_ok()
    }

    /// The `Set-Cookie` header for a new cookie (none for one the browser
    /// has). Not readable by scripts, never sent cross-site; `Secure` when
    /// the service is reached over HTTPS.
    pub fn set_cookie(&self, secure: bool) -> Option<(header::HeaderName, HeaderValue)> {
        if !self.fresh {
            return None;
        }
        let cookie = Cookie::build((COOKIE, self.value.as_str()))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .build();
        HeaderValue::from_str(&cookie.to_string())
            .ok()
            .map(|v| (header::SET_COOKIE, v))
    }
}

/// Whether a form post comes from this site: its `Origin`, when the
/// browser sends one (they all do on a POST), names the host it was sent
/// to. A second line behind the token. A page whose referrer policy is
/// `no-referrer` makes its own forms send `Origin: null`; such a surface
/// passes `null_allowed` and relies on the token alone.
pub fn same_origin(headers: &axum::http::HeaderMap, null_allowed: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin == "null" {
        return null_allowed;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Whether a form may be acted on: sent from this site's origin (see
/// [`same_origin`]) with this cookie's token for `scope`. Every form
/// handler of every surface asks this first.
pub fn check_form(
    csrf: &CsrfCookie,
    headers: &axum::http::HeaderMap,
    secret: &Secret,
    scope: &str,
    form: &super::form::FormFields,
    null_origin_allowed: bool,
) -> Result<(), super::error::WebError> {
    if same_origin(headers, null_origin_allowed) && csrf.verify(secret, scope, form.get(FIELD)) {
        Ok(())
    } else {
        Err(super::error::WebError::Csrf)
    }
}

impl CsrfCookie {
    /// `response` with this cookie set, if the browser had none.
    pub fn attach(
        &self,
        secure: bool,
        mut response: axum::response::Response,
    ) -> axum::response::Response {
        if let Some((name, value)) = self.set_cookie(secure) {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfCookie {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let header = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| Self::from_header(Some(v)));
        Ok(header.unwrap_or_else(Self::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_cookie_scope_and_secret() {
        let secret = Secret::new("a secret");
        let cookie = CsrfCookie::from_header(Some(&format!("x=1; {COOKIE}={}", "ab".repeat(32))))
            .unwrap_or_else(|| panic!("the cookie is read"));
        let token = cookie.token(&secret, "link:1");
        assert!(cookie.verify(&secret, "link:1", Some(&token)));
        assert!(!cookie.verify(&secret, "link:2", Some(&token)));
        assert!(!cookie.verify(&Secret::new("other"), "link:1", Some(&token)));
        assert!(!cookie.verify(&secret, "link:1", None));
        assert!(!cookie.verify(&secret, "link:1", Some("zz")));
        let other = CsrfCookie::from_header(Some(&format!("{COOKIE}={}", "cd".repeat(32))))
            .unwrap_or_else(|| panic!("the cookie is read"));
        assert!(!other.verify(&secret, "link:1", Some(&token)));
        // A cookie the server just made was not sent: nothing verifies.
        let fresh = CsrfCookie::new();
        assert!(!fresh.verify(&secret, "s", Some(&fresh.token(&secret, "s"))));
        assert!(CsrfCookie::from_header(Some(&format!("{COOKIE}=short"))).is_none());
    }
}
