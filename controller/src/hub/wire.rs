//! Reading and writing one tunnel frame on a QUIC stream (the I/O edge of the pure codec).

use ironrack_common::tunnel::{FRAME_HEADER_LEN, FrameError, decode_frame_len, encode_frame};
use serde::Serialize;

/// Why a frame could not be moved over a stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("reading the frame failed")]
    Read(#[source] quinn::ReadExactError),
    #[error("writing the frame failed")]
    Write(#[source] quinn::WriteError),
    #[error("the stream was already closed")]
    Closed(#[source] quinn::ClosedStream),
    #[error("opening or accepting the stream failed")]
    Connection(#[source] quinn::ConnectionError),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads one frame's payload; an oversize length is refused before the
/// payload buffer is allocated.
pub(crate) async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, StreamError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    recv.read_exact(&mut header)
        .await
        .map_err(StreamError::Read)?;
    let len = decode_frame_len(header)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload)
        .await
        .map_err(StreamError::Read)?;
    Ok(payload)
}

/// Writes an already encoded frame and finishes the stream.
pub(crate) async fn write_encoded(
    send: &mut quinn::SendStream,
    frame: &[u8],
) -> Result<(), StreamError> {
    send.write_all(frame).await.map_err(StreamError::Write)?;
    send.finish().map_err(StreamError::Closed)
}

/// Encodes `msg`, writes it and finishes the stream.
pub(crate) async fn write_frame<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
) -> Result<(), StreamError> {
    let frame = encode_frame(msg)?;
    write_encoded(send, &frame).await
}
