//! Durable storage: storage-file interface, segmented WAL, snapshots.
