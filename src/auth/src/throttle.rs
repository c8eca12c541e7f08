//! Login throttling: counts failed logins per IP address and per account in a fixed window.
//! Memory is bounded: expired entries are swept, and past a cap the oldest window is dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses or accounts tracked at once per table.
const MAX_ENTRIES: usize = 100_000;

struct Counter<K> {
    max: u32,
    entries: HashMap<K, (u32, Instant)>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(max: u32) -> Self {
        Self {
            max,
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

    fn fail(&mut self, key: &K, window: Duration, now: Instant) {
        if self.max == 0 {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries
                .retain(|_, (_, start)| now.duration_since(*start) < window);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        let entry = self.entries.entry(key.clone()).or_insert((0, now));
        if now.duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

pub struct Throttle {
    window: Duration,
    ips: Mutex<Counter<IpAddr>>,
    accounts: Mutex<Counter<String>>,
}

impl Throttle {
    /// `0` disables a limit.
    pub fn new(max_per_ip: u32, max_per_account: u32, window: Duration) -> Self {
        Self {
            window,
            ips: Mutex::new(Counter::new(max_per_ip)),
            accounts: Mutex::new(Counter::new(max_per_account)),
        }
    }

    /// Whether a login from `ip` (for `account`, once known) may be attempted now.
    pub fn check(&self, ip: IpAddr, account: Option<&str>) -> bool {
        let now = Instant::now();
        let ip_ok = self
            .ips
            .lock()
            .expect("throttle lock")
            .allowed(&ip, self.window, now);
        let account_ok = account.is_none_or(|a| {
            self.accounts
                .lock()
                .expect("throttle lock")
                .allowed(&a.to_string(), self.window, now)
        });
        ip_ok && account_ok
    }

    pub fn record_failure(&self, ip: IpAddr, account: Option<&str>) {
        let now = Instant::now();
        self.ips
            .lock()
            .expect("throttle lock")
            .fail(&ip, self.window, now);
        if let Some(a) = account {
            self.accounts
                .lock()
                .expect("throttle lock")
                .fail(&a.to_string(), self.window, now);
        }
    }

    /// A successful login clears the account's failures (not the address's: one valid login
    /// must not reset a password-guessing run against other accounts).
    pub fn record_success(&self, account: &str) {
        self.accounts
            .lock()
            .expect("throttle lock")
            .clear(&account.to_string());
    }
}
