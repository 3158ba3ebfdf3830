//! [`CompactMap`]: the map behind every trie node's children and subscribers. Most nodes hold one
//! or two entries, so a small map is an exactly-sized boxed slice searched linearly (16 bytes
//! inline, one allocation of exactly its entries); past [`WIDEN_ABOVE`] entries it becomes a boxed
//! `HashMap` (SipHash, so clients choosing levels cannot force collisions), and it narrows back
//! once it shrinks to [`NARROW_AT`], returning the table's memory.
//!
//! A wide map keeps the keys its [`Pinning`] policy names out of the hash table, in a side slice:
//! the trie looks up its `+` and `#` children at every node a PUBLISH passes through, and a scan
//! of an (almost always empty) slice is far cheaper than hashing and probing a large table.
//!
//! Also the allocation-size model every memory estimate in this crate uses.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::{self, size_of};
use std::slice;

/// A small map holding this many entries becomes a hash map on the next insert.
pub(crate) const WIDEN_ABOVE: usize = 16;
/// A hash map shrinking to this many entries becomes a small map again. Lower than
/// [`WIDEN_ABOVE`] so a node hovering at the threshold does not convert on every call.
pub(crate) const NARROW_AT: usize = 8;

/// Bytes an allocator hands out for a request of `bytes`: a model of glibc's malloc (8 bytes of
/// header, 16-byte granularity, 32-byte minimum chunk). Other allocators differ by a few bytes per
/// allocation; the point is to count the per-allocation overhead at all.
pub(crate) fn allocation_size(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes.saturating_add(8).next_multiple_of(16).max(32)
    }
}

/// Which keys a wide map keeps in its side slice rather than its hash table. Implemented for the
/// key type and for every type the map is looked up with, consistently.
pub(crate) trait Pinning<Q: ?Sized> {
    fn is_pinned(key: &Q) -> bool;
}

/// Pins nothing: a plain small-or-wide map.
pub(crate) enum Unpinned {}

impl<Q: ?Sized> Pinning<Q> for Unpinned {
    fn is_pinned(_: &Q) -> bool {
        false
    }
}

/// Linear-scan slice for few entries, hash map (plus pinned side slice) for many. Entry order is
/// unspecified.
pub(crate) enum CompactMap<K, V, P = Unpinned> {
    Small(Box<[(K, V)]>),
    Wide(Box<Wide<K, V, P>>),
}

pub(crate) struct Wide<K, V, P> {
    table: HashMap<K, V>,
    pinned: Box<[(K, V)]>,
    policy: PhantomData<fn() -> P>,
}

impl<K, V, P> Default for CompactMap<K, V, P> {
    fn default() -> Self {
        Self::Small(Box::default())
    }
}

impl<K, V, P> CompactMap<K, V, P> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Wide(wide) => wide.table.len() + wide.pinned.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            Self::Small(entries) => Iter {
                slice: entries.iter(),
                table: None,
            },
            Self::Wide(wide) => Iter {
                slice: wide.pinned.iter(),
                table: Some(wide.table.iter()),
            },
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Takes every value out, passing each to `f`, and leaves the map empty and unallocated.
    pub(crate) fn drain_each(&mut self, f: impl FnMut(V)) {
        match mem::take(self) {
            Self::Small(entries) => entries.into_vec().into_iter().map(|(_, v)| v).for_each(f),
            Self::Wide(wide) => {
                let Wide { table, pinned, .. } = *wide;
                let pinned = pinned.into_vec().into_iter().map(|(_, v)| v);
                pinned.chain(table.into_values()).for_each(f);
            }
        }
    }

    /// Heap bytes of the map's own storage (slices, box and table), not counting anything the
    /// keys and values own.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::Small(entries) => slice_heap(entries),
            Self::Wide(wide) => wide_heap(wide),
        }
    }
}

fn slice_heap<T>(entries: &[T]) -> usize {
    allocation_size(mem::size_of_val(entries))
}

