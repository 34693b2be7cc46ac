//! Serving a client connection: one request per stream, answered once or
//! streamed.

use super::*;

impl Shared {
    pub(super) async fn serve_client(
        self: &Arc<Self>,
        conn: Connection,
        leaf: CertificateDer<'static>,
    ) {
        let remote = conn.remote_address();
        let Some(client) = tls::client_identity(&leaf) else {
            self.refuse(
                &conn,
                wire::CONN_ROLE_REFUSED,
                "a node certificate on the client protocol",
            );
            return;
        };
        debug!(node = %self.id, client_addr = %remote, client = %client, "client connected");
        let serial = crate::revoked::Serial::of(&leaf);
        let revoked = || serial.as_ref().is_some_and(|s| self.revoked.contains(s));
        let share = Arc::new(Semaphore::new(self.config.max_requests_per_connection()));
        loop {
            // Waiting from before the check: a replace after it is not
            // missed.
            let replaced = self.revoked.replaced();
            if revoked() {
                warn!(node = %self.id, client_addr = %remote, client = %client,
                    "closed the connection of a client whose certificate was revoked");
                conn.close(code(wire::CONN_REVOKED), b"certificate revoked");
                break;
            }
            let stream = tokio::select! {
                stream = conn.accept_bi() => stream,
                () = replaced => continue,
                () = self.stop.cancelled() => break,
            };
            let Ok((mut send, mut recv)) = stream else {
                break;
            };
            let Ok(held) = Arc::clone(&share).try_acquire_owned() else {
                Counters::add(&self.counters.requests_refused, 1);
                debug!(node = %self.id, client_addr = %remote,
                    limit = self.config.max_requests_per_connection(), "request limit of one connection reached; refusing a request");
                let _ = send.reset(code(wire::STREAM_BUSY));
                let _ = recv.stop(code(wire::STREAM_BUSY));
                continue;
            };
            let shared = Arc::clone(self);
            let client = client.clone();
            self.tracker.spawn(async move {
                shared.serve_request(remote, client, send, recv).await;
                drop(held);
            });
        }
    }

