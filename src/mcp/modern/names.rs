//! The client names a node has seen, shared between requests.
//!
//! A 2026-07-28 request names its client in `_meta` every time, and a call's [`CallInfo`]
//! carries that name as an `Arc<str>`. Clients are few and their names repeat, so a known name
//! is a shared clone instead of an allocation and a copy per call.
//!
//! Bounded: past [`CAPACITY`] distinct names (a client that invents one per request), a new name
//! is allocated for its request alone and never kept, so the set cannot grow without end.
//!
//! [`CallInfo`]: crate::catalog::CallInfo

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// How many distinct names are kept.
pub(super) const CAPACITY: usize = 256;

/// See the module.
#[derive(Default)]
pub(crate) struct ClientNames {
    known: RwLock<HashSet<Arc<str>, foldhash::fast::RandomState>>,
}

impl ClientNames {
    /// `name`, shared with every earlier request that gave it while there was room.
    pub fn get(&self, name: &str) -> Arc<str> {
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = known.get(name) {
            return Arc::clone(shared);
        }
        drop(known);
        let name: Arc<str> = name.into();
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.len() < CAPACITY {
            known.insert(Arc::clone(&name));
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_name_is_shared_and_the_set_stops_growing_at_its_capacity() {
        let names = ClientNames::default();
        let first = names.get("claude-code");
        assert!(Arc::ptr_eq(&first, &names.get("claude-code")));
        for i in 0..CAPACITY * 2 {
            assert_eq!(
                &*names.get(&format!("invented-{i}")),
                format!("invented-{i}")
            );
        }
        let known = names.known.read().unwrap_or_else(|p| p.into_inner());
        assert_eq!(known.len(), CAPACITY);
        drop(known);
        let late = names.get("late-client");
        assert_eq!(&*late, "late-client");
        assert!(
            !Arc::ptr_eq(&late, &names.get("late-client")),
            "kept past capacity"
        );
        assert!(Arc::ptr_eq(&first, &names.get("claude-code")));
    }
}
