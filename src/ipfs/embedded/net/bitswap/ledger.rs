//! What one remote peer wants from us (server side): a bounded FIFO of
//! wantlist entries with de-duplication and cancels.

use std::collections::{HashMap, VecDeque};

use cid::Cid;
use multihash::Multihash;

use super::message::{Entry, WantType};

/// Most entries queued per peer; further wants are dropped (the peer
/// re-sends its wantlist as it changes).
pub const MAX_PENDING: usize = 16 * 1024;

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The block.
    pub cid: Cid,
    /// Block or presence.
    pub want_type: WantType,
    /// Answer DONT_HAVE if missing.
    pub send_dont_have: bool,
}

/// A peer's pending requests.
#[derive(Debug, Default)]
pub struct Ledger {
    queue: VecDeque<(u64, Multihash<64>)>,
    live: HashMap<Multihash<64>, (u64, Request)>,
    seq: u64,
    dropped: u64,
}

impl Ledger {
    /// Applies a received wantlist.
    pub fn apply(&mut self, entries: &[Entry], full: bool) {
        if full {
            self.queue.clear();
            self.live.clear();
        }
        for e in entries {
            let mh = *e.cid.hash();
            if e.cancel {
                self.live.remove(&mh);
                continue;
            }
            if let Some((_, req)) = self.live.get_mut(&mh) {
                // Upgrade want-have to want-block, keep its place.
                if e.want_type == WantType::Block {
                    req.want_type = WantType::Block;
                }
                req.send_dont_have |= e.send_dont_have;
                continue;
            }
            if self.live.len() >= MAX_PENDING {
                self.dropped += 1;
                continue;
            }
            self.seq += 1;
            self.live.insert(
                mh,
                (
                    self.seq,
                    Request {
                        cid: e.cid,
                        want_type: e.want_type,
                        send_dont_have: e.send_dont_have,
                    },
                ),
            );
            self.queue.push_back((self.seq, mh));
        }
        // Keep the queue from growing with cancelled entries.
        if self.queue.len() > 2 * MAX_PENDING {
            let live = &self.live;
            self.queue
                .retain(|(s, mh)| live.get(mh).is_some_and(|(ls, _)| ls == s));
        }
    }

    /// Takes the oldest requests: at most `max_blocks` want-block and
    /// `max_haves` want-have ones.
    pub fn take(&mut self, max_blocks: usize, max_haves: usize) -> Vec<Request> {
        let (mut blocks, mut haves) = (0, 0);
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        while let Some((seq, mh)) = self.queue.pop_front() {
            let Some((live_seq, req)) = self.live.get(&mh) else {
                continue;
            };
            if *live_seq != seq {
                continue;
            }
            let full = match req.want_type {
                WantType::Block => blocks >= max_blocks,
                WantType::Have => haves >= max_haves,
            };
            if full {
                skipped.push((seq, mh));
                if blocks >= max_blocks && haves >= max_haves {
                    break;
                }
                continue;
            }
            match req.want_type {
                WantType::Block => blocks += 1,
                WantType::Have => haves += 1,
            }
            if let Some((_, req)) = self.live.remove(&mh) {
                out.push(req);
            }
        }
        for item in skipped.into_iter().rev() {
            self.queue.push_front(item);
        }
        out
    }

    /// Number of live requests.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Requests dropped because the ledger was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::raw_cid;

    fn want(b: &[u8], t: WantType) -> Entry {
        Entry::want(raw_cid(b), t, true)
    }

    #[test]
    fn fifo_dedupe_and_cancel() {
        let mut l = Ledger::default();
        l.apply(
            &[
                want(b"1", WantType::Block),
                want(b"2", WantType::Have),
                want(b"3", WantType::Block),
                want(b"1", WantType::Block),
            ],
            false,
        );
        assert_eq!(l.len(), 3);
        l.apply(&[Entry::cancel(raw_cid(b"3"))], false);
        l.apply(&[want(b"2", WantType::Block)], false);
        let got = l.take(10, 10);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].cid, raw_cid(b"1"));
        assert_eq!(got[1].cid, raw_cid(b"2"));
        assert_eq!(got[1].want_type, WantType::Block, "upgraded to want-block");
        assert!(l.is_empty());
    }

    #[test]
    fn take_respects_limits_and_keeps_order() {
        let mut l = Ledger::default();
        l.apply(
            &[
                want(b"a", WantType::Block),
                want(b"b", WantType::Block),
                want(b"c", WantType::Have),
                want(b"d", WantType::Block),
            ],
            false,
        );
        let first = l.take(1, 10);
        assert_eq!(
            first.iter().map(|r| r.cid).collect::<Vec<_>>(),
            vec![raw_cid(b"a"), raw_cid(b"c")]
        );
        let second = l.take(1, 10);
        assert_eq!(second[0].cid, raw_cid(b"b"));
        assert_eq!(l.take(5, 5)[0].cid, raw_cid(b"d"));
    }

    #[test]
    fn full_wantlist_replaces_and_size_is_bounded() {
        let mut l = Ledger::default();
        l.apply(&[want(b"old", WantType::Block)], false);
        l.apply(&[want(b"new", WantType::Block)], true);
        assert_eq!(l.take(10, 10)[0].cid, raw_cid(b"new"));
        let many: Vec<Entry> = (0..MAX_PENDING + 10)
            .map(|i| want(&i.to_le_bytes(), WantType::Have))
            .collect();
        l.apply(&many, false);
        assert_eq!(l.len(), MAX_PENDING);
        assert_eq!(l.dropped(), 10);
    }
}
