//! Sign-in sessions of the web page: a random id (256 bits) in an
//! `HttpOnly`, `SameSite=Strict` cookie, mapped in memory (bounded) to the
//! htpasswd user who signed in, for `web.sessionttl`, while the user's
//! htpasswd entry is unchanged (a new password or a removed user ends it).
//! Sessions end at restart. The auth layer accepts the cookie on web pages only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Name of the session cookie.
pub const COOKIE: &str = "disco_session";
/// Most sessions kept; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// One session: the user, their htpasswd entry at sign-in, its end.
struct Session {
    user: String,
    entry: String,
    until: Instant,
}

/// The live sessions.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Sessions lasting `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for `user`, whose htpasswd entry is `entry`;
    /// returns its id.
    pub fn open(&self, user: &str, entry: &str) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut map = self.map.lock();
        map.retain(|_, s| s.until > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.until)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                entry: entry.to_string(),
                until: now + self.ttl,
            },
        );
        id
    }

    /// The user of a live session, if `entry_of` still gives the entry
    /// the user signed in with.
    pub fn user(&self, id: &str, entry_of: impl Fn(&str) -> Option<String>) -> Option<String> {
        let map = self.map.lock();
        map.get(id)
            .filter(|s| s.until > Instant::now())
            .filter(|s| entry_of(&s.user).as_deref() == Some(s.entry.as_str()))
            .map(|s| s.user.clone())
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.map.lock().remove(id);
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_id(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for session `id` (`Secure` with TLS).
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let s = Sessions::new(Duration::from_secs(60));
        let entry = |u: &str| (u != "gone").then(|| "h".to_string());
        let id = s.open("alice", "h");
        let header = format!("a=b; {COOKIE}={id}; c=d");
        assert_eq!(cookie_id(&header), Some(id.as_str()));
        assert_eq!(s.user(&id, entry).as_deref(), Some("alice"));
        assert_eq!(s.user(&id, |_| Some("new".into())), None);
        s.close(&id);
        assert_eq!(s.user(&id, entry), None);
        let gone = s.open("gone", "h");
        assert_eq!(s.user(&gone, entry), None);
        assert_eq!(cookie_id("disco_session=short"), None);
        let expired = Sessions::new(Duration::ZERO);
        let id = expired.open("bob", "h");
        assert_eq!(expired.user(&id, entry), None);
        assert!(
            set_cookie(&id, Duration::from_secs(5), true)
                .contains("HttpOnly; SameSite=Strict; Secure")
        );
    }
}
