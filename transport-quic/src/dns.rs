//! Member addresses given as host names, resolved at most once a minute.
//!
//! [`QuicHandle::sync_members`](crate::QuicHandle::sync_members) runs every
//! gossip interval; resolving each host name each time would put a
//! blocking DNS query per member on every interval. Answers are kept for
//! [`FRESH`], failures for [`RETRY_FAILED`].

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gossip::lock;

/// How long a resolved address is used before it is resolved again.
pub(crate) const FRESH: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered before it is tried again.
pub(crate) const RETRY_FAILED: Duration = Duration::from_secs(5);

/// Resolves `host:port` to its first address.
pub(crate) type Resolver = fn(&str) -> std::io::Result<SocketAddr>;

/// The system resolver.
pub(crate) fn system(address: &str) -> std::io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"))
}

type Answer = Result<SocketAddr, (std::io::ErrorKind, String)>;

/// Host names and what they resolved to, when.
pub(crate) struct DnsCache {
    resolver: Resolver,
    answers: Mutex<HashMap<String, (Instant, Answer)>>,
}

impl DnsCache {
    pub(crate) fn new(resolver: Resolver) -> DnsCache {
        DnsCache {
            resolver,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// `address` resolved, from the cache while its answer is fresh. The
    /// lookup itself runs without holding the cache.
    pub(crate) fn resolve(&self, address: &str, now: Instant) -> std::io::Result<SocketAddr> {
        let cached = lock(&self.answers).get(address).cloned();
        let fresh = |(at, answer): &(Instant, Answer)| {
            let keep = if answer.is_ok() { FRESH } else { RETRY_FAILED };
            now.saturating_duration_since(*at) < keep
        };
        let answer = match cached.filter(fresh) {
            Some((_, answer)) => answer,
            None => {
                let answer = (self.resolver)(address).map_err(|err| (err.kind(), err.to_string()));
                let mut answers = lock(&self.answers);
                answers.retain(|_, entry| fresh(entry));
                answers.insert(address.to_owned(), (now, answer.clone()));
                answer
            }
        };
        answer.map_err(|(kind, message)| std::io::Error::new(kind, message))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

    fn counting(address: &str) -> std::io::Result<SocketAddr> {
        LOOKUPS.fetch_add(1, Ordering::SeqCst);
        if address.starts_with("gone") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such host",
            ));
        }
        Ok(SocketAddr::from(([10, 0, 0, 1], 7000)))
    }

    #[test]
    fn answers_are_kept_for_a_minute_and_failures_for_seconds() {
        let cache = DnsCache::new(counting);
        let start = Instant::now();
        let before = LOOKUPS.load(Ordering::SeqCst);
        let looked_up = || LOOKUPS.load(Ordering::SeqCst) - before;
        for second in 0..59 {
            let now = start + Duration::from_secs(second);
            assert!(cache.resolve("db-a:7000", now).is_ok());
        }
        assert_eq!(looked_up(), 1);
        assert!(cache.resolve("db-a:7000", start + FRESH).is_ok());
        assert_eq!(looked_up(), 2);
        let failed = cache.resolve("gone:7000", start).unwrap_err();
        assert_eq!(failed.kind(), std::io::ErrorKind::NotFound);
        assert!(
            cache
                .resolve("gone:7000", start + Duration::from_secs(4))
                .is_err()
        );
        assert_eq!(looked_up(), 3);
        assert!(cache.resolve("gone:7000", start + RETRY_FAILED).is_err());
        assert_eq!(looked_up(), 4);
    }
}
