//! Sites and loot tables: the part of the world the dig rule reads and
//! writes, owned by the ruler (`crate::ruler`, behind its lock; never
//! snapshotted for workers).

use rustc_hash::FxHashMap;

use super::space::block_key;
use crate::roll::LootTable;

/// A dig site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    pub id: u32,
    pub x: i32,
    pub y: i32,
    pub z: i32,
    pub loot_table: u32,
    pub charges: u32,
}

/// Sites (keyed by block, the lookup every dig makes: one hash probe finds
/// the site and its charges), the id index, and loot tables. Behind the
/// ruler's lock, never snapshotted.
#[derive(Clone, Debug, Default)]
pub struct Sites {
    pub(crate) by_block: FxHashMap<u64, Site>,
    pub(crate) by_id: FxHashMap<u32, u64>,
    pub(crate) tables: FxHashMap<u32, LootTable>,
}

impl Sites {
    /// Sites present.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn has_table(&self, id: u32) -> bool {
        self.tables.contains_key(&id)
    }

    /// The site on a block.
    #[inline]
    pub fn at(&self, x: i32, y: i32, z: i32) -> Option<&Site> {
        self.by_block.get(&block_key(x, y, z))
    }

    /// Adds a site; the caller checked the id, the block and the table.
    pub fn insert(&mut self, site: Site) {
        let key = block_key(site.x, site.y, site.z);
        self.by_id.insert(site.id, key);
        self.by_block.insert(key, site);
    }

    /// Removes a site by id.
    pub fn remove(&mut self, id: u32) -> Option<Site> {
        let key = self.by_id.remove(&id)?;
        self.by_block.remove(&key)
    }

    /// Adds a loot table; the caller checked the id.
    pub fn insert_table(&mut self, id: u32, table: LootTable) {
        self.tables.insert(id, table);
    }
}