    /// Reads one request, within the read timeout in all, then takes one of
    /// the node's request slots for it: a client that trickles its
    /// requests holds only its own connection's streams, never the slots
    /// other clients need.
    pub(super) async fn serve_request(
        self: Arc<Self>,
        remote: SocketAddr,
        client: crate::certs::ClientIdentity,
        mut send: SendStream,
        mut recv: RecvStream,
    ) {
        let max = self.config.max_frame_bytes();
        let request_max = self.config.max_incoming_frame_bytes();
        let read_timeout = self.config.read_timeout();
        let refuse = |send: &mut SendStream, recv: &mut RecvStream, value: u32| {
            Counters::add(&self.counters.requests_refused, 1);
            let _ = send.reset(code(value));
            let _ = recv.stop(code(value));
        };
        let read = read_frame(
            &mut recv,
            request_max,
            Some(&self.frame_budget),
            read_timeout,
            read_timeout,
        );
        let body = match timeout(read_timeout, read)
            .await
            .unwrap_or(Err(FrameError::Timeout))
        {
            Ok(Some(body)) => body,
            Ok(None) => {
                warn!(node = %self.id, client_addr = %remote, "empty request stream; resetting it");
                refuse(&mut send, &mut recv, wire::STREAM_MALFORMED);
                return;
            }
            Err(err) => {
                if let Some(value) = err.reset_code() {
                    if let Some(suppressed) = self
                        .warnings
                        .admit(Refusal::Stream, std::time::Instant::now())
                    {
                        warn!(node = %self.id, client_addr = %remote, error = %err, suppressed, "bad request frame; resetting the stream");
                    }
                    refuse(&mut send, &mut recv, value);
                }
                return;
            }
        };
        let Ok(permit) = Arc::clone(&self.request_permits).try_acquire_owned() else {
            debug!(node = %self.id, client_addr = %remote, "request limit reached; refusing a request");
            refuse(&mut send, &mut recv, wire::STREAM_BUSY);
            return;
        };
        let (tx, rx) = oneshot::channel();
        let request = ClientRequest {
            body,
            remote,
            client,
            responder: Responder::new(tx, max, permit),
        };
        // The permit goes with the request, so the channel, which holds as
        // many requests as there are permits, is never full.
        let refused = match lock(&self.requests).as_ref() {
            Some(requests) => match requests.try_send(request) {
                Ok(()) => None,
                Err(crossbeam_channel::TrySendError::Full(_)) => Some(wire::STREAM_BUSY),
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    Some(wire::STREAM_SHUTDOWN)
                }
            },
            None => Some(wire::STREAM_SHUTDOWN),
        };
        if let Some(value) = refused {
            refuse(&mut send, &mut recv, value);
            return;
        }
        match timeout(self.config.request_timeout(), rx).await {
            Ok(Ok(Answer::Stream(frames))) => self.stream_response(remote, send, frames).await,
            Ok(Ok(Answer::Once(response))) => {
                let written = timeout(read_timeout, write_frame(&mut send, &response)).await;
                if matches!(written, Ok(Ok(()))) {
                    let _ = send.finish();
                    self.until_acknowledged(send.stopped()).await;
                    Counters::add(&self.counters.requests_answered, 1);
                } else {
                    Counters::add(&self.counters.requests_refused, 1);
                    let _ = send.reset(code(wire::STREAM_TIMEOUT));
                }
            }
            Ok(Err(_)) | Err(_) => {
                debug!(node = %self.id, client_addr = %remote, "request unanswered");
                refuse(&mut send, &mut recv, wire::STREAM_UNANSWERED);
            }
        }
    }

    /// Waits for `acknowledged` (a finished stream's `stopped`) up to the
    /// read timeout; once the transport stops, only five assumed round
    /// trips more, as long as a live client takes to acknowledge: a
    /// client that was killed never does, and the shutdown would wait for
    /// it until its bound.
    async fn until_acknowledged<T>(&self, acknowledged: impl Future<Output = T>) {
        tokio::select! {
            _ = timeout(self.config.read_timeout(), acknowledged) => {}
            () = self.stopping_for(5 * self.config.initial_rtt()) => {}
        }
    }

    /// Writes the frames of a streamed answer as the application sends
    /// them, until it drops its end (the stream finishes), the client stops
    /// reading or leaves, or the transport shuts down (the stream
    /// finishes). A frame the client does not take within the read timeout
    /// resets the stream.
    pub(super) async fn stream_response(
        &self,
        remote: SocketAddr,
        mut send: SendStream,
        mut frames: mpsc::Receiver<Vec<u8>>,
    ) {
        let read_timeout = self.config.read_timeout();
        let stopped = send.stopped();
        tokio::pin!(stopped);
        loop {
            let frame = tokio::select! {
                frame = frames.recv() => frame,
                () = self.stop.cancelled() => None,
                _ = &mut stopped => {
                    debug!(node = %self.id, client_addr = %remote, "client stopped reading a streamed answer");
                    Counters::add(&self.counters.requests_answered, 1);
                    return;
                }
            };
            let Some(frame) = frame else {
                let _ = send.finish();
                // Until the client has it all: the connection may close
                // once this task lets go of the stream.
                self.until_acknowledged(&mut stopped).await;
                Counters::add(&self.counters.requests_answered, 1);
                return;
            };
            match timeout(read_timeout, write_frame(&mut send, &frame)).await {
                Ok(Ok(())) => {}
                // The client stopped reading while this frame went out: it
                // is done, as if the stop had come between frames.
                Ok(Err(WriteFrameError::Write(quinn::WriteError::Stopped(_)))) => {
                    Counters::add(&self.counters.requests_answered, 1);
                    return;
                }
                _ => {
                    debug!(node = %self.id, client_addr = %remote, "client not reading a streamed answer; resetting it");
                    Counters::add(&self.counters.requests_refused, 1);
                    let _ = send.reset(code(wire::STREAM_TIMEOUT));
                    return;
                }
            }
        }
    }
}
