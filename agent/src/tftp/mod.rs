//! ironrack's TFTP server for PXE: read-only, on tokio, with a pure transfer state machine.
//!
//! # Shape
//!
//! - [`packet`] parses and encodes datagrams; it never panics on any input.
//! - [`options`] negotiates RFC 2347 options; [`transfer`] is the state
//!   machine of one read transfer. Both are pure: no sockets, no clock of
//!   their own, tested by feeding packets and instants.
//! - [`path`] confines names by their text, [`resolver`] by what is on
//!   disk, and lets the agent plug in generated per-machine files.
//! - `server` admits requests and runs one task per transfer; `serve`
//!   drives a [`transfer::Transfer`] over a socket.
//!
//! # Protocol decisions
//!
//! - **Options** (RFC 2347): the OACK holds only options the client asked
//!   for, spelled as it spelled them, each once; names and the mode are
//!   compared case-insensitively. A value we cannot honour drops that
//!   option instead of failing the request (§4 allows this; ERROR 8 would
//!   make some firmwares give up the boot).
//! - **blksize** (RFC 2348): 8..=65464, clamped to `max_blksize`; below 8
//!   the option is dropped. Fitting the path MTU is the client's job.
//! - **tsize** (RFC 2349): answered with the file's size. A missing file
//!   gets ERROR 1 before any negotiation, so there is no tsize for it.
//!   An empty file gets no tsize either: curl 7.88 aborts on "tsize 0"
//!   in an OACK (it fails the same way against tftpd-hpa).
//! - **timeout** (RFC 2349): 1..=255 s is accepted and used exactly, as the
//!   RFC requires; other values drop the option and `timeout_ms` applies.
//! - **windowsize** (RFC 7440): 1..=65535, clamped to `max_windowsize`.
//! - **Mode**: only `octet` is served; `netascii` (and `mail`) get ERROR 4
//!   "Only octet mode is served". Boot firmware always asks for octet, and
//!   converting would make `tsize` and block offsets disagree with the file
//!   on disk. tftp-hpa's `tftp` must be run with `-m binary` (its default
//!   mode is netascii).
//! - **Block numbers** are 64-bit internally and folded to 16 bits on the
//!   wire; after 65535 comes 0.
//! - **Retransmission**: one timer per transfer, armed when a window (or
//!   the OACK) is sent because of progress. A duplicate ACK neither resends
//!   nor moves the timer (RFC 1123 §4.2.3.1, the Sorcerer's Apprentice).
//!   On expiry the whole current window is resent; after `retries` expiries
//!   without progress the transfer ends silently. Progress restores the
//!   retry budget.
//! - **ACK in the middle of a window** (RFC 7440 §4): the client lost the
//!   block after the one it acknowledged; the next window starts there, at
//!   once. An ACK for an older block, or for one never sent, is ignored.
//!   A lost first block of a window therefore waits for the timer.
//! - **Client errors** end the transfer without an answer (RFC 1350 §7).
//!   This is how the UEFI tsize probe ends (RRQ with tsize, OACK, ERROR 8):
//!   the file is opened and stat'ed, no data is read, and the slot is freed
//!   on the ERROR.
//! - **Other packets** on a transfer's port: DATA, requests or OACKs get
//!   ERROR 4 and end it; unparseable datagrams are ignored.
//! - **Write requests** get ERROR 2 "Write requests are refused".
//! - **Retransmitted RRQs** from the same address and port while their
//!   transfer runs are ignored: the running transfer's timer answers them.
//! - **Limits**: past `max_transfers` in total or `max_per_client` per
//!   client IP, a request gets ERROR 0 "Server busy, try again later".
//!
//! # Addresses
//!
//! The listener sets IP_PKTINFO (IPV6_RECVPKTINFO for IPv6 and dual-stack)
//! and reads each request's destination address with `recvmsg`. Every
//! reply, refusals included, leaves from a fresh socket bound to that
//! address with an ephemeral port, the server's TID (RFC 1350 §4). One
//! socket per address was the alternative; it would have to follow
//! addresses coming and going on the rack's interfaces. Transfer sockets
//! are `connect`ed to the client, so the kernel filters other TIDs instead
//! of us answering them with ERROR 5.
//!
//! # Paths
//!
//! Names are split on `/` and `\`; `..` components, absolute names, NUL
//! bytes and empty names are refused with ERROR 2. The joined path is then
//! canonicalised and must lie inside the canonical root by whole
//! components, so symlinks may point anywhere inside the root but not out,
//! and `root-other/` siblings never pass as inside `root/`.
//!
//! # Reading and sending
//!
//! Files are streamed: each transfer keeps one read-ahead buffer of about
//! 128 KiB (whole blocks, at least one block), so a 64 MiB image never
//! sits in memory per client. A refill is tried inline with
//! `preadv2(RWF_NOWAIT)`, which only succeeds from the page cache; a cold
//! read goes to the blocking pool. Boot images are hot after the first
//! client, and the pool's thread hand-off per chunk was the largest cost
//! of a lockstep transfer on a loaded host.
//!
//! A window of small blocks is sent with UDP GSO (UDP_SEGMENT, Linux
//! 4.18+): one `sendmsg` carries up to 64 DATA packets of equal size (the
//! last may be short), which the kernel or NIC splits. Where GSO is not
//! available the first failure switches that transfer to one send per
//! block. Clients see ordinary datagrams either way.

pub mod config;
pub mod options;
pub mod packet;
pub mod path;
pub mod resolver;
mod serve;
mod server;
mod socket;
pub mod transfer;

pub use config::{ConfigError, TftpConfig};
pub use resolver::{BoxFuture, FileSource, ResolveError, Resolver, RootResolver};
pub use serve::TransferError;
pub use server::{TftpError, TftpServer};
