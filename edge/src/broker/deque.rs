//! [`LazyDeque`]: a `VecDeque` that takes one pointer while it is empty.
//!
//! A session keeps four queues (QoS 0 waiting, QoS 1/2 waiting, in flight, inbound QoS 2 packet
//! ids) that are empty for most sessions most of the time; as `VecDeque`s they would take 128
//! bytes of every session. A `LazyDeque` boxes its `VecDeque` on the first push and frees it when
//! the last element leaves, so an empty queue costs 8 bytes and no allocation.

use std::collections::VecDeque;
use std::ops::{Index, IndexMut};

/// A double-ended queue allocated only while it holds something.
#[derive(Debug)]
// Boxed on purpose: a null pointer while empty instead of an empty `VecDeque`'s 32 bytes.
#[allow(clippy::box_collection)]
pub(crate) struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> From<VecDeque<T>> for LazyDeque<T> {
    fn from(items: VecDeque<T>) -> Self {
        if items.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(items)))
        }
    }
}

impl<T> LazyDeque<T> {
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.len())
    }

    /// True when empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The elements, front to back.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.as_deref().into_iter().flatten()
    }

    /// The elements, front to back, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.as_deref_mut().into_iter().flatten()
    }

    /// The first element.
    pub(crate) fn front(&self) -> Option<&T> {
        self.0.as_ref()?.front()
    }

    /// Appends an element.
    pub(crate) fn push_back(&mut self, item: T) {
        self.0.get_or_insert_with(Box::default).push_back(item);
    }

    /// Prepends an element.
    pub(crate) fn push_front(&mut self, item: T) {
        self.0.get_or_insert_with(Box::default).push_front(item);
    }

    /// Inserts an element at `index` (at most `len()`).
    pub(crate) fn insert(&mut self, index: usize, item: T) {
        self.0.get_or_insert_with(Box::default).insert(index, item);
    }

    /// Removes the first element.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let item = self.0.as_mut()?.pop_front();
        self.free_if_empty();
        item
    }

    /// Removes the element at `index`.
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let item = self.0.as_mut()?.remove(index);
        self.free_if_empty();
        item
    }

    /// Keeps the elements `keep` says yes to, in order.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        if let Some(d) = &mut self.0 {
            d.retain(keep);
        }
        self.free_if_empty();
    }

    /// Removes every element.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// Takes every element out, leaving the queue empty.
    pub(crate) fn take(&mut self) -> VecDeque<T> {
        self.0.take().map(|d| *d).unwrap_or_default()
    }

    /// Binary search in a sorted queue: `Ok(index)` if found, else `Err(insertion index)`.
    pub(crate) fn binary_search(&self, item: &T) -> Result<usize, usize>
    where
        T: Ord,
    {
        self.0.as_ref().map_or(Err(0), |d| d.binary_search(item))
    }

    fn free_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|d| d.is_empty()) {
            self.0 = None;
        }
    }
}

impl<T> Index<usize> for LazyDeque<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        match &self.0 {
            Some(d) => &d[index],
            None => panic!("index {index} out of range for an empty queue"),
        }
    }
}

impl<T> IndexMut<usize> for LazyDeque<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        match &mut self.0 {
            Some(d) => &mut d[index],
            None => panic!("index {index} out of range for an empty queue"),
        }
    }
}

impl<'a, T> IntoIterator for &'a LazyDeque<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::option::IntoIter<&'a VecDeque<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.as_deref().into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_queue_holds_no_allocation_and_frees_it_when_emptied() {
        let mut q = LazyDeque::default();
        assert!(q.is_empty() && q.0.is_none());
        q.push_back(1);
        q.push_back(2);
        q.push_front(0);
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(q.pop_front(), Some(0));
        assert_eq!(q.remove(1), Some(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_front(), Some(1));
        assert!(q.0.is_none());
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn sorted_insertion_retain_and_take_keep_order() {
        let mut q = LazyDeque::default();
        for id in [5u16, 1, 3] {
            let Err(pos) = q.binary_search(&id) else {
                panic!("{id} already there")
            };
            q.insert(pos, id);
        }
        assert_eq!((&q).into_iter().copied().collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(q.binary_search(&3), Ok(1));
        q.retain(|id| *id != 3);
        assert_eq!(q[1], 5);
        q[1] = 7;
        assert_eq!(q.take(), VecDeque::from([1, 7]));
        assert!(q.is_empty());
        q.push_back(9);
        q.retain(|_| false);
        assert!(q.0.is_none());
        assert_eq!(LazyDeque::from(VecDeque::<u8>::new()).len(), 0);
    }
}
