//! TFTP wire format: parsing and encoding of the six packet kinds (RFC 1350 §5, RFC 2347 §2).

use std::fmt;

/// Largest block size any option may ask for (RFC 2348: 8..=65464).
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// Block size without the blksize option (RFC 1350 §2).
pub const DEFAULT_BLKSIZE: u16 = 512;

/// TFTP error codes (RFC 1350 appendix, plus code 8 from RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see error message.
    NotDefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTid = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// Option negotiation refused (RFC 2347 §5).
    OptionNegotiation = 8,
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// Whether a request reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// RRQ, opcode 1.
    Read,
    /// WRQ, opcode 2.
    Write,
}

/// A parsed RRQ or WRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// RRQ or WRQ.
    pub kind: RequestKind,
    /// The file name exactly as sent (not yet checked against the root).
    pub filename: String,
    /// The transfer mode as sent; compare case-insensitively (RFC 1350 §5).
    pub mode: String,
    /// RFC 2347 options in the order sent, names as the client spelled them.
    pub options: Vec<(String, String)>,
}

/// Any TFTP packet. DATA borrows its payload from the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Opcodes 1 and 2.
    Request(Request),
    /// Opcode 3.
    Data {
        /// Wire block number.
        block: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Opcode 4.
    Ack(u16),
    /// Opcode 5.
    Error {
        /// Error code (any value; clients send codes we do not define).
        code: u16,
        /// Message, lossily decoded.
        message: String,
    },
    /// Opcode 6 (RFC 2347).
    Oack(Vec<(String, String)>),
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the opcode and fixed fields need.
    #[error("packet of {len} bytes is too short")]
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// An opcode outside 1..=6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field without its terminating NUL.
    #[error("{field} is not NUL-terminated")]
    Unterminated {
        /// Which field.
        field: &'static str,
    },
    /// A string field that is not UTF-8 (names and modes are NVT ASCII, RFC 1350 §5).
    #[error("{field} is not valid text")]
    NotText {
        /// Which field.
        field: &'static str,
    },
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Read => "RRQ",
            RequestKind::Write => "WRQ",
        })
    }
}

/// Splits off one NUL-terminated string.
fn take_str<'a>(buf: &'a [u8], field: &'static str) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let nul = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::Unterminated { field })?;
    Ok((&buf[..nul], &buf[nul + 1..]))
}

fn text(bytes: &[u8], field: &'static str) -> Result<String, ParseError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| ParseError::NotText { field })
}

/// Parses `name\0value\0` pairs (RFC 2347 §2). Some PXE ROMs pad requests
/// with extra NULs and a few send a trailing name without value; both are
/// tolerated rather than refusing the whole request.
fn parse_options(mut rest: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let mut options = Vec::new();
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let Ok((name, after)) = take_str(rest, "option name") else {
            break;
        };
        let Ok((value, after)) = take_str(after, "option value") else {
            break;
        };
        rest = after;
        if name.is_empty() {
            continue;
        }
        options.push((text(name, "option name")?, text(value, "option value")?));
    }
    Ok(options)
}

/// Parses one datagram. Never panics, whatever the bytes.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, ParseError> {
    if buf.len() < 2 {
        return Err(ParseError::TooShort { len: buf.len() });
    }
    let opcode = u16::from_be_bytes([buf[0], buf[1]]);
    let body = &buf[2..];
    match opcode {
        1 | 2 => {
            let (name, rest) = take_str(body, "file name")?;
            let (mode, rest) = take_str(rest, "mode")?;
            Ok(Packet::Request(Request {
                kind: if opcode == 1 {
                    RequestKind::Read
                } else {
                    RequestKind::Write
                },
                filename: text(name, "file name")?,
                mode: text(mode, "mode")?,
                options: parse_options(rest)?,
            }))
        }
        3 => {
            if body.len() < 2 {
                return Err(ParseError::TooShort { len: buf.len() });
            }
            Ok(Packet::Data {
                block: u16::from_be_bytes([body[0], body[1]]),
                data: &body[2..],
            })
        }
        4 => {
            // Trailing bytes after the block number are ignored: some
            // firmwares pad ACKs to a minimum frame size.
            if body.len() < 2 {
                return Err(ParseError::TooShort { len: buf.len() });
            }
            Ok(Packet::Ack(u16::from_be_bytes([body[0], body[1]])))
        }
        5 => {
            if body.len() < 2 {
                return Err(ParseError::TooShort { len: buf.len() });
            }
            let code = u16::from_be_bytes([body[0], body[1]]);
            let msg = &body[2..];
            // A missing NUL is tolerated: the error ends the transfer anyway.
            let msg = msg.split(|&b| b == 0).next().unwrap_or_default();
            Ok(Packet::Error {
                code,
                message: String::from_utf8_lossy(msg).into_owned(),
            })
        }
        6 => Ok(Packet::Oack(parse_options(body)?)),
        other => Err(ParseError::UnknownOpcode(other)),
    }
}