/// The box, the side slice, and a table that can hold `capacity()` entries: one bucket per slot
/// (7/8 of the buckets usable once there are 8 or more), one control byte per bucket plus a group
/// of 16.
fn wide_heap<K, V, P>(wide: &Wide<K, V, P>) -> usize {
    let capacity = wide.table.capacity();
    let table = if capacity == 0 {
        0
    } else {
        let buckets = if capacity < 8 {
            (capacity + 1).next_power_of_two()
        } else {
            (capacity / 7 * 8).next_power_of_two()
        };
        allocation_size(buckets * (size_of::<(K, V)>() + 1) + 16)
    };
    allocation_size(size_of::<Wide<K, V, P>>()) + table + slice_heap(&wide.pinned)
}

fn position<K: Borrow<Q>, V, Q: Eq + ?Sized>(entries: &[(K, V)], key: &Q) -> Option<usize> {
    entries.iter().position(|(k, _)| k.borrow() == key)
}

/// Appends to a boxed slice, reallocating to exactly the new length.
fn push_exact<T>(entries: &mut Box<[T]>, entry: T) {
    let mut grown = mem::take(entries).into_vec();
    grown.reserve_exact(1);
    grown.push(entry);
    *entries = grown.into_boxed_slice();
}

/// Removes from a boxed slice, reallocating to exactly the new length.
fn remove_exact<K: Borrow<Q>, V, Q: Eq + ?Sized>(
    entries: &mut Box<[(K, V)]>,
    key: &Q,
) -> Option<(K, V)> {
    let index = position(entries, key)?;
    let mut kept = mem::take(entries).into_vec();
    let removed = kept.swap_remove(index);
    *entries = kept.into_boxed_slice();
    Some(removed)
}

/// The index of `key`, appending the entry `make` builds if it is absent.
fn find_or_push<K: Borrow<Q>, V, Q: Eq + ?Sized>(
    entries: &mut Box<[(K, V)]>,
    key: &Q,
    make: impl FnOnce() -> (K, V),
) -> usize {
    position(entries, key).unwrap_or_else(|| {
        push_exact(entries, make());
        entries.len() - 1
    })
}

