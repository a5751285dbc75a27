//! Console sessions: a signed cookie, no server-side table (so no number of
//! logins makes memory grow). The cookie carries a scope, an expiry and a
//! random id, signed with HMAC-SHA256 under a key drawn when the server
//! starts (a restart, or a change of API keys with it, ends every session).
//! Each session has a CSRF token derived from its id under the same key: a
//! write through the API with the cookie must carry it in `x-csrf-token`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::Scope;

/// The cookie's name.
pub const COOKIE: &str = "aisle_session";
/// How long a login lasts.
pub const LIFETIME_S: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// The signing key.
pub struct Sessions {
    secret: [u8; 32],
}

/// A valid session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub scope: Scope,
    pub csrf: String,
}

impl Sessions {
    /// A fresh key from the operating system's random source.
    pub fn new() -> Result<Sessions, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(Sessions { secret })
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        for p in parts {
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// A new session's cookie value and CSRF token.
    pub fn issue(&self, scope: Scope, now: i64) -> Result<(String, String), getrandom::Error> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)?;
        let id = hex(&id);
        let body = format!("v1.{}.{}.{id}", scope.as_str(), now + LIFETIME_S);
        let sig = hex(&self.mac(&[b"session", body.as_bytes()]));
        Ok((format!("{body}.{sig}"), self.csrf(&id)))
    }

    fn csrf(&self, id: &str) -> String {
        hex(&self.mac(&[b"csrf", id.as_bytes()]))
    }

    /// The session a cookie value names, if it is ours and unexpired.
    pub fn verify(&self, value: &str, now: i64) -> Option<Session> {
        let (body, sig) = value.rsplit_once('.')?;
        let want = self.mac(&[b"session", body.as_bytes()]);
        if !bool::from(hex(&want).as_bytes().ct_eq(sig.as_bytes())) {
            return None;
        }
        let mut f = body.split('.');
        let (v, scope, expiry, id) = (f.next()?, f.next()?, f.next()?, f.next()?);
        if v != "v1" || f.next().is_some() || expiry.parse::<i64>().ok()? <= now {
            return None;
        }
        let scope = match scope {
            "read" => Scope::Read,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            _ => return None,
        };
        Some(Session {
            scope,
            csrf: self.csrf(id),
        })
    }

    /// Whether `token` is the CSRF token of `session`, compared in constant time.
    pub fn csrf_matches(session: &Session, token: &[u8]) -> bool {
        bool::from(session.csrf.as_bytes().ct_eq(token))
    }
}

/// The session cookie's value among a request's `Cookie` headers.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_cookie_verifies_with_its_scope_and_csrf_token() {
        let s = Sessions::new().unwrap();
        let (cookie, csrf) = s.issue(Scope::Read, 1_000).unwrap();
        let got = s.verify(&cookie, 1_001).expect("valid");
        assert_eq!(got.scope, Scope::Read);
        assert_eq!(got.csrf, csrf);
        assert!(Sessions::csrf_matches(&got, csrf.as_bytes()));
        assert!(!Sessions::csrf_matches(&got, b"0000"));
    }

    #[test]
    fn a_cookie_past_its_lifetime_or_from_another_server_is_refused() {
        let s = Sessions::new().unwrap();
        let (cookie, _) = s.issue(Scope::Admin, 1_000).unwrap();
        assert!(s.verify(&cookie, 1_000 + LIFETIME_S).is_none());
        assert!(Sessions::new().unwrap().verify(&cookie, 1_001).is_none());
    }

    #[test]
    fn a_cookie_whose_scope_was_edited_is_refused() {
        let s = Sessions::new().unwrap();
        let (cookie, _) = s.issue(Scope::Read, 1_000).unwrap();
        let forged = cookie.replacen(".read.", ".admin.", 1);
        assert!(s.verify(&forged, 1_001).is_none());
        assert!(s.verify("v1.admin.9999999999.00.00", 1_001).is_none());
        assert!(s.verify("", 1_001).is_none());
    }
}
