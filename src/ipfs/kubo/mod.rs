//! Kubo RPC backend (filled by issue 3).
