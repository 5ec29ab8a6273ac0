//! How a message kept in history travels on a Redis channel: the history
//! script publishes `\0H<offset> <epoch>\n` in front of the message, so
//! every node that receives it live learns its place in the history too.
//! Nothing else starts with a NUL byte (messages are JSON, inbox wake-ups
//! are `wake`), so a payload without the marker is taken as it is.

use bytes::Bytes;

use super::{Offset, Stamp};

/// The marker in front of a stamped payload.
pub(crate) const MARKER: &[u8] = b"\0H";

/// Splits a payload received on a channel into its stamp (if it carries
/// one) and the message; a stamp that does not read leaves the payload as
/// it came.
pub(crate) fn open(payload: Bytes) -> (Option<Stamp>, Bytes) {
    let Some(rest) = payload.strip_prefix(MARKER) else {
        return (None, payload);
    };
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return (None, payload);
    };
    let header = std::str::from_utf8(&rest[..end]).ok();
    let stamp = header.and_then(|h| {
        let (offset, epoch) = h.split_once(' ')?;
        Some(Stamp {
            offset: offset.parse::<Offset>().ok()?,
            epoch: epoch.to_owned(),
        })
    });
    match stamp {
        Some(stamp) => {
            let body = payload.slice(MARKER.len() + end + 1..);
            (Some(stamp), body)
        }
        None => (None, payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_payloads_open_and_others_pass_through() {
        let (stamp, body) = open(Bytes::from_static(b"\0H1733-42 9f1c\n{\"a\":1}"));
        let stamp = stamp.unwrap();
        assert_eq!((stamp.offset.n, stamp.offset.ms), (42, 1733));
        assert_eq!(stamp.epoch, "9f1c");
        assert_eq!(&body[..], b"{\"a\":1}");
        for plain in [
            &b"{\"a\":1}"[..],
            b"wake",
            b"\0Hno newline",
            b"\0Hbad offset\n{}",
        ] {
            let (stamp, body) = open(Bytes::copy_from_slice(plain));
            assert!(stamp.is_none());
            assert_eq!(&body[..], plain);
        }
    }
}
