//! Frames on the wire: reading one frame from a buffer with its size checked against `frame_max`
//! before anything is buffered for it, and encoding methods and content (a body larger than a
//! frame is split) with the `amq-protocol` codec.
//!
//! Frame layout (AMQP 0-9-1 §4.2.3): type (1 byte), channel (2), payload size (4), payload,
//! frame end `0xCE`.

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::protocol::basic::AMQPProperties;
use bytes::{Buf, BytesMut};

use crate::error::{FRAME_ERROR, Fail, SYNTAX_ERROR};

/// The protocol header a client sends first, and the one we answer a wrong one with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Type, channel and size.
pub const FRAME_HEADER_BYTES: usize = 7;
/// Header plus frame end.
pub const FRAME_OVERHEAD_BYTES: usize = 8;
const FRAME_END: u8 = 0xCE;
const FRAME_TYPES: [u8; 4] = [1, 2, 3, 8];

/// One frame from `buf`, or `Ok(None)` when more bytes are needed.
///
/// # Errors
///
/// 501 (`FRAME_ERROR`) for an unknown frame type, a frame over `frame_max` or a wrong frame
/// end; 502 (`SYNTAX_ERROR`) for a payload the codec cannot decode.
pub fn read_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<AMQPFrame>, Fail> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Ok(None);
    }
    let kind = buf[0];
    if !FRAME_TYPES.contains(&kind) {
        return Err(Fail::new(FRAME_ERROR, format!("type {kind} is not a frame type")));
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    let total = u64::from(size) + FRAME_OVERHEAD_BYTES as u64;
    if total > u64::from(frame_max) {
        return Err(Fail::new(FRAME_ERROR, format!("frame size {total} larger than negotiated maximum {frame_max}")));
    }
    let total = total as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(Fail::new(FRAME_ERROR, "frame end marker is not 0xCE"));
    }
    let frame = match parse_frame(&buf[..total]) {
        Ok((_, f)) => f,
        Err(e) => return Err(Fail::new(SYNTAX_ERROR, format!("cannot decode a frame: {e}"))),
    };
    buf.advance(total);
    Ok(Some(frame))
}

/// Appends one encoded frame to `out`.
pub fn push(out: &mut Vec<u8>, frame: &AMQPFrame) {
    let ctx: WriteContext<Vec<u8>> = std::mem::take(out).into();
    match gen_frame(frame)(ctx) {
        Ok(c) => *out = c.into_inner().0,
        Err(e) => tracing::error!(error = ?e, "could not encode an AMQP frame"),
    }
}

/// One encoded method frame.
pub fn method(channel: u16, class: AMQPClass) -> Vec<u8> {
    let mut out = Vec::new();
    push(&mut out, &AMQPFrame::Method(channel, class));
    out
}

/// Appends a method with content: the method, the content header, the body in frames of at most
/// `frame_max` bytes.
pub fn push_content(
    out: &mut Vec<u8>,
    channel: u16,
    class: AMQPClass,
    props: &AMQPProperties,
    body: &[u8],
    frame_max: u32,
) {
    push(out, &AMQPFrame::Method(channel, class));
    let header = AMQPContentHeader { class_id: 60, body_size: body.len() as u64, properties: props.clone() };
    push(out, &AMQPFrame::Header(channel, header));
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD_BYTES).max(1);
    for part in body.chunks(chunk) {
        push(out, &AMQPFrame::Body(channel, part.to_vec()));
    }
}

/// The heartbeat frame.
pub fn heartbeat() -> Vec<u8> {
    let mut out = Vec::new();
    push(&mut out, &AMQPFrame::Heartbeat);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random and truncated bytes never panic the frame reader: each read is a frame, a need for
    /// more bytes, or an error.
    #[test]
    fn random_bytes_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Often a valid frame type and a small size, so the payload parsers run too.
            if round % 2 == 0 && len >= 7 {
                bytes[0] = [1, 2, 3, 8][(next() % 4) as usize];
                let size = (len as u32).saturating_sub(8);
                bytes[3..7].copy_from_slice(&size.to_be_bytes());
                if let Some(last) = bytes.last_mut() {
                    *last = 0xCE;
                }
            }
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..4 {
                match read_frame(&mut buf, 4096) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn a_frame_over_frame_max_is_refused_from_its_header() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0x98, 0x96, 0x80][..]);
        let err = read_frame(&mut buf, 131_072).unwrap_err();
        assert_eq!(err.code, FRAME_ERROR);
        assert!(buf.capacity() < 1_000_000, "nothing reserved for the announced payload");
    }
}
