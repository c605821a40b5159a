//! The accept loop: one task per connection, admission (`admit`: the PROXY header, then the
//! limits in `admission`), a fair key-exchange slot, and graceful shutdown (stop accepting,
//! tell sessions, wait a bounded time).
//! Knows nothing of SSH beyond calling `ssh::serve` and `ssh::refuse`.
//!
//! `proxy` reads PROXY protocol headers from trusted load balancers.

pub mod admission;
pub mod proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use self::admission::Limits;
use self::admission::{Admission, HandshakeSlot, Handshakes, Ticket};
use self::proxy::{ClientStream, Trusted};
use crate::content::Content;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::ssh::{self, Refusal, Settings, Shared};

/// What the server needs to run.
pub struct ServerConfig {
    pub host_key: crate::ssh::hostkey::HostKey,
    /// The bio; publish a new value to reload every open session.
    pub content: watch::Receiver<Arc<Content>>,
    pub settings: Settings,
    pub limits: Limits,
    /// Networks (load balancers) whose connections start with a PROXY header; empty = off.
    pub trusted_proxies: Trusted,
    /// Counters and readiness, shared with the HTTP listener.
    pub metrics: Arc<Metrics>,
    /// Audience and presenter state (shared with other replicas by `cluster`, if configured).
    pub room: Arc<Room>,
}

/// How long a trusted proxy gets to send its header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// At most this many refusals are being written at once; past it, sockets are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;

/// What the accept loop hands every connection task: the admission rules and what they need.
struct Gate {
    /// Connection limits (total, fair share per address, explicit cap, rate).
    admission: Arc<Admission>,
    /// The fair queue for key exchanges in progress.
    handshakes: Arc<Handshakes>,
    /// Networks whose connections start with a PROXY header.
    trusted: Trusted,
    /// Refusals are counted here.
    metrics: Arc<Metrics>,
    /// Bounds the refusals being written at once.
    refusals: Arc<Semaphore>,
    /// How long a connection may wait for a key-exchange slot before it is dropped.
    queue_timeout: Duration,
}

/// A connection that may proceed to SSH.
struct Admitted {
    /// The stream, past any PROXY header.
    stream: ClientStream,
    /// The client's address (from the PROXY header behind a load balancer).
    client: SocketAddr,
    /// Its place in the limits, held until the connection ends.
    ticket: Ticket,
}

