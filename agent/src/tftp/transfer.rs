//! The pure read-transfer state machine: packets and clock ticks in, packets to send out.
//!
//! Block numbers are kept as `u64` counts from the start of the file and
//! only folded to 16 bits on the wire, so files past 65535 blocks roll over
//! (0 follows 65535, as tftp-hpa, atftp, curl and dnsmasq expect) without
//! any special case in the window logic.

use std::time::{Duration, Instant};

use super::options::Negotiated;
use super::packet::{self, ErrorCode, Packet, Request, RequestKind};
use super::path::{PathError, RequestPath, sanitize};

/// Fixed per-transfer parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Bytes per DATA block.
    pub blksize: u16,
    /// Blocks in flight before an ACK is needed (RFC 7440).
    pub windowsize: u16,
    /// Time after the last progress at which the window is sent again.
    pub timeout: Duration,
    /// Retransmissions of one window (or the OACK) before giving up.
    pub retries: u32,
}

impl Params {
    /// Parameters from a negotiation result.
    pub fn from_negotiated(n: &Negotiated, retries: u32) -> Params {
        Params {
            blksize: n.blksize,
            windowsize: n.windowsize.max(1),
            timeout: n.timeout,
            retries,
        }
    }
}

/// What the driver must put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A ready packet (OACK or ERROR).
    Packet(Vec<u8>),
    /// DATA for blocks `first..=last` (absolute numbers, 1 = the file's
    /// first block); see [`Transfer::block_span`] and [`wire_block`].
    Blocks {
        /// First absolute block.
        first: u64,
        /// Last absolute block, inclusive.
        last: u64,
    },
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The last block was acknowledged.
    Completed {
        /// File size in bytes.
        bytes: u64,
    },
    /// The client sent an ERROR: it ended the transfer, nothing is answered
    /// (RFC 1350 §7; this is how UEFI's tsize probe ends after the OACK).
    PeerError {
        /// Its error code.
        code: u16,
        /// Its message.
        message: String,
    },
    /// No progress after the configured number of retransmissions.
    TimedOut {
        /// Last acknowledged absolute block.
        acked: u64,
    },
    /// The client sent something a reading client never sends; we answered
    /// with ERROR 4 and stopped.
    Illegal {
        /// What it sent.
        what: &'static str,
    },
}

/// Why a request is answered with an ERROR instead of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// WRQ: this server never accepts files.
    #[error("write request")]
    Write,
    /// A mode other than octet (see the module docs on netascii).
    #[error("mode {0:?} is not served")]
    Mode(String),
    /// The name fails confinement.
    #[error(transparent)]
    Path(#[from] PathError),
}

impl Refused {
    /// The ERROR code and message for the client.
    pub fn reply(&self) -> (ErrorCode, &'static str) {
        match self {
            Refused::Write => (ErrorCode::AccessViolation, "Write requests are refused"),
            Refused::Mode(_) => (ErrorCode::IllegalOperation, "Only octet mode is served"),
            Refused::Path(_) => (ErrorCode::AccessViolation, "Access violation"),
        }
    }
}

/// Decides whether a request may start a read transfer, and of which path.
pub fn check_request(req: &Request) -> Result<RequestPath, Refused> {
    if req.kind == RequestKind::Write {
        return Err(Refused::Write);
    }
    // RFC 1350 §5: mode names are case-insensitive.
    if !req.mode.eq_ignore_ascii_case("octet") {
        return Err(Refused::Mode(req.mode.clone()));
    }
    Ok(sanitize(&req.filename)?)
}

/// Folds an absolute block number to its 16-bit wire value (RFC 1350 §5;
/// rollover past 65535 continues at 0).
pub fn wire_block(abs: u64) -> u16 {
    (abs & 0xffff) as u16
}

/// One read transfer, from RRQ to the last ACK.
#[derive(Debug)]
pub struct Transfer {
    params: Params,
    size: u64,
    last_block: u64,
    /// Encoded OACK while waiting for ACK 0.
    oack: Option<Vec<u8>>,
    /// Highest block the client has acknowledged (0 = none, or the OACK).
    acked: u64,
    /// Highest block sent in the current window.
    sent: u64,
    /// When to retransmit; only progress moves it (see `handle_ack`).
    deadline: Instant,
    retries_left: u32,
    outcome: Option<Outcome>,
}

