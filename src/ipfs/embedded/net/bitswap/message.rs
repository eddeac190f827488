//! The bitswap protobuf message, encoded and decoded by hand (go-bitswap's
//! `message.proto`):
//!
//! ```text
//! Message { Wantlist wantlist = 1; repeated bytes blocks = 2;   // 1.0.0
//!           repeated Block payload = 3;                         // 1.1.0+
//!           repeated BlockPresence blockPresences = 4; int32 pendingBytes = 5; }
//! Wantlist { repeated Entry entries = 1; bool full = 2; }
//! Entry { bytes block = 1; int32 priority = 2; bool cancel = 3;
//!         WantType wantType = 4 /* Block=0, Have=1 */; bool sendDontHave = 5; }
//! Block { bytes prefix = 1; bytes data = 2; }
//! BlockPresence { bytes cid = 1; BlockPresenceType type = 2 /* Have=0, DontHave=1 */; }
//! ```

use bytes::Bytes;
use cid::Cid;

use super::prefix::Prefix;
use crate::ipfs::unixfs::dagpb::{
    DecodeError, get_key, get_varint, put_bytes_field, put_varint, put_varint_field, skip_field,
};

/// Largest message disco sends or accepts (go-bitswap's limit).
pub const MAX_MESSAGE_SIZE: usize = 4 << 20;

/// Protocol generation of a bitswap stream; decides what can be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// `/ipfs/bitswap/1.0.0`: raw blocks (CIDv0 implied), want-block only.
    V100,
    /// `/ipfs/bitswap/1.1.0`: blocks with CID prefixes.
    V110,
    /// `/ipfs/bitswap/1.2.0`: want-have, block presences, send-dont-have.
    V120,
}

/// What an entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WantType {
    /// Send the block.
    Block,
    /// Say whether you have the block.
    Have,
}

/// One wantlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The wanted block.
    pub cid: Cid,
    /// Higher is more urgent.
    pub priority: i32,
    /// Withdraws an earlier want of this CID.
    pub cancel: bool,
    /// Block or presence.
    pub want_type: WantType,
    /// Answer DONT_HAVE when the block is missing.
    pub send_dont_have: bool,
}

impl Entry {
    /// A want (not a cancel).
    pub fn want(cid: Cid, want_type: WantType, send_dont_have: bool) -> Self {
        Entry {
            cid,
            priority: 1,
            cancel: false,
            want_type,
            send_dont_have,
        }
    }

    /// A cancel of an earlier want.
    pub fn cancel(cid: Cid) -> Self {
        Entry {
            cid,
            priority: 0,
            cancel: true,
            want_type: WantType::Block,
            send_dont_have: false,
        }
    }
}

/// A block with the prefix of its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Version, codec and hash function of the CID.
    pub prefix: Prefix,
    /// Block bytes.
    pub data: Bytes,
}

/// HAVE or DONT_HAVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The sender has the block.
    Have,
    /// The sender does not have the block.
    DontHave,
}

/// A decoded or to-be-encoded bitswap message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Wantlist entries.
    pub wantlist: Vec<Entry>,
    /// Whether the wantlist replaces the previous one.
    pub full: bool,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Block presences.
    pub presences: Vec<(Cid, Presence)>,
    /// Bytes the sender still has queued for us.
    pub pending_bytes: i32,
}

