//! Flood limits as token buckets: per MUC occupant and room (one noisy client cannot drown a
//! room, nor a room the server), per incoming server-to-server stream, and bytes per second
//! through the SOCKS5 bytestream proxy.

use std::time::Instant;

/// Allows `rate` events per second on average, and bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.take_many(1.0, rate, burst, now)
    }

    /// Takes `amount` tokens if there are that many (never when `amount` exceeds `burst`).
    pub fn take_many(&mut self, amount: f64, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }

    /// How long until a token is there at `rate`, as of the last `take`.
    pub fn until_next(&self, rate: f64) -> std::time::Duration {
        self.until(1.0, rate)
    }

    /// How long until `amount` tokens are there at `rate`, as of the last `take`.
    pub fn until(&self, amount: f64, rate: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(((amount - self.tokens) / rate).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3.0, t0);
        assert_eq!((0..5).filter(|_| b.take(2.0, 3.0, t0)).count(), 3);
        // Half a second at 2/s gives one more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(2.0, 3.0, t1));
        assert!(!b.take(2.0, 3.0, t1));
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| b.take(2.0, 3.0, t2)).count(), 3);
    }

    #[test]
    fn takes_amounts() {
        let t0 = Instant::now();
        let mut b = Bucket::full(1000.0, t0);
        assert!(b.take_many(600.0, 1000.0, 1000.0, t0));
        assert!(!b.take_many(600.0, 1000.0, 1000.0, t0));
        assert_eq!(b.until(600.0, 1000.0), Duration::from_millis(200));
        assert!(b.take_many(600.0, 1000.0, 1000.0, t0 + Duration::from_millis(200)));
        // More than a burst never fits.
        assert!(!b.take_many(1001.0, 1000.0, 1000.0, t0 + Duration::from_secs(60)));
    }
}
