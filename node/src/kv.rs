//! Replicated key-value state machine (protocol-neutral).