impl Transfer {
    /// Starts a transfer of `size` bytes. Returns the first thing to send:
    /// the OACK when `oack` is non-empty, else DATA 1 (RFC 2347 §3).
    pub fn new(
        params: Params,
        size: u64,
        oack: &[(String, String)],
        now: Instant,
    ) -> (Transfer, Transmit) {
        let blksize = u64::from(params.blksize.max(1));
        // A file that is an exact multiple of the block size ends with an
        // empty block, so that the client sees a short one (RFC 1350 §6).
        let last_block = size / blksize + 1;
        let mut t = Transfer {
            params,
            size,
            last_block,
            oack: None,
            acked: 0,
            sent: 0,
            deadline: now + params.timeout,
            retries_left: params.retries,
            outcome: None,
        };
        let first = if oack.is_empty() {
            t.window(now)
        } else {
            let pkt = packet::encode_oack(oack);
            t.oack = Some(pkt.clone());
            Transmit::Packet(pkt)
        };
        (t, first)
    }

    /// The transfer parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Set once the transfer is over; the driver then stops.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// When [`Transfer::handle_timeout`] must be called, unless over.
    pub fn deadline(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// Highest acknowledged absolute block.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Number of the final block (the short one).
    pub fn last_block(&self) -> u64 {
        self.last_block
    }

    /// Byte offset and length of absolute block `abs` (1-based).
    pub fn block_span(&self, abs: u64) -> (u64, usize) {
        let blksize = u64::from(self.params.blksize);
        let offset = abs.saturating_sub(1).saturating_mul(blksize);
        let len = self.size.saturating_sub(offset).min(blksize) as usize;
        (offset, len)
    }

    /// Sends the window after the last acknowledged block and arms the timer.
    fn window(&mut self, now: Instant) -> Transmit {
        let first = self.acked + 1;
        let last = (self.acked + u64::from(self.params.windowsize)).min(self.last_block);
        self.sent = last;
        self.deadline = now + self.params.timeout;
        Transmit::Blocks { first, last }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    /// Feeds one datagram from the client.
    pub fn handle_datagram(&mut self, buf: &[u8], now: Instant) -> Option<Transmit> {
        if self.outcome.is_some() {
            return None;
        }
        match packet::parse(buf) {
            Ok(Packet::Ack(block)) => self.handle_ack(block, now),
            Ok(Packet::Error { code, message }) => {
                self.finish(Outcome::PeerError { code, message });
                None
            }
            Ok(other) => {
                let what = match other {
                    Packet::Request(_) => "a request",
                    Packet::Data { .. } => "DATA",
                    _ => "an OACK",
                };
                self.finish(Outcome::Illegal { what });
                Some(Transmit::Packet(packet::encode_error(
                    ErrorCode::IllegalOperation,
                    "only ACK or ERROR expected during a read",
                )))
            }
            // Noise on our port is not worth ending a boot for; the timer
            // still bounds the transfer.
            Err(_) => None,
        }
    }

    fn handle_ack(&mut self, block: u16, now: Instant) -> Option<Transmit> {
        if self.oack.is_some() {
            // RFC 2347 §3: after an OACK the client confirms with ACK 0.
            if block != 0 {
                return None;
            }
            self.oack = None;
            self.retries_left = self.params.retries;
            return Some(self.window(now));
        }
        // The only blocks an ACK can name are acked..=sent, fewer than
        // 65536 of them, so the 16-bit number maps back to one of them.
        let ahead = u64::from(block.wrapping_sub(wire_block(self.acked)));
        let abs = self.acked + ahead;
        if abs > self.sent {
            // An ACK for a block never sent in this cycle: a stale ACK
            // from before a rollover, or garbage.
            return None;
        }
        if abs == self.acked {
            // A duplicate ACK: ignored, and it does not move the timer.
            // Answering it would double every later packet (the Sorcerer's
            // Apprentice bug, RFC 1123 §4.2.3.1); if the client really lost
            // the window, the timer resends it.
            return None;
        }
        self.acked = abs;
        self.retries_left = self.params.retries;
        if abs == self.last_block {
            self.finish(Outcome::Completed { bytes: self.size });
            return None;
        }
        // For an ACK at the end of the window this is simply the next one.
        // For an ACK in the middle, the client lost the block after it:
        // RFC 7440 §4 has the sender continue from the block after the
        // acknowledged one, which is the same computation.
        Some(self.window(now))
    }

    /// Called at or after [`Transfer::deadline`]: resends the OACK or the
    /// current window, or gives up after `retries` resends.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Transmit> {
        if self.outcome.is_some() || now < self.deadline {
            return None;
        }
        if self.retries_left == 0 {
            self.finish(Outcome::TimedOut { acked: self.acked });
            return None;
        }
        self.retries_left -= 1;
        if let Some(oack) = &self.oack {
            self.deadline = now + self.params.timeout;
            return Some(Transmit::Packet(oack.clone()));
        }
        Some(self.window(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    fn params(blksize: u16, windowsize: u16) -> Params {
        Params {
            blksize,
            windowsize,
            timeout: T,
            retries: 3,
        }
    }

    fn ack(n: u16) -> Vec<u8> {
        packet::encode_ack(n)
    }

    fn blocks(first: u64, last: u64) -> Option<Transmit> {
        Some(Transmit::Blocks { first, last })
    }

    fn request(kind: RequestKind, name: &str, mode: &str) -> Request {
        Request {
            kind,
            filename: name.to_owned(),
            mode: mode.to_owned(),
            options: Vec::new(),
        }
    }

    #[test]
    fn requests_are_checked() {
        let ok = check_request(&request(RequestKind::Read, "a/b", "OCTET")).unwrap();
        assert_eq!(ok.to_string(), "a/b");
        let wrq = check_request(&request(RequestKind::Write, "a", "octet")).unwrap_err();
        assert_eq!(wrq, Refused::Write);
        assert_eq!(wrq.reply().0, ErrorCode::AccessViolation);
        let ascii = check_request(&request(RequestKind::Read, "a", "NetAscii")).unwrap_err();
        assert_eq!(ascii.reply().0, ErrorCode::IllegalOperation);
        for name in ["../x", "/etc/passwd", "", "a\0b", "../root-other/x"] {
            let err = check_request(&request(RequestKind::Read, name, "octet")).unwrap_err();
            assert!(matches!(err, Refused::Path(_)), "{name:?}");
            assert_eq!(err.reply().0, ErrorCode::AccessViolation);
        }
    }

    /// Random datagrams into a running transfer never panic, and whatever
    /// happens the transfer stays within its block range.
    #[test]
    fn random_datagrams_never_panic() {
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut now = Instant::now();
        let oack = vec![("tsize".to_owned(), "1".to_owned())];
        let (mut t, _) = Transfer::new(params(8, 4), 8 * 100_000, &oack, now);
        for _ in 0..100_000 {
            let len = (next() % 12) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 2 && next() % 2 == 0 {
                buf[0] = 0;
                buf[1] = 4;
            }
            if next() % 1000 == 0 {
                now += T;
                t.handle_timeout(now);
            }
            if let Some(Transmit::Blocks { first, last }) = t.handle_datagram(&buf, now) {
                assert!(first <= last && last <= t.last_block());
            }
        }
    }

    #[test]
    fn lockstep_without_options() {
        let now = Instant::now();
        let (mut t, first) = Transfer::new(params(512, 1), 1024, &[], now);
        assert_eq!(first, Transmit::Blocks { first: 1, last: 1 });
        assert_eq!(t.last_block(), 3, "exact multiple ends with an empty block");
        assert_eq!(t.block_span(1), (0, 512));
        assert_eq!(t.block_span(3), (1024, 0));
        assert_eq!(t.handle_datagram(&ack(1), now), blocks(2, 2));
        assert_eq!(t.handle_datagram(&ack(2), now), blocks(3, 3));
        assert_eq!(t.handle_datagram(&ack(3), now), None);
        assert_eq!(t.outcome(), Some(&Outcome::Completed { bytes: 1024 }));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn oack_then_ack0_starts_data() {
        let now = Instant::now();
        let oack = vec![("tsize".to_owned(), "10".to_owned())];
        let (mut t, first) = Transfer::new(params(512, 1), 10, &oack, now);
        assert_eq!(first, Transmit::Packet(packet::encode_oack(&oack)));
        // ACK 1 before ACK 0 means nothing yet.
        assert_eq!(t.handle_datagram(&ack(1), now), None);
        assert_eq!(t.handle_datagram(&ack(0), now), blocks(1, 1));
        assert_eq!(t.handle_datagram(&ack(1), now), None);
        assert!(matches!(
            t.outcome(),
            Some(Outcome::Completed { bytes: 10 })
        ));
    }

    #[test]
    fn oack_is_resent_on_timeout() {
        let now = Instant::now();
        let oack = vec![("tsize".to_owned(), "10".to_owned())];
        let (mut t, first) = Transfer::new(params(512, 1), 10, &oack, now);
        assert_eq!(t.handle_timeout(now + T), Some(first));
    }

    #[test]
    fn error_after_oack_ends_quietly() {
        // The UEFI tsize probe: RRQ with tsize, OACK, then ERROR 8.
        let now = Instant::now();
        let oack = vec![("tsize".to_owned(), "99".to_owned())];
        let (mut t, _) = Transfer::new(params(512, 1), 99, &oack, now);
        let err = packet::encode_error(ErrorCode::OptionNegotiation, "User aborted the transfer");
        assert_eq!(t.handle_datagram(&err, now), None);
        assert_eq!(
            t.outcome(),
            Some(&Outcome::PeerError {
                code: 8,
                message: "User aborted the transfer".into()
            })
        );
        assert_eq!(t.deadline(), None);
        assert_eq!(t.handle_timeout(now + 10 * T), None);
        assert_eq!(t.handle_datagram(&ack(0), now), None);
    }

    #[test]
    fn duplicate_ack_does_not_reset_timer_or_resend() {
        let start = Instant::now();
        let (mut t, _) = Transfer::new(params(512, 1), 5000, &[], start);
        let later = start + T / 2;
        assert_eq!(t.handle_datagram(&ack(1), later), blocks(2, 2));
        let deadline = t.deadline().unwrap();
        assert_eq!(deadline, later + T);
        // Duplicates of ACK 1 shortly before the deadline.
        let dup_time = later + T * 9 / 10;
        assert_eq!(t.handle_datagram(&ack(1), dup_time), None);
        assert_eq!(t.handle_datagram(&ack(1), dup_time), None);
        assert_eq!(t.deadline(), Some(deadline), "timer moved by a duplicate");
        assert_eq!(t.handle_timeout(dup_time), None, "fired early");
        assert_eq!(t.handle_timeout(deadline), blocks(2, 2));
    }

    #[test]
    fn gives_up_after_retries() {
        let mut now = Instant::now();
        let (mut t, _) = Transfer::new(params(512, 4), 5000, &[], now);
        for _ in 0..3 {
            now += T;
            assert_eq!(t.handle_timeout(now), blocks(1, 4));
        }
        now += T;
        assert_eq!(t.handle_timeout(now), None);
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut { acked: 0 }));
    }

    #[test]
    fn progress_restores_retries() {
        let mut now = Instant::now();
        let (mut t, _) = Transfer::new(params(512, 1), 5000, &[], now);
        for _ in 0..3 {
            now += T;
            t.handle_timeout(now);
        }
        assert_eq!(t.handle_datagram(&ack(1), now), blocks(2, 2));
        for _ in 0..3 {
            now += T;
            assert_eq!(t.handle_timeout(now), blocks(2, 2));
        }
        assert_eq!(t.outcome(), None);
    }

    #[test]
    fn windows_advance_and_clip_at_the_end() {
        let now = Instant::now();
        // 10 blocks of 8 bytes + 4 bytes = 11 blocks.
        let (mut t, first) = Transfer::new(params(8, 4), 84, &[], now);
        assert_eq!(first, Transmit::Blocks { first: 1, last: 4 });
        assert_eq!(t.handle_datagram(&ack(4), now), blocks(5, 8));
        assert_eq!(t.handle_datagram(&ack(8), now), blocks(9, 11));
        assert_eq!(t.block_span(11), (80, 4));
        assert_eq!(t.handle_datagram(&ack(11), now), None);
        assert!(matches!(
            t.outcome(),
            Some(Outcome::Completed { bytes: 84 })
        ));
    }

    #[test]
    fn mid_window_ack_resends_from_the_next_block() {
        let now = Instant::now();
        let (mut t, _) = Transfer::new(params(8, 8), 1000, &[], now);
        // Client got 1..=3, lost 4: it acks 3 (RFC 7440 §4).
        let later = now + T / 3;
        assert_eq!(t.handle_datagram(&ack(3), later), blocks(4, 11));
        assert_eq!(t.deadline(), Some(later + T), "progress rearms the timer");
        // A late ACK for something already acknowledged changes nothing.
        assert_eq!(t.handle_datagram(&ack(2), later), None);
        assert_eq!(t.handle_datagram(&ack(3), later), None);
        // An ACK beyond what was sent is ignored.
        assert_eq!(t.handle_datagram(&ack(12), later), None);
        assert_eq!(t.acked(), 3);
        // Timeout resends the whole current window.
        assert_eq!(t.handle_timeout(later + T), blocks(4, 11));
    }

    #[test]
    fn block_numbers_roll_over_past_65535() {
        let now = Instant::now();
        let size = 70_000u64 * 8 + 3;
        let (mut t, _) = Transfer::new(params(8, 1), size, &[], now);
        for abs in 1..=70_000u64 {
            let next = t.handle_datagram(&ack(wire_block(abs)), now);
            assert_eq!(next, blocks(abs + 1, abs + 1), "at block {abs}");
        }
        assert_eq!(wire_block(65_535), 65_535);
        assert_eq!(wire_block(65_536), 0);
        assert_eq!(wire_block(65_537), 1);
        assert_eq!(t.block_span(70_001), (560_000, 3));
        t.handle_datagram(&ack(wire_block(70_001)), now);
        assert!(matches!(t.outcome(), Some(Outcome::Completed { .. })));
    }

    #[test]
    fn rollover_inside_a_window() {
        let now = Instant::now();
        let (mut t, _) = Transfer::new(params(8, 16), 8 * 70_000, &[], now);
        let mut acked = 0u64;
        while acked < 65_520 {
            acked += 16;
            t.handle_datagram(&ack(wire_block(acked)), now);
        }
        assert_eq!(t.acked(), 65_520);
        // Window 65521..=65536 is wire 65521..=65535, 0. A mid-window ACK
        // before the fold, then one after it.
        assert_eq!(t.handle_datagram(&ack(65_530), now), blocks(65_531, 65_546));
        assert_eq!(t.handle_datagram(&ack(2), now), blocks(65_539, 65_554));
        assert_eq!(t.acked(), 65_538);
        // Stale ACK 65530 (before the rollover) is a no-op.
        assert_eq!(t.handle_datagram(&ack(65_530), now), None);
        assert_eq!(t.acked(), 65_538);
    }

    #[test]
    fn empty_file_is_one_empty_block() {
        let now = Instant::now();
        let (mut t, first) = Transfer::new(params(512, 4), 0, &[], now);
        assert_eq!(first, Transmit::Blocks { first: 1, last: 1 });
        assert_eq!(t.block_span(1), (0, 0));
        t.handle_datagram(&ack(1), now);
        assert_eq!(t.outcome(), Some(&Outcome::Completed { bytes: 0 }));
    }

    #[test]
    fn unexpected_packets_are_illegal_and_junk_is_ignored() {
        let now = Instant::now();
        let (mut t, _) = Transfer::new(params(512, 1), 10, &[], now);
        assert_eq!(t.handle_datagram(b"\x00", now), None);
        assert_eq!(t.handle_datagram(b"\x00\x09zz", now), None);
        assert_eq!(t.outcome(), None);
        let out = t.handle_datagram(b"\x00\x03\x00\x01abc", now);
        let Some(Transmit::Packet(pkt)) = out else {
            panic!("expected an error packet")
        };
        assert_eq!(
            packet::parse(&pkt).unwrap(),
            Packet::Error {
                code: 4,
                message: "only ACK or ERROR expected during a read".into()
            }
        );
        assert_eq!(t.outcome(), Some(&Outcome::Illegal { what: "DATA" }));
    }
}
