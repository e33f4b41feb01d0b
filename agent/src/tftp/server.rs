//! The server handle and its listening task: admission (limits, duplicates) and one task per transfer.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, trace};

use super::config::{ConfigError, TftpConfig};
use super::packet::{self, ErrorCode, Packet};
use super::resolver::{Resolver, RootResolver};
use super::serve::{Context, serve};
use super::socket::{Listener, reply_once, unmap};

/// Requests are at most 512 bytes (RFC 2347 §2); a little slack for
/// firmware that pads, and anything longer is dropped as truncated.
const REQUEST_BUF: usize = 2048;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// A setting is out of range.
    #[error("invalid TFTP configuration")]
    Config(#[from] ConfigError),
    /// The boot root cannot be opened.
    #[error("TFTP root {root}")]
    Root {
        /// The configured root.
        root: std::path::PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Binding the listening socket failed.
    #[error("binding TFTP listener on {addr}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A running TFTP server. Dropping it without [`TftpServer::shutdown`]
/// also stops it, without waiting.
#[derive(Debug)]
pub struct TftpServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TftpServer {
    /// Starts serving `config.root` on `config.listen`. Must be called
    /// within a tokio runtime.
    pub fn spawn(config: &TftpConfig) -> Result<TftpServer, TftpError> {
        let resolver = RootResolver::new(&config.root).map_err(|source| TftpError::Root {
            root: config.root.clone(),
            source,
        })?;
        TftpServer::spawn_with_resolver(config, Arc::new(resolver))
    }

    /// Starts serving with another source of files; `config.root` is not used.
    pub fn spawn_with_resolver(
        config: &TftpConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<TftpServer, TftpError> {
        config.validate()?;
        let listener = Listener::bind(config.listen).map_err(|source| TftpError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr();
        let ctx = Arc::new(Context {
            resolver,
            limits: config.limits(),
            retries: config.retries,
        });
        let admission = Admission::new(config.max_transfers, config.max_per_client);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, ctx, admission, stopped));
        debug!(%local_addr, "TFTP server listening");
        Ok(TftpServer {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening, aborts transfers in progress and waits for both.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for TftpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: Listener,
    ctx: Arc<Context>,
    admission: Arc<Admission>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; REQUEST_BUF];
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            r = listener.recv(&mut buf) => match r {
                Ok(rx) if rx.len <= buf.len() => {
                    admit(&ctx, &admission, &mut tasks, &buf[..rx.len], rx.peer, rx.local);
                }
                Ok(rx) => trace!(peer = %rx.peer, "oversized datagram dropped"),
                // ICMP errors from earlier sends surface here; nothing to do.
                Err(e) => trace!(error = %e, "receive failed"),
            }
        }
    }
    // Dropping the set aborts every transfer; wait for them to go.
    tasks.shutdown().await;
}

fn admit(
    ctx: &Arc<Context>,
    admission: &Arc<Admission>,
    tasks: &mut JoinSet<()>,
    datagram: &[u8],
    peer: SocketAddr,
    local: SocketAddr,
) {
    let reply = |code: ErrorCode, msg: &str| {
        if let Err(e) = reply_once(local, peer, &packet::encode_error(code, msg)) {
            trace!(%peer, error = %e, "refusal not sent");
        }
    };
    let req = match packet::parse(datagram) {
        Ok(Packet::Request(req)) => req,
        // Stray DATA/ACK/ERROR on port 69 come from old transfers; answering
        // them could start an error ping-pong.
        Ok(_) => return,
        Err(e) => {
            trace!(%peer, error = %e, "malformed datagram");
            if matches!(datagram, [0, 1 | 2, ..]) {
                reply(ErrorCode::IllegalOperation, "Malformed request");
            }
            return;
        }
    };
    let slot = match admission.try_admit(unmap(peer)) {
        Ok(slot) => slot,
        // A retransmitted RRQ: the transfer already running for this TID
        // answers it by its own retransmission.
        Err(Refusal::Duplicate) => return,
        Err(refusal) => {
            debug!(%peer, file = %req.filename, ?refusal, "request refused");
            reply(ErrorCode::NotDefined, "Server busy, try again later");
            return;
        }
    };
    let ctx = ctx.clone();
    tasks.spawn(async move {
        serve(ctx, req, peer, local).await;
        drop(slot);
    });
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A transfer for the same client address and port is running.
    Duplicate,
    /// `max_transfers` reached.
    Full,
    /// `max_per_client` reached for this IP.
    ClientFull,
}

/// Counts transfers in progress, in total and per client IP.
#[derive(Debug)]
struct Admission {
    max_total: usize,
    max_per_client: usize,
    state: Mutex<AdmissionState>,
}

#[derive(Debug, Default)]
struct AdmissionState {
    per_ip: HashMap<IpAddr, usize>,
    peers: HashSet<SocketAddr>,
}

/// Holds one admitted transfer's place until dropped.
#[derive(Debug)]
struct Slot {
    admission: Arc<Admission>,
    peer: SocketAddr,
}

impl Admission {
    fn new(max_total: usize, max_per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_client,
            state: Mutex::default(),
        })
    }

    fn try_admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Slot, Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.peers.contains(&peer) {
            return Err(Refusal::Duplicate);
        }
        if state.peers.len() >= self.max_total {
            return Err(Refusal::Full);
        }
        let count = state.per_ip.entry(peer.ip()).or_default();
        if *count >= self.max_per_client {
            return Err(Refusal::ClientFull);
        }
        *count += 1;
        state.peers.insert(peer);
        Ok(Slot {
            admission: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self
            .admission
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        state.peers.remove(&self.peer);
        if let Some(count) = state.per_ip.get_mut(&self.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                state.per_ip.remove(&self.peer.ip());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn admission_limits_and_duplicates() {
        let a = Admission::new(3, 2);
        let s1 = a.try_admit(addr("10.0.0.1:1000")).unwrap();
        assert_eq!(
            a.try_admit(addr("10.0.0.1:1000")).unwrap_err(),
            Refusal::Duplicate
        );
        let _s2 = a.try_admit(addr("10.0.0.1:1001")).unwrap();
        assert_eq!(
            a.try_admit(addr("10.0.0.1:1002")).unwrap_err(),
            Refusal::ClientFull
        );
        let _s3 = a.try_admit(addr("10.0.0.2:1000")).unwrap();
        assert_eq!(
            a.try_admit(addr("10.0.0.3:1000")).unwrap_err(),
            Refusal::Full
        );
        drop(s1);
        let _s4 = a.try_admit(addr("10.0.0.1:1002")).unwrap();
        assert!(a.state.lock().unwrap().per_ip.len() == 2);
    }
}
