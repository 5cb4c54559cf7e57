use crate::collection::Collection;
use std::collections::HashMap;
use std::sync::Arc;

/// An immutable snapshot of every collection. A schema change builds a new snapshot and
/// swaps it in whole, so readers never see a half-applied change.
#[derive(Debug, Default)]
pub struct Schema {
    pub version: u64,
    collections: Vec<Arc<Collection>>,
    by_id: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
}

impl Schema {
    pub fn new(version: u64, collections: Vec<Collection>) -> Self {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let by_id = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let by_name = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.to_lowercase(), i))
            .collect();
        Schema {
            version,
            collections,
            by_id,
            by_name,
        }
    }

    /// Finds a collection by id, then by case-insensitive name.
    pub fn find(&self, id_or_name: &str) -> Option<&Arc<Collection>> {
        self.by_id
            .get(id_or_name)
            .or_else(|| self.by_name.get(&id_or_name.to_lowercase()))
            .map(|&i| &self.collections[i])
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Collection>> {
        self.by_id.get(id).map(|&i| &self.collections[i])
    }

    pub fn all(&self) -> &[Arc<Collection>] {
        &self.collections
    }
}
