//! Who gets in, decided before any SSH work is spent: the connection limits (total, a fair share
//! per address, an optional explicit per-address cap, a per-address arrival rate) and the fair
//! queue for key exchanges in progress. A keynote room arrives through a few conference NAT
//! addresses, so one address may fill most of the server, but never all of it: the last
//! quarter of every limit is kept for everyone else. Knows nothing of SSH; `server` writes the
//! refusals.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::{Quota, RateLimiter};
use tokio::sync::oneshot;

use crate::ssh::Refusal;

/// Connection limits, all checked before any SSH work is done.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in total. Each idle visitor costs about 60 KiB, so the default of
    /// 10 000 is about 600 MiB: a keynote room on a small VM.
    pub max_connections: usize,
    /// An explicit cap on open connections from one address, for operators who want one.
    /// `usize::MAX` (the default) means none: the fair share below still applies.
    pub max_per_ip: usize,
    /// New connections one address may open in a burst ...
    pub burst_per_ip: u32,
    /// ... and per second after that. A room arriving through one NAT comes at about 100/s.
    pub rate_per_ip: f64,
    /// Key exchanges in progress at once (like OpenSSH's MaxStartups); more wait their turn.
    pub max_startups: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_ip: usize::MAX,
            burst_per_ip: 1_000,
            rate_per_ip: 200.0,
            max_startups: 256,
        }
    }
}

/// The most one address may hold of a limit: three quarters, so a quarter is always left for
/// other addresses (and at least one, so a tiny limit still lets someone in).
pub fn fair_share(limit: usize) -> usize {
    (limit.saturating_mul(3) / 4).max(1)
}

/// Open connections: in total and per address.
#[derive(Default)]
struct Open {
    /// Connections holding a ticket now.
    total: usize,
    /// Per address; entries are removed when they reach zero, so the map stays as small as
    /// the set of addresses with something open.
    per_ip: HashMap<IpAddr, usize>,
}

/// Keyed token buckets for the arrival rate (governor's GCRA, one cell per address).
type RateBuckets = RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    governor::clock::DefaultClock,
>;

/// The connection limits of one server. Cheap to share (`Arc`).
pub struct Admission {
    /// The configured limits.
    limits: Limits,
    /// What is open now.
    open: Mutex<Open>,
    /// Arrival rate per address.
    rate: RateBuckets,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        let burst = NonZeroU32::new(limits.burst_per_ip).unwrap_or(NonZeroU32::MIN);
        // A rate of 0 would mean "never refill"; a refill every 1 000 s is as good and valid.
        let period = Duration::from_secs_f64(1.0 / limits.rate_per_ip.max(0.001));
        let quota =
            Quota::with_period(period).unwrap_or(Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        Arc::new(Self { limits, open: Mutex::new(Open::default()), rate: RateLimiter::dashmap(quota) })
    }

    /// The limits this admission enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        // The lock guards plain counters; a panic while holding it leaves them usable.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a place for a new connection whose address is not known yet (it comes from a
    /// trusted proxy and the PROXY header follows). Only the total is checked.
    pub fn reserve(self: &Arc<Self>) -> Result<Reservation, Refusal> {
        let mut open = self.open();
        if open.total >= self.limits.max_connections {
            return Err(Refusal::ServerFull);
        }
        open.total += 1;
        Ok(Reservation { admission: Some(self.clone()) })
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        self.reserve()?.assign(ip)
    }

    /// Checks the per-address rules for a connection that already holds a place in the total.
    fn assign(self: &Arc<Self>, ip: IpAddr) -> Result<(), Refusal> {
        let mut open = self.open();
        let held = open.per_ip.get(&ip).copied().unwrap_or(0);
        if held >= fair_share(self.limits.max_connections) || held >= self.limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if self.rate.check_key(&ip).is_err() {
            return Err(Refusal::RateLimited);
        }
        *open.per_ip.entry(ip).or_insert(0) += 1;
        if self.rate.len() > 100_000 {
            // Forget addresses whose bucket has refilled anyway, so a scan of the internet does
            // not grow the map without bound.
            self.rate.retain_recent();
        }
        Ok(())
    }

