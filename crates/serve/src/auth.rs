//! Who may do what: API keys with three scopes, the routes each scope
//! reaches, and the browser checks (Host, Origin, CORS) that keep a
//! developer's keyless server from being driven by a web page.
//!
//! - **Scopes** are ordered: `read` (recommendations, search, popular,
//!   similar, items, metrics) < `write` (read + events + catalog) < `admin`
//!   (everything, erasure included). Any configured key turns enforcement on
//!   for every route but `/healthz` and `/readyz`.
//! - Keys are compared in constant time (SHA-256 digests of both sides, then
//!   `subtle`), against every configured key, so neither the position of the
//!   first wrong byte nor which key matched shows in the timing.
//! - Without keys the server is in development mode: it binds loopback only,
//!   and refuses requests whose `Host` is not a loopback name (DNS rebinding)
//!   or whose `Origin` is foreign (cross-site requests).

use axum::http::{header, HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do; each scope includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// The configured keys (digests only: the key text is not kept).
///
/// A shop's keys live in its store and can be replaced while it serves
/// (`aisle shops rotate-keys`): hence the lock.
#[derive(Default)]
pub struct Keys {
    keys: std::sync::RwLock<Vec<([u8; 32], Scope)>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let scopes: Vec<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
        f.debug_struct("Keys").field("scopes", &scopes).finish()
    }
}

/// A key that cannot be used (empty, blank, or with characters a header
/// cannot carry).
#[derive(Debug, thiserror::Error)]
#[error("the {scope} key is {why}: refusing to start (give a non-blank key of visible ASCII characters)")]
pub struct BadKey {
    pub scope: &'static str,
    pub why: &'static str,
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl Keys {
    /// Adds a key with its scope; an empty, blank or non-printable key is
    /// refused (an empty header would otherwise match it).
    pub fn add(&mut self, key: &str, scope: Scope) -> Result<(), BadKey> {
        let why = if key.is_empty() {
            Some("empty")
        } else if key.trim().is_empty() {
            Some("blank")
        } else if key.trim() != key {
            Some("padded with white space")
        } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
            Some("not visible ASCII")
        } else if key.len() > 4096 {
            Some("longer than 4,096 bytes")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(BadKey {
                scope: scope.as_str(),
                why,
            });
        }
        self.keys
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .push((digest(key.as_bytes()), scope));
        Ok(())
    }

    /// Adds the keys a store keeps (`aisle shops create` writes them under
    /// [`KEYS_META`]: scopes and SHA-256 digests, never the keys).
    pub fn add_stored(&mut self, json: &str) -> Result<(), String> {
        let stored = parse_stored(json)?;
        self.keys
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .extend(stored);
        Ok(())
    }

    /// Replaces every key with the ones a store keeps (a shop's keys,
    /// rotated while it serves).
    pub fn replace_with_stored(&self, json: &str) -> Result<(), String> {
        let stored = parse_stored(json)?;
        if stored.is_empty() {
            return Err("the store keeps no keys: keeping the old ones".into());
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = stored;
        Ok(())
    }

    /// Whether any key is configured (enforcement on).
    pub fn enforced(&self) -> bool {
        !self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The scope and index of the key presented, if it is one of ours. Every
    /// configured key is compared, in constant time.
    pub fn check(&self, presented: &[u8]) -> Option<(usize, Scope)> {
        let d = digest(presented);
        let mut found = None;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        for (i, (k, scope)) in keys.iter().enumerate() {
            if bool::from(k.ct_eq(&d)) && found.is_none() {
                found = Some((i, *scope));
            }
        }
        found
    }
}

/// The store's meta key under which a shop's keys are kept (digests).
pub const KEYS_META: &str = "api_keys";

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    scope: Scope,
    sha256: String,
}

fn parse_stored(json: &str) -> Result<Vec<([u8; 32], Scope)>, String> {
    let stored: Vec<StoredKey> = serde_json::from_str(json)
        .map_err(|e| format!("the store's {KEYS_META} is not a list of keys: {e}"))?;
    stored
        .into_iter()
        .map(|k| {
            hex_digest(&k.sha256)
                .map(|d| (d, k.scope))
                .ok_or_else(|| format!("the store's {KEYS_META} holds a malformed digest"))
        })
        .collect()
}

fn hex_digest(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(d)
}

/// New keys for a shop, one per scope (`aisle_<shop>_<scope>_` and 32
/// random bytes in hex), with what the store keeps of them: the JSON of
/// their scopes and digests for [`KEYS_META`].
pub fn new_keys(shop: &str) -> Result<(Vec<(Scope, String)>, String), getrandom::Error> {
    let mut keys = Vec::new();
    let mut stored = Vec::new();
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("aisle_{shop}_{}_{hex}", scope.as_str());
        let sha256 = digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        stored.push(StoredKey { scope, sha256 });
        keys.push((scope, key));
    }
    let json = serde_json::to_string(&stored).expect("keys serialize");
    Ok((keys, json))
}

