//! `ipfs` storage driver: the registry layout as an MFS tree (issue 3).
