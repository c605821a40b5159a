//! What all sessions of one server share while a talk is on: how many visitors are connected,
//! how many follow the presenter, and where the presenter is. Newest-value channels only
//! (`watch`), so a follower that is slow to draw skips to the latest position instead of
//! queueing moves. No I/O and no SSH here.
//!
//! `cluster` bridges the room to other replicas through Redis (cargo feature `redis`, on by
//! default). Must not import `ssh` or `tui`.

#[cfg(feature = "redis")]
pub mod cluster;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Where the presenter is: followers show the same page, at the same place in its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PresenterPosition {
    /// Navigation index of the page (sections, then links).
    pub page: usize,
    /// First visible line of the page text, at the presenter's width.
    pub scroll: usize,
    /// How many lines the page text wraps to at the presenter's width (0: unknown). A follower
    /// whose text wraps to another count scales `scroll` to the same place in the text.
    pub lines: usize,
}

/// The audience figures shown in headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Audience {
    /// Interactive sessions open now (the presenter included).
    pub connected: usize,
    /// Visitors following the presenter now.
    pub following: usize,
}

/// Shared room state. Cheap to clone behind an `Arc`.
#[derive(Debug)]
pub struct Room {
    connected: AtomicUsize,
    following: AtomicUsize,
    presenters: AtomicUsize,
    /// `None` while nobody presents.
    presenter: watch::Sender<Option<PresenterPosition>>,
    /// Published by [`Room::publish_audience`] at most once per tick.
    audience: watch::Sender<Audience>,
    /// The position of a presenter connected to this process, for other replicas.
    local_presenter: watch::Sender<Option<PresenterPosition>>,
    /// Other replicas' counts (when shared through Redis), with when each was heard.
    remote_audience: Mutex<HashMap<u64, (Audience, Instant)>>,
    /// When another replica last said its presenter is on stage (repeated every tick): a
    /// replica that dies without saying goodbye stops leading after [`REMOTE_EXPIRY`].
    remote_presenter_heard: Mutex<Option<Instant>>,
}

/// Another replica's counts are forgotten when not heard from for this long.
const REMOTE_EXPIRY: Duration = Duration::from_secs(5);

impl Default for Room {
    fn default() -> Self {
        Self {
            connected: AtomicUsize::new(0),
            following: AtomicUsize::new(0),
            presenters: AtomicUsize::new(0),
            presenter: watch::channel(None).0,
            audience: watch::channel(Audience::default()).0,
            local_presenter: watch::channel(None).0,
            remote_audience: Mutex::new(HashMap::new()),
            remote_presenter_heard: Mutex::new(None),
        }
    }
}

/// How often audience counts are published to a small room: joins and leaves in between cost
/// one redraw. Bigger rooms are told less often (see [`audience_period`]).
pub const AUDIENCE_TICK: Duration = Duration::from_secs(1);

/// Screens patched per second, at most, for a new count: the room's update period grows so that
/// the work stays about this however many are connected (each patch is one small encrypted
/// write per idle visitor; about 50 µs of server CPU on the 2-core benchmark machine).
const PATCHES_PER_SECOND: usize = 350;

/// The longest wait between audience updates, however big the room.
const MAX_AUDIENCE_PERIOD: Duration = Duration::from_secs(30);

/// How long to wait between audience updates in a room of `connected` visitors: every second
/// up to about 700, then long enough that at most `PATCHES_PER_SECOND` screens are patched per
/// second (3 000 visitors: every 8 s; 10 000: every 28 s), at most 30 s. Nobody in a keynote
/// room reads a five-digit count to the unit, and the count's cost stays flat as the room grows.
pub fn audience_period(connected: usize) -> Duration {
    let seconds = u64::try_from(connected / PATCHES_PER_SECOND).unwrap_or(u64::MAX);
    Duration::from_secs(seconds).clamp(AUDIENCE_TICK, MAX_AUDIENCE_PERIOD)
}

impl Room {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts an interactive session until the guard is dropped.
    pub fn join(self: &Arc<Self>) -> Seat {
        self.connected.fetch_add(1, Ordering::Relaxed);
        Seat { room: self.clone(), following: false }
    }

    pub fn presenter(&self) -> watch::Receiver<Option<PresenterPosition>> {
        self.presenter.subscribe()
    }

    pub fn audience(&self) -> watch::Receiver<Audience> {
        self.audience.subscribe()
    }