    fn release(&self, ip: Option<IpAddr>) {
        let mut open = self.open();
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = ip
            && let Some(held) = open.per_ip.get_mut(&ip)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }

    /// Open connections in total and from `ip`, for tests and logs.
    pub fn counts(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.open();
        (open.total, open.per_ip.get(&ip).copied().unwrap_or(0))
    }
}

/// A place in the total, before the client's address is known. Dropping it gives the place back.
pub struct Reservation {
    /// `None` once turned into a [`Ticket`].
    admission: Option<Arc<Admission>>,
}

impl Reservation {
    /// The client's address is known: check its limits and hold a place for it too.
    pub fn assign(mut self, ip: IpAddr) -> Result<Ticket, Refusal> {
        let Some(admission) = self.admission.take() else {
            return Err(Refusal::ServerFull);
        };
        match admission.assign(ip) {
            Ok(()) => Ok(Ticket { admission, ip }),
            Err(refusal) => {
                admission.release(None);
                Err(refusal)
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            admission.release(None);
        }
    }
}

/// One admitted connection, counted against the total and its address until dropped.
pub struct Ticket {
    /// Where to give the place back.
    admission: Arc<Admission>,
    /// The client's address (from the PROXY header when behind a load balancer).
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release(Some(self.ip));
    }
}

/// Key exchanges in progress, and who waits for one.
#[derive(Default)]
struct Queue {
    /// Handshakes holding a slot now.
    running: usize,
    /// Slots held per address (entries removed at zero).
    per_ip: HashMap<IpAddr, usize>,
    /// Waiters per address, oldest first.
    waiting: HashMap<IpAddr, VecDeque<oneshot::Sender<()>>>,
    /// Addresses with waiters, in the order they are served (round robin).
    turns: VecDeque<IpAddr>,
}

/// Bounds the key exchanges in progress, fairly per address: one address may hold at most
/// three quarters of the slots, and when slots free up the waiting addresses take turns. A
/// handshake flood from one address therefore delays its own connections, not everyone's.
///
/// Hand-written: tokio's `Semaphore` is one FIFO queue (a flood from one address would sit in
/// front of everyone), and no maintained crate offers a per-key fair semaphore.
pub struct Handshakes {
    /// Slots in total.
    limit: usize,
    /// The state, behind one short lock.
    queue: Mutex<Queue>,
}

