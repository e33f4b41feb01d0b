//! RFC 2347 option negotiation: blksize (2348), tsize and timeout (2349), windowsize (7440).

use std::time::Duration;

use super::packet::{DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE};

/// Server-side bounds that negotiation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest blksize granted; at most 65464.
    pub max_blksize: u16,
    /// Largest windowsize granted; at least 1.
    pub max_windowsize: u16,
    /// Retransmission timeout when the client sends no `timeout` option.
    pub default_timeout: Duration,
}

/// The outcome of negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Bytes per DATA block.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK.
    pub windowsize: u16,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// What to put in the OACK, in the client's order and spelling. Empty
    /// means no OACK: the transfer starts with DATA 1 (RFC 2347 §3).
    pub oack: Vec<(String, String)>,
}

/// Parses a decimal option value. Leading `+`, spaces and hex are refused
/// so that a value means one thing only.
fn number(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Decides the transfer parameters for a read request.
///
/// Only options the client asked for go into the OACK, each at most once
/// (a repeated option keeps its first occurrence). A value we cannot honour
/// drops the option rather than failing the request: RFC 2347 §4 lets the
/// server omit any option, and a firmware then simply runs with defaults.
/// `file_size` is `None` when the source cannot tell its size up front; then
/// `tsize` is left out of the OACK.
pub fn negotiate(
    requested: &[(String, String)],
    file_size: Option<u64>,
    limits: &Limits,
) -> Negotiated {
    let mut out = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: limits.default_timeout,
        oack: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in requested {
        let key = name.to_ascii_lowercase();
        if seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let granted = match key.as_str() {
            // RFC 2348: valid values are 8..=65464; larger requests may be
            // answered with a smaller value. Fitting the path MTU is the
            // client's job; ours is the configured cap.
            "blksize" => number(value).and_then(|v| {
                if v < u64::from(MIN_BLKSIZE) {
                    return None;
                }
                let cap = limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
                let v = v.min(u64::from(cap)) as u16;
                out.blksize = v;
                Some(v.to_string())
            }),
            // RFC 2349 §"Transfer Size": a read request carries 0 and the
            // server answers with the size. A non-zero value in a RRQ is
            // odd but harmless; it is answered the same way. An empty file
            // gets no tsize: curl (7.88) rejects "tsize 0" in an OACK as
            // invalid and aborts, and a client loses nothing by it.
            "tsize" => number(value)
                .and(file_size)
                .filter(|&size| size > 0)
                .map(|size| size.to_string()),
            // RFC 2349 §"Timeout Interval": 1..=255 seconds, and the server
            // must either use exactly that value or leave the option out.
            "timeout" => number(value).filter(|v| (1..=255).contains(v)).map(|v| {
                out.timeout = Duration::from_secs(v);
                v.to_string()
            }),
            // RFC 7440 §3: 1..=65535; the server may answer with less.
            "windowsize" => number(value).filter(|v| (1..=65535).contains(v)).map(|v| {
                let v = v.min(u64::from(limits.max_windowsize.max(1))) as u16;
                out.windowsize = v;
                v.to_string()
            }),
            // RFC 2347 §3: unknown options are ignored.
            _ => None,
        };
        if let Some(value) = granted {
            out.oack.push((name.clone(), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            default_timeout: Duration::from_millis(1000),
        }
    }

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_options_means_no_oack_and_defaults() {
        let n = negotiate(&[], Some(100), &limits());
        assert!(n.oack.is_empty());
        assert_eq!((n.blksize, n.windowsize), (512, 1));
        assert_eq!(n.timeout, Duration::from_millis(1000));
    }

    #[test]
    fn oack_holds_only_requested_options() {
        let n = negotiate(&opts(&[("tsize", "0")]), Some(1234), &limits());
        assert_eq!(n.oack, opts(&[("tsize", "1234")]));
        assert_eq!(n.blksize, 512);
        let n = negotiate(&opts(&[("blksize", "1468")]), Some(1234), &limits());
        assert_eq!(n.oack, opts(&[("blksize", "1468")]));
    }

    #[test]
    fn names_are_case_insensitive_and_echoed_as_sent() {
        let n = negotiate(
            &opts(&[("BlkSize", "1024"), ("TSIZE", "0"), ("WindowSize", "8")]),
            Some(7),
            &limits(),
        );
        assert_eq!(
            n.oack,
            opts(&[("BlkSize", "1024"), ("TSIZE", "7"), ("WindowSize", "8")])
        );
        assert_eq!((n.blksize, n.windowsize), (1024, 8));
    }

    #[test]
    fn blksize_bounds() {
        for (asked, granted) in [
            ("8", Some("8")),
            ("7", None),
            ("0", None),
            ("65464", Some("65464")),
            ("65465", Some("65464")),
            ("99999999999", Some("65464")),
            ("abc", None),
            ("-5", None),
            ("", None),
        ] {
            let n = negotiate(&opts(&[("blksize", asked)]), None, &limits());
            assert_eq!(
                n.oack.first().map(|(_, v)| v.as_str()),
                granted,
                "asked {asked}"
            );
            let expect: u16 = granted.map_or(512, |g| g.parse().unwrap());
            assert_eq!(n.blksize, expect, "asked {asked}");
        }
        let capped = Limits {
            max_blksize: 1468,
            ..limits()
        };
        let n = negotiate(&opts(&[("blksize", "8192")]), None, &capped);
        assert_eq!(n.blksize, 1468);
        assert_eq!(n.oack, opts(&[("blksize", "1468")]));
    }

    #[test]
    fn tsize_needs_known_size() {
        let n = negotiate(&opts(&[("tsize", "0")]), None, &limits());
        assert!(n.oack.is_empty());
        let n = negotiate(&opts(&[("tsize", "0")]), Some(0), &limits());
        assert!(n.oack.is_empty(), "curl refuses tsize 0");
        let n = negotiate(&opts(&[("tsize", "0")]), Some(1), &limits());
        assert_eq!(n.oack, opts(&[("tsize", "1")]));
    }

    #[test]
    fn timeout_is_exact_or_absent() {
        let n = negotiate(&opts(&[("timeout", "3")]), None, &limits());
        assert_eq!(n.timeout, Duration::from_secs(3));
        assert_eq!(n.oack, opts(&[("timeout", "3")]));
        for bad in ["0", "256", "x"] {
            let n = negotiate(&opts(&[("timeout", bad)]), None, &limits());
            assert!(n.oack.is_empty(), "timeout {bad}");
            assert_eq!(n.timeout, Duration::from_millis(1000));
        }
    }

    #[test]
    fn windowsize_is_clamped() {
        let n = negotiate(&opts(&[("windowsize", "1000")]), None, &limits());
        assert_eq!(n.windowsize, 64);
        assert_eq!(n.oack, opts(&[("windowsize", "64")]));
        for bad in ["0", "65536"] {
            let n = negotiate(&opts(&[("windowsize", bad)]), None, &limits());
            assert!(n.oack.is_empty());
            assert_eq!(n.windowsize, 1);
        }
    }

    #[test]
    fn unknown_and_repeated_options_are_dropped() {
        let n = negotiate(
            &opts(&[("multicast", ""), ("blksize", "1024"), ("BLKSIZE", "2048")]),
            None,
            &limits(),
        );
        assert_eq!(n.oack, opts(&[("blksize", "1024")]));
        assert_eq!(n.blksize, 1024);
    }
}