impl Message {
    /// True if there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_empty() && self.blocks.is_empty() && self.presences.is_empty()
    }

    /// Encoded size, roughly (upper bound used for batching).
    pub fn size_hint(&self) -> usize {
        self.wantlist.len() * 48
            + self.presences.len() * 48
            + self.blocks.iter().map(|b| b.data.len() + 24).sum::<usize>()
            + 16
    }

    /// Encodes for a peer speaking `version`: older peers get only what they
    /// understand (1.0.0: blocks without prefixes; before 1.2.0: no
    /// want-have entries and no presences).
    pub fn encode(&self, version: Version) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        let entries: Vec<&Entry> = self
            .wantlist
            .iter()
            .filter(|e| version == Version::V120 || e.cancel || e.want_type == WantType::Block)
            .collect();
        if !entries.is_empty() || self.full {
            let mut wl = Vec::with_capacity(entries.len() * 48);
            let mut buf = Vec::with_capacity(64);
            for e in entries {
                buf.clear();
                put_bytes_field(&mut buf, 1, &e.cid.to_bytes());
                if e.priority != 0 {
                    // int32 is sign-extended to 64 bits on the wire.
                    put_varint_field(&mut buf, 2, i64::from(e.priority) as u64);
                }
                if e.cancel {
                    put_varint_field(&mut buf, 3, 1);
                }
                if version == Version::V120 {
                    if e.want_type == WantType::Have {
                        put_varint_field(&mut buf, 4, 1);
                    }
                    if e.send_dont_have {
                        put_varint_field(&mut buf, 5, 1);
                    }
                }
                put_bytes_field(&mut wl, 1, &buf);
            }
            if self.full {
                put_varint_field(&mut wl, 2, 1);
            }
            put_bytes_field(&mut out, 1, &wl);
        }
        for b in &self.blocks {
            if version == Version::V100 {
                put_bytes_field(&mut out, 2, &b.data);
            } else {
                let prefix = b.prefix.to_bytes();
                let mut len = Vec::with_capacity(24);
                put_bytes_field(&mut len, 1, &prefix);
                // Field 2 header of the data, then the data itself.
                put_varint(&mut len, (2 << 3) | 2);
                put_varint(&mut len, b.data.len() as u64);
                put_varint(&mut out, (3 << 3) | 2);
                put_varint(&mut out, (len.len() + b.data.len()) as u64);
                out.extend_from_slice(&len);
                out.extend_from_slice(&b.data);
            }
        }
        if version == Version::V120 {
            let mut buf = Vec::with_capacity(48);
            for (cid, p) in &self.presences {
                buf.clear();
                put_bytes_field(&mut buf, 1, &cid.to_bytes());
                if *p == Presence::DontHave {
                    put_varint_field(&mut buf, 2, 1);
                }
                put_bytes_field(&mut out, 4, &buf);
            }
        }
        if self.pending_bytes != 0 {
            put_varint_field(&mut out, 5, i64::from(self.pending_bytes) as u64);
        }
        out
    }

    /// Decodes a message; block data are zero-copy slices of `buf`.
    pub fn decode(buf: &Bytes) -> Result<Self, DecodeError> {
        let mut msg = Message::default();
        let mut rest: &[u8] = buf;
        while !rest.is_empty() {
            match get_key(&mut rest)? {
                (1, 2) => {
                    let wl = take(&mut rest)?;
                    decode_wantlist(wl, &mut msg)?;
                }
                (2, 2) => {
                    let data = take(&mut rest)?;
                    msg.blocks.push(Block {
                        prefix: Prefix::V0_DAG_PB,
                        data: buf.slice_ref(data),
                    });
                }
                (3, 2) => {
                    let mut b = take(&mut rest)?;
                    let (mut prefix, mut data) = (None, None);
                    while !b.is_empty() {
                        match get_key(&mut b)? {
                            (1, 2) => prefix = Some(Prefix::from_bytes(take(&mut b)?)?),
                            (2, 2) => data = Some(buf.slice_ref(take(&mut b)?)),
                            (_, w) => skip_field(&mut b, w)?,
                        }
                    }
                    msg.blocks.push(Block {
                        prefix: prefix.ok_or(DecodeError("block without prefix"))?,
                        data: data.unwrap_or_default(),
                    });
                }
                (4, 2) => {
                    let mut p = take(&mut rest)?;
                    let (mut cid, mut kind) = (None, Presence::Have);
                    while !p.is_empty() {
                        match get_key(&mut p)? {
                            (1, 2) => cid = Some(parse_cid(take(&mut p)?)?),
                            (2, 0) => {
                                kind = match get_varint(&mut p)? {
                                    0 => Presence::Have,
                                    1 => Presence::DontHave,
                                    _ => return Err(DecodeError("unknown presence type")),
                                }
                            }
                            (_, w) => skip_field(&mut p, w)?,
                        }
                    }
                    msg.presences
                        .push((cid.ok_or(DecodeError("presence without CID"))?, kind));
                }
                (5, 0) => msg.pending_bytes = get_varint(&mut rest)? as i32,
                (_, w) => skip_field(&mut rest, w)?,
            }
        }
        Ok(msg)
    }
}

