//! Serving clients: the thread that answers requests from the transport's
//! client channel ([`Server::answer`]), and the status it reports.

use std::net::SocketAddr;
use std::time::Instant;

use std::path::PathBuf;

use gossip::{NodeHandle, WriteError};
use tracing::debug;
use transport_quic::certs::Identity;
use transport_quic::{DenyList, QuicHandle, RecvRequestError, RequestReceiver};

use crate::client::proto::{
    self, MemberStatus, OriginStatus, ProtoError, Request, Response, SecurityStatus, Status,
    StorageStatus, TransportStatus,
};
use crate::node::audit::{self, Caller};
use crate::node::watch::{self, ChangeFeed};
use crate::node::{LOG_TARGET, POLL, listing};

/// The node's certificate and the revocation list it enforces, for
/// `status`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Security {
    /// The deny-list in force (shared with the transport and HTTPS).
    pub(crate) revoked: DenyList,
    /// The file it is read from.
    pub(crate) revoked_file: Option<PathBuf>,
    /// The node certificate's serial, in hex.
    pub(crate) serial: String,
    /// When the node's certificate expires (seconds since 1970, UTC).
    pub(crate) not_after: i64,
}

impl Security {
    /// The node `identity`'s, enforcing `revoked` read from `file`.
    pub(crate) fn of(identity: &Identity, revoked: DenyList, file: Option<PathBuf>) -> Security {
        let leaf = identity.chain().first();
        Security {
            revoked,
            revoked_file: file,
            serial: leaf
                .and_then(transport_quic::Serial::of)
                .map(|serial| serial.to_string())
                .unwrap_or_default(),
            not_after: leaf
                .and_then(transport_quic::certs::not_after)
                .unwrap_or_default(),
        }
    }
}

/// What the client thread needs to answer requests.
pub(crate) struct Server {
    pub(crate) node: NodeHandle,
    pub(crate) quic: QuicHandle,
    pub(crate) started: Instant,
    pub(crate) listen: SocketAddr,
    pub(crate) interval_ms: u64,
    /// The data directory, if the node keeps one.
    pub(crate) store: Option<std::sync::Arc<crate::node::store::Store>>,
    /// The changes the node makes, for watches.
    pub(crate) feed: ChangeFeed,
    /// Where QUIC watches run.
    pub(crate) runtime: tokio::runtime::Handle,
    /// The node's certificate and revocation list.
    pub(crate) security: Security,
}

/// Answers requests until the transport shuts down.
pub(crate) fn serve_clients(server: &Server, requests: &RequestReceiver) {
    loop {
        match requests.recv_timeout(POLL) {
            Ok(request) => {
                let response = match proto::decode::<Request>(&request.body) {
                    Ok(Request::Watch { prefix }) => {
                        debug!(target: LOG_TARGET, client = %request.remote, prefix, "watch");
                        watch::serve_watch(
                            &server.feed,
                            &server.runtime,
                            prefix,
                            request.responder,
                        );
                        continue;
                    }
                    Ok(decoded) => {
                        let caller = Caller::Client {
                            client: request.client.clone(),
                            via: "quic",
                        };
                        server.answer_request(decoded, &caller)
                    }
                    Err(err) => err.to_response(),
                };
                debug!(target: LOG_TARGET, client = %request.remote, response = response_kind(&response), "request");
                let bytes = proto::encode(&response);
                if let Err(err) = request.responder.respond(bytes) {
                    debug!(target: LOG_TARGET, client = %request.remote, error = %err, "response not sent");
                }
            }
            Err(RecvRequestError::Timeout) => {}
            Err(RecvRequestError::Closed) => return,
        }
    }
}

fn response_kind(response: &Response) -> &'static str {
    match response {
        Response::Written { .. } => "written",
        Response::Entry { .. } => "entry",
        Response::Status(_) => "status",
        Response::Listing { .. } => "listing",
        Response::Watching => "watching",
        Response::Changes { .. } => "changes",
        Response::Missed { .. } => "missed",
        Response::Error(_) => "error",
    }
}

impl Server {
    /// The response to one request frame; a frame that is not a request
    /// gets an error response.
    #[cfg(test)]
    pub(crate) fn answer(&self, body: &[u8]) -> Response {
        let caller = Caller::Client {
            client: transport_quic::ClientIdentity::first(),
            via: "quic",
        };
        match proto::decode::<Request>(body) {
            Ok(request) => self.answer_request(request, &caller),
            Err(err) => err.to_response(),
        }
    }

