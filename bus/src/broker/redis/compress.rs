//! Large payloads travel through Redis compressed (zstd): a message at
//! least [`RedisOptions::compress_over`](super::RedisOptions) bytes long is
//! published, kept in history and stored in queues as
//! `\0Z<original length>\n<zstd frame>`, and every node opens it again
//! before an agent sees it, so agents never notice. A message that does not
//! shrink travels as it is. Nodes read both forms whatever their own
//! setting, so a bus can turn compression on or off one node at a time.
//!
//! The history script's byte bounds count a compressed entry at its
//! original length (it reads the header), so a replay is bounded in the
//! bytes agents receive, not in what Redis holds.

use bytes::{BufMut, Bytes, BytesMut};

/// The marker in front of a compressed payload (JSON never starts with a
/// NUL byte; the history stamp `\0H` is opened first).
pub(super) const MARKER: &[u8] = b"\0Z";

/// The default threshold: below a few KiB, zstd saves too little to pay
/// for its CPU on the node's path.
pub const DEFAULT_COMPRESS_OVER: usize = 4096;

/// The zstd level: 3 is zstd's own default, several hundred MB/s on one
/// core and 5–10× on typical JSON.
const LEVEL: i32 = 3;

/// The largest original length a compressed payload may claim. The bus
/// never accepts a message this large; the bound keeps an entry someone
/// wrote into Redis by hand from making a node allocate without limit.
pub(super) const MAX_UNPACKED: usize = 64 << 20;

/// `payload` compressed and framed when it is at least `over` bytes long
/// and compression makes it smaller; `None` otherwise (send it as it is).
pub(super) fn pack(payload: &[u8], over: Option<usize>) -> Option<Bytes> {
    let over = over?;
    if payload.len() < over || payload.len() > MAX_UNPACKED {
        return None;
    }
    let packed = zstd::bulk::compress(payload, LEVEL).ok()?;
    let header = format!("{}\n", payload.len());
    let framed_len = MARKER.len() + header.len() + packed.len();
    if framed_len >= payload.len() {
        return None;
    }
    let mut framed = BytesMut::with_capacity(framed_len);
    framed.put_slice(MARKER);
    framed.put_slice(header.as_bytes());
    framed.put_slice(&packed);
    Some(framed.freeze())
}

/// `payload` packed when that pays (see [`pack`]), otherwise unchanged.
pub(super) fn pack_bytes(payload: &Bytes, over: Option<usize>) -> Bytes {
    pack(payload, over).unwrap_or_else(|| payload.clone())
}

/// `payload` as it was published: opened when it carries the marker,
/// unchanged otherwise. A frame that does not open (a bad header, a length
/// over [`MAX_UNPACKED`], a corrupt or mismatched zstd frame) is an error
/// naming why.
pub(super) fn unpack(payload: Bytes) -> Result<Bytes, String> {
    let Some(rest) = payload.strip_prefix(MARKER) else {
        return Ok(payload);
    };
    let end = rest
        .iter()
        .take(24)
        .position(|&b| b == b'\n')
        .ok_or("a compressed payload without its length header")?;
    let len: usize = std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("a compressed payload with an unreadable length")?;
    if len > MAX_UNPACKED {
        return Err(format!(
            "a compressed payload claims {len} bytes, over the {MAX_UNPACKED} bound"
        ));
    }
    let opened = zstd::bulk::decompress(&rest[end + 1..], len)
        .map_err(|e| format!("a compressed payload does not decompress: {e}"))?;
    if opened.len() != len {
        return Err(format!(
            "a compressed payload opened to {} bytes, not the {len} its header says",
            opened.len()
        ));
    }
    Ok(Bytes::from(opened))
}

/// A payload received on `channel`, opened; one that does not open is
/// logged and dropped (only a client writing to Redis directly makes one),
/// so an agent never receives a compressed frame.
pub(super) fn open_delivery(channel: &str, payload: Bytes) -> Option<Bytes> {
    match unpack(payload) {
        Ok(payload) => Some(payload),
        Err(reason) => {
            tracing::warn!(channel, %reason, "dropped a published payload that does not open");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: usize) -> Vec<u8> {
        let mut out = b"{\"rows\":[".to_vec();
        let mut i = 0u64;
        while out.len() < bytes {
            let row = format!(
                "{{\"id\":{i},\"name\":\"agent-{}\",\"score\":{}}},",
                i * 7919 % 1000,
                i * 31 % 97
            );
            out.extend_from_slice(row.as_bytes());
            i += 1;
        }
        out.extend_from_slice(b"{}]}");
        out
    }

    #[test]
    fn large_payloads_round_trip_smaller_and_small_ones_pass() {
        let big = json(64 << 10);
        let packed = pack(&big, Some(4096)).expect("64 KiB of JSON shrinks");
        assert!(packed.starts_with(MARKER));
        assert!(
            packed.len() * 4 < big.len(),
            "{} of {}",
            packed.len(),
            big.len()
        );
        assert_eq!(&unpack(packed).unwrap()[..], &big[..]);

        let small = json(1000);
        assert!(pack(&small, Some(4096)).is_none(), "under the threshold");
        assert!(pack(&big, None).is_none(), "compression off");
        let plain = Bytes::from(small.clone());
        assert_eq!(unpack(plain.clone()).unwrap(), plain);
    }

    #[test]
    fn a_payload_that_does_not_shrink_travels_as_it_is() {
        // Bytes from a good generator do not compress.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..8192)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(pack(&noise, Some(1024)).is_none());
    }

    #[test]
    fn frames_that_do_not_open_are_errors_not_payloads() {
        let big = json(16 << 10);
        let packed = pack(&big, Some(1)).unwrap();
        let header_end = packed.iter().position(|&b| b == b'\n').unwrap();
        let mut lying = b"\0Z1000\n".to_vec();
        lying.extend_from_slice(&packed[header_end + 1..]);
        let mut truncated = packed.to_vec();
        truncated.truncate(packed.len() / 2);
        let bomb = format!("\0Z{}\nxx", MAX_UNPACKED + 1).into_bytes();
        for (bad, why) in [
            (b"\0Z".to_vec(), "without its length"),
            (b"\0Zlots\nxx".to_vec(), "unreadable length"),
            (bomb, "over the"),
            (lying, "decompress"),
            (truncated, "decompress"),
        ] {
            let err = unpack(Bytes::from(bad)).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