/// Appends a DATA header (opcode 3, block) to `out`; the payload follows.
pub fn put_data_header(out: &mut Vec<u8>, block: u16) {
    out.extend_from_slice(&3u16.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// Encodes an ERROR packet.
pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&code.code().to_be_bytes());
    // A NUL inside the message would truncate it on the client side.
    out.extend(message.bytes().filter(|&b| b != 0));
    out.push(0);
    out
}

/// Encodes an OACK (RFC 2347 §2).
pub fn encode_oack(options: &[(String, String)]) -> Vec<u8> {
    let mut out = 6u16.to_be_bytes().to_vec();
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// Encodes an ACK; used by tests and by nothing in the read-only server.
pub fn encode_ack(block: u16) -> Vec<u8> {
    let mut out = 4u16.to_be_bytes().to_vec();
    out.extend_from_slice(&block.to_be_bytes());
    out
}

/// Encodes an RRQ or WRQ; used by tests to play a client.
pub fn encode_request(req: &Request) -> Vec<u8> {
    let opcode: u16 = match req.kind {
        RequestKind::Read => 1,
        RequestKind::Write => 2,
    };
    let mut out = opcode.to_be_bytes().to_vec();
    for field in [&req.filename, &req.mode] {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    for (name, value) in &req.options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rrq_with_options() {
        let pkt = b"\x00\x01pxelinux.0\x00OcTeT\x00blksize\x001468\x00tsize\x000\x00";
        let Packet::Request(req) = parse(pkt).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(req.kind, RequestKind::Read);
        assert_eq!(req.filename, "pxelinux.0");
        assert_eq!(req.mode, "OcTeT");
        assert_eq!(
            req.options,
            vec![
                ("blksize".to_owned(), "1468".to_owned()),
                ("tsize".to_owned(), "0".to_owned())
            ]
        );
        assert_eq!(encode_request(&req), pkt.to_vec());
    }

    #[test]
    fn tolerates_padding_and_dangling_option() {
        let Packet::Request(req) = parse(b"\x00\x01f\x00octet\x00\x00\x00\x00").unwrap() else {
            panic!()
        };
        assert!(req.options.is_empty());
        let Packet::Request(req) = parse(b"\x00\x01f\x00octet\x00tsize\x000\x00blk").unwrap()
        else {
            panic!()
        };
        assert_eq!(req.options.len(), 1);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse(b""), Err(ParseError::TooShort { len: 0 }));
        assert_eq!(parse(b"\x00"), Err(ParseError::TooShort { len: 1 }));
        assert_eq!(parse(b"\x00\x09"), Err(ParseError::UnknownOpcode(9)));
        assert_eq!(
            parse(b"\x00\x01file"),
            Err(ParseError::Unterminated { field: "file name" })
        );
        assert_eq!(
            parse(b"\x00\x01file\x00octet"),
            Err(ParseError::Unterminated { field: "mode" })
        );
        assert_eq!(
            parse(b"\x00\x01\xff\xfe\x00octet\x00"),
            Err(ParseError::NotText { field: "file name" })
        );
        assert_eq!(parse(b"\x00\x04\x00"), Err(ParseError::TooShort { len: 3 }));
    }

    #[test]
    fn parses_ack_error_data() {
        assert_eq!(parse(b"\x00\x04\xff\xff").unwrap(), Packet::Ack(65535));
        assert_eq!(
            parse(&encode_error(ErrorCode::OptionNegotiation, "abort")).unwrap(),
            Packet::Error {
                code: 8,
                message: "abort".into()
            }
        );
        assert_eq!(
            parse(b"\x00\x03\x00\x02ab").unwrap(),
            Packet::Data {
                block: 2,
                data: b"ab"
            }
        );
    }

    /// Fuzz-ish: random datagrams, and random mutations of valid ones, never panic.
    #[test]
    fn random_bytes_never_panic() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*: deterministic, so a failure reproduces.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let seed = b"\x00\x01pxelinux.0\x00octet\x00blksize\x001468\x00tsize\x000\x00".to_vec();
        for _ in 0..200_000 {
            let len = (next() % 80) as usize;
            let mut buf: Vec<u8> = if next() % 2 == 0 {
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut b = seed.clone();
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                b.truncate((next() as usize) % (b.len() + 1));
                b
            };
            if buf.len() >= 2 && next() % 3 == 0 {
                buf[0] = 0;
                buf[1] = (next() % 7) as u8;
            }
            let _ = parse(&buf);
        }
    }
}