/// Why a connection was turned away.
enum Turned {
    /// Over a limit: tell the client why.
    Refused(ClientStream, SocketAddr, Refusal),
    /// A trusted proxy sent no usable header: just close (counted under this reason).
    Dropped(&'static str),
}

/// Decides whether a new connection gets in: reads the PROXY header from trusted proxies, then
/// checks the limits for the client's address. The only place admission is decided.
async fn admit(gate: &Gate, socket: TcpStream, peer: SocketAddr) -> Result<Admitted, Turned> {
    if !gate.trusted.contains(&peer) {
        let stream = if gate.trusted.is_empty() {
            ClientStream::plain(socket)
        } else {
            ClientStream::untrusted(socket)
        };
        return match gate.admission.admit(peer.ip()) {
            Ok(ticket) => Ok(Admitted { stream, client: peer, ticket }),
            Err(refusal) => Err(Turned::Refused(stream, peer, refusal)),
        };
    }
    // Behind a proxy: hold a place in the total while the header arrives.
    let reservation = match gate.admission.reserve() {
        Ok(reservation) => reservation,
        Err(refusal) => return Err(Turned::Refused(ClientStream::plain(socket), peer, refusal)),
    };
    let (stream, client) = match ClientStream::with_header(socket, peer, PROXY_HEADER_TIMEOUT).await {
        Ok(read) => read,
        Err(e) => {
            tracing::info!(%peer, error = %e, "connection from trusted proxy dropped");
            return Err(Turned::Dropped("proxy-header"));
        }
    };
    match reservation.assign(client.ip()) {
        Ok(ticket) => Ok(Admitted { stream, client, ticket }),
        Err(refusal) => Err(Turned::Refused(stream, client, refusal)),
    }
}

/// One connection from accept to close: admission, a key-exchange slot, then SSH.
async fn connection(gate: Arc<Gate>, shared: Arc<Shared>, socket: TcpStream, peer: SocketAddr) {
    let admitted = match admit(&gate, socket, peer).await {
        Ok(admitted) => admitted,
        Err(Turned::Refused(stream, client, refusal)) => return refuse(stream, client, refusal, &gate),
        Err(Turned::Dropped(reason)) => return gate.metrics.refused(reason),
    };
    let ip = admitted.client.ip();
    let Ok(slot) = tokio::time::timeout(gate.queue_timeout, gate.handshakes.enter(ip)).await else {
        tracing::info!(peer = %admitted.client, "no key-exchange slot in time; connection dropped");
        return gate.metrics.refused("handshake-queue");
    };
    let places = (Box::new(admitted.ticket) as ssh::Seat, seats(&gate.admission, ip));
    serve_one(admitted.stream, admitted.client, shared, places, slot).await;
}

/// How a connection's further sessions take their places in the limits: as a new connection
/// from the same address would (the first session uses the connection's own ticket).
fn seats(admission: &Arc<Admission>, ip: std::net::IpAddr) -> ssh::Seats {
    let admission = admission.clone();
    Arc::new(move || admission.admit(ip).map(|ticket| Box::new(ticket) as ssh::Seat))
}

/// Serves SSH on `listener` until `shutdown` completes, then drains open sessions.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let drain = config.settings.drain_timeout;
    let metrics = config.metrics.clone();
    let room = config.room.clone();
    let gate = Arc::new(Gate {
        handshakes: Handshakes::new(config.limits.max_startups),
        admission: Admission::new(config.limits),
        trusted: config.trusted_proxies,
        metrics: metrics.clone(),
        refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        queue_timeout: config.settings.handshake_timeout,
    });
    let shared = Arc::new(Shared::new(
        config.host_key.key,
        config.content,
        stop_rx,
        config.settings,
        metrics.clone(),
        room.clone(),
    ));
    let ticker = tokio::spawn(room.clone().publish_audience_forever());
    let sampler = tokio::spawn(sample_room_forever(metrics.clone(), room));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    metrics.set_ready(true);

    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections as they end, not only at the next accept: a crowd that
            // leaves must not keep its tasks' memory until someone else arrives.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning, and
                    // never let it end the server (russh's own loop would return here).
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        tasks.spawn(connection(gate.clone(), shared.clone(), socket, peer));
    }

    metrics.set_ready(false);
    ticker.abort();
    sampler.abort();
    drop(listener);
    drain_sessions(tasks, &stop_tx, drain).await;
    Ok(())
}

/// Tells every open session the server is stopping, then waits for them a bounded time (the
/// drain timeout and a second for the goodbyes) and cuts what is left.
async fn drain_sessions(mut tasks: JoinSet<()>, stop: &watch::Sender<bool>, drain: Duration) {
    tracing::info!(open = tasks.len(), "shutting down: telling open sessions");
    let _ = stop.send(true);
    let deadline = drain + Duration::from_secs(1);
    if tokio::time::timeout(deadline, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(left = tasks.len(), "drain time over; closing the rest");
        tasks.abort_all();
    }
}

/// Copies the room's figures (followers, a presenter on stage) into the metrics once a second.
async fn sample_room_forever(metrics: Arc<Metrics>, room: Arc<Room>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        metrics.sample_room(room.local_counts().following, room.presenting_here(), room.counts().connected);
    }
}

/// Logs and counts a refusal, then writes it (bounded in number, so a flood of refusals
/// costs little).
fn refuse(stream: ClientStream, peer: SocketAddr, refusal: Refusal, gate: &Gate) {
    tracing::info!(%peer, reason = refusal.as_str(), "connection refused");
    gate.metrics.refused(refusal.as_str());
    if let Ok(permit) = gate.refusals.clone().try_acquire_owned() {
        tokio::spawn(async move {
            ssh::refuse(stream, refusal).await;
            drop(permit);
        });
    }
}

async fn serve_one(
    socket: ClientStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    (seat, seats): (ssh::Seat, ssh::Seats),
    handshake: HandshakeSlot,
) {
    // A panic anywhere in this connection's code ends this connection only; it is caught and
    // logged here (its session tasks have their own supervisor).
    let serve = std::panic::AssertUnwindSafe(ssh::serve(socket, peer, shared, seat, seats, handshake));
    if serve.catch_unwind().await.is_err() {
        tracing::error!(%peer, "connection task panicked; only this connection ended");
    }
}
