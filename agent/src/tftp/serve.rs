//! One request's task: refusals, resolution, then driving a [`Transfer`] over its own socket.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tracing::{Instrument, debug, trace};

use super::options::{Limits, negotiate};
use super::packet::{self, ErrorCode, Request};
use super::resolver::{FileSource, Resolver};
use super::socket::{
    GSO_MAX_BYTES, GSO_MAX_SEGMENTS, gso_unsupported, reply_socket, send_segments,
};
use super::transfer::{Outcome, Params, Transfer, Transmit, check_request, wire_block};

/// Read-ahead per transfer, in bytes, rounded down to whole blocks. Large
/// enough that a window of small blocks costs one blocking read, small
/// enough that 64 transfers hold a few MiB.
const READ_CHUNK: usize = 128 * 1024;

/// A failure that ends a transfer abnormally.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Creating, sending on or receiving from the transfer socket failed;
    /// ECONNREFUSED here means the client went away.
    #[error("socket to {peer}")]
    Socket {
        /// The client.
        peer: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the file failed or it shrank while being sent.
    #[error("reading {file}")]
    Read {
        /// The requested path.
        file: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a request task needs from the server.
pub(crate) struct Context {
    pub resolver: Arc<dyn Resolver>,
    pub limits: Limits,
    pub retries: u32,
}

/// Serves one request to the end, inside a span naming peer and file.
pub(crate) async fn serve(ctx: Arc<Context>, req: Request, peer: SocketAddr, local: SocketAddr) {
    let span = tracing::debug_span!("tftp_transfer", %peer, file = %req.filename);
    async move {
        let started = Instant::now();
        match run(&ctx, &req, peer, local).await {
            Ok(Some(outcome)) => {
                debug!(
                    ?outcome,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "transfer ended"
                )
            }
            Ok(None) => {}
            Err(e) => debug!(error = &e as &dyn std::error::Error, "transfer failed"),
        }
    }
    .instrument(span)
    .await
}

async fn send(sock: &UdpSocket, peer: SocketAddr, pkt: &[u8]) -> Result<(), TransferError> {
    sock.send(pkt)
        .await
        .map(drop)
        .map_err(|source| TransferError::Socket { peer, source })
}

async fn refuse(
    sock: &UdpSocket,
    peer: SocketAddr,
    code: ErrorCode,
    msg: &str,
) -> Result<Option<Outcome>, TransferError> {
    debug!(code = code.code(), msg, "request refused");
    send(sock, peer, &packet::encode_error(code, msg)).await?;
    Ok(None)
}

async fn run(
    ctx: &Context,
    req: &Request,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Option<Outcome>, TransferError> {
    let sock = reply_socket(local, peer)
        .await
        .map_err(|source| TransferError::Socket { peer, source })?;
    let path = match check_request(req) {
        Ok(p) => p,
        Err(refused) => {
            debug!(reason = %refused, "request refused");
            let (code, msg) = refused.reply();
            return refuse(&sock, peer, code, msg).await;
        }
    };
    let source = match ctx.resolver.resolve(peer, &path).await {
        Ok(s) => s,
        Err(e) => {
            debug!(error = &e as &dyn std::error::Error, "not served");
            let (code, msg) = e.reply();
            return refuse(&sock, peer, code, msg).await;
        }
    };
    let size = source.size();
    let negotiated = negotiate(&req.options, Some(size), &ctx.limits);
    let params = Params::from_negotiated(&negotiated, ctx.retries);
    trace!(?params, size, "starting");
    let (mut transfer, first) = Transfer::new(params, size, &negotiated.oack, Instant::now());
    let mut reader = BlockReader::new(source, params.blksize);
    let mut out = Outgoing {
        buf: Vec::with_capacity(4 + usize::from(params.blksize)),
        gso: true,
    };
    let file = path.to_string();
    let mut next = Some(first);
    let mut rbuf = [0u8; 512];
    // One timer for the whole transfer, moved only when the state machine
    // moves its deadline: re-registering a fresh timer for every packet
    // costs more than the rest of the per-ACK work.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        if let Some(tx) = next.take() {
            transmit(&sock, peer, &transfer, &mut reader, &mut out, &file, tx).await?;
        }
        if let Some(outcome) = transfer.outcome() {
            return Ok(Some(outcome.clone()));
        }
        let Some(deadline) = transfer.deadline() else {
            return Ok(None);
        };
        if armed != Some(deadline) {
            timer.as_mut().reset(deadline.into());
            armed = Some(deadline);
        }
        tokio::select! {
            biased;
            r = sock.recv(&mut rbuf) => {
                let n = r.map_err(|source| TransferError::Socket { peer, source })?;
                next = transfer.handle_datagram(&rbuf[..n], Instant::now());
            }
            () = &mut timer => {
                // Re-arm even if the deadline did not move, so an elapsed
                // timer is never polled again as if it were pending.
                armed = None;
                next = transfer.handle_timeout(Instant::now());
                if next.is_some() {
                    trace!(acked = transfer.acked(), "retransmitting");
                }
            }
        }
    }
}

async fn transmit(
    sock: &UdpSocket,
    peer: SocketAddr,
    transfer: &Transfer,
    reader: &mut BlockReader,
    out: &mut Outgoing,
    file: &str,
    tx: Transmit,
) -> Result<(), TransferError> {
    match tx {
        Transmit::Packet(pkt) => send(sock, peer, &pkt).await,
        Transmit::Blocks { first, last } => {
            let segment = 4 + usize::from(transfer.params().blksize);
            let batch = if out.gso {
                (GSO_MAX_BYTES / segment).clamp(1, GSO_MAX_SEGMENTS) as u64
            } else {
                1
            };
            let mut abs = first;
            while abs <= last {
                let end = (abs + batch - 1).min(last);
                out.buf.clear();
                for block in abs..=end {
                    let (offset, len) = transfer.block_span(block);
                    let data = match reader.get(offset, len).await {
                        Ok(d) => d,
                        Err(source) => {
                            let err = packet::encode_error(ErrorCode::NotDefined, "Read error");
                            let _ = sock.send(&err).await;
                            return Err(TransferError::Read {
                                file: file.to_owned(),
                                source,
                            });
                        }
                    };
                    packet::put_data_header(&mut out.buf, wire_block(block));
                    out.buf.extend_from_slice(data);
                }
                out.send(sock, peer, segment).await?;
                abs = end + 1;
            }
            Ok(())
        }
    }
}

/// The outgoing DATA buffer of a transfer, and whether GSO still works.
struct Outgoing {
    buf: Vec<u8>,
    gso: bool,
}

impl Outgoing {
    /// Sends the packets in `buf`, each `segment` bytes but the last.
    async fn send(
        &mut self,
        sock: &UdpSocket,
        peer: SocketAddr,
        segment: usize,
    ) -> Result<(), TransferError> {
        if self.buf.len() <= segment {
            return send(sock, peer, &self.buf).await;
        }
        if self.gso {
            match send_segments(sock, &self.buf, segment as u16).await {
                Ok(()) => return Ok(()),
                Err(e) if gso_unsupported(&e) => {
                    trace!(error = %e, "GSO unavailable, sending block by block");
                    self.gso = false;
                }
                Err(source) => return Err(TransferError::Socket { peer, source }),
            }
        }
        for packet in self.buf.chunks(segment) {
            send(sock, peer, packet).await?;
        }
        Ok(())
    }
}

/// Streams a source in block-aligned chunks. A window resend only goes
/// back to the block after the last ACK, which is at or after the chunk's
/// start as long as chunks begin at the first block a window asks for.
struct BlockReader {
    source: FileSource,
    chunk: usize,
    buf: Vec<u8>,
    start: u64,
}

impl BlockReader {
    fn new(source: FileSource, blksize: u16) -> BlockReader {
        let blksize = usize::from(blksize);
        let chunk = (READ_CHUNK / blksize).max(1) * blksize;
        BlockReader {
            source,
            chunk,
            buf: Vec::new(),
            start: 0,
        }
    }

    async fn get(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let file = match &self.source {
            FileSource::Memory(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(len).min(bytes.len());
                return Ok(&bytes[start..end]);
            }
            FileSource::File { file, .. } => file,
        };
        let end = offset + len as u64;
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let size = self.source.size();
            let want = (self.chunk.max(len) as u64).min(size.saturating_sub(offset)) as usize;
            self.buf.resize(want, 0);
            // Served images are nearly always in the page cache: read them
            // inline when that cannot block, and only hand cold reads to the
            // blocking pool, whose thread hand-off costs more than the copy
            // and, on a loaded host, a scheduling delay per chunk.
            if !matches!(read_cached(file, &mut self.buf, offset), Ok(n) if n == want) {
                let mut buf = std::mem::take(&mut self.buf);
                let file = file.clone();
                self.buf = tokio::task::spawn_blocking(move || {
                    read_exact_at(&file, &mut buf, offset).map(|()| buf)
                })
                .await
                .map_err(io::Error::other)??;
            }
            self.start = offset;
            if end > self.start + self.buf.len() as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank during the transfer",
                ));
            }
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}

