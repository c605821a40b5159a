//! Several replicas as one room: presenter moves and audience counts travel through Redis
//! pub/sub (`--redis URL`). Each replica publishes its own counts every tick and its local
//! presenter's moves; what others publish is fed into the local [`Room`]. Without `--redis`
//! nothing here runs and each replica is its own room. Reconnects with backoff; never fatal.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::room::{AUDIENCE_TICK, Audience, PresenterPosition, Room};

/// The pub/sub channel all replicas share.
pub const CHANNEL: &str = "sshbio:room";

/// What replicas tell each other.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    /// A replica's own counts, every tick.
    Audience { replica: u64, connected: usize, following: usize },
    /// A replica's presenter moved.
    Presenter {
        replica: u64,
        page: usize,
        scroll: usize,
        /// The page's lines at the presenter's width (absent from older replicas: 0, unknown).
        #[serde(default)]
        lines: usize,
    },
    /// A replica's presenter left.
    PresenterLeft { replica: u64 },
}

/// Bridges `room` to the Redis server at `url` until the process ends; `metrics` says
/// whether the bridge is up.
pub fn spawn(url: String, room: Arc<Room>, metrics: Arc<Metrics>) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(url.as_str())?;
    let replica: u64 = rand::random();
    metrics.redis_connected(false);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match bridge(&client, replica, &room, &metrics).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => tracing::warn!(error = %e, "redis bridge lost; retrying"),
            }
            metrics.redis_connected(false);
            room.set_remote_presenter(None);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    Ok(())
}

async fn bridge(
    client: &redis::Client,
    replica: u64,
    room: &Room,
    metrics: &Metrics,
) -> redis::RedisResult<()> {
    let mut publisher = client.get_multiplexed_async_connection().await?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    let mut messages = pubsub.into_on_message();
    tracing::info!(replica, "sharing the room through redis");
    metrics.redis_connected(true);
    let mut local_presenter = room.local_presenter();
    let mut tick = tokio::time::interval(AUDIENCE_TICK);
    loop {
        let (outgoing, repeat) = tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Ok(()) };
                if let Ok(text) = message.get_payload::<String>() {
                    apply(&text, replica, room);
                }
                continue;
            }
            _ = tick.tick() => {
                let Audience { connected, following } = room.local_counts();
                // A presenter on stage is repeated every tick, not only sent when they move:
                // pub/sub keeps nothing, so a replica that (re)subscribes later, e.g. after a
                // Redis restart, would otherwise not know about them until their next move.
                let on_stage = (*local_presenter.borrow())
                    .map(|PresenterPosition { page, scroll, lines }| Message::Presenter { replica, page, scroll, lines });
                (Message::Audience { replica, connected, following }, on_stage)
            }
            changed = local_presenter.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let moved = match *local_presenter.borrow_and_update() {
                    Some(PresenterPosition { page, scroll, lines }) => Message::Presenter { replica, page, scroll, lines },
                    None => Message::PresenterLeft { replica },
                };
                (moved, None)
            }
        };
        for message in std::iter::once(outgoing).chain(repeat) {
            if let Ok(text) = serde_json::to_string(&message) {
                let _: usize = publisher.publish(CHANNEL, text).await?;
            }
        }
    }
}

/// Applies another replica's message to the local room (our own echoes are ignored).
fn apply(text: &str, me: u64, room: &Room) {
    match serde_json::from_str::<Message>(text) {
        Ok(Message::Audience { replica, connected, following }) if replica != me => {
            room.set_remote_audience(replica, Audience { connected, following });
        }
        Ok(Message::Presenter { replica, page, scroll, lines }) if replica != me => {
            room.set_remote_presenter(Some(PresenterPosition { page, scroll, lines }));
        }
        Ok(Message::PresenterLeft { replica }) if replica != me => room.set_remote_presenter(None),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "ignoring a malformed room message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_echoes_are_ignored() {
        let room = Room::new();
        let text = serde_json::to_string(&Message::Presenter { replica: 1, page: 2, scroll: 3, lines: 40 })
            .expect("json");
        assert_eq!(text, r#"{"kind":"presenter","replica":1,"page":2,"scroll":3,"lines":40}"#);
        apply(&text, 1, &room);
        assert_eq!(*room.presenter().borrow(), None, "our own message");
        apply(&text, 9, &room);
        assert_eq!(*room.presenter().borrow(), Some(PresenterPosition { page: 2, scroll: 3, lines: 40 }));
        // From a replica of an older version, without `lines`: unknown, so not scaled.
        apply(r#"{"kind":"presenter","replica":2,"page":1,"scroll":5}"#, 9, &room);
        assert_eq!(*room.presenter().borrow(), Some(PresenterPosition { page: 1, scroll: 5, lines: 0 }));
        apply(r#"{"kind":"presenter_left","replica":1}"#, 9, &room);
        assert_eq!(*room.presenter().borrow(), None);
        apply(r#"{"kind":"audience","replica":4,"connected":3,"following":2}"#, 9, &room);
        assert_eq!(room.counts(), Audience { connected: 3, following: 2 });
        apply("not json", 9, &room);
    }
}
