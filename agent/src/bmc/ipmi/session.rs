//! One blocking IPMI 2.0 (RMCP+) session with a BMC, on ipmi-rs: opening it
//! for a cipher suite, commands with retransmission, closing it.

use std::io;
use std::time::{Duration, Instant};

use ipmi_rs::connection::{
    CompletionErrorCode, IpmiCommand, IpmiConnection, LogicalUnit, Message, Request,
    RequestTargetAddress,
};
use ipmi_rs::rmcp::{
    ActivationError, RakpMessage2ErrorStatusCode, RakpMessage2ParseError, Rmcp, RmcpIpmiError,
    RmcpIpmiReceiveError, UnwrapSessionError, V2_0ActivationError, V2_0ReadError,
};
use tracing::{debug, trace};

use super::commands::{CloseSession, SetSessionPrivilege};
use crate::bmc::error::BmcError;
use crate::bmc::types::{BmcEndpoint, BmcTarget, CipherSuite};

/// Retransmission settings of an IPMI session. IPMI 2.0 section 6.12.9
/// leaves retries to the remote console; ipmitool's default is a few
/// seconds per try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpmiOptions {
    /// How long to wait for one reply before sending the request again.
    pub attempt_timeout: Duration,
    /// How many times a request (or the session setup) is sent in all.
    pub attempts: u32,
}

impl Default for IpmiOptions {
    fn default() -> Self {
        IpmiOptions {
            attempt_timeout: Duration::from_secs(1),
            attempts: 3,
        }
    }
}

impl IpmiOptions {
    /// The longest one request may take, retransmissions included.
    pub fn request_budget(&self) -> Duration {
        self.attempt_timeout * self.attempts
    }
}

/// An open RMCP+ session.
pub struct Session {
    rmcp: Rmcp,
    address: String,
    opts: IpmiOptions,
    /// The managed system session id, for Close Session; `None` if it could
    /// not be learnt (see [`managed_session_id`]).
    session_id: Option<u32>,
}

/// Opens a session. The one place that decides which cipher suites exist.
pub fn open(target: &BmcTarget, opts: IpmiOptions) -> Result<Session, BmcError> {
    let address = target.address();
    let BmcEndpoint::Ipmi {
        host,
        port,
        cipher_suite,
    } = &target.endpoint
    else {
        return Err(BmcError::protocol(&address, "not an IPMI endpoint"));
    };
    match cipher_suite {
        // ipmi-rs 0.6 always offers RAKP-HMAC-SHA1 / HMAC-SHA1-96 /
        // AES-CBC-128 in its Open Session Request: that is suite 3.
        CipherSuite::Suite3 => {}
        // Suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128) goes
        // here once ipmi-rs can negotiate it: its crypto state lacks SHA-256
        // today, and neither simulator speaks it.
        CipherSuite::Suite17 => {
            return Err(BmcError::UnsupportedCipherSuite {
                address,
                suite: 17,
                detail: "RAKP-HMAC-SHA256 is missing from ipmi-rs 0.6".into(),
            });
        }
    }
    // IPMI 2.0 section 13.19: RAKP user names hold at most 16 bytes, and
    // section 13.31 keys at most 20 bytes. ipmi-rs would silently fall back
    // to an empty (anonymous) name on a longer one.
    let auth_failed = |detail: &str| BmcError::AuthFailed {
        address: address.clone(),
        username: target.username.clone(),
        detail: detail.into(),
    };
    if target.username.len() > 16 {
        return Err(auth_failed("user name longer than 16 bytes"));
    }
    if target.password.expose().len() > 20 {
        return Err(auth_failed("password longer than 20 bytes"));
    }

    let started = Instant::now();
    let mut rmcp = Rmcp::new((host.as_str(), *port), opts.attempt_timeout).map_err(|e| {
        BmcError::Unreachable {
            address: address.clone(),
            detail: "cannot resolve the address".into(),
            source: Some(Box::new(e)),
        }
    })?;
    let mut last = None;
    for attempt in 1..=opts.attempts {
        match rmcp.activate(
            true,
            Some(&target.username),
            Some(target.password.expose().as_bytes()),
        ) {
            Ok(()) => {
                let session_id = managed_session_id(&rmcp);
                let mut session = Session {
                    rmcp,
                    address,
                    opts,
                    session_id,
                };
                if let Err(e) = session.exec("Set Session Privilege Level", SetSessionPrivilege) {
                    // 0xD4 / 0x81 here: the user is not allowed Administrator.
                    let err = match e {
                        BmcError::Protocol { detail, .. } => BmcError::AuthFailed {
                            address: session.address.clone(),
                            username: target.username.clone(),
                            detail: format!("no Administrator privilege: {detail}"),
                        },
                        other => other,
                    };
                    session.close();
                    return Err(err);
                }
                debug!(bmc = %session.address, attempt, session_id = ?session_id,
                       elapsed_ms = started.elapsed().as_millis() as u64, "ipmi session opened");
                return Ok(session);
            }
            Err(e) => {
                let err = map_activation(&address, &target.username, e, started.elapsed());
                trace!(bmc = %address, attempt, error = %err, "ipmi session setup failed");
                if !matches!(err, BmcError::Timeout { .. }) {
                    return Err(err);
                }
                last = Some(err);
            }
        }
    }
    Err(last.unwrap_or_else(|| BmcError::Timeout {
        address,
        operation: "session setup",
        waited: started.elapsed(),
    }))
}