/// One `preadv2(RWF_NOWAIT)`: reads what the page cache holds and fails
/// with EAGAIN instead of waiting for the disk (Linux 4.14+; where the
/// flag is unsupported it fails too, and the caller reads on the pool).
fn read_cached(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = nix::libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let iov = nix::libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, valid for writes of its whole length
    // for the duration of the call; the descriptor is owned by `file`,
    // which outlives the call.
    let n = unsafe { nix::libc::preadv2(file.as_raw_fd(), &iov, 1, offset, nix::libc::RWF_NOWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_source(bytes: &[u8]) -> (tempfile::NamedTempFile, FileSource) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        let size = bytes.len() as u64;
        let file = Arc::new(std::fs::File::open(f.path()).unwrap());
        (f, FileSource::File { file, size })
    }

    #[tokio::test]
    async fn reader_serves_blocks_across_chunks_and_rewinds() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (_tmp, source) = file_source(&bytes);
        let blksize = 1468u16;
        let mut reader = BlockReader::new(source, blksize);
        let b = usize::from(blksize);
        let blocks = bytes.len() / b + 1;
        for i in 0..blocks {
            let offset = i * b;
            let len = b.min(bytes.len() - offset);
            let got = reader.get(offset as u64, len).await.unwrap();
            assert_eq!(got, &bytes[offset..offset + len], "block {}", i + 1);
            // A window resend goes back up to a few blocks.
            if i >= 3 && i % 7 == 0 {
                let back = (i - 3) * b;
                let got = reader.get(back as u64, b).await.unwrap();
                assert_eq!(got, &bytes[back..back + b]);
            }
        }
        assert!(reader.buf.len() <= READ_CHUNK, "read-ahead stays bounded");
    }

    #[tokio::test]
    async fn reader_reports_a_shrunken_file() {
        let (tmp, source) = file_source(&[7u8; 10_000]);
        std::fs::File::options()
            .write(true)
            .open(tmp.path())
            .unwrap()
            .set_len(100)
            .unwrap();
        let mut reader = BlockReader::new(source, 512);
        let err = reader.get(512, 512).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn reader_serves_memory_sources() {
        let source = FileSource::Memory(Arc::from(&b"#!ipxe\nchain http://x/boot\n"[..]));
        let mut reader = BlockReader::new(source, 8);
        assert_eq!(reader.get(0, 8).await.unwrap(), b"#!ipxe\nc");
        assert_eq!(reader.get(23, 4).await.unwrap(), b"oot\n");
    }
}
