//! Accepting connections: the handshake, then who the peer is (a node
//! proving its id with its hello, or a client).

use super::admission::{Decision, HandshakeSlot};
use super::*;

impl Shared {
    // ---- accepting ----

    pub(super) async fn accept_loop(self: Arc<Self>) {
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = self.stop.cancelled() => break,
            };
            let Some(incoming) = incoming else { break };
            let remote = incoming.remote_address();
            let decision = self.admission.decide(
                remote.ip(),
                self.is_peer_address(remote),
                incoming.remote_address_validated(),
                incoming.may_retry(),
            );
            match decision {
                Decision::Admit(slot) => {
                    let shared = Arc::clone(&self);
                    self.tracker.spawn(shared.handle_incoming(incoming, slot));
                }
                Decision::Retry => {
                    Counters::add(&self.counters.handshakes_retried, 1);
                    if let Err(err) = incoming.retry() {
                        err.into_incoming().refuse();
                    }
                }
                Decision::Refuse(limit) => {
                    Counters::add(&self.counters.connections_refused_busy, 1);
                    debug!(node = %self.id, peer_addr = %remote, limit, "limit reached; refusing a connection");
                    incoming.refuse();
                }
            }
        }
    }

    /// Whether `addr` is where a known peer listens (and so dials from).
    fn is_peer_address(&self, addr: SocketAddr) -> bool {
        lock(&self.peers).values().any(|known| *known == addr)
    }

    pub(super) async fn handle_incoming(
        self: Arc<Self>,
        incoming: quinn::Incoming,
        slot: HandshakeSlot,
    ) {
        let remote = incoming.remote_address();
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(err) => {
                Counters::add(&self.counters.handshakes_refused, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Handshake, std::time::Instant::now())
                {
                    warn!(node = %self.id, peer_addr = %remote, error = %err, suppressed, "refused connection before the handshake");
                }
                return;
            }
        };
        // Shutdown does not wait for a handshake or a hello: nothing of the
        // peer's is queued here yet.
        let handshake = self
            .stop
            .run_until_cancelled(timeout(self.config.handshake_timeout(), connecting));
        let Some(handshake) = handshake.await else {
            return;
        };
        let conn = match handshake {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) if closed_when_done(&err) => {
                debug!(node = %self.id, peer_addr = %remote, "connection closed by the peer during the handshake");
                return;
            }
            Ok(Err(err)) => {
                Counters::add(&self.counters.handshakes_refused, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Handshake, std::time::Instant::now())
                {
                    warn!(node = %self.id, peer_addr = %remote, error = %err, suppressed, "refused connection: TLS handshake failed");
                }
                return;
            }
            Err(_) => {
                Counters::add(&self.counters.handshakes_refused, 1);
                if let Some(suppressed) = self
                    .warnings
                    .admit(Refusal::Handshake, std::time::Instant::now())
                {
                    warn!(node = %self.id, peer_addr = %remote, suppressed, "refused connection: TLS handshake timed out");
                }
                return;
            }
        };
        drop(slot);
        let Ok(_permit) = Arc::clone(&self.connection_permits).try_acquire_owned() else {
            Counters::add(&self.counters.connections_refused_busy, 1);
            debug!(node = %self.id, peer_addr = %remote,
                limit = self.config.max_incoming_connections(), "connection limit reached; refusing");
            conn.close(code(wire::CONN_BUSY), b"too many connections");
            return;
        };
        Counters::add(&self.counters.connections_accepted, 1);
        let (alpn, chain) = tls::handshake_facts(&conn);
        let Some(leaf) = chain.and_then(|chain| chain.into_iter().next()) else {
            // The verifier requires a certificate; this is belt and braces.
            self.refuse(&conn, wire::CONN_ROLE_REFUSED, "no client certificate");
            return;
        };
        match alpn.as_deref() {
            Some(PEER_ALPN) => self.serve_peer(conn, leaf).await,
            Some(CLIENT_ALPN) if self.serves_clients => self.serve_client(conn, leaf).await,
            _ => self.refuse(&conn, wire::CONN_ROLE_REFUSED, "unexpected ALPN"),
        }
    }

    pub(super) fn refuse(&self, conn: &Connection, close_code: u32, reason: &'static str) {
        Counters::add(&self.counters.identities_refused, 1);
        if let Some(suppressed) = self
            .warnings
            .admit(Refusal::Role, std::time::Instant::now())
        {
            warn!(node = %self.id, peer_addr = %conn.remote_address(), reason, suppressed, "refused connection");
        }
        conn.close(code(close_code), reason.as_bytes());
    }

    pub(super) async fn serve_peer(
        self: &Arc<Self>,
        conn: Connection,
        leaf: CertificateDer<'static>,
    ) {
        let remote = conn.remote_address();
        let hello = self
            .stop
            .run_until_cancelled(timeout(self.config.connect_timeout(), async {
                let mut uni = conn.accept_uni().await.ok()?;
                uni.read_to_end(wire::HELLO_LEN).await.ok()
            }));
        let Some(hello) = hello.await else {
            conn.close(code(wire::CONN_SHUTDOWN), b"shutting down");
            return;
        };
        let Some(claimed) = hello
            .ok()
            .flatten()
            .and_then(|bytes| wire::decode_hello(&bytes).ok())
        else {
            if conn.close_reason().as_ref().is_some_and(closed_when_done) {
                debug!(node = %self.id, peer_addr = %remote, "connection closed by the peer before its hello");
                return;
            }
            self.refuse(
                &conn,
                wire::CONN_BAD_HELLO,
                "missing, late or malformed hello",
            );
            return;
        };
        if !tls::proves_node(&leaf, claimed) {
            let presented = certs::role_of(&leaf)
                .map(|role| role.to_string())
                .unwrap_or_else(|_| "no gossip-kv identity".to_owned());
            Counters::add(&self.counters.identities_refused, 1);
            if let Some(suppressed) = self
                .warnings
                .admit(Refusal::Identity, std::time::Instant::now())
            {
                warn!(node = %self.id, peer_addr = %remote, claimed = %claimed, certificate = %presented, suppressed,
                    "refused connection: the certificate is not valid for the node id the hello claims");
            }
            conn.close(code(wire::CONN_IDENTITY_REFUSED), b"identity mismatch");
            return;
        }
        debug!(node = %self.id, peer = %claimed, peer_addr = %remote, "peer authenticated");
        self.set_link(claimed, &conn, None);
        Arc::clone(self).serve_link(claimed, conn).await;
    }
}
