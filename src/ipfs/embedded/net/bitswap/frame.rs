//! Length-prefixed framing of bitswap messages on a stream: an unsigned
//! varint length, then that many bytes of protobuf.

use std::io;

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::message::MAX_MESSAGE_SIZE;

/// Reads one frame. `Ok(None)` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Bytes>> {
    let mut len: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..10 {
        let n = r.read(&mut byte).await?;
        if n == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            break;
        }
        if i == 9 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "varint too long",
            ));
        }
    }
    if len > MAX_MESSAGE_SIZE as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bitswap message of {len} bytes exceeds {MAX_MESSAGE_SIZE}"),
        ));
    }
    let mut buf = BytesMut::zeroed(len as usize);
    r.read_exact(&mut buf).await?;
    Ok(Some(buf.freeze()))
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> io::Result<()> {
    if msg.len() > MAX_MESSAGE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bitswap message too large",
        ));
    }
    let mut head = Vec::with_capacity(10);
    crate::ipfs::unixfs::dagpb::put_varint(&mut head, msg.len() as u64);
    w.write_all(&head).await?;
    w.write_all(msg).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut out = Cursor::new(Vec::new());
        write_frame(&mut out, b"hello").await.unwrap();
        write_frame(&mut out, &vec![7u8; 300]).await.unwrap();
        let bytes = out.into_inner();
        assert_eq!(&bytes[..6], b"\x05hello");
        let mut r = Cursor::new(bytes);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap().len(), 300);
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_truncated_frames_fail() {
        let mut big = Vec::new();
        crate::ipfs::unixfs::dagpb::put_varint(&mut big, (MAX_MESSAGE_SIZE + 1) as u64);
        assert!(read_frame(&mut Cursor::new(big)).await.is_err());
        assert!(read_frame(&mut Cursor::new(vec![5, b'a'])).await.is_err());
    }
}