    /// This process's own counts.
    pub fn local_counts(&self) -> Audience {
        Audience {
            connected: self.connected.load(Ordering::Relaxed),
            following: self.following.load(Ordering::Relaxed),
        }
    }

    /// The counts of the whole room: this process plus other replicas heard recently.
    pub fn counts(&self) -> Audience {
        let mut total = self.local_counts();
        if let Ok(mut remote) = self.remote_audience.lock() {
            remote.retain(|_, (_, heard)| heard.elapsed() < REMOTE_EXPIRY);
            for (audience, _) in remote.values() {
                total.connected += audience.connected;
                total.following += audience.following;
            }
        }
        total
    }

    /// Records another replica's counts (from the Redis bridge).
    pub fn set_remote_audience(&self, replica: u64, audience: Audience) {
        if let Ok(mut remote) = self.remote_audience.lock() {
            remote.insert(replica, (audience, Instant::now()));
        }
    }

    /// A presenter on another replica moved (`Some`) or left (`None`). A presenter connected
    /// here takes precedence.
    pub fn set_remote_presenter(&self, position: Option<PresenterPosition>) {
        if let Ok(mut heard) = self.remote_presenter_heard.lock() {
            *heard = position.map(|_| Instant::now());
        }
        if self.presenters.load(Ordering::Relaxed) == 0 {
            self.presenter.send_if_modified(|current| {
                let changed = *current != position;
                *current = position;
                changed
            });
        }
    }

    /// True while a presenter is connected to this process.
    pub fn presenting_here(&self) -> bool {
        self.presenters.load(Ordering::Relaxed) > 0
    }

    /// Positions of a presenter connected to this process (for the Redis bridge).
    pub fn local_presenter(&self) -> watch::Receiver<Option<PresenterPosition>> {
        self.local_presenter.subscribe()
    }

    /// Publishes the counts every [`audience_period`] for as long as it runs (the server runs it
    /// for its lifetime), and checks every [`AUDIENCE_TICK`] whether a remote presenter's
    /// replica has gone quiet.
    pub async fn publish_audience_forever(self: Arc<Self>) {
        let mut published = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(AUDIENCE_TICK).await;
            self.expire_remote_presenter();
            if published.elapsed() >= audience_period(self.counts().connected) {
                self.publish_audience();
                published = tokio::time::Instant::now();
            }
        }
    }

    /// Ends a remote presenter's lead when their replica has gone quiet.
    fn expire_remote_presenter(&self) {
        let gone_quiet = self
            .remote_presenter_heard
            .lock()
            .ok()
            .is_some_and(|heard| heard.is_some_and(|at| at.elapsed() >= REMOTE_EXPIRY));
        if gone_quiet {
            self.set_remote_presenter(None);
        }
    }

    /// Publishes the counts if they changed.
    pub fn publish_audience(&self) {
        let counts = self.counts();
        self.audience.send_if_modified(|current| {
            let changed = *current != counts;
            *current = counts;
            changed
        });
    }

    /// Starts presenting; the position is published to every follower until the guard drops.
    pub fn present(self: &Arc<Self>, position: PresenterPosition) -> Stage {
        self.presenters.fetch_add(1, Ordering::Relaxed);
        self.presenter.send_replace(Some(position));
        self.local_presenter.send_replace(Some(position));
        Stage { room: self.clone() }
    }
}

/// One interactive session's place in the room.
#[derive(Debug)]
pub struct Seat {
    room: Arc<Room>,
    following: bool,
}

