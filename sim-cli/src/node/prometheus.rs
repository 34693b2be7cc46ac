//! `GET /metrics`: the node's counters in the Prometheus text format
//! (prometheus-client), every name prefixed `gossip_kv_`.
//!
//! Gossip and transport counters are read from the node's status at each
//! scrape; the HTTP API's own requests are counted as they are served.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::client::proto::Status;

type Labels = Vec<(String, String)>;

/// The HTTP API's requests: by route, method and status, with latencies.
#[derive(Clone, Debug)]
pub(crate) struct RequestMetrics {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

impl RequestMetrics {
    pub(crate) fn new() -> RequestMetrics {
        RequestMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }

    /// Counts one request to `route` answered with `status` after `secs`.
    pub(crate) fn observe(&self, route: &str, method: &str, status: u16, secs: f64) {
        let route_labels = vec![
            ("route".to_owned(), route.to_owned()),
            ("method".to_owned(), method.to_owned()),
        ];
        let mut labels = route_labels.clone();
        labels.push(("status".to_owned(), status.to_string()));
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&route_labels).observe(secs);
    }
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Counter::<u64>::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Gauge::<i64>::default();
    metric.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, metric);
}

/// The text page for a node in `status`, with the API's `requests`.
pub(crate) fn render(status: &Status, requests: &RequestMetrics) -> String {
    let mut registry = Registry::with_prefix("gossip_kv");
    let m = &status.metrics;
    counter(
        &mut registry,
        "exchanges_started",
        "Exchanges this node opened",
        m.exchanges_started,
    );
    counter(
        &mut registry,
        "exchanges_completed",
        "Exchanges this node opened that completed",
        m.exchanges_completed,
    );
    counter(
        &mut registry,
        "exchanges_timed_out",
        "Exchanges this node opened that timed out",
        m.exchanges_timed_out,
    );
    counter(
        &mut registry,
        "exchanges_pulled",
        "Exchanges opened to pull the rest of a cut delta",
        m.exchanges_pulled,
    );

    let messages = Family::<Labels, Counter>::default();
    let bytes = Family::<Labels, Counter>::default();
    for (direction, traffic) in [("sent", &m.sent), ("received", &m.received)] {
        for (i, kind) in ["syn", "synack", "ack"].iter().enumerate() {
            let labels = vec![
                ("direction".to_owned(), direction.to_owned()),
                ("kind".to_owned(), (*kind).to_owned()),
            ];
            messages.get_or_create(&labels).inc_by(traffic.messages[i]);
            bytes.get_or_create(&labels).inc_by(traffic.bytes[i]);
        }
    }
    registry.register(
        "messages",
        "Gossip messages by direction and kind",
        messages,
    );
    registry.register(
        "message_bytes",
        "Gossip message bytes by direction and kind",
        bytes,
    );

    counter(
        &mut registry,
        "entries_sent",
        "Entries sent in deltas",
        m.entries_sent,
    );
    counter(
        &mut registry,
        "entries_received",
        "Entries received in deltas",
        m.entries_received,
    );
    counter(
        &mut registry,
        "entries_useful",
        "Entries received that changed the map or were new",
        m.entries_received.saturating_sub(m.entries_redundant),
    );
    counter(
        &mut registry,
        "messages_rejected",
        "Messages refused whole",
        m.messages_rejected,
    );
    counter(
        &mut registry,
        "tombstones_purged",
        "Tombstones collected",
        m.tombstones_purged,
    );

    gauge(&mut registry, "keys", "Live keys held", status.keys);
    let unacknowledged = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    unacknowledged.set(status.oldest_unacknowledged_write_ms.unwrap_or(0) as f64 / 1_000.0);
    registry.register(
        "oldest_unacknowledged_write_seconds",
        "Age of the oldest client write on this node that no peer is known to hold yet (0: none)",
        unacknowledged,
    );
    gauge(
        &mut registry,
        "tombstones",
        "Tombstones held",
        status.tombstones,
    );
    let members = Family::<Labels, Gauge>::default();
    for state in ["alive", "suspect", "down", "left", "expired"] {
        members
            .get_or_create(&vec![("state".to_owned(), state.to_owned())])
            .set(0);
    }
    for member in status.members.iter().skip(1) {
        let state = match member.liveness {
            Some(gossip::Liveness::Alive) | None => "alive",
            Some(gossip::Liveness::Suspect) => "suspect",
            Some(gossip::Liveness::Down) => "down",
            Some(gossip::Liveness::Left) => "left",
            Some(gossip::Liveness::Expired) => "expired",
        };
        members
            .get_or_create(&vec![("state".to_owned(), state.to_owned())])
            .inc();
    }
    registry.register(
        "members",
        "Other members by state, as this node sees them",
        members,
    );

    let t = &status.transport;
    counter(
        &mut registry,
        "quic_connections_dialed",
        "QUIC connections this node dialed",
        t.connections_dialed,
    );
    counter(
        &mut registry,
        "quic_connections_accepted",
        "QUIC connections this node accepted",
        t.connections_accepted,
    );
    counter(
        &mut registry,
        "quic_connect_failures",
        "QUIC dials that failed",
        t.connect_failures,
    );
    counter(
        &mut registry,
        "quic_handshakes_refused",
        "QUIC handshakes refused",
        t.handshakes_refused,
    );
    counter(
        &mut registry,
        "quic_connections_refused_busy",
        "Incoming QUIC connections refused at a limit (pending handshakes, established connections)",
        t.connections_refused_busy,
    );
    counter(
        &mut registry,
        "quic_handshakes_retried",
        "Incoming QUIC connections asked to prove their address (Retry) under handshake load",
        t.handshakes_retried,
    );
    counter(
        &mut registry,
        "quic_streams_refused_busy",
        "Peer streams refused at a limit (exchanges in all or per peer, partial-frame bytes)",
        t.streams_refused_busy,
    );
    counter(
        &mut registry,
        "client_requests_refused",
        "Client requests refused (limit reached, malformed, unanswered)",
        t.requests_refused,
    );
    counter(
        &mut registry,
        "quic_bytes_sent",
        "Gossip frame bytes sent over QUIC",
        t.bytes_sent,
    );
    counter(
        &mut registry,
        "quic_bytes_received",
        "Gossip frame bytes received over QUIC",
        t.bytes_received,
    );

    let security = &status.security;
    counter(
        &mut registry,
        "revoked_handshakes_refused",
        "TLS handshakes refused for a certificate on the revocation list (QUIC both ways, HTTPS)",
        security.revoked_refused,
    );
    gauge(
        &mut registry,
        "revoked_serials",
        "Certificate serials on the revocation list in force",
        security.revoked_serials,
    );
    let expiry = Gauge::<i64>::default();
    expiry.set(security.certificate_not_after);
    registry.register(
        "certificate_expiry_timestamp_seconds",
        "When this node's certificate expires, in seconds since 1970",
        expiry,
    );

    registry.register(
        "http_requests",
        "HTTP API requests by route, method and status",
        requests.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP API request latency by route and method",
        requests.latency.clone(),
    );
    let mut page = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut page, &registry);
    page
}
