//! Per-client request rate limits: a token bucket per API key (or per peer
//! address when no key is presented), refilled continuously.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept before idle (full) ones are dropped.
const MAX_CLIENTS: usize = 100_000;

pub struct RateLimiter {
    /// Tokens per second.
    rate: f64,
    /// Bucket size (the largest burst).
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate (tokens per second) and the burst.
    pub fn settings(&self) -> (f64, f64) {
        (self.rate, self.burst)
    }

    /// Tokens in a bucket left at `tokens` at `last`, refilled up to `now`.
    fn level(&self, tokens: f64, last: Instant, now: Instant) -> f64 {
        (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst)
    }

    /// `Err(seconds)` until a bucket at `level` holds a whole token.
    fn wait(&self, level: f64) -> Result<(), f64> {
        if level >= 1.0 {
            Ok(())
        } else {
            Err((1.0 - level) / self.rate)
        }
    }

    /// Whether `client` has a token now, without taking it; `Err(seconds)`
    /// until it will.
    pub fn peek(&self, client: &str) -> Result<(), f64> {
        let b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match b.get(client) {
            None => Ok(()),
            Some(&(tokens, last)) => self.wait(self.level(tokens, last, Instant::now())),
        }
    }

    /// Takes one token for `client`; `Err(seconds)` until the next one
    /// when the bucket is empty.
    pub fn check(&self, client: &str) -> Result<(), f64> {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() >= MAX_CLIENTS && !b.contains_key(client) {
            b.retain(|_, (tokens, t)| self.level(*tokens, *t, now) < self.burst);
        }
        let (tokens, last) = b.entry(client.to_string()).or_insert((self.burst, now));
        *tokens = self.level(*tokens, *last, now);
        *last = now;
        let r = self.wait(*tokens);
        if r.is_ok() {
            *tokens -= 1.0;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let l = RateLimiter::new(1000.0, 3.0);
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!(wait > 0.0 && wait <= 0.001, "{wait}");
        // Peeking takes nothing.
        assert!(l.peek("a").is_err());
        assert!(l.peek("b").is_ok());
        // Another client has its own bucket.
        assert!(l.check("b").is_ok());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(l.check("a").is_ok());
    }
}