    /// The response to one request from `caller`; a watch, which is
    /// answered with a stream ([`watch::serve_watch`]), is refused here. A
    /// write from a client whose role is `read` is refused
    /// ([`ProtoError::Forbidden`]); every write taken is audited.
    pub(crate) fn answer_request(&self, request: Request, caller: &Caller) -> Response {
        match request {
            Request::Put { key, value } => self.write(caller, "put", key, Some(value)),
            Request::Delete { key } => self.write(caller, "delete", key, None),
            Request::Get { key } => Response::Entry {
                entry: self.node.get_entry(&key),
            },
            Request::Status => Response::Status(Box::new(self.status())),
            Request::List {
                prefix,
                after,
                limit,
            } => {
                if limit == 0 || limit > proto::MAX_LIST {
                    return Response::Error(ProtoError::BadLimit {
                        limit: u64::from(limit),
                        max: u64::from(proto::MAX_LIST),
                    });
                }
                let page = listing::list(
                    &self.node,
                    &prefix,
                    after.as_deref(),
                    limit as usize,
                    listing::PAGE_BYTES,
                );
                Response::Listing {
                    keys: page.keys,
                    next_after: page.next_after,
                }
            }
            Request::Watch { .. } => Response::Error(ProtoError::Malformed {
                reason: proto::DecodeFailure::Invalid,
            }),
        }
    }

    /// A put (`value` given) or a delete from `caller`, if its role
    /// allows it, audited.
    fn write(
        &self,
        caller: &Caller,
        op: &'static str,
        key: String,
        value: Option<String>,
    ) -> Response {
        if let Err(refused) = forbidden(caller, op, &key) {
            return Response::Error(refused);
        }
        let result = match value {
            Some(value) => self.node.put(key.clone(), value),
            None => self.node.delete(key.clone()),
        };
        if let Ok(stamp) = &result {
            audit::write_taken(caller, op, &key, stamp);
        }
        written(result)
    }

    pub(crate) fn status(&self) -> Status {
        let now = self.node.now_ms();
        let mut status = self.node.with_node(|node| {
            let map = node.map();
            let vector = node.version_vector();
            let mut members = vec![MemberStatus {
                id: node.id(),
                address: node.config().address().to_owned(),
                liveness: None,
                failures: 0,
                last_heard_ms_ago: None,
                incarnation: Some(node.incarnation()),
                clock_offset_ms: None,
            }];
            let mut peers = node.peers();
            peers.sort_by_key(|p| p.member.id);
            members.extend(peers.into_iter().map(|p| MemberStatus {
                id: p.member.id,
                address: p.member.address,
                liveness: Some(p.liveness),
                failures: p.failures,
                last_heard_ms_ago: p.last_heard_ms.map(|t| now.saturating_sub(t)),
                incarnation: p.incarnation,
                clock_offset_ms: p.clock_offset_ms,
            }));
            Status {
                id: node.id(),
                incarnation: node.incarnation(),
                joined: node.is_joined(),
                clock: node.clock_status(),
                max_clock_offset_ms: node.config().max_clock_offset_ms(),
                listen: String::new(),
                uptime_ms: 0,
                interval_ms: 0,
                members,
                keys: map.len() as u64,
                tombstones: map.tombstone_count() as u64,
                vector: vector
                    .iter()
                    .map(|(origin, hlc)| OriginStatus { origin, hlc })
                    .collect(),
                max_hlc: vector.iter().map(|(_, hlc)| hlc).max().unwrap_or_default(),
                vector_hash: gossip::vector_hash(vector),
                content_hash: content_hash(map),
                metrics: *node.metrics(),
                transport: TransportStatus::default(),
                storage: StorageStatus::default(),
                security: SecurityStatus::default(),
                oldest_unacknowledged_write_ms: node
                    .oldest_unacknowledged_write()
                    .map(|hlc| now.saturating_sub(hlc.physical_ms())),
                members_changed_ms: node.membership_changed_ms(),
            }
        });
        status.listen = self.listen.to_string();
        status.uptime_ms = self.started.elapsed().as_millis() as u64;
        status.interval_ms = self.interval_ms;
        status.transport = self.quic.stats().into();
        status.security = SecurityStatus {
            certificate_serial: self.security.serial.clone(),
            certificate_not_after: self.security.not_after,
            revoked_file: self
                .security
                .revoked_file
                .as_ref()
                .map(|path| path.display().to_string()),
            revoked_serials: self.security.revoked.len() as u64,
            revoked_refused: self.security.revoked.refused(),
        };
        if let Some(store) = &self.store {
            status.storage = StorageStatus {
                data_dir: Some(store.dir().display().to_string()),
                sync: Some(store.mode().to_string()),
                disk_bytes: store.disk_bytes(),
            };
        }
        status
    }
}

