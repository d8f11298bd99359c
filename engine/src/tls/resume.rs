//! `session_timeout` (nginx's `ssl_session_timeout`) on rustls's
//! resumption: a session ID or ticket older than the timeout is not
//! resumed (a full handshake follows). rustls keeps neither a session's
//! age nor a limit on it, so each stored session and each ticket's
//! plaintext carries the second it was made, and is refused past the
//! timeout. The ticket lifetime the client is told is the timeout too.
//!
//! The process's session cache and ticket keys stay shared; these wrappers
//! are per TLS address (the servers of one address agree on the timeout).

use std::sync::Arc;

use rustls::server::{ProducesTickets, StoresServerSessions};

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `value` with the second it was made in front.
fn stamped(value: &[u8], at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&at.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// The value of a stamped one, if it is younger than `timeout` at `now`.
fn fresh(stamped: &[u8], timeout: u64, now: u64) -> Option<Vec<u8>> {
    let at = u64::from_be_bytes(stamped.get(..8)?.try_into().ok()?);
    (now.saturating_sub(at) < timeout).then(|| stamped[8..].to_vec())
}

/// Session IDs that expire `timeout` seconds after they were stored.
#[derive(Debug)]
pub struct TimedSessions {
    pub inner: Arc<dyn StoresServerSessions>,
    pub timeout: u64,
}

impl StoresServerSessions for TimedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamped(&value, now()))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        fresh(&self.inner.get(key)?, self.timeout, now())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        fresh(&self.inner.take(key)?, self.timeout, now())
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Tickets that are refused `timeout` seconds after they were issued.
#[derive(Debug)]
pub struct TimedTickets {
    pub inner: Arc<dyn ProducesTickets>,
    pub timeout: u32,
}

impl ProducesTickets for TimedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    /// The lifetime hint: the timeout, within the keys' own lifetime.
    fn lifetime(&self) -> u32 {
        self.timeout.min(self.inner.lifetime())
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamped(plain, now()))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        fresh(&self.inner.decrypt(cipher)?, u64::from(self.timeout), now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_expire_at_the_timeout() {
        let v = stamped(b"session", 1_000);
        assert_eq!(fresh(&v, 300, 1_000).as_deref(), Some(&b"session"[..]));
        assert_eq!(fresh(&v, 300, 1_299).as_deref(), Some(&b"session"[..]));
        assert_eq!(fresh(&v, 300, 1_300), None);
        // A clock that went back does not make a session older.
        assert!(fresh(&v, 300, 900).is_some());
        assert_eq!(fresh(&v, 0, 1_000), None);
        assert_eq!(fresh(b"short", 300, 1_000), None);
    }

    #[test]
    fn the_wrappers_stamp_and_check() {
        let sessions = TimedSessions {
            inner: rustls::server::ServerSessionMemoryCache::new(16),
            timeout: 300,
        };
        assert!(sessions.put(b"k".to_vec(), b"v".to_vec()));
        assert_eq!(sessions.get(b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(sessions.take(b"k").as_deref(), Some(&b"v"[..]));
        let expired = TimedSessions {
            inner: rustls::server::ServerSessionMemoryCache::new(16),
            timeout: 0,
        };
        expired.put(b"k".to_vec(), b"v".to_vec());
        assert_eq!(expired.get(b"k"), None);

        let tickets = TimedTickets {
            inner: rustls::crypto::ring::Ticketer::new().unwrap(),
            timeout: 300,
        };
        assert_eq!(tickets.lifetime(), 300);
        let t = tickets.encrypt(b"state").unwrap();
        assert_eq!(tickets.decrypt(&t).as_deref(), Some(&b"state"[..]));
        let long = TimedTickets {
            inner: tickets.inner.clone(),
            timeout: u32::MAX,
        };
        // Never longer than rustls's keys live.
        assert_eq!(long.lifetime(), tickets.inner.lifetime());
        let none = TimedTickets {
            inner: tickets.inner.clone(),
            timeout: 0,
        };
        assert_eq!(none.decrypt(&none.encrypt(b"state").unwrap()), None);
    }
}
