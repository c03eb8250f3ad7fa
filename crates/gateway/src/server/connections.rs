//! Connection limits that hold under abuse: a global cap, a cap per client address, and the
//! counters `/metrics` shows.
//!
//! A connection over either cap is closed as soon as it is accepted (it never waits in the
//! listen backlog, where it would hold up everyone behind it), so one address opening
//! thousands of connections only ever loses its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::ConnectionStats;

/// Limits of the listening side (flags of `octaneweb serve`).
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Most connections open at once (WebSockets included).
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_per_address: usize,
    /// A connection that sends no byte (or completes no TLS handshake) within this is closed.
    pub first_byte_timeout: Duration,
    /// Longest time to receive a request's headers once they have begun.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight (HTTP/1.1 keep-alive, HTTP/2 with no open
    /// stream) for this long is closed.
    pub idle_timeout: Duration,
    /// A connection whose writes make no progress for this long is closed (the client
    /// stopped reading); see [`super::stall`].
    pub send_stall_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_address: 256,
            first_byte_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            send_stall_timeout: Duration::from_secs(10),
        }
    }
}

/// Admits connections within the caps and counts them until their [`AdmittedConnection`] drops.
#[derive(Debug)]
pub(crate) struct ConnectionGate {
    limits: ConnectionLimits,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<ConnectionStats>,
    emptied: Notify,
}

/// One admitted connection. It is held by the connection's task and, after a WebSocket
/// upgrade, by the socket's handler (a request extension), so upgraded sockets count too.
#[derive(Clone, Debug)]
pub struct AdmittedConnection {
    _held: Arc<SlotInner>,
}

#[derive(Debug)]
struct SlotInner {
    gate: Arc<ConnectionGate>,
    address: IpAddr,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        let gate = &self.gate;
        {
            let mut map = gate
                .per_address
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = map.get_mut(&self.address) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&self.address);
                }
            }
        }
        if gate.stats.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            gate.emptied.notify_waiters();
        }
    }
}

impl ConnectionGate {
    pub(crate) fn new(limits: ConnectionLimits, stats: Arc<ConnectionStats>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            per_address: Mutex::new(HashMap::new()),
            stats,
            emptied: Notify::new(),
        })
    }

    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    pub(crate) fn stats(&self) -> &Arc<ConnectionStats> {
        &self.stats
    }

    /// A slot for a connection from `address`, or `None` when a cap is reached.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Option<AdmittedConnection> {
        let stats = &self.stats;
        {
            let mut map = self
                .per_address
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if stats.open.load(Ordering::Acquire) >= self.limits.max_connections {
                stats.refused_total.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let count = map.entry(address).or_insert(0);
            if *count >= self.limits.max_per_address {
                stats.refused_per_address.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            *count += 1;
            stats.open.fetch_add(1, Ordering::AcqRel);
        }
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        Some(AdmittedConnection {
            _held: Arc::new(SlotInner {
                gate: Arc::clone(self),
                address,
            }),
        })
    }

    /// Resolves when no connection is open.
    pub(crate) async fn emptied(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stats.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Requests in flight on one connection, for its idle timeout, and the send clocks of their
/// response bodies, for the stream-level send-stall check.
#[derive(Debug)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    changed: Notify,
    started: Instant,
    clocks: Mutex<Clocks>,
}

/// The send clocks of a connection's responses; finished ones are pruned when the list has
/// doubled since the last pruning, so a busy HTTP/2 connection pays O(1) per response.
#[derive(Debug, Default)]
struct Clocks {
    live: Vec<Weak<SendClock>>,
    prune_at: usize,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            count: AtomicUsize::new(0),
            changed: Notify::new(),
            started: Instant::now(),
            clocks: Mutex::new(Clocks::default()),
        }
    }
}

/// Held while one request (its response body included) is in flight.
pub(crate) struct InFlightGuard(Arc<InFlight>);

/// When a response body last handed a frame to the HTTP layer that the HTTP layer has not
/// come back for (milliseconds since the connection began, plus one; 0 = none pending).
///
/// Over HTTP/2 a client that stops reading one stream withholds that stream's flow-control
/// window: the socket stays busy with other streams, so only this clock shows the stall.
#[derive(Debug, Default)]
pub(crate) struct SendClock(AtomicU64);

impl SendClock {
    pub(crate) fn handed(&self, connection: &InFlight) {
        let ms = connection.started.elapsed().as_millis() as u64 + 1;
        self.0.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn taken(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

impl InFlight {
    pub(crate) fn start(self: &Arc<Self>) -> InFlightGuard {
        if self.count.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_waiters();
        }
        InFlightGuard(Arc::clone(self))
    }

    /// A send clock for one response body on this connection.
    pub(crate) fn clock(&self) -> Arc<SendClock> {
        let clock = Arc::new(SendClock::default());
        let mut clocks = self.clocks.lock().unwrap_or_else(PoisonError::into_inner);
        if clocks.live.len() >= clocks.prune_at {
            clocks.live.retain(|c| c.strong_count() > 0);
            clocks.prune_at = (clocks.live.len() * 2).max(16);
        }
        clocks.live.push(Arc::downgrade(&clock));
        clock
    }

    /// Whether some response body has waited longer than `limit` for the HTTP layer to take
    /// its frame (the client stopped reading that stream).
    pub(crate) fn send_stalled(&self, limit: Duration) -> bool {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let limit = limit.as_millis() as u64;
        let clocks = self.clocks.lock().unwrap_or_else(PoisonError::into_inner);
        clocks.live.iter().filter_map(Weak::upgrade).any(|clock| {
            let handed = clock.0.load(Ordering::Relaxed);
            handed != 0 && now.saturating_sub(handed) > limit
        })
    }

    /// Resolves once no request has been in flight for `timeout`.
    pub(crate) async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => return,
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_overall_and_slots_give_back() {
        let limits = ConnectionLimits {
            max_connections: 3,
            max_per_address: 2,
            ..ConnectionLimits::default()
        };
        let stats = Arc::new(ConnectionStats::default());
        let gate = ConnectionGate::new(limits, Arc::clone(&stats));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let a1 = gate.admit(a).expect("first");
        let a2 = gate.admit(a).expect("second");
        assert!(gate.admit(a).is_none(), "per-address cap");
        let b1 = gate.admit(b).expect("other address");
        assert!(gate.admit(b).is_none(), "global cap");
        drop(a1);
        assert!(gate.admit(b).is_some());
        drop((a2, b1));
        let metrics = crate::metrics::Metrics::new();
        metrics.add_collector(Arc::clone(&stats));
        assert!(metrics
            .render()
            .contains("octaneweb_connections_refused_total{cap=\"per_address\"} 1"));
        assert!(gate.per_address.lock().unwrap().is_empty());
    }
}