/// Refuses a write from a caller whose role does not allow it, and says
/// so in the audit log.
///
/// # Errors
/// [`ProtoError::Forbidden`], naming the client and its role.
pub(crate) fn forbidden(caller: &Caller, op: &'static str, key: &str) -> Result<(), ProtoError> {
    if caller.may_write() {
        return Ok(());
    }
    audit::write_forbidden(caller, op, key);
    let (client, role) = match caller {
        Caller::Client { client, .. } => (client.name().to_owned(), client.role().to_string()),
        Caller::Loopback => ("-".to_owned(), "-".to_owned()),
    };
    Err(ProtoError::Forbidden { client, role })
}

fn written(result: Result<lww_crdt::Stamp, WriteError>) -> Response {
    match result {
        Ok(stamp) => Response::Written { stamp },
        Err(WriteError::TooLarge { len, max }) => Response::Error(ProtoError::TooLarge {
            len: len as u64,
            max: max as u64,
        }),
        Err(WriteError::NotJoined) => Response::Error(ProtoError::NotJoined),
        Err(WriteError::StoreFull { quota, held, max }) => Response::Error(ProtoError::StoreFull {
            what: quota.to_string(),
            flag: match quota {
                gossip::Quota::Keys => "max-keys",
                gossip::Quota::DataBytes => "max-data-bytes",
            }
            .to_owned(),
            held,
            max,
        }),
        Err(WriteError::Draining) => Response::Error(ProtoError::ShuttingDown),
        Err(WriteError::ClockOutOfRange {
            peers_beyond,
            peers_measured,
            median_offset_ms,
            max_offset_ms,
        }) => Response::Error(ProtoError::ClockOutOfRange {
            peers_beyond: peers_beyond as u64,
            peers_measured: peers_measured as u64,
            median_offset_ms,
            max_offset_ms,
        }),
        Err(WriteError::Storage(err)) => Response::Error(ProtoError::Storage { message: err.0 }),
        Err(WriteError::ClockExhausted { last }) => {
            Response::Error(ProtoError::ClockExhausted { last })
        }
        Err(WriteError::Expired { by }) => Response::Error(ProtoError::Expired { by: by.get() }),
    }
}

/// An order-independent hash of every entry (key, stamp, value or
/// tombstone): the wrapping sum of one hash per entry, so it needs no
/// sorting and is the same on every node holding the same map.
pub(crate) fn content_hash(map: &gossip::StoreMap) -> u64 {
    map.entries().fold(0u64, |sum, (key, entry)| {
        let mut h = Fnv::default();
        h.write(key.as_bytes());
        h.write(&[0xff]);
        h.write(&entry.stamp.hlc.as_u64().to_le_bytes());
        h.write(&entry.stamp.origin.get().to_le_bytes());
        match &entry.value {
            Some(value) => {
                h.write(&[1]);
                h.write(value.as_bytes());
            }
            None => h.write(&[0]),
        }
        // A final avalanche, so that summed hashes do not cancel in
        // structured ways.
        sum.wrapping_add(gossip::splitmix_finish(h.0))
    })
}

