//! Serialization of [`LwwMap`]: entries sorted by key, so equal maps give
//! identical bytes, then the version vector and the purge frontier; checked
//! on the way in.

use std::hash::Hash;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::delta::{InvalidState, check_within};
use crate::{Applied, Entry, LwwMap, VersionVector};

#[derive(Serialize)]
struct MapRef<'a, K, V> {
    entries: Vec<(&'a K, &'a Entry<V>)>,
    version_vector: &'a VersionVector,
    purged: &'a VersionVector,
}

#[derive(Deserialize)]
struct MapOwned<K, V> {
    entries: Vec<(K, Entry<V>)>,
    version_vector: VersionVector,
    purged: VersionVector,
}

impl<K, V> Serialize for LwwMap<K, V>
where
    K: Serialize + Ord,
    V: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&K, &Entry<V>)> = self.entries().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        MapRef {
            entries,
            version_vector: &self.version_vector,
            purged: &self.purged,
        }
        .serialize(serializer)
    }
}

impl<'de, K, V> Deserialize<'de> for LwwMap<K, V>
where
    K: Deserialize<'de> + Hash + Eq + Clone,
    V: Deserialize<'de> + Ord + Clone,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let owned = MapOwned::<K, V>::deserialize(deserializer)?;
        if !owned.purged.dominated_by(&owned.version_vector) {
            return Err(D::Error::custom(InvalidState::PurgedBeyondVector));
        }
        let mut map = LwwMap::try_from_parts(owned.entries, owned.version_vector)
            .map_err(D::Error::custom)?;
        map.purged = owned.purged;
        Ok(map)
    }
}

impl<K, V> LwwMap<K, V>
where
    K: Hash + Eq + Clone,
    V: Ord + Clone,
{
    /// Rebuilds a map from its entries and vector, as saved by serializing
    /// one.
    ///
    /// # Errors
    /// [`InvalidState`] if a key repeats or an entry lies beyond the vector;
    /// nothing is built then.
    pub fn try_from_parts(
        entries: Vec<(K, Entry<V>)>,
        version_vector: VersionVector,
    ) -> Result<Self, InvalidState> {
        check_within(
            entries.iter().map(|(_, entry)| entry.stamp),
            &version_vector,
        )?;
        let mut map = LwwMap::new();
        for (key, entry) in entries {
            // A key seen before comes back as replaced or unchanged; the
            // half-built map is dropped then.
            if map.upsert(key, entry) != Applied::Inserted {
                return Err(InvalidState::DuplicateKey);
            }
        }
        map.version_vector = version_vector;
        Ok(map)
    }
}