fn decode_wantlist(mut wl: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    while !wl.is_empty() {
        match get_key(&mut wl)? {
            (1, 2) => {
                let mut e = take(&mut wl)?;
                let mut entry = Entry::want(Cid::default(), WantType::Block, false);
                entry.priority = 0;
                let mut cid = None;
                while !e.is_empty() {
                    match get_key(&mut e)? {
                        (1, 2) => cid = Some(parse_cid(take(&mut e)?)?),
                        (2, 0) => entry.priority = get_varint(&mut e)? as i32,
                        (3, 0) => entry.cancel = get_varint(&mut e)? != 0,
                        (4, 0) => {
                            entry.want_type = match get_varint(&mut e)? {
                                0 => WantType::Block,
                                1 => WantType::Have,
                                _ => return Err(DecodeError("unknown want type")),
                            }
                        }
                        (5, 0) => entry.send_dont_have = get_varint(&mut e)? != 0,
                        (_, w) => skip_field(&mut e, w)?,
                    }
                }
                entry.cid = cid.ok_or(DecodeError("wantlist entry without CID"))?;
                msg.wantlist.push(entry);
            }
            (2, 0) => msg.full = get_varint(&mut wl)? != 0,
            (_, w) => skip_field(&mut wl, w)?,
        }
    }
    Ok(())
}

fn take<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    crate::ipfs::unixfs::dagpb::get_bytes(buf)
}

fn parse_cid(raw: &[u8]) -> Result<Cid, DecodeError> {
    Cid::try_from(raw).map_err(|_| DecodeError("invalid CID"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::{dag_pb_cid, raw_cid};

    fn sample() -> Message {
        Message {
            wantlist: vec![
                Entry::want(raw_cid(b"a"), WantType::Block, true),
                Entry::want(raw_cid(b"b"), WantType::Have, false),
                Entry::cancel(raw_cid(b"c")),
            ],
            full: false,
            blocks: vec![Block {
                prefix: Prefix::of(&raw_cid(b"x")),
                data: Bytes::from_static(b"x"),
            }],
            presences: vec![
                (raw_cid(b"d"), Presence::Have),
                (raw_cid(b"e"), Presence::DontHave),
            ],
            pending_bytes: 0,
        }
    }

    #[test]
    fn round_trip_v120() {
        let msg = sample();
        let enc = Bytes::from(msg.encode(Version::V120));
        assert_eq!(Message::decode(&enc).unwrap(), msg);
    }

    #[test]
    fn older_versions_drop_what_they_do_not_know() {
        let msg = sample();
        let v110 = Message::decode(&Bytes::from(msg.encode(Version::V110))).unwrap();
        assert_eq!(v110.wantlist.len(), 2, "want-have dropped");
        assert!(v110.presences.is_empty());
        assert_eq!(v110.blocks, msg.blocks);
        let v100 = Message::decode(&Bytes::from(msg.encode(Version::V100))).unwrap();
        assert_eq!(v100.blocks[0].prefix, Prefix::V0_DAG_PB);
        assert_eq!(v100.blocks[0].data, Bytes::from_static(b"x"));
    }

    #[test]
    fn known_encoding_of_an_entry() {
        // Wantlist{entries:[{block:<cid>, priority:1, wantType:Have, sendDontHave:true}]}
        let cid = dag_pb_cid(b"");
        let msg = Message {
            wantlist: vec![Entry::want(cid, WantType::Have, true)],
            ..Default::default()
        };
        let c = cid.to_bytes();
        let mut entry = vec![0x0a, c.len() as u8];
        entry.extend_from_slice(&c);
        entry.extend_from_slice(&[0x10, 1, 0x20, 1, 0x28, 1]);
        let mut wl = vec![0x0a, entry.len() as u8];
        wl.extend_from_slice(&entry);
        let mut want = vec![0x0a, wl.len() as u8];
        want.extend_from_slice(&wl);
        assert_eq!(msg.encode(Version::V120), want);
    }

    #[test]
    fn negative_priority_round_trips() {
        let mut e = Entry::want(raw_cid(b"p"), WantType::Block, false);
        e.priority = -5;
        let msg = Message {
            wantlist: vec![e],
            ..Default::default()
        };
        let dec = Message::decode(&Bytes::from(msg.encode(Version::V120))).unwrap();
        assert_eq!(dec.wantlist[0].priority, -5);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Message::decode(&Bytes::from_static(&[0x0a, 0x05, 0x01])).is_err());
        assert!(Message::decode(&Bytes::from_static(&[0x1a, 0x02, 0x12, 0x00])).is_err());
        assert!(Message::decode(&Bytes::from_static(&[0x22, 0x02, 0x10, 0x07])).is_err());
    }
}