impl Seat {
    /// Records whether this visitor follows the presenter.
    pub fn set_following(&mut self, following: bool) {
        if following != self.following {
            self.following = following;
            if following {
                self.room.following.fetch_add(1, Ordering::Relaxed);
            } else {
                self.room.following.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.set_following(false);
        self.room.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The presenter's hold on the room.
#[derive(Debug)]
pub struct Stage {
    room: Arc<Room>,
}

impl Stage {
    /// Moves every follower (only the newest position is kept).
    pub fn moved(&self, position: PresenterPosition) {
        for sender in [&self.room.presenter, &self.room.local_presenter] {
            sender.send_if_modified(|current| {
                let changed = *current != Some(position);
                *current = Some(position);
                changed
            });
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // The last presenter to leave ends follow mode; visitors stay where they are.
        if self.room.presenters.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.room.presenter.send_replace(None);
            self.room.local_presenter.send_replace(None);
        }
    }
}

#[cfg(test)]
mod period_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn small_rooms_hear_every_second_and_big_ones_less_often() {
        assert_eq!(audience_period(0), Duration::from_secs(1));
        assert_eq!(audience_period(699), Duration::from_secs(1));
        assert_eq!(audience_period(3_000), Duration::from_secs(8));
        assert_eq!(audience_period(10_000), Duration::from_secs(28));
        assert_eq!(audience_period(1_000_000), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn the_count_reaches_screens_at_the_rooms_pace() {
        let room = Room::new();
        let mut audience = room.audience();
        let ticker = tokio::spawn(room.clone().publish_audience_forever());
        let started = tokio::time::Instant::now();
        let mut seats: Vec<Seat> = (0..10).map(|_| room.join()).collect();
        audience.changed().await.expect("published");
        assert_eq!(audience.borrow_and_update().connected, 10);
        assert_eq!(started.elapsed(), Duration::from_secs(1), "a small room hears within a second");

        // The room grows to 5 010: the next update after that comes 14 s later, not 1 s.
        seats.extend((0..5_000).map(|_| room.join()));
        audience.changed().await.expect("published");
        let grown = tokio::time::Instant::now();
        assert_eq!(audience.borrow_and_update().connected, 5_010);
        seats.push(room.join());
        audience.changed().await.expect("published");
        assert_eq!(grown.elapsed(), Duration::from_secs(14), "5 000 visitors hear every 14 s");
        assert_eq!(audience.borrow_and_update().connected, 5_011);
        ticker.abort();
        drop(seats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_and_followers_are_counted_and_released() {
        let room = Room::new();
        let mut a = room.join();
        let b = room.join();
        a.set_following(true);
        a.set_following(true);
        assert_eq!(room.counts(), Audience { connected: 2, following: 1 });
        drop(a);
        drop(b);
        assert_eq!(room.counts(), Audience::default());
    }

    #[test]
    fn followers_see_only_the_newest_position_and_the_end() {
        let room = Room::new();
        let mut rx = room.presenter();
        let stage = room.present(PresenterPosition { page: 0, scroll: 0, lines: 0 });
        for scroll in 0..100 {
            stage.moved(PresenterPosition { page: 2, scroll, lines: 0 });
        }
        assert_eq!(*rx.borrow_and_update(), Some(PresenterPosition { page: 2, scroll: 99, lines: 0 }));
        drop(stage);
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(*rx.borrow_and_update(), None);
    }

    #[test]
    fn remote_replicas_add_to_the_counts_and_can_lead() {
        let room = Room::new();
        let _seat = room.join();
        room.set_remote_audience(7, Audience { connected: 10, following: 4 });
        assert_eq!(room.counts(), Audience { connected: 11, following: 4 });
        assert_eq!(room.local_counts(), Audience { connected: 1, following: 0 });
        let mut rx = room.presenter();
        room.set_remote_presenter(Some(PresenterPosition { page: 3, scroll: 1, lines: 0 }));
        assert_eq!(*rx.borrow_and_update(), Some(PresenterPosition { page: 3, scroll: 1, lines: 0 }));
        // A local presenter wins over a remote one.
        let _stage = room.present(PresenterPosition { page: 0, scroll: 0, lines: 0 });
        room.set_remote_presenter(Some(PresenterPosition { page: 5, scroll: 0, lines: 0 }));
        assert_eq!(*rx.borrow_and_update(), Some(PresenterPosition { page: 0, scroll: 0, lines: 0 }));
    }

    #[test]
    fn a_remote_presenter_not_heard_from_stops_leading() {
        let room = Room::new();
        let mut rx = room.presenter();
        room.set_remote_presenter(Some(PresenterPosition { page: 1, scroll: 0, lines: 0 }));
        room.expire_remote_presenter();
        assert_eq!(*rx.borrow_and_update(), Some(PresenterPosition { page: 1, scroll: 0, lines: 0 }));
        // Their replica died without a goodbye: nothing heard for the expiry time.
        if let Ok(mut heard) = room.remote_presenter_heard.lock() {
            *heard = Instant::now().checked_sub(REMOTE_EXPIRY);
        }
        room.expire_remote_presenter();
        assert_eq!(*rx.borrow_and_update(), None, "followers are released");
    }

    #[test]
    fn audience_is_published_only_when_it_changes() {
        let room = Room::new();
        let mut rx = room.audience();
        let _seat = room.join();
        room.publish_audience();
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        room.publish_audience();
        assert!(!rx.has_changed().unwrap_or(true));
    }
}
