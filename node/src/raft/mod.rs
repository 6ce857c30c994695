//! Sans-IO Raft core.
