//! Listing live keys by prefix, a page at a time, for `GET /v1/kv` and
//! [`Request::List`](crate::client::Request::List).

use gossip::NodeHandle;

/// The most bytes of keys and values one page carries: half the client
/// protocol's frame cap, so a page always fits a frame.
pub(crate) const PAGE_BYTES: usize = crate::client::proto::MAX_FRAME_BYTES / 2;

/// One page of a listing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// Live keys with their values, in key order.
    pub(crate) keys: Vec<(String, String)>,
    /// The last key of this page when more follow: pass it as `after`.
    pub(crate) next_after: Option<String>,
}

/// The live keys under `prefix` after `after`, in key order: at most
/// `limit`, and no more than fit in `max_bytes` of keys and values (one at
/// least, whatever its size).
///
/// The map keeps no order, so every matching key is looked at under the
/// node's lock; only the page's own keys are sorted and copied.
pub(crate) fn list(
    node: &NodeHandle,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    max_bytes: usize,
) -> Page {
    node.with_node(|node| {
        let mut matching: Vec<(&String, &String)> = node
            .map()
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
            .collect();
        let mut more = matching.len() > limit;
        if more {
            matching.select_nth_unstable_by(limit, |a, b| a.0.cmp(b.0));
            matching.truncate(limit);
        }
        matching.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut bytes = 0;
        let mut keys = Vec::with_capacity(matching.len());
        for (key, value) in matching {
            bytes += key.len() + value.len();
            if bytes > max_bytes && !keys.is_empty() {
                more = true;
                break;
            }
            keys.push((key.clone(), value.clone()));
        }
        let next_after = more
            .then(|| keys.last().map(|(key, _): &(String, String)| key.clone()))
            .flatten();
        Page { keys, next_after }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gossip::{Config, Driver, Node};
    use lww_crdt::{ManualClock, NodeId};

    use super::*;

    fn node_with(keys: &[(&str, &str)]) -> NodeHandle {
        let config = Config::builder(NodeId::new(1)).build().unwrap();
        let driver = Driver::new(Node::new(config, []), ManualClock::new(1_000));
        let handle = driver.handle();
        for (key, value) in keys {
            handle.put(*key, *value).unwrap();
        }
        handle
    }

    #[test]
    fn pages_follow_key_order_and_the_byte_budget() {
        let node = node_with(&[
            ("b/2", "two"),
            ("a", "x"),
            ("b/1", "one"),
            ("b/3", "three"),
            ("c", "y"),
        ]);
        node.delete("b/0").unwrap();
        let page = list(&node, "b/", None, 2, usize::MAX);
        assert_eq!(
            page.keys,
            [("b/1".into(), "one".into()), ("b/2".into(), "two".into())]
        );
        assert_eq!(page.next_after.as_deref(), Some("b/2"));
        let page = list(&node, "b/", Some("b/2"), 2, usize::MAX);
        assert_eq!(page.keys, [("b/3".into(), "three".into())]);
        assert_eq!(page.next_after, None);
        // The byte budget cuts the page short, but always lets one key in.
        let page = list(&node, "", None, 10, 4);
        assert_eq!(page.keys, [("a".into(), "x".into())]);
        assert_eq!(page.next_after.as_deref(), Some("a"));
        let page = list(&node, "", Some("a"), 10, 1);
        assert_eq!(page.keys, [("b/1".into(), "one".into())]);
        assert_eq!(page.next_after.as_deref(), Some("b/1"));
    }
}
