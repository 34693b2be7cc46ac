//! The change feed behind watches, over HTTP (`GET /v1/watch`) and over
//! QUIC ([`Request::Watch`](crate::client::Request::Watch)): the driver
//! hands it every change while someone watches, and each watch reads the
//! changes under its prefix.
//!
//! Changes travel in batches, one per client write or gossip step, through
//! a broadcast channel holding the last [`WATCH_BACKLOG`] batches. A watch
//! that falls further behind is told how many batches it missed, and never
//! holds the node back. Watches of both kinds share [`MAX_WATCHES`] places.

use std::collections::VecDeque;
use std::sync::Arc;

use gossip::{Change, ChangeSink};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tracing::debug;
use transport_quic::{Responder, ResponseStream};

use crate::client::proto::{self, Changed, ProtoError, Response};
use crate::node::LOG_TARGET;

/// Batches of changes held for a watch that reads slowly; past that it is
/// told how many it missed.
pub const WATCH_BACKLOG: usize = 1_024;

/// Watches open at once, HTTP and QUIC together.
pub const MAX_WATCHES: usize = 64;

/// Frames a QUIC watch queues for a client that reads slowly.
const QUIC_BACKLOG: usize = 16;

/// The changes the node makes, for its watches.
#[derive(Clone)]
pub(crate) struct ChangeFeed {
    batches: broadcast::Sender<Arc<Vec<Change>>>,
    places: Arc<Semaphore>,
    /// Set when the node stops: every watch ends.
    closed: tokio::sync::watch::Sender<bool>,
}

/// What the driver tells of each change: copied only while a watch is open.
struct FeedSink(broadcast::Sender<Arc<Vec<Change>>>);

impl ChangeSink for FeedSink {
    fn is_watched(&self) -> bool {
        self.0.receiver_count() > 0
    }

    fn deliver(&self, changes: &[Change]) {
        // Fails only when the last watch closed since `is_watched`.
        let _ = self.0.send(Arc::new(changes.to_vec()));
    }
}

/// No place for another watch.
#[derive(Debug)]
pub(crate) struct Busy;

/// What a watch reads next.
#[derive(Debug)]
pub(crate) enum WatchItem {
    /// A change under the watch's prefix.
    Changed(Changed),
    /// The watch fell behind: this many batches were dropped for it.
    Missed(u64),
}

/// One open watch: the changes under its prefix from when it opened.
pub(crate) struct Watch {
    batches: broadcast::Receiver<Arc<Vec<Change>>>,
    closed: tokio::sync::watch::Receiver<bool>,
    prefix: String,
    pending: VecDeque<WatchItem>,
    _place: OwnedSemaphorePermit,
}

impl ChangeFeed {
    pub(crate) fn new() -> ChangeFeed {
        ChangeFeed {
            batches: broadcast::channel(WATCH_BACKLOG).0,
            places: Arc::new(Semaphore::new(MAX_WATCHES)),
            closed: tokio::sync::watch::channel(false).0,
        }
    }

    /// Ends every watch, and every watch opened later, once it has read
    /// what was already sent to it: the node is stopping.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// What to hand [`gossip::Driver::watch_changes`].
    pub(crate) fn sink(&self) -> Box<dyn ChangeSink> {
        Box::new(FeedSink(self.batches.clone()))
    }

    /// Opens a watch of the keys under `prefix`: it sees every change the
    /// node makes from now on.
    pub(crate) fn subscribe(&self, prefix: String) -> Result<Watch, Busy> {
        let place = Arc::clone(&self.places)
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        Ok(Watch {
            batches: self.batches.subscribe(),
            closed: self.closed.subscribe(),
            prefix,
            pending: VecDeque::new(),
            _place: place,
        })
    }
}

impl Watch {
    /// The next item; `None` once the feed is gone (the node stopped).
    pub(crate) async fn next(&mut self) -> Option<WatchItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if *self.closed.borrow() {
                return self.ready();
            }
            let received = tokio::select! {
                received = self.batches.recv() => received,
                _ = self.closed.changed() => continue,
            };
            if !self.take(received) {
                return None;
            }
        }
    }

    /// The next item if one is ready now.
    pub(crate) fn ready(&mut self) -> Option<WatchItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let received = match self.batches.try_recv() {
                Ok(batch) => Ok(batch),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            };
            self.take(received);
        }
    }

    /// Queues what a receive gave; false once the feed is gone.
    fn take(&mut self, received: Result<Arc<Vec<Change>>, RecvError>) -> bool {
        match received {
            Ok(batch) => {
                self.pending
                    .extend(batch.iter().filter_map(|change| match change {
                        Change::Wrote { key, entry, from } if key.starts_with(&self.prefix) => {
                            Some(WatchItem::Changed(Changed {
                                key: key.clone(),
                                entry: entry.clone(),
                                from: *from,
                            }))
                        }
                        _ => None,
                    }));
                true
            }
            Err(RecvError::Lagged(missed)) => {
                self.pending.push_back(WatchItem::Missed(missed));
                true
            }
            Err(RecvError::Closed) => false,
        }
    }
}

