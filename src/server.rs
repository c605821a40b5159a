//! The accept loop: connection limits (global, per address, per-address rate), one task per
//! connection, and graceful shutdown (stop accepting, tell sessions, wait a bounded time).
//! Knows nothing of SSH beyond calling `ssh::serve` and `ssh::refuse`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::content::Content;
use crate::metrics::Metrics;
use crate::proxy::{ClientStream, Trusted};
use crate::room::{AUDIENCE_TICK, Room};
use crate::ssh::{self, Refusal, Settings, Shared};

/// Connection limits, all checked before any SSH work is done.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections from one address. A conference room shares one NAT address, so this
    /// is high by default.
    pub max_per_ip: usize,
    /// New connections one address may open in a burst ...
    pub burst_per_ip: u32,
    /// ... and per second after that.
    pub rate_per_ip: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_connections: 4096, max_per_ip: 512, burst_per_ip: 600, rate_per_ip: 20.0 }
    }
}

/// What the server needs to run.
pub struct ServerConfig {
    pub host_key: PrivateKey,
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

/// Per-address bookkeeping for the limits.
struct AddressState {
    /// Connections open now.
    open: usize,
    /// Token bucket for new connections.
    tokens: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
}

/// Tracks open connections and connection rates per client address.
struct Registry {
    limits: Limits,
    addresses: Mutex<HashMap<IpAddr, AddressState>>,
}

impl Registry {
    /// Admits a new connection from `ip`, or says why not.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<AddressGuard, Refusal> {
        let mut addresses = self.addresses.lock().map_err(|_| Refusal::ServerFull)?;
        let now = Instant::now();
        if addresses.len() > 50_000 {
            // Forget addresses with nothing open whose bucket has refilled anyway.
            let full_after = Duration::from_secs_f64(
                f64::from(self.limits.burst_per_ip) / self.limits.rate_per_ip.max(0.001),
            );
            addresses.retain(|_, s| s.open > 0 || now.duration_since(s.refilled) < full_after);
        }
        let burst = f64::from(self.limits.burst_per_ip);
        let state = addresses.entry(ip).or_insert(AddressState { open: 0, tokens: burst, refilled: now });
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.limits.rate_per_ip).min(burst);
        state.refilled = now;
        if state.open >= self.limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if state.tokens < 1.0 {
            return Err(Refusal::RateLimited);
        }
        state.tokens -= 1.0;
        state.open += 1;
        Ok(AddressGuard { registry: self.clone(), ip })
    }
}

/// Counts one open connection against its address until dropped.
struct AddressGuard {
    registry: Arc<Registry>,
    ip: IpAddr,
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        if let Ok(mut addresses) = self.registry.addresses.lock()
            && let Some(state) = addresses.get_mut(&self.ip)
        {
            state.open = state.open.saturating_sub(1);
        }
    }
}

/// At most this many refusals are being written at once; past it, sockets are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;

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
    let shared = Arc::new(Shared::new(
        config.host_key,
        config.content,
        stop_rx,
        config.settings,
        metrics.clone(),
        room.clone(),
    ));
    // Audience counts reach screens at most once a tick, however many people join or leave.
    let sampled = metrics.clone();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(AUDIENCE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            room.publish_audience();
            sampled.sample_room(&room);
        }
    });
    let trusted = Arc::new(config.trusted_proxies);
    let registry =
        Arc::new(Registry { limits: config.limits.clone(), addresses: Mutex::new(HashMap::new()) });
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
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
        let behind_proxy = trusted.contains(&peer);
        // Without a proxy the peer is the client: check its limits before spending a task.
        let admitted = match slots.clone().try_acquire_owned() {
            Ok(permit) if behind_proxy => Ok((permit, None)),
            Ok(permit) => registry.admit(peer.ip()).map(|guard| (permit, Some(guard))),
            Err(_) => Err(Refusal::ServerFull),
        };
        let (permit, guard) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                refuse(socket, peer, refusal, &metrics, &refusals);
                continue;
            }
        };
        let (shared, trusted, registry, metrics, refusals) =
            (shared.clone(), trusted.clone(), registry.clone(), metrics.clone(), refusals.clone());
        tasks.spawn(async move {
            let (stream, client, guard) = if behind_proxy {
                match ClientStream::with_header(socket, peer, PROXY_HEADER_TIMEOUT).await {
                    Ok((stream, client)) => match registry.admit(client.ip()) {
                        Ok(guard) => (stream, client, guard),
                        Err(refusal) => {
                            drop(permit);
                            refuse(stream, client, refusal, &metrics, &refusals);
                            return;
                        }
                    },
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "connection from trusted proxy dropped");
                        metrics.refused("proxy-header");
                        return;
                    }
                }
            } else {
                let stream = if trusted.is_empty() {
                    ClientStream::plain(socket)
                } else {
                    ClientStream::untrusted(socket)
                };
                match guard {
                    Some(guard) => (stream, peer, guard),
                    None => return,
                }
            };
            serve_one(stream, client, shared).await;
            drop(guard);
            drop(permit);
        });
    }

    metrics.set_ready(false);
    ticker.abort();
    tracing::info!(open = tasks.len(), "shutting down: telling open sessions");
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = drain + Duration::from_secs(1);
    if tokio::time::timeout(deadline, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(left = tasks.len(), "drain time over; closing the rest");
        tasks.abort_all();
    }
    Ok(())
}

/// Logs and counts a refusal, then writes it (bounded in number, so a flood of refusals
/// costs little).
fn refuse<S>(stream: S, peer: SocketAddr, refusal: Refusal, metrics: &Metrics, in_flight: &Arc<Semaphore>)
where
    S: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tracing::info!(%peer, reason = refusal.as_str(), "connection refused");
    metrics.refused(refusal.as_str());
    if let Ok(permit) = in_flight.clone().try_acquire_owned() {
        tokio::spawn(async move {
            ssh::refuse(stream, refusal).await;
            drop(permit);
        });
    }
}

async fn serve_one(socket: ClientStream, peer: SocketAddr, shared: Arc<Shared>) {
    // A panic anywhere in this connection's code ends this connection only; it is caught and
    // logged here (its session tasks have their own supervisor).
    let serve = std::panic::AssertUnwindSafe(ssh::serve(socket, peer, shared));
    if serve.catch_unwind().await.is_err() {
        tracing::error!(%peer, "connection task panicked; only this connection ended");
    }
}
