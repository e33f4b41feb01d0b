//! Tunnel benchmark: N agents against one hub in a child process; hub RSS per agent and reconnect time.
//!
//! `cargo run --release -p ironrack-agent --example tunnel_bench -- [N]`
//!
//! The parent re-runs itself with `--hub DIR ADDR` as the controller, so
//! the child's `/proc/PID/status` holds the hub's memory alone. The parent
//! enrolls N agents, connects them all and reads the hub's VmRSS. Then it
//! restarts the controller as a real process restart: the hub shuts down
//! gracefully (agents see the close), saves its agent records to the data
//! dir and exits; a new process loads them, binds the same port with the
//! same CA, and the parent times how long until every agent is back. Only
//! loopback addresses are used.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrack_agent::tunnel::{self, LinkState, RequestHandler, Tunnel, TunnelConfig};
use ironrack_common::tunnel::{AgentRequest, AgentResponse, TunnelError};
use ironrack_controller::hub::{AgentRecord, Hub, HubConfig, HubError, HubStore, MemoryHubStore};

const REGION: &str = "bench";
/// Enrollments in flight at once; each is a full handshake on 2 cores.
const ENROLL_CONCURRENCY: usize = 16;
/// Give up on any phase after this long.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

struct Echo;

impl RequestHandler for Echo {
    async fn handle(&self, request: AgentRequest) -> Result<AgentResponse, TunnelError> {
        match request {
            AgentRequest::Ping => Ok(AgentResponse::Pong),
            AgentRequest::Echo(b) => Ok(AgentResponse::Echo(b)),
            other => Err(TunnelError::Failed {
                message: format!("the bench agent does not do {}", other.kind()),
            }),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new()?;
    if args.get(1).map(String::as_str) == Some("--hub") {
        return rt.block_on(hub_main(args[2].clone().into(), args[3].parse()?));
    }
    let n: usize = args.get(1).map_or(Ok(1000), |s| s.parse())?;
    rt.block_on(parent_main(n))
}

// --- the hub process -------------------------------------------------------

async fn start_hub(config: &HubConfig, store: &Arc<MemoryHubStore>) -> anyhow::Result<Hub> {
    let started = Instant::now();
    loop {
        let s: Arc<dyn HubStore> = store.clone();
        match Hub::start(config.clone(), s).await {
            Err(HubError::Bind { .. }) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return Ok(other?),
        }
    }
}

/// File in the hub's data dir holding its agent records between runs; the
/// bench's stand-in for the controller's real store.
const SNAPSHOT_FILE: &str = "bench-agents.postcard";

/// Serves line commands on stdin: `tokens N`, `count`, `quit`. On `quit` it
/// shuts down gracefully and saves its agent records for the next process.
async fn hub_main(data_dir: std::path::PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let store = Arc::new(MemoryHubStore::new());
    let snapshot = data_dir.join(SNAPSHOT_FILE);
    if let Ok(bytes) = std::fs::read(&snapshot) {
        let agents: Vec<AgentRecord> = postcard::from_bytes(&bytes)?;
        for agent in agents {
            store.upsert_agent(agent)?;
        }
    }
    let config = HubConfig {
        listen,
        server_names: vec!["127.0.0.1".into()],
        data_dir,
    };
    let hub = start_hub(&config, &store).await?;
    // Drain events so agents are never blocked on a full queue.
    let mut events = hub.take_events().expect("first take");
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    println!("ADDR {}", hub.local_addr());

    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("tokens") => {
                let n: usize = words.next().unwrap_or("1").parse()?;
                for _ in 0..n {
                    let token = hub.create_token(REGION, Duration::from_secs(3600))?;
                    println!("TOKEN {}", token.to_token_string());
                }
                println!("END");
            }
            Some("count") => {
                let n = hub.agents()?.iter().filter(|a| a.connected).count();
                println!("CONNECTED {n}");
            }
            _ => break,
        }
        std::io::stdout().flush()?;
    }
    let t = Instant::now();
    hub.shutdown().await;
    std::fs::write(&snapshot, postcard::to_allocvec(&store.list_agents()?)?)?;
    eprintln!("hub: graceful shutdown took {:?}", t.elapsed());
    Ok(())
}