impl Handshakes {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit: limit.max(1), queue: Mutex::new(Queue::default()) })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a handshake slot for `ip`. Drop the returned slot when the handshake is over.
    pub async fn enter(self: &Arc<Self>, ip: IpAddr) -> HandshakeSlot {
        let waiter = {
            let mut queue = self.queue();
            if self.may_start(&queue, ip) {
                Self::start(&mut queue, ip);
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let line = queue.waiting.entry(ip).or_default();
                if line.is_empty() {
                    queue.turns.push_back(ip);
                }
                if let Some(line) = queue.waiting.get_mut(&ip) {
                    line.push_back(tx);
                }
                Some(rx)
            }
        };
        let mut slot = HandshakeSlot { handshakes: Some(self.clone()), ip };
        if let Some(rx) = waiter
            && rx.await.is_err()
        {
            // The queue was dropped without granting (cannot happen while `self` lives);
            // hold nothing rather than release a slot we never got.
            slot.handshakes = None;
        }
        slot
    }

    /// Handshakes in progress now.
    pub fn running(&self) -> usize {
        self.queue().running
    }

    fn may_start(&self, queue: &Queue, ip: IpAddr) -> bool {
        queue.running < self.limit && queue.per_ip.get(&ip).copied().unwrap_or(0) < fair_share(self.limit)
    }

    fn start(queue: &mut Queue, ip: IpAddr) {
        queue.running += 1;
        *queue.per_ip.entry(ip).or_insert(0) += 1;
    }

    fn finish(&self, ip: IpAddr) {
        let mut queue = self.queue();
        queue.running = queue.running.saturating_sub(1);
        if let Some(held) = queue.per_ip.get_mut(&ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                queue.per_ip.remove(&ip);
            }
        }
        self.grant(&mut queue);
    }

    /// Hands free slots to waiting addresses in turn, skipping any at their share.
    fn grant(&self, queue: &mut Queue) {
        let mut passes = queue.turns.len();
        while queue.running < self.limit && passes > 0 {
            let Some(ip) = queue.turns.pop_front() else { break };
            passes -= 1;
            if !self.may_start(queue, ip) {
                queue.turns.push_back(ip);
                continue;
            }
            let Some(line) = queue.waiting.get_mut(&ip) else { continue };
            // A waiter whose connection went away has dropped its receiver: try the next.
            let mut granted = false;
            while let Some(tx) = line.pop_front() {
                if tx.send(()).is_ok() {
                    granted = true;
                    break;
                }
            }
            let more = !line.is_empty();
            if !more {
                queue.waiting.remove(&ip);
            }
            if granted {
                Self::start(queue, ip);
                // Served: it goes to the back of the line, and everyone gets another look.
                passes = queue.turns.len() + usize::from(more);
            }
            if more {
                queue.turns.push_back(ip);
            }
        }
    }
}

