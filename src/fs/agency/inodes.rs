//! One number space for the whole agency mount. Each location's library
//! numbers its inodes and handles from 1 as a mount of its own would; the
//! agency mount puts the location's slot (its place in the roster, never
//! reused while mounted) in the high bits. Slot 0 is the agency root's own:
//! inode 1 is the root, and handles of slot 0 are open root listings.

use crate::fs::{Attr, DirEntry, Ino, Stale};

const SHIFT: u32 = 40;
const LOCAL: u64 = (1 << SHIFT) - 1;

/// A location's place in the roster, from 1.
pub type Slot = usize;

/// The agency-wide number of a location's inode or handle.
pub fn lift(slot: Slot, local: u64) -> u64 {
    debug_assert!(local <= LOCAL, "a location numbers past 2^40");
    ((slot as u64) << SHIFT) | local
}

/// The slot and the location's own number; slot 0 is the agency root's.
pub fn split(number: u64) -> (Slot, u64) {
    ((number >> SHIFT) as Slot, number & LOCAL)
}

pub fn lift_attr(slot: Slot, mut attr: Attr) -> Attr {
    attr.ino = lift(slot, attr.ino);
    attr
}

pub fn lift_entry(slot: Slot, mut entry: DirEntry) -> DirEntry {
    entry.ino = lift(slot, entry.ino);
    entry
}

pub fn lift_stale(slot: Slot, stale: Stale) -> Stale {
    match stale {
        Stale::Entry { parent, name } => Stale::Entry {
            parent: lift(slot, parent),
            name,
        },
        Stale::Attributes(ino) => Stale::Attributes(lift(slot, ino)),
    }
}

/// The agency root's inode.
pub const AGENCY_ROOT: Ino = crate::fs::ROOT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_slots_never_meet() {
        for (slot, local) in [(1, 1), (1, LOCAL), (7, 12345), (1 << 20, 2)] {
            assert_eq!(split(lift(slot, local)), (slot, local));
        }
        assert_ne!(lift(1, 5), lift(2, 5));
        assert_eq!(split(AGENCY_ROOT), (0, 1));
    }
}