impl<K: Eq + Hash, V, P: Pinning<K>> CompactMap<K, V, P> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        P: Pinning<Q>,
    {
        let entries = match self {
            Self::Small(entries) => entries,
            Self::Wide(wide) if P::is_pinned(key) => &wide.pinned,
            Self::Wide(wide) => return wide.table.get(key),
        };
        entries
            .iter()
            .find(|(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        P: Pinning<Q>,
    {
        let entries = match self {
            Self::Small(entries) => entries,
            Self::Wide(wide) => {
                if !P::is_pinned(key) {
                    return wide.table.get_mut(key);
                }
                &mut wide.pinned
            }
        };
        entries
            .iter_mut()
            .find(|(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// Inserts or replaces, returning the replaced value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(&key) {
            return Some(mem::replace(slot, value));
        }
        self.widen_if_full();
        match self {
            Self::Small(entries) => push_exact(entries, (key, value)),
            Self::Wide(wide) if P::is_pinned(&key) => push_exact(&mut wide.pinned, (key, value)),
            Self::Wide(wide) => {
                wide.table.insert(key, value);
            }
        }
        None
    }

    /// The value under `key`, inserted when absent with the key from `make_key` and the value
    /// from `make_value`. Also returns, if it inserted, how many bytes the map's own storage grew
    /// by.
    ///
    /// A wide table builds the owned key even when it is present (the entry API needs one); the
    /// trie's keys are inline up to 22 bytes, so that rarely allocates.
    pub(crate) fn get_or_insert_with<Q>(
        &mut self,
        key: &Q,
        make_key: impl FnOnce(&Q) -> K,
        make_value: impl FnOnce() -> V,
    ) -> (&mut V, Option<usize>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        P: Pinning<Q>,
    {
        let before = self.heap_bytes();
        let absent = self.get(key).is_none();
        if absent {
            self.widen_if_full();
        }
        match self {
            Self::Small(entries) => {
                let index = find_or_push(entries, key, || (make_key(key), make_value()));
                let grown = slice_heap(entries).saturating_sub(before);
                (&mut entries[index].1, absent.then_some(grown))
            }
            Self::Wide(wide) => {
                if P::is_pinned(key) {
                    let index =
                        find_or_push(&mut wide.pinned, key, || (make_key(key), make_value()));
                    let grown = wide_heap(wide).saturating_sub(before);
                    return (&mut wide.pinned[index].1, absent.then_some(grown));
                }
                if absent {
                    // Grow now, so the growth can be measured before the entry is borrowed.
                    wide.table.reserve(1);
                }
                let grown = wide_heap(wide).saturating_sub(before);
                let value = wide.table.entry(make_key(key)).or_insert_with(make_value);
                (value, absent.then_some(grown))
            }
        }
    }

    /// Removes `key`, returning its entry. A slice reallocates to its new exact size; a wide map
    /// narrows to a small one at [`NARROW_AT`] entries.
    pub(crate) fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        P: Pinning<Q>,
    {
        let removed = match self {
            Self::Small(entries) => return remove_exact(entries, key),
            Self::Wide(wide) if P::is_pinned(key) => remove_exact(&mut wide.pinned, key)?,
            Self::Wide(wide) => wide.table.remove_entry(key)?,
        };
        if let Self::Wide(wide) = self
            && wide.table.len() + wide.pinned.len() <= NARROW_AT
        {
            let mut entries = mem::take(&mut wide.pinned).into_vec();
            entries.extend(mem::take(&mut wide.table));
            *self = Self::Small(entries.into_boxed_slice());
        }
        Some(removed)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        P: Pinning<Q>,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    fn widen_if_full(&mut self) {
        if let Self::Small(entries) = self
            && entries.len() >= WIDEN_ABOVE
        {
            let (pinned, table): (Vec<_>, Vec<_>) = mem::take(entries)
                .into_vec()
                .into_iter()
                .partition(|(k, _)| P::is_pinned(k));
            *self = Self::Wide(Box::new(Wide {
                table: table.into_iter().collect(),
                pinned: pinned.into_boxed_slice(),
                policy: PhantomData,
            }));
        }
    }
}

/// Iterator over a [`CompactMap`]'s entries: the slice (small map, or a wide map's pinned
/// entries), then the table.
pub(crate) struct Iter<'a, K, V> {
    slice: slice::Iter<'a, (K, V)>,
    table: Option<hash_map::Iter<'a, K, V>>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self.slice.next() {
            Some((k, v)) => Some((k, v)),
            None => self.table.as_mut()?.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins even numbers, to exercise the side slice.
    enum Even {}

    impl Pinning<u32> for Even {
        fn is_pinned(key: &u32) -> bool {
            key.is_multiple_of(2)
        }
    }

    #[test]
    fn small_map_is_sixteen_bytes_inline() {
        assert_eq!(size_of::<CompactMap<u64, u64>>(), 16);
    }

    fn widen_and_narrow<P: Pinning<u32>>() {
        let mut map = CompactMap::<u32, u32, P>::default();
        for i in 0..100 {
            assert_eq!(map.insert(i, i * 2), None);
            assert_eq!(map.len(), i as usize + 1);
        }
        assert!(matches!(map, CompactMap::Wide(_)));
        assert_eq!(map.insert(7, 0), Some(14));
        assert_eq!(map.insert(8, 0), Some(16));
        let mut keys: Vec<_> = map.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..100).collect::<Vec<_>>());
        for i in (0..100).rev() {
            let expected = if i == 7 || i == 8 { 0 } else { i * 2 };
            assert_eq!(map.get(&i).copied(), Some(expected));
            assert_eq!(map.remove(&i), Some(expected));
            assert_eq!(map.get(&i), None);
        }
        assert!(matches!(map, CompactMap::Small(_)));
        assert_eq!(map.heap_bytes(), 0);
    }

    #[test]
    fn map_widens_and_narrows_without_losing_entries() {
        widen_and_narrow::<Unpinned>();
        widen_and_narrow::<Even>();
    }

    #[test]
    fn get_or_insert_reports_growth_only_when_it_inserts() {
        let mut map = CompactMap::<u32, u32, Even>::default();
        for i in 0..40 {
            let before = map.heap_bytes();
            let (_, grown) = map.get_or_insert_with(&i, |k| *k, || 0);
            assert_eq!(Some(map.heap_bytes() - before), grown);
            let (value, grown) = map.get_or_insert_with(&i, |k| *k, || 1);
            assert_eq!((*value, grown), (0, None));
        }
    }

    #[test]
    fn allocation_size_models_malloc_chunks() {
        assert_eq!(allocation_size(0), 0);
        assert_eq!(allocation_size(1), 32);
        assert_eq!(allocation_size(24), 32);
        assert_eq!(allocation_size(25), 48);
    }
}