/// The key a request presents: `x-api-key`, else `Authorization: Bearer`.
/// `Some(b"")` for a header that is present but empty.
pub fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(k) = headers.get("x-api-key") {
        return Some(k.as_bytes());
    }
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.len().min(7));
    if scheme.eq_ignore_ascii_case(b"bearer ") {
        Some(rest)
    } else {
        Some(b"")
    }
}

/// The scope a route needs, by method and matched path. Health routes need
/// none (`None`); unknown routes need `read`, so an anonymous client learns
/// nothing about which routes exist.
pub fn required_scope(method: &Method, route: &str) -> Option<Scope> {
    match route {
        // Health, and what the console needs before a login.
        "/healthz"
        | "/readyz"
        | "/console/login"
        | "/console/logout"
        | "/console/assets/console.css"
        | "/console/assets/console.js" => None,
        // The overview is what `/metrics` says, in other words.
        "/v1/admin/overview" | "/v1/admin/data" | "/v1/admin/evaluation" => Some(Scope::Read),
        _ if route.starts_with("/v1/admin") => Some(Scope::Admin),
        "/v1/users/{id}" => Some(Scope::Admin),
        // Identity links are personal data: made, removed and read with a write key.
        "/v1/users/{id}/aliases" | "/v1/users/{id}/aliases/{alias}" => Some(Scope::Write),
        "/v1/events" => Some(Scope::Write),
        "/v1/items/{id}" if method != Method::GET && method != Method::HEAD => Some(Scope::Write),
        _ => Some(Scope::Read),
    }
}

/// Whether `host` (a Host header: name or address, optional port) names
/// this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = strip_port(host);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The `host[:port]` of an origin (`scheme://host[:port]`), lower-cased.
fn origin_authority(origin: &str) -> Option<String> {
    let (_, rest) = origin.split_once("://")?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(rest.to_ascii_lowercase())
}

/// What the browser checks decide about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum OriginCheck {
    /// No Origin header (not a cross-site browser request) or same-origin.
    Ok,
    /// An allowed cross-origin request: answer with CORS headers for it.
    Cors(String),
    /// Refused, with the reason.
    Refused(String),
}

/// Host and Origin checks. `open` is development mode (no keys): the Host
/// must then be a loopback name. An Origin is accepted when it is the
/// server's own (same host and port as the Host header), in `allowed`, or —
/// in development mode — a loopback origin.
pub fn check_origin(headers: &HeaderMap, open: bool, allowed: &[String]) -> OriginCheck {
    let host = headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{fffd}"));
    if open {
        if let Some(h) = host {
            if !is_loopback_host(h) {
                return OriginCheck::Refused(format!(
                    "Host {h:?} is not a loopback name; a server without keys answers only requests addressed to localhost (give keys to serve other names)"
                ));
            }
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginCheck::Ok;
    };
    let origin = origin.to_str().unwrap_or("\u{fffd}").trim();
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return OriginCheck::Cors(origin.to_string());
    }
    let authority = origin_authority(origin);
    if let (Some(a), Some(h)) = (&authority, host) {
        if *a == h.to_ascii_lowercase() {
            return OriginCheck::Ok;
        }
    }
    if open && authority.as_deref().is_some_and(is_loopback_host) {
        return OriginCheck::Cors(origin.to_string());
    }
    OriginCheck::Refused(format!(
        "Origin {origin:?} is not allowed (allow a storefront's origin with --cors-origin)"
    ))
}

