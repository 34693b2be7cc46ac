//! One exchange's stream: writing this node's frames, reading the peer's,
//! and serving the streams a peer opens.

use super::*;

/// A served exchange's hold on the node-wide limit and on its peer's
/// quota.
pub(super) type ServedSlot = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Shared {
    // ---- one stream ----

    /// Writes the node's frames on one exchange's stream while a reader
    /// task delivers the peer's. The stream ends when both sides have ended
    /// the exchange (this node with [`StreamCommand::End`], the peer by
    /// finishing), when it goes quiet for `exchange_idle`, or on an error.
    /// A stream that outlives `stream_lifetime` is reset, however active.
    /// The served-exchange `permit` goes as soon as this node has ended: it
    /// answers nothing more on this stream.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_stream(
        self: &Arc<Self>,
        key: StreamKey,
        generation: u64,
        remote: SocketAddr,
        mut send: SendStream,
        recv: RecvStream,
        mut rx: mpsc::UnboundedReceiver<StreamCommand>,
        mut permit: Option<ServedSlot>,
    ) {
        let activity = Arc::new(Activity::new());
        let lifetime = tokio::time::sleep(self.config.stream_lifetime());
        tokio::pin!(lifetime);
        let mut reader = self.tracker.spawn_on(
            Arc::clone(self).read_frames(key.peer, remote, recv, Arc::clone(&activity)),
            &self.runtime,
        );
        let idle = self.config.exchange_idle();
        let mut reader_end = None;
        let mut reset = None;
        let mut ended_here = false;
        loop {
            let quiet_until = activity.last() + idle;
            tokio::select! {
                command = rx.recv(), if !ended_here => match command {
                    Some(StreamCommand::Frame(payload)) => {
                        if let Err(err) = self.write_frame(&mut send, &payload).await {
                            Counters::add(&self.counters.frames_dropped, 1);
                            debug!(node = %self.id, peer = %key.peer, peer_addr = %remote, error = %err, "write failed");
                            reset = Some(wire::STREAM_DONE);
                            break;
                        }
                        activity.touch();
                    }
                    Some(StreamCommand::End) => {
                        self.forget(key, generation);
                        rx.close();
                        Counters::add(&self.counters.frames_dropped, drain_dropped(&mut rx));
                        let _ = send.finish();
                        ended_here = true;
                        drop(permit.take());
                        if reader_end.is_some() {
                            break;
                        }
                    }
                    // A newer stream took over this exchange.
                    None => break,
                },
                end = &mut reader, if reader_end.is_none() => {
                    let end = end.unwrap_or(ReaderEnd::Lost);
                    reader_end = Some(end);
                    match end {
                        ReaderEnd::Rejected(code) => reset = Some(code),
                        ReaderEnd::Lost => reset = Some(wire::STREAM_DONE),
                        ReaderEnd::Shutdown => {}
                        // The peer is done; this node may still owe it an
                        // answer to its last frame.
                        ReaderEnd::Finished if !ended_here => continue,
                        ReaderEnd::Finished => {}
                    }
                    break;
                },
                () = tokio::time::sleep_until(quiet_until) => {
                    if activity.last() + idle <= Instant::now() {
                        break;
                    }
                },
                () = &mut lifetime => {
                    Counters::add(&self.counters.streams_rejected, 1);
                    if let Some(suppressed) = self.warnings.admit(Refusal::Stream, std::time::Instant::now()) {
                        warn!(node = %self.id, peer = %key.peer, peer_addr = %remote, suppressed,
                            lifetime_ms = self.config.stream_lifetime().as_millis(), "stream outlived its lifetime; resetting it");
                    }
                    reset = Some(wire::STREAM_TIMEOUT);
                    break;
                },
                () = self.stop.cancelled() => break,
            }
        }
        if !ended_here {
            // From here no frame can be queued for this stream: later frames
            // of the exchange open a new one.
            self.forget(key, generation);
            rx.close();
        }
        // A stream this node finished cleanly is not reset after all: the
        // peer may still be reading what it was sent.
        match reset.filter(|_| !ended_here) {
            None => {
                while let Ok(command) = rx.try_recv() {
                    let StreamCommand::Frame(payload) = command else {
                        continue;
                    };
                    if self.write_frame(&mut send, &payload).await.is_err() {
                        Counters::add(&self.counters.frames_dropped, 1);
                        break;
                    }
                }
                let _ = send.finish();
                // Wait until the peer has every byte, so that closing the
                // connection later cannot lose them.
                let _ = timeout(self.config.read_timeout(), send.stopped()).await;
            }
            Some(code_value) => {
                Counters::add(&self.counters.frames_dropped, drain_dropped(&mut rx));
                let _ = send.reset(code(code_value));
            }
        }
        if reader_end.is_none()
            && timeout(self.config.read_timeout(), &mut reader)
                .await
                .is_err()
        {
            reader.abort();
        }
        drop(permit);
    }

    pub(super) async fn write_frame(
        &self,
        send: &mut SendStream,
        payload: &[u8],
    ) -> Result<(), LinkError> {
        match timeout(self.config.read_timeout(), write_frame(send, payload)).await {
            Err(_) => Err(LinkError::Timeout),
            Ok(Err(WriteFrameError::Write(err))) => Err(LinkError::Write(err)),
            // Frames are checked against the cap (a u32) before queueing.
            Ok(Err(WriteFrameError::TooLong)) => Err(LinkError::FrameTooLong(payload.len())),
            Ok(Ok(())) => {
                Counters::add(&self.counters.frames_sent, 1);
                Counters::add(&self.counters.bytes_sent, payload.len() as u64);
                Ok(())
            }
        }
    }

    pub(super) async fn read_frames(
        self: Arc<Self>,
        peer: NodeId,
        remote: SocketAddr,
        mut recv: RecvStream,
        activity: Arc<Activity>,
    ) -> ReaderEnd {
        let max = self.config.max_incoming_frame_bytes();
        let wait = self.config.exchange_idle() + self.config.read_timeout();
        loop {
            let next = tokio::select! {
                next = read_frame(&mut recv, max, Some(&self.frame_budget), wait, self.config.read_timeout()) => next,
                () = self.stop.cancelled() => {
                    let _ = recv.stop(code(wire::STREAM_SHUTDOWN));
                    return ReaderEnd::Shutdown;
                }
            };
            match next {
                Ok(Some(payload)) => {
                    activity.touch();
                    Counters::add(&self.counters.frames_received, 1);
                    Counters::add(&self.counters.bytes_received, payload.len() as u64);
                    let incoming = gossip::Incoming {
                        from: peer,
                        payload,
                    };
                    tokio::select! {
                        sent = self.inbox.send(incoming) => if sent.is_err() {
                            return ReaderEnd::Shutdown;
                        },
                        () = self.stop.cancelled() => return ReaderEnd::Shutdown,
                    }
                }
                Ok(None) => return ReaderEnd::Finished,
                Err(err) => {
                    let Some(reset) = err.reset_code() else {
                        debug!(node = %self.id, %peer, peer_addr = %remote, error = %err, "stream ended");
                        return ReaderEnd::Lost;
                    };
                    if matches!(err, FrameError::OverBudget { .. }) {
                        Counters::add(&self.counters.streams_refused_busy, 1);
                        debug!(node = %self.id, %peer, peer_addr = %remote, error = %err, "refusing a frame");
                    } else if matches!(err, FrameError::Timeout) {
                        Counters::add(&self.counters.streams_rejected, 1);
                        debug!(node = %self.id, %peer, peer_addr = %remote, "stream went quiet without finishing; resetting it");
                    } else {
                        Counters::add(&self.counters.streams_rejected, 1);
                        if let Some(suppressed) = self
                            .warnings
                            .admit(Refusal::Stream, std::time::Instant::now())
                        {
                            warn!(node = %self.id, %peer, peer_addr = %remote, error = %err, suppressed, "bad frame; resetting the stream");
                        }
                    }
                    let _ = recv.stop(code(reset));
                    return ReaderEnd::Rejected(reset);
                }
            }
        }
    }

    /// Serves the exchange streams `peer` opens on `conn`, each on a task of
    /// its own, within the served-exchange limits (in all and for this
    /// peer), until the connection closes.
    pub(super) async fn accept_streams(self: &Arc<Self>, peer: NodeId, conn: &Connection) {
        let remote = conn.remote_address();
        let quota = Arc::clone(
            lock(&self.peer_exchanges)
                .entry(peer)
                .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_exchanges_per_peer()))),
        );
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let permits = Arc::clone(&quota)
                .try_acquire_owned()
                .map_err(|_| {
                    (
                        "exchange limit for one peer",
                        self.config.max_exchanges_per_peer(),
                    )
                })
                .and_then(|own| {
                    Arc::clone(&self.exchanges)
                        .try_acquire_owned()
                        .map(|all| (all, own))
                        .map_err(|_| ("exchange limit", self.config.max_concurrent_exchanges()))
                });
            let permit = match permits {
                Ok(permit) => permit,
                Err((what, limit)) => {
                    Counters::add(&self.counters.streams_refused_busy, 1);
                    debug!(node = %self.id, %peer, peer_addr = %remote, limit, "{what} reached; refusing a stream");
                    let _ = send.reset(code(wire::STREAM_BUSY));
                    let _ = recv.stop(code(wire::STREAM_BUSY));
                    continue;
                }
            };
            let shared = Arc::clone(self);
            self.tracker
                .spawn(shared.serve_stream(peer, remote, send, recv, permit));
        }
    }

    pub(super) async fn serve_stream(
        self: Arc<Self>,
        peer: NodeId,
        remote: SocketAddr,
        mut send: SendStream,
        mut recv: RecvStream,
        permit: ServedSlot,
    ) {
        let mut bytes = [0u8; wire::STREAM_HEADER_LEN];
        let header = match timeout(self.config.read_timeout(), recv.read_exact(&mut bytes)).await {
            Ok(Ok(())) => wire::decode_stream_header(&bytes).map_err(|err| err.to_string()),
            Ok(Err(ReadExactError::ReadError(_))) => return,
            Ok(Err(ReadExactError::FinishedEarly(n))) => {
                Err(format!("stream ended after {n} header bytes"))
            }
            Err(_) => Err("header did not arrive in time".to_owned()),
        };
        let header = match header {
            Ok(header) => header,
            Err(reason) => {
                Counters::add(&self.counters.streams_rejected, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Stream, std::time::Instant::now())
                {
                    warn!(node = %self.id, %peer, peer_addr = %remote, %reason, suppressed, "bad stream header; resetting the stream");
                }
                let _ = send.reset(code(wire::STREAM_MALFORMED));
                let _ = recv.stop(code(wire::STREAM_MALFORMED));
                return;
            }
        };
        Counters::add(&self.counters.streams_accepted, 1);
        let key = StreamKey {
            peer,
            exchange: header.exchange,
            initiated_here: !header.opener_initiated,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::unbounded_channel();
        lock(&self.streams).insert(key, StreamEntry { generation, queue });
        self.run_stream(key, generation, remote, send, recv, rx, Some(permit))
            .await;
    }
}
