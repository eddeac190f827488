//! Wires configuration, storage, registry and HTTP together.