/// ipmi-rs 0.6 keeps the managed system session id private; its `Debug`
/// output (which redacts the password and keys) is the only place it shows.
// TODO-correctness(#3): use an accessor once ipmi-rs has one.
fn managed_session_id(rmcp: &Rmcp) -> Option<u32> {
    let shown = format!("{rmcp:?}");
    let rest = &shown[shown.find("session_id: ")? + "session_id: ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn io_error(address: &str, operation: &'static str, e: io::Error, waited: Duration) -> BmcError {
    if is_timeout(&e) {
        BmcError::Timeout {
            address: address.to_string(),
            operation,
            waited,
        }
    } else {
        // On a connected UDP socket, ICMP port unreachable comes back as
        // ECONNREFUSED: nothing listens at the address.
        BmcError::Unreachable {
            address: address.to_string(),
            detail: format!("{operation}: {}", e.kind()),
            source: Some(Box::new(e)),
        }
    }
}

fn receive_error(
    address: &str,
    operation: &'static str,
    e: RmcpIpmiReceiveError,
    waited: Duration,
) -> BmcError {
    match e {
        RmcpIpmiReceiveError::Io(io) => io_error(address, operation, io, waited),
        other => BmcError::protocol(address, format!("{operation}: {other:?}")),
    }
}

/// Maps ipmi-rs's activation errors onto the driver's error kinds.
fn map_activation(address: &str, username: &str, e: ActivationError, waited: Duration) -> BmcError {
    use V2_0ActivationError as V2;
    let auth = |detail: String| BmcError::AuthFailed {
        address: address.to_string(),
        username: username.to_string(),
        detail,
    };
    match e {
        ActivationError::PingSend(io) | ActivationError::PongReceive(io) => {
            io_error(address, "RMCP ping", io, waited)
        }
        ActivationError::GetChannelAuthenticationCapabilities(ipmi_rs::IpmiError::Connection(
            RmcpIpmiError::Receive(r),
        )) => receive_error(
            address,
            "Get Channel Authentication Capabilities",
            r,
            waited,
        ),
        ActivationError::V2_0(v2) => match v2 {
            V2::OpenSessionResponseReceive(r) => {
                receive_error(address, "RMCP+ Open Session", r, waited)
            }
            V2::RakpMessage2Receive(r) => receive_error(address, "RAKP message 2", r, waited),
            V2::RakpMessage4Receive(r) => receive_error(address, "RAKP message 4", r, waited),
            V2::OpenSessionResponseParse(p) => {
                // Status codes 0x04-0x07, 0x10 and 0x11 (IPMI 2.0 table
                // 13-15) are about algorithms: the BMC does not do suite 3.
                let shown = format!("{p:?}");
                if shown.contains("Algorithm") || shown.contains("NoMatching") {
                    BmcError::UnsupportedCipherSuite {
                        address: address.to_string(),
                        suite: 3,
                        detail: format!("open session refused: {shown}"),
                    }
                } else if shown.contains("InvalidRole") {
                    auth(format!("open session refused: {shown}"))
                } else {
                    BmcError::protocol(address, format!("open session refused: {shown}"))
                }
            }
            V2::RakpMessage2Parse(RakpMessage2ParseError::ErrorStatusCode(
                code @ (RakpMessage2ErrorStatusCode::UnauthorizedName
                | RakpMessage2ErrorStatusCode::InvalidRole
                | RakpMessage2ErrorStatusCode::UnauthorizedRoleOrPrivilegeLevelRequested
                | RakpMessage2ErrorStatusCode::InvalidNameLength),
            )) => auth(format!("RAKP message 2: {code:?}")),
            // We check the BMC's RAKP 2 HMAC with our password (IPMI 2.0
            // section 13.31): a mismatch means the passwords differ.
            V2::ServerAuthenticationFailed => {
                auth("the BMC's RAKP message 2 does not match this password".into())
            }
            V2::RakpMessage4InvalidIntegrityCheckValue => {
                auth("RAKP message 4 integrity check failed".into())
            }
            V2::RakpMessage4Parse(p) => auth(format!("BMC refused RAKP message 3: {p:?}")),
            other => BmcError::protocol(address, format!("session setup: {other:?}")),
        },
        other => BmcError::protocol(address, format!("session setup: {other:?}")),
    }
}

impl Session {
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends a command and waits for its response, sending it again when a
    /// reply does not come within the attempt timeout.
    pub fn exec<C>(&mut self, operation: &'static str, command: C) -> Result<C::Output, BmcError>
    where
        C: IpmiCommand,
        C::Error: std::fmt::Debug,
    {
        let message: Message = command.into();
        let (netfn, cmd) = (message.netfn_raw(), message.cmd());
        let started = Instant::now();
        for attempt in 1..=self.opts.attempts {
            // Each try is a new request with a new session sequence number;
            // for chassis control a late duplicate is the same command again.
            let mut request = Request::new(
                message.clone(),
                RequestTargetAddress::Bmc(LogicalUnit::Zero),
            );
            self.rmcp
                .send(&mut request)
                .map_err(|e| self.send_error(operation, e, started.elapsed()))?;
            loop {
                match self.rmcp.recv() {
                    // The response netfn is the request's plus one (IPMI 2.0
                    // section 5.1). A response to another command is a late
                    // reply to an earlier, retransmitted request: skip it.
                    Ok(resp) if resp.netfn_raw() == netfn | 1 && resp.cmd() == cmd => {
                        trace!(bmc = %self.address, operation, attempt, cc = resp.cc(),
                               "ipmi response");
                        return self.decode::<C>(operation, resp.cc(), resp.data());
                    }
                    Ok(resp) => {
                        trace!(bmc = %self.address, operation, netfn = resp.netfn_raw(),
                               cmd = resp.cmd(), "ipmi: skipping a stale response");
                    }
                    Err(RmcpIpmiError::Receive(RmcpIpmiReceiveError::Io(e))) if is_timeout(&e) => {
                        debug!(bmc = %self.address, operation, attempt, "ipmi: no reply, retransmitting");
                        break;
                    }
                    // ipmi-rs reports a packet it cannot authenticate or
                    // decrypt as a session error; on a live session that is
                    // typically a reply to an older session: skip it.
                    Err(RmcpIpmiError::Receive(RmcpIpmiReceiveError::Session(
                        UnwrapSessionError::V2_0(V2_0ReadError::DecryptionError(d)),
                    ))) => {
                        trace!(bmc = %self.address, operation, error = ?d, "ipmi: skipping an undecodable packet");
                    }
                    Err(RmcpIpmiError::Receive(r)) => {
                        return Err(receive_error(
                            &self.address,
                            operation,
                            r,
                            started.elapsed(),
                        ));
                    }
                    Err(e) => {
                        return Err(BmcError::protocol(
                            &self.address,
                            format!("{operation}: {e:?}"),
                        ));
                    }
                }
            }
        }
        Err(BmcError::Timeout {
            address: self.address.clone(),
            operation,
            waited: started.elapsed(),
        })
    }

    fn send_error(&self, operation: &'static str, e: RmcpIpmiError, waited: Duration) -> BmcError {
        match e {
            RmcpIpmiError::Send(ipmi_rs::rmcp::RmcpIpmiSendError::V2_0(
                ipmi_rs::rmcp::V2_0WriteError::Io(io),
            )) => io_error(&self.address, operation, io, waited),
            other => BmcError::protocol(&self.address, format!("{operation}: {other:?}")),
        }
    }

    fn decode<C>(&self, operation: &'static str, cc: u8, data: &[u8]) -> Result<C::Output, BmcError>
    where
        C: IpmiCommand,
        C::Error: std::fmt::Debug,
    {
        if cc != 0 {
            let code = CompletionErrorCode::try_from(cc)
                .map(|c| format!("{c:?}"))
                .unwrap_or_else(|_| "unknown".into());
            // 0xC1 "invalid command" (IPMI 2.0 table 5-2): the BMC lacks
            // the operation altogether.
            if cc == 0xC1 {
                return Err(BmcError::Unsupported {
                    address: self.address.clone(),
                    op: operation.to_string(),
                });
            }
            return Err(BmcError::protocol(
                &self.address,
                format!("{operation}: completion code {cc:#04x} ({code})"),
            ));
        }
        C::parse_success_response(data).map_err(|e| {
            BmcError::protocol(&self.address, format!("{operation}: bad response {e:?}"))
        })
    }

    /// Sends Close Session (one try: the BMC's session timeout reclaims the
    /// session if the reply is lost) and drops the socket.
    pub fn close(mut self) {
        let Some(id) = self.session_id else {
            debug!(bmc = %self.address, "ipmi session id unknown; leaving the session to time out");
            return;
        };
        self.opts.attempts = 1;
        match self.exec("Close Session", CloseSession(id)) {
            Ok(()) => debug!(bmc = %self.address, session_id = id, "ipmi session closed"),
            Err(e) => {
                debug!(bmc = %self.address, session_id = id, error = %e, "ipmi close session failed")
            }
        }
    }
}