// --- the agents' process ---------------------------------------------------

struct HubProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl HubProcess {
    fn command(&mut self, cmd: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{cmd}")?;
        Ok(self.stdin.flush()?)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            anyhow::bail!("hub process ended");
        }
        Ok(line.trim_end().to_owned())
    }

    fn connected(&mut self) -> anyhow::Result<usize> {
        self.command("count")?;
        let line = self.line()?;
        Ok(line.trim_start_matches("CONNECTED ").parse()?)
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
    }
}

async fn wait_until(
    what: &str,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !done()? {
        if started.elapsed() > PHASE_LIMIT {
            anyhow::bail!("{what}: not done after {PHASE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed())
}

fn spawn_hub(data_dir: &std::path::Path, listen: &str) -> anyhow::Result<(HubProcess, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--hub")
        .arg(data_dir)
        .arg(listen)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut hub = HubProcess {
        stdin: child.stdin.take().expect("piped"),
        stdout: BufReader::new(child.stdout.take().expect("piped")),
        child,
    };
    let addr = hub.line()?.trim_start_matches("ADDR ").to_owned();
    Ok((hub, addr))
}

async fn parent_main(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub_dir = dir.path().join("controller");
    let (mut hub, addr) = spawn_hub(&hub_dir, "127.0.0.1:0")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = hub.rss_kib()?;

    hub.command(&format!("tokens {n}"))?;
    let mut tokens = Vec::with_capacity(n);
    loop {
        let line = hub.line()?;
        match line.strip_prefix("TOKEN ") {
            Some(t) => tokens.push(t.to_owned()),
            None => break,
        }
    }

    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(ENROLL_CONCURRENCY));
    let mut enrolls = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (addr, sem) = (addr.clone(), sem.clone());
        let data_dir = dir.path().join(format!("agent-{i}"));
        enrolls.push(tokio::spawn(async move {
            let _permit = sem.acquire().await?;
            tunnel::enroll(&addr, &token, REGION, &format!("rack-{i}"), &data_dir).await?;
            anyhow::Ok(data_dir)
        }));
    }
    let mut tunnels = Vec::with_capacity(n);
    for (i, e) in enrolls.into_iter().enumerate() {
        let data_dir = e.await??;
        let config = TunnelConfig::new(addr.clone(), data_dir, REGION, format!("rack-{i}"));
        tunnels.push(Tunnel::start(config, Arc::new(Echo))?);
    }
    println!("enrolled {n} agents in {:?}", started.elapsed());
    let all_up = |tunnels: &[Tunnel]| {
        tunnels
            .iter()
            .all(|t| matches!(*t.state().borrow(), LinkState::Connected { .. }))
    };
    let took = wait_until("connect", || Ok(all_up(&tunnels) && hub.connected()? == n)).await?;
    println!("all {n} connected {took:?} after the last enrollment");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_loaded = hub.rss_kib()?;
    let per_agent = (rss_loaded.saturating_sub(rss_idle)) as f64 / n as f64;
    println!(
        "hub VmRSS: idle {rss_idle} KiB, with {n} agents {rss_loaded} KiB => {per_agent:.1} KiB per agent"
    );

    let restart = Instant::now();
    hub.command("quit")?;
    hub.child.wait()?;
    let down = restart.elapsed();
    let (new_hub, _) = spawn_hub(&hub_dir, &addr)?;
    hub = new_hub;
    let up = restart.elapsed();
    let took = wait_until("reconnect", || Ok(hub.connected()? == n)).await?;
    println!(
        "controller restart: old process gone after {down:?}, new one listening after {up:?}, \
         all {n} agents reconnected {took:?} later ({:?} from the restart)",
        restart.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("hub VmRSS after reconnect: {} KiB", hub.rss_kib()?);

    for t in tunnels {
        t.shutdown().await?;
    }
    hub.command("quit")?;
    hub.child.wait()?;
    Ok(())
}