/// Serves a QUIC watch of `prefix` on `runtime`: answers `Watching`, then
/// sends the changes as they come, batched into frames, until the client
/// goes away or the node stops. Past [`MAX_WATCHES`], answers
/// [`ProtoError::TooManyWatches`].
pub(crate) fn serve_watch(
    feed: &ChangeFeed,
    runtime: &tokio::runtime::Handle,
    prefix: String,
    responder: Responder,
) {
    let Ok(watch) = feed.subscribe(prefix) else {
        let refused = Response::Error(ProtoError::TooManyWatches {
            max: MAX_WATCHES as u64,
        });
        let _ = responder.respond(proto::encode(&refused));
        return;
    };
    let Ok(stream) = responder.stream(QUIC_BACKLOG) else {
        return;
    };
    runtime.spawn(async move {
        if stream
            .send(proto::encode(&Response::Watching))
            .await
            .is_ok()
        {
            forward(watch, &stream).await;
        }
        debug!(target: LOG_TARGET, "a QUIC watch ended");
    });
}

/// Sends `watch`'s items on `stream` until either ends.
async fn forward(mut watch: Watch, stream: &ResponseStream) {
    // Room for a frame's envelope and counts, below the frame cap.
    let budget = stream.max_frame_bytes() / 2;
    loop {
        let item = tokio::select! {
            item = watch.next() => item,
            () = stream.closed() => return,
        };
        let Some(mut item) = item else {
            return;
        };
        // Everything ready now goes in as few frames as fit.
        loop {
            let mut changes = Vec::new();
            let mut bytes = 0;
            let missed = loop {
                match item {
                    WatchItem::Changed(changed) => {
                        bytes += changed_bytes(&changed);
                        changes.push(changed);
                    }
                    WatchItem::Missed(batches) => break Some(batches),
                }
                if bytes >= budget {
                    break None;
                }
                match watch.ready() {
                    Some(next) => item = next,
                    None => break None,
                }
            };
            if !changes.is_empty() {
                let frame = proto::encode(&Response::Changes { changes });
                if stream.send(frame).await.is_err() {
                    return;
                }
            }
            if let Some(batches) = missed {
                let frame = proto::encode(&Response::Missed { batches });
                if stream.send(frame).await.is_err() {
                    return;
                }
            }
            match watch.ready() {
                Some(next) => item = next,
                None => break,
            }
        }
    }
}

/// A bound on what `changed` takes encoded.
fn changed_bytes(changed: &Changed) -> usize {
    changed.key.len() + changed.entry.value.as_ref().map_or(0, String::len) + 48
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use lww_crdt::{Entry, Hlc, NodeId, Stamp};

    use super::*;

    fn wrote(key: &str) -> Change {
        Change::Wrote {
            key: key.to_owned(),
            entry: Entry::value(Stamp::new(Hlc::new(1, 0), NodeId::new(1)), "v".to_owned()),
            from: None,
        }
    }

    fn key(item: Option<WatchItem>) -> String {
        match item {
            Some(WatchItem::Changed(changed)) => changed.key,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_watch_sees_its_prefix_is_told_what_it_missed_and_ends_on_close() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let feed = ChangeFeed::new();
        let sink = feed.sink();
        assert!(!sink.is_watched());
        let mut watch = feed.subscribe("a/".to_owned()).unwrap();
        assert!(sink.is_watched());

        sink.deliver(&[wrote("b/1"), wrote("a/1"), wrote("a/2")]);
        assert_eq!(key(runtime.block_on(watch.next())), "a/1");
        assert_eq!(key(watch.ready()), "a/2");
        assert!(watch.ready().is_none());

        // A reader more than the backlog behind loses the oldest batches.
        for i in 0..WATCH_BACKLOG + 5 {
            sink.deliver(&[wrote(&format!("a/{i}"))]);
        }
        match runtime.block_on(watch.next()) {
            Some(WatchItem::Missed(missed)) => assert_eq!(missed, 5),
            other => panic!("{other:?}"),
        }
        assert_eq!(key(runtime.block_on(watch.next())), "a/5");

        // Closing ends the watch once what was sent is read.
        sink.deliver(&[wrote("a/last")]);
        feed.close();
        let mut rest = Vec::new();
        while let Some(item) = runtime.block_on(watch.next()) {
            rest.push(key(Some(item)));
        }
        assert_eq!(rest.len(), WATCH_BACKLOG);
        assert_eq!(rest.last().map(String::as_str), Some("a/last"));
    }

    #[test]
    fn watches_past_the_limit_are_refused_until_one_closes() {
        let feed = ChangeFeed::new();
        let open: Vec<Watch> = (0..MAX_WATCHES)
            .map(|_| feed.subscribe(String::new()).unwrap())
            .collect();
        assert!(feed.subscribe(String::new()).is_err());
        drop(open);
        assert!(feed.subscribe(String::new()).is_ok());
    }
}