/// Whether a Content-Type names JSON (`application/json` or `*/*+json`,
/// parameters such as charset allowed).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn empty_blank_and_padded_keys_are_refused() {
        let mut k = Keys::default();
        for bad in ["", "   ", " key", "ke\ty", "kéy"] {
            assert!(k.add(bad, Scope::Admin).is_err(), "{bad:?}");
        }
        assert!(!k.enforced());
        k.add("s3cret", Scope::Read).unwrap();
        assert!(k.enforced());
    }

    #[test]
    fn a_key_matches_only_itself_and_reports_its_scope() {
        let mut k = Keys::default();
        k.add("r", Scope::Read).unwrap();
        k.add("w", Scope::Write).unwrap();
        k.add("a", Scope::Admin).unwrap();
        assert_eq!(k.check(b"r"), Some((0, Scope::Read)));
        assert_eq!(k.check(b"w"), Some((1, Scope::Write)));
        assert_eq!(k.check(b"a"), Some((2, Scope::Admin)));
        for bad in [&b""[..], b"x", b"rr", b"A", b" a"] {
            assert_eq!(k.check(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_come_from_x_api_key_or_a_bearer_token() {
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "k")])),
            Some(&b"k"[..])
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer k2")])),
            Some(&b"k2"[..])
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer k2")])),
            Some(&b"k2"[..])
        );
        // A present but empty or non-bearer header is a (wrong) key, not none.
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "")])),
            Some(&b""[..])
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            Some(&b""[..])
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }

    #[test]
    fn scopes_by_route() {
        use Method as M;
        assert_eq!(required_scope(&M::GET, "/healthz"), None);
        assert_eq!(required_scope(&M::GET, "/readyz"), None);
        assert_eq!(required_scope(&M::GET, "/metrics"), Some(Scope::Read));
        assert_eq!(required_scope(&M::GET, "/v1/popular"), Some(Scope::Read));
        assert_eq!(required_scope(&M::GET, "/v1/items/{id}"), Some(Scope::Read));
        assert_eq!(
            required_scope(&M::PUT, "/v1/items/{id}"),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope(&M::DELETE, "/v1/items/{id}"),
            Some(Scope::Write)
        );
        assert_eq!(required_scope(&M::POST, "/v1/events"), Some(Scope::Write));
        assert_eq!(
            required_scope(&M::DELETE, "/v1/users/{id}"),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope(&M::POST, "/v1/admin/models/reload"),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope(&M::GET, "unmatched"), Some(Scope::Read));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1",
            "0.0.0.0:8080",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn development_mode_refuses_foreign_hosts_and_origins() {
        let ok = check_origin(&headers(&[("host", "127.0.0.1:8080")]), true, &[]);
        assert_eq!(ok, OriginCheck::Ok);
        // DNS rebinding: the page's name resolves to 127.0.0.1.
        let rebound = check_origin(&headers(&[("host", "evil.example:8080")]), true, &[]);
        assert!(matches!(rebound, OriginCheck::Refused(_)), "{rebound:?}");
        // A malicious page posting to localhost.
        let csrf = check_origin(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example"),
            ]),
            true,
            &[],
        );
        assert!(matches!(csrf, OriginCheck::Refused(_)), "{csrf:?}");
        // The same page served by the server itself, or a local front end.
        let same = check_origin(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ]),
            true,
            &[],
        );
        assert_eq!(same, OriginCheck::Ok);
        let local = check_origin(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://localhost:3000"),
            ]),
            true,
            &[],
        );
        assert_eq!(local, OriginCheck::Cors("http://localhost:3000".into()));
        // "null" (sandboxed frames, file://) is foreign.
        let null = check_origin(
            &headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
            true,
            &[],
        );
        assert!(matches!(null, OriginCheck::Refused(_)));
    }

    #[test]
    fn with_keys_any_host_and_only_allowed_origins() {
        let allowed = vec!["https://shop.example".to_string()];
        let h = headers(&[("host", "api.shop.example")]);
        assert_eq!(check_origin(&h, false, &allowed), OriginCheck::Ok);
        let shop = headers(&[
            ("host", "api.shop.example"),
            ("origin", "https://shop.example"),
        ]);
        assert_eq!(
            check_origin(&shop, false, &allowed),
            OriginCheck::Cors("https://shop.example".into())
        );
        let other = headers(&[
            ("host", "api.shop.example"),
            ("origin", "https://evil.example"),
        ]);
        assert!(matches!(
            check_origin(&other, false, &allowed),
            OriginCheck::Refused(_)
        ));
        // A loopback origin is not special once keys are on.
        let local = headers(&[
            ("host", "api.shop.example"),
            ("origin", "http://localhost:1"),
        ]);
        assert!(matches!(
            check_origin(&local, false, &allowed),
            OriginCheck::Refused(_)
        ));
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "json",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}
