//! Login throttling: counts failed logins per client address and per account in a fixed window.
//! Memory is bounded: each table holds at most a fixed number of entries.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most addresses or accounts tracked at once per table (a few MB at most).
const MAX_ENTRIES: usize = 100_000;

struct Counter<K> {
    max: u32,
    cap: usize,
    /// Failures and the start of their window.
    entries: HashMap<K, (u32, Instant)>,
}

impl<K: Hash + Eq> Counter<K> {
    fn new(max: u32, cap: usize) -> Self {
        Self {
            max,
            cap,
            entries: HashMap::new(),
        }
    }

    fn allowed(&self, key: &K, window: Duration, now: Instant) -> bool {
        self.max == 0
            || self
                .entries
                .get(key)
                .is_none_or(|(n, start)| *n < self.max || now.duration_since(*start) >= window)
    }

    fn fail(&mut self, key: K, window: Duration, now: Instant) {
        if self.max == 0 {
            return;
        }
        if self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
            self.make_room(window, now);
        }
        let entry = self.entries.entry(key).or_insert((0, now));
        if now.duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Drops expired windows; if still full (a flood of distinct keys), drops the entries with
    /// the fewest failures, so the keys actually under attack stay throttled. Removing at least
    /// half keeps this O(1) amortised per insertion.
    fn make_room(&mut self, window: Duration, now: Instant) {
        self.entries
            .retain(|_, (_, start)| now.duration_since(*start) < window);
        if self.entries.len() < self.cap {
            return;
        }
        let mut counts: Vec<u32> = self.entries.values().map(|(n, _)| *n).collect();
        let mid = counts.len() / 2;
        let median = *counts.select_nth_unstable(mid).1;
        self.entries.retain(|_, (n, _)| *n > median);
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// Counts failed logins per client address and per account; thread-safe.
pub struct Throttle {
    window: Duration,
    ips: Mutex<Counter<IpAddr>>,
    accounts: Mutex<Counter<String>>,
}

/// A panic elsewhere while holding the lock leaves the counters usable; refusing every login
/// afterwards would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One host usually owns a whole IPv6 /64: count per /64, or rotating addresses would escape
/// the limit. IPv4-mapped addresses count as the IPv4 address.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Account names are case-insensitive in JIDs; so is their failure count.
fn account_key(account: &str) -> String {
    account.to_lowercase()
}

impl Throttle {
    /// `max_per_ip` / `max_per_account` failures allowed per `window`; `0` disables a limit.
    pub fn new(max_per_ip: u32, max_per_account: u32, window: Duration) -> Self {
        Self::with_capacity(max_per_ip, max_per_account, window, MAX_ENTRIES)
    }

    fn with_capacity(max_per_ip: u32, max_per_account: u32, window: Duration, cap: usize) -> Self {
        Self {
            window,
            ips: Mutex::new(Counter::new(max_per_ip, cap)),
            accounts: Mutex::new(Counter::new(max_per_account, cap)),
        }
    }

    /// Whether a login from `ip` (for `account`, once known) may be attempted now.
    pub fn check(&self, ip: IpAddr, account: Option<&str>) -> bool {
        let now = Instant::now();
        lock(&self.ips).allowed(&ip_key(ip), self.window, now)
            && account
                .is_none_or(|a| lock(&self.accounts).allowed(&account_key(a), self.window, now))
    }

    pub fn record_failure(&self, ip: IpAddr, account: Option<&str>) {
        let now = Instant::now();
        lock(&self.ips).fail(ip_key(ip), self.window, now);
        if let Some(a) = account {
            lock(&self.accounts).fail(account_key(a), self.window, now);
        }
    }

    /// A successful login clears the account's failures (not the address's: one valid login
    /// must not reset a password-guessing run against other accounts).
    pub fn record_success(&self, account: &str) {
        lock(&self.accounts).clear(&account_key(account));
    }
}

#[cfg(test)]
impl Throttle {
    pub(crate) fn small(max_per_ip: u32, max_per_account: u32, cap: usize) -> Self {
        Self::with_capacity(max_per_ip, max_per_account, Duration::from_secs(60), cap)
    }

    pub(crate) fn tracked(&self) -> (usize, usize) {
        (
            lock(&self.ips).entries.len(),
            lock(&self.accounts).entries.len(),
        )
    }
}
