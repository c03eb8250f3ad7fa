//! An optional per-address limit on calls per second (`--rate-limit N`), with a burst of N.
//!
//! One HTTP request is one call; a `/ws` socket counts once, when it opens (its calls are
//! bounded by `--ws-max-calls`). The addresses remembered are pruned every minute, so a
//! client changing addresses cannot grow the table.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

/// How often addresses that have been quiet for a while are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Calls per second per client address.
#[derive(Clone, Debug)]
pub struct CallRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_second: NonZeroU32,
}

impl CallRateLimit {
    /// A limit of `per_second` calls per second per address. Must be called inside a tokio
    /// runtime (a task prunes the table while the limit lives).
    pub fn new(per_second: NonZeroU32) -> CallRateLimit {
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_second(
            per_second,
        )));
        let weak = Arc::downgrade(&limiter);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(PRUNE_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(limiter) = weak.upgrade() else {
                        return;
                    };
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            });
        }
        CallRateLimit {
            limiter,
            per_second,
        }
    }

    /// Takes one call from `address`'s allowance; false when it is spent.
    pub fn admit(&self, address: IpAddr) -> bool {
        self.limiter.check_key(&address).is_ok()
    }

    /// The configured calls per second.
    pub fn per_second(&self) -> u32 {
        self.per_second.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_address_has_its_own_allowance() {
        let limit = CallRateLimit::new(NonZeroU32::new(3).unwrap());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let admitted = (0..10).filter(|_| limit.admit(a)).count();
        assert_eq!(admitted, 3);
        assert!(limit.admit(b));
    }
}
