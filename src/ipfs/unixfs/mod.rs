//! UnixFS: dag-pb codec, canonical file import (Kubo's `ipfs add
//! --cid-version=1` DAG), random-access export, and flat and HAMT-sharded
//! directories.

pub mod dagpb;
