//! Cutting a byte stream into frames. Every length is checked against a limit before anything is
//! allocated for it; a bad frame is an error and the connection is closed by the caller.

use bytes::{Buf, BytesMut};

use super::{Error, RemotingCommand};

/// Largest `length` word accepted (Java's `com.rocketmq.remoting.frameMaxLength`).
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Smallest meaningful frame: the header-length word.
const FRAME_BYTES_MIN: usize = 4;

/// Decodes frames from a growing buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    pub frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder { frame_bytes_max: FRAME_BYTES_MAX }
    }
}

impl FrameDecoder {
    /// Takes one whole frame off the front of `buf`, or `Ok(None)` when more bytes are needed.
    /// On `Err` the stream is unusable.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, Error> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if length > self.frame_bytes_max {
            return Err(Error::FrameTooLarge { bytes: length as u64, max_bytes: self.frame_bytes_max });
        }
        if length < FRAME_BYTES_MIN {
            return Err(Error::BadFrame(format!("frame length {length} is shorter than its header word")));
        }
        if buf.len() < 8 {
            buf.reserve(4 + length - buf.len());
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let serialize = RemotingCommand::serialize_type_from_byte((word >> 24) as u8)?;
        let header_len = (word & 0x00FF_FFFF) as usize;
        if header_len > length - 4 {
            return Err(Error::BadFrame(format!(
                "header length {header_len} is larger than the frame ({length} bytes)"
            )));
        }
        if buf.len() < 4 + length {
            buf.reserve(4 + length - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(4 + length);
        frame.advance(8);
        let header = frame.split_to(header_len);
        let mut cmd = RemotingCommand::decode_header(serialize, &header)?;
        cmd.body = frame.freeze();
        Ok(Some(cmd))
    }
}