/// FNV-1a, 64 bits: stable across builds and platforms.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::thread;

    use gossip::{Config, Node};
    use lww_crdt::NodeId;
    use transport_quic::{QuicConfig, QuicTransport};

    use super::*;

    #[test]
    fn bad_requests_get_typed_errors_and_the_node_keeps_serving() {
        use transport_quic::QuicClient;
        use transport_quic::certs::ClusterCa;

        let ca = ClusterCa::generate().unwrap();
        let id = NodeId::new(1);
        let identity = ca.issue_node(id, &["127.0.0.1".to_owned()]).unwrap();
        let transport = QuicTransport::builder(identity, ca.cert().clone())
            .serve_clients(true)
            .build()
            .unwrap();
        let (quic, requests, listen) = (
            transport.handle(),
            transport.requests().unwrap(),
            transport.local_addr(),
        );
        let node = Node::new(Config::builder(id).build().unwrap(), []);
        let (handle, driver) = gossip::spawn(node, transport, lww_crdt::SystemClock);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let server = Server {
            node: handle.clone(),
            quic: quic.clone(),
            started: Instant::now(),
            listen,
            interval_ms: 100,
            store: None,
            feed: ChangeFeed::new(),
            runtime: runtime.handle().clone(),
            security: Security::default(),
        };
        assert!(matches!(
            server.answer(&[&[proto::PROTO_VERSION][..], b"garbage"].concat()),
            Response::Error(ProtoError::Malformed { .. })
        ));
        assert!(matches!(
            server.answer(b"\x01garbage"),
            Response::Error(ProtoError::UnsupportedVersion { got: 1, .. })
        ));
        let next = proto::PROTO_VERSION + 1;
        assert!(matches!(
            server.answer(&[next, 0]),
            Response::Error(ProtoError::UnsupportedVersion { got, .. }) if got == next
        ));
        let huge = Request::Put {
            key: "k".into(),
            value: "x".repeat(600_000),
        };
        assert!(matches!(
            server.answer(&proto::encode(&huge)),
            Response::Error(ProtoError::TooLarge { .. })
        ));
        assert_eq!(handle.get("k"), None, "a refused write changed the map");

        // The same over the wire, through the client channel.
        let serving = thread::spawn(move || serve_clients(&server, &requests));
        let client = QuicClient::connect(
            listen,
            "127.0.0.1",
            &ca.issue_client().unwrap(),
            ca.cert(),
            QuicConfig::default(),
        )
        .unwrap();
        let ask =
            |bytes: &[u8]| proto::decode::<Response>(&client.request(bytes).unwrap()).unwrap();
        assert!(matches!(
            ask(&[proto::PROTO_VERSION, 0xff, 0xff, 0xff]),
            Response::Error(ProtoError::Malformed { .. })
        ));
        let put = Request::Put {
            key: "k".into(),
            value: "v".into(),
        };
        assert!(matches!(
            ask(&proto::encode(&put)),
            Response::Written { .. }
        ));
        let get = Request::Get { key: "k".into() };
        match ask(&proto::encode(&get)) {
            Response::Entry { entry: Some(entry) } => assert_eq!(entry.value.as_deref(), Some("v")),
            other => panic!("{other:?}"),
        }
        match ask(&proto::encode(&Request::Status)) {
            Response::Status(status) => {
                assert_eq!((status.id, status.keys), (id, 1));
                assert_eq!(status.transport.requests_answered, 3);
            }
            other => panic!("{other:?}"),
        }
        // Draining before shutdown: writes are refused, reads still served.
        handle.start_draining();
        let late = Request::Put {
            key: "late".into(),
            value: "v".into(),
        };
        assert!(matches!(
            ask(&proto::encode(&late)),
            Response::Error(ProtoError::ShuttingDown)
        ));
        assert!(matches!(
            ask(&proto::encode(&Request::Delete { key: "k".into() })),
            Response::Error(ProtoError::ShuttingDown)
        ));
        assert!(matches!(
            ask(&proto::encode(&get)),
            Response::Entry { entry: Some(_) }
        ));
        assert_eq!(handle.get("late"), None, "a refused write changed the map");
        client.close();
        handle.shutdown();
        driver.join().unwrap();
        quic.shutdown();
        serving.join().unwrap();
    }

    #[test]
    fn content_hash_depends_on_entries_not_their_order() {
        use lww_crdt::{Entry, Hlc, Stamp};
        let stamp = |t| Stamp::new(Hlc::new(t, 0), NodeId::new(1));
        let mut a = gossip::StoreMap::new();
        let mut b = gossip::StoreMap::new();
        a.insert("x".into(), Entry::value(stamp(1), "1".into()));
        a.insert("y".into(), Entry::tombstone(stamp(2)));
        b.insert("y".into(), Entry::tombstone(stamp(2)));
        b.insert("x".into(), Entry::value(stamp(1), "1".into()));
        assert_eq!(content_hash(&a), content_hash(&b));
        b.insert("x".into(), Entry::value(stamp(3), "1".into()));
        assert_ne!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&gossip::StoreMap::new()));
    }
}