/// One key exchange's slot; dropping it lets the next waiting handshake start.
pub struct HandshakeSlot {
    /// `None` when nothing is held.
    handshakes: Option<Arc<Handshakes>>,
    /// Whose slot it is.
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        if let Some(handshakes) = self.handshakes.take() {
            handshakes.finish(self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn limits(max_connections: usize) -> Limits {
        Limits { max_connections, ..Limits::default() }
    }

    #[test]
    fn one_address_leaves_a_quarter_for_everyone_else() {
        let admission = Admission::new(limits(400));
        let mut held = Vec::new();
        while let Ok(ticket) = admission.admit(ip(1)) {
            held.push(ticket);
        }
        assert_eq!(held.len(), 300, "one address gets three quarters of 400");
        assert!(matches!(admission.admit(ip(1)), Err(Refusal::TooManyFromAddress)));
        let others: Vec<_> = (2..42).map(|n| admission.admit(ip(n)).expect("room for others")).collect();
        assert_eq!(others.len(), 40);
        assert_eq!(admission.counts(ip(1)), (340, 300));
    }

    #[test]
    fn the_total_is_a_hard_limit_whoever_asks() {
        let admission = Admission::new(limits(8));
        let held: Vec<_> = (0..8).map(|n| admission.admit(ip(n)).expect("room")).collect();
        assert!(matches!(admission.admit(ip(100)), Err(Refusal::ServerFull)));
        drop(held);
        assert!(admission.admit(ip(100)).is_ok(), "places come back when connections end");
    }

    #[test]
    fn an_explicit_per_address_cap_is_still_honoured() {
        let admission = Admission::new(Limits { max_per_ip: 2, ..limits(100) });
        let a = admission.admit(ip(1)).expect("first");
        let _b = admission.admit(ip(1)).expect("second");
        assert!(matches!(admission.admit(ip(1)), Err(Refusal::TooManyFromAddress)));
        assert!(admission.admit(ip(2)).is_ok(), "another address is not affected");
        drop(a);
        assert!(admission.admit(ip(1)).is_ok(), "a closed connection frees the address's place");
    }

    #[test]
    fn the_arrival_rate_is_per_address() {
        let admission = Admission::new(Limits { burst_per_ip: 3, rate_per_ip: 0.01, ..limits(100) });
        let _held: Vec<_> = (0..3).map(|_| admission.admit(ip(1)).expect("burst")).collect();
        assert!(matches!(admission.admit(ip(1)), Err(Refusal::RateLimited)));
        assert!(admission.admit(ip(2)).is_ok());
        assert_eq!(admission.counts(ip(1)), (3, 3), "a refused connection holds nothing");
    }

    #[test]
    fn default_limits_admit_a_keynote_room_from_one_address() {
        // 3 000 visitors at 100/s through one NAT address: the burst covers the first 1 000
        // arriving at once, the rate (200/s) keeps up with 100/s after that, and the fair
        // share of the default total (7 500) holds them all.
        let admission = Admission::new(Limits::default());
        let held: Vec<_> = (0..1_000).map(|_| admission.admit(ip(1)).expect("burst")).collect();
        assert_eq!(held.len(), 1_000);
        assert!(fair_share(Limits::default().max_connections) >= 3_000);
    }

    #[test]
    fn a_reservation_checks_the_address_when_it_is_known() {
        let admission = Admission::new(Limits { max_per_ip: 1, ..limits(10) });
        let first = admission.reserve().expect("room").assign(ip(1)).expect("admitted");
        let refused = admission.reserve().expect("room").assign(ip(1));
        assert!(matches!(refused, Err(Refusal::TooManyFromAddress)));
        assert_eq!(admission.counts(ip(1)), (1, 1), "the refused reservation gave its place back");
        drop(first);
        assert_eq!(admission.counts(ip(1)), (0, 0));
    }

    /// Polls a future once.
    fn ready<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        futures_util::FutureExt::now_or_never(f)
    }

    #[tokio::test]
    async fn a_flooding_address_leaves_handshake_slots_for_others() {
        let gate = Handshakes::new(4);
        let mut flood = Vec::new();
        for _ in 0..3 {
            flood.push(gate.enter(ip(1)).await);
        }
        // The flood's fourth handshake waits: three of four slots is its share.
        let mut fourth = Box::pin(gate.enter(ip(1)));
        assert!(ready(&mut fourth).is_none());
        // Someone else starts at once.
        let visitor = ready(&mut Box::pin(gate.enter(ip(2)))).expect("not queued");
        assert_eq!(gate.running(), 4);
        drop(visitor);
        // The flood's waiter still can't pass its share...
        assert!(ready(&mut fourth).is_none());
        drop(flood.pop());
        // ...until one of its own finishes.
        let slot = ready(&mut fourth).expect("granted");
        assert_eq!(gate.running(), 3);
        drop(slot);
        drop(flood);
        assert_eq!(gate.running(), 0);
    }

    #[tokio::test]
    async fn waiting_addresses_take_turns() {
        let gate = Handshakes::new(2);
        let a1 = gate.enter(ip(1)).await;
        let b1 = gate.enter(ip(2)).await;
        // Both slots taken (and each address at its share of one): a queues two, b one.
        let mut a2 = Box::pin(gate.enter(ip(1)));
        let mut a3 = Box::pin(gate.enter(ip(1)));
        let mut b2 = Box::pin(gate.enter(ip(2)));
        assert!(ready(&mut a2).is_none() && ready(&mut a3).is_none() && ready(&mut b2).is_none());
        drop(a1);
        let _a2 = ready(&mut a2).expect("a was first in line");
        drop(b1);
        let _b2 = ready(&mut b2).expect("then b's turn, before a's second");
        assert!(ready(&mut a3).is_none());
        assert_eq!(gate.running(), 2);
    }

    #[tokio::test]
    async fn a_waiter_that_left_does_not_hold_a_slot() {
        let gate = Handshakes::new(1);
        let first = gate.enter(ip(1)).await;
        let mut gone = Box::pin(gate.enter(ip(2)));
        assert!(ready(&mut gone).is_none());
        drop(gone);
        let mut next = Box::pin(gate.enter(ip(3)));
        drop(first);
        let _next = ready(&mut next).expect("the slot skipped the waiter that left");
        assert_eq!(gate.running(), 1);
    }
}
