//! libp2p networking of the embedded node: transports, Kademlia, mDNS, bitswap (issue 5).
