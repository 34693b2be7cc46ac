//! How both engines judge a run against the reference: which live
//! replicas have caught up ([`Target`], [`fraction_caught_up`]), and
//! whether each reads exactly what the reference implies ([`Verifier`]).

use std::collections::BTreeMap;

use gossip::Node;
use lww_crdt::VersionVector;
use transport_mem::reference::Reference;

use crate::sim::report::{Mismatch, Verification};

/// What a replica must hold to count as caught up, taken from the
/// reference at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct Target {
    vector: VersionVector,
    /// What every replica must read, in key order.
    expected: Vec<(String, String)>,
}

impl Target {
    /// The target the writes and losses in `reference` imply.
    pub(crate) fn of(reference: &Reference) -> Self {
        Target {
            vector: reference.vector(),
            expected: reference
                .expected()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// Whether `node` holds every surviving write.
    ///
    /// A node whose vector dominates the reference's accounts for every
    /// write, so it reads the reference; that check costs the vector's
    /// length. A node can read the reference without it, when the writer of
    /// a superseded write crashed before anyone learned how far its vector
    /// went; for those, compare reads key by key.
    pub(crate) fn reached_by(&self, node: &Node) -> bool {
        self.vector.dominated_by(node.version_vector()) || self.read_by(node)
    }

    fn read_by(&self, node: &Node) -> bool {
        node.map().len() == self.expected.len()
            && self
                .expected
                .iter()
                .all(|(key, value)| node.get(key) == Some(value.as_str()))
    }
}

/// The fraction of live nodes that hold every surviving write, given
/// whether each live node reached the [`Target`]; 0 when none is live.
pub(crate) fn fraction_caught_up(live: impl IntoIterator<Item = bool>) -> f64 {
    let (mut nodes, mut caught_up) = (0usize, 0usize);
    for reached in live {
        nodes += 1;
        caught_up += usize::from(reached);
    }
    if nodes == 0 {
        return 0.0;
    }
    caught_up as f64 / nodes as f64
}

/// Checks live replicas one by one against the reference and keeps the
/// first disagreement: a key the replica does not read as expected, or
/// else its smallest key the reference does not have.
pub(crate) struct Verifier<'a> {
    expected: BTreeMap<&'a str, &'a str>,
    verification: Verification,
}

impl<'a> Verifier<'a> {
    /// A verifier for the state `reference` implies.
    pub(crate) fn new(reference: &'a Reference) -> Self {
        let expected = reference.expected();
        let verification = Verification {
            ok: true,
            nodes_checked: 0,
            keys_checked: expected.len() as u64,
            first_divergence: None,
        };
        Verifier {
            expected,
            verification,
        }
    }

    /// Counts the live replica `node` (number `index`) as checked and, if
    /// no replica disagreed yet, compares its reads with the reference.
    pub(crate) fn check(&mut self, index: usize, node: &Node) {
        self.verification.nodes_checked += 1;
        if self.verification.first_divergence.is_some() {
            return;
        }
        let mismatch = |key: &str, expected: Option<&str>, found: Option<&str>| Mismatch {
            key: key.to_owned(),
            node: index as u64,
            expected: expected.map(str::to_owned),
            found: found.map(str::to_owned),
        };
        let expected = &self.expected;
        let missing = expected
            .iter()
            .find(|(key, value)| node.get(key) != Some(**value))
            .map(|(key, value)| mismatch(key, Some(value), node.get(key)));
        // The smallest extra key, so that the report does not depend on the
        // map's iteration order.
        let extra = || {
            node.map()
                .iter()
                .filter(|(key, _)| !expected.contains_key(key.as_str()))
                .min()
                .map(|(key, value)| mismatch(key, None, Some(value)))
        };
        if let Some(found) = missing.or_else(extra) {
            self.verification.ok = false;
            self.verification.first_divergence = Some(found);
        }
    }

    /// What the checks found.
    pub(crate) fn finish(self) -> Verification {
        self.verification
    }
}
