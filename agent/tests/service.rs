//! The agent's request handler, event forwarder and binary against real peers: OpenIPMI's ipmi_sim (read back with ipmitool) and an in-process controller hub.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironrack_agent::bmc::sync::{PowerEvent, PowerSync, PowerSyncConfig};
use ironrack_agent::bmc::{BmcPool, DriverOptions, PowerTimeouts};
use ironrack_agent::config::{Config, ConfigError, FileConfig, Overrides};
use ironrack_agent::service::{
    AgentError, AgentService, AgentSettings, EventForwarder, EventSink, run,
};
use ironrack_agent::tunnel::{EventError, LinkState, RequestHandler, RunError, identity};
use ironrack_common::Secret;
use ironrack_common::rack::{
    BmcFailureKind, BmcKind, BmcSpec, BootDevice, ManagedMachine, PowerAction, PowerState,
};
use ironrack_common::tunnel::{AgentEvent, AgentId, AgentRequest, AgentResponse, SecretString};
use ironrack_controller::hub::{Hub, HubConfig, HubStore, MemoryHubStore, ReceivedEvent};
use tokio::sync::{mpsc, watch};

const IPMI_USER: &str = "admin";
/// Not the lab script's default: "ironrack" is in every log line's target,
/// so a check that the password stays out of the logs could not fail.
const IPMI_PASSWORD: &str = "lab-Pw-7731";
const REGION: &str = "cn-test-1";
const RACK: &str = "rack-9";
const STEP: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails (never skips) when a peer program is missing.
fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: run deploy/lab/install-peers.sh (as root) first"
    );
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_cmd(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// N ipmi_sim BMCs in a temporary folder (deploy/lab/ipmi-sim.sh), stopped on drop.
struct IpmiLab {
    dir: tempfile::TempDir,
    base: u16,
}

impl IpmiLab {
    fn start(n: u16) -> IpmiLab {
        require("ipmi_sim");
        require("ipmitool");
        let dir = tempfile::tempdir().unwrap();
        let base = (0..20)
            .map(|_| free_udp_port())
            .find(|&b| {
                b < u16::MAX - n
                    && (0..n).all(|i| std::net::UdpSocket::bind(("127.0.0.1", b + i)).is_ok())
            })
            .expect("free UDP ports");
        run_cmd(
            Command::new(repo().join("deploy/lab/ipmi-sim.sh"))
                .args([
                    "start",
                    dir.path().to_str().unwrap(),
                    &n.to_string(),
                    &base.to_string(),
                ])
                .env("IPMI_SIM_USER", IPMI_USER)
                .env("IPMI_SIM_PASSWORD", IPMI_PASSWORD),
        );
        IpmiLab { dir, base }
    }

    fn port(&self, i: u16) -> u16 {
        self.base + i
    }

    fn spec(&self, i: u16) -> BmcSpec {
        ipmi_spec(self.port(i), IPMI_PASSWORD)
    }

    fn ipmitool(&self, i: u16, args: &[&str]) -> String {
        let port = self.port(i).to_string();
        let mut cmd = Command::new("ipmitool");
        // -C 3: without it ipmitool waits ~10 s on ipmi_sim (LAB.md).
        cmd.args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port]);
        cmd.args(["-U", IPMI_USER, "-P", IPMI_PASSWORD]);
        cmd.args(args);
        run_cmd(&mut cmd)
    }

    fn power(&self, i: u16) -> PowerState {
        let out = self.ipmitool(i, &["power", "status"]);
        match out.trim() {
            "Chassis Power is on" => PowerState::On,
            "Chassis Power is off" => PowerState::Off,
            other => panic!("ipmitool power status: {other:?}"),
        }
    }

    /// Sessions open on BMC `i`, ipmitool's own included.
    fn active_sessions(&self, i: u16) -> usize {
        let out = self.ipmitool(i, &["session", "info", "active"]);
        out.lines()
            .find_map(|l| l.strip_prefix("active sessions"))
            .and_then(|rest| rest.trim_start_matches([' ', ':']).trim().parse().ok())
            .unwrap_or_else(|| panic!("no session count in {out}"))
    }
}

impl Drop for IpmiLab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("deploy/lab/ipmi-sim.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

fn ipmi_spec(port: u16, password: &str) -> BmcSpec {
    BmcSpec {
        kind: BmcKind::Ipmi,
        address: format!("127.0.0.1:{port}"),
        username: IPMI_USER.into(),
        password: Secret::new(password),
        disable_certificate_verification: false,
    }
}

fn driver_options() -> DriverOptions {
    DriverOptions {
        power: PowerTimeouts {
            hard: Duration::from_secs(20),
            soft: Duration::from_secs(20),
            poll_interval: Duration::from_millis(200),
        },
        ..DriverOptions::default()
    }
}

fn service() -> AgentService {
    AgentService::new(BmcPool::new(driver_options()), driver_options(), None)
}

fn power(pmid: &str, bmc: BmcSpec, action: PowerAction) -> AgentRequest {
    AgentRequest::Power {
        pmid: pmid.into(),
        bmc,
        action,
    }
}

async fn status(service: &AgentService, bmc: BmcSpec) -> PowerState {
    match service
        .handle(AgentRequest::PowerStatus {
            pmid: "pm-x".into(),
            bmc,
        })
        .await
        .unwrap()
    {
        AgentResponse::PowerStatus(Ok(s)) => s,
        other => panic!("expected a power state, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The handler, driven directly

#[tokio::test]
async fn power_on_and_off_through_the_handler_as_ipmitool_sees_it() {
    init_tracing();
    let lab = IpmiLab::start(1);
    let svc = service();
    assert_eq!(
        svc.handle(AgentRequest::Ping).await.unwrap(),
        AgentResponse::Pong
    );
    assert_eq!(
        svc.handle(AgentRequest::Echo(b"x".to_vec())).await.unwrap(),
        AgentResponse::Echo(b"x".to_vec())
    );
    assert_eq!(status(&svc, lab.spec(0)).await, PowerState::Off);

    let AgentResponse::Power(Ok(report)) = svc
        .handle(power("pm-0", lab.spec(0), PowerAction::On))
        .await
        .unwrap()
    else {
        panic!("power on failed");
    };
    assert_eq!(report.initial, PowerState::Off);
    assert_eq!(report.final_state, PowerState::On);
    assert_eq!(report.commands, vec!["On".to_owned()]);
    assert_eq!(lab.power(0), PowerState::On);

    // Already on: nothing is sent.
    let AgentResponse::Power(Ok(again)) = svc
        .handle(power("pm-0", lab.spec(0), PowerAction::On))
        .await
        .unwrap()
    else {
        panic!("second power on failed");
    };
    assert!(again.commands.is_empty(), "{again:?}");

    let AgentResponse::Power(Ok(off)) = svc
        .handle(power("pm-0", lab.spec(0), PowerAction::Off))
        .await
        .unwrap()
    else {
        panic!("power off failed");
    };
    assert_eq!(off.commands, vec!["ForceOff".to_owned()]);
    assert_eq!(off.final_state, PowerState::Off);
    assert_eq!(lab.power(0), PowerState::Off);
    assert_eq!(status(&svc, lab.spec(0)).await, PowerState::Off);

    let done = svc
        .handle(AgentRequest::SetNextBoot {
            pmid: "pm-0".into(),
            bmc: lab.spec(0),
            device: BootDevice::Pxe,
        })
        .await
        .unwrap();
    assert_eq!(done, AgentResponse::Done(Ok(())));
    let param = lab.ipmitool(0, &["chassis", "bootparam", "get", "5"]);
    assert!(param.contains("Force PXE"), "{param}");
    svc.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_is_auth_failed_and_never_echoed() {
    init_tracing();
    let lab = IpmiLab::start(1);
    let svc = service();
    let bad = ipmi_spec(lab.port(0), "not-the-password");
    let answer = svc
        .handle(power("pm-0", bad.clone(), PowerAction::On))
        .await
        .unwrap();
    let AgentResponse::Power(Err(failure)) = answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert_eq!(failure.kind, BmcFailureKind::AuthFailed, "{failure:?}");
    assert!(
        failure.message.contains(&lab.port(0).to_string()),
        "{failure:?}"
    );
    assert!(failure.message.contains("admin"), "{failure:?}");
    assert!(!failure.message.contains("not-the-password"), "{failure:?}");
    assert_eq!(lab.power(0), PowerState::Off, "nothing happened");

    let answer = svc
        .handle(AgentRequest::Identify { bmc: bad })
        .await
        .unwrap();
    let AgentResponse::Identity(Err(failure)) = answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert_eq!(failure.kind, BmcFailureKind::AuthFailed);
}

#[tokio::test]
async fn nothing_listening_is_unreachable_or_timeout_quickly() {
    init_tracing();
    require("ipmi_sim");
    let svc = service();
    let spec = ipmi_spec(free_udp_port(), IPMI_PASSWORD);
    let started = Instant::now();
    let answer = svc
        .handle(AgentRequest::PowerStatus {
            pmid: "pm-9".into(),
            bmc: spec,
        })
        .await
        .unwrap();
    let AgentResponse::PowerStatus(Err(failure)) = answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert!(
        matches!(
            failure.kind,
            BmcFailureKind::Unreachable | BmcFailureKind::Timeout
        ),
        "{failure:?}"
    );
    assert!(failure.message.contains("127.0.0.1"), "{failure:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // An address the drivers cannot use is refused before anything is sent.
    let mut spec = ipmi_spec(1, IPMI_PASSWORD);
    spec.address = "bmc_7:x".into();
    let answer = svc
        .handle(AgentRequest::Identify { bmc: spec })
        .await
        .unwrap();
    let AgentResponse::Identity(Err(failure)) = answer else {
        panic!("expected a failure, got {answer:?}");
    };
    assert_eq!(failure.kind, BmcFailureKind::Unsupported);
    assert!(failure.message.contains("bmc_7:x"), "{failure:?}");
}

#[tokio::test]
async fn identify_works_for_a_bmc_of_no_machine_and_leaves_no_session() {
    init_tracing();
    let lab = IpmiLab::start(1);
    let svc = service();
    let answer = svc
        .handle(AgentRequest::Identify { bmc: lab.spec(0) })
        .await
        .unwrap();
    let AgentResponse::Identity(Ok(id)) = answer else {
        panic!("identify failed: {answer:?}");
    };
    assert_eq!(id.kind, BmcKind::Ipmi);
    assert_eq!(id.serial_number, "LAB-SN-0000");
    assert_eq!(id.manufacturer, "Ironrack Lab");
    assert_eq!(id.product, "ironrack-lab");
    assert!(id.bmc_info.contains("IPMI 2.0"), "{}", id.bmc_info);
    assert_eq!(lab.active_sessions(0), 1, "only ipmitool's own session");
}

#[tokio::test]
async fn a_power_action_cut_off_by_its_deadline_still_completes_and_the_bmc_stays_usable() {
    init_tracing();
    let lab = IpmiLab::start(1);
    let svc = service();
    // What the tunnel does at a deadline: drop the handler's future.
    let cut = tokio::time::timeout(
        Duration::from_millis(5),
        svc.handle(power("pm-0", lab.spec(0), PowerAction::On)),
    )
    .await;
    assert!(cut.is_err(), "the action should not finish in 5 ms");
    // The action carries on by itself and the session keeps working.
    let deadline = Instant::now() + STEP;
    while status(&svc, lab.spec(0)).await != PowerState::On {
        assert!(
            Instant::now() < deadline,
            "the cut-off power on never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lab.power(0), PowerState::On);
    let AgentResponse::Power(Ok(off)) = svc
        .handle(power("pm-0", lab.spec(0), PowerAction::Off))
        .await
        .unwrap()
    else {
        panic!("power off after a cut-off failed");
    };
    assert_eq!(off.final_state, PowerState::Off);
    assert_eq!(lab.power(0), PowerState::Off);
    assert_eq!(
        lab.active_sessions(0),
        2,
        "ours (one, reused) and ipmitool's"
    );
    svc.shutdown().await;
    assert_eq!(lab.active_sessions(0), 1, "ours is closed at shutdown");
}

#[tokio::test]
async fn sync_machines_closes_sessions_of_machines_no_longer_owned() {
    init_tracing();
    let lab = IpmiLab::start(2);
    let pool = BmcPool::new(driver_options());
    let config = PowerSyncConfig {
        interval: Duration::from_millis(300),
        ..PowerSyncConfig::default()
    };
    let (sync, _events) = PowerSync::spawn(pool.clone(), config, vec![]);
    let svc = AgentService::new(pool, driver_options(), Some(sync));
    let machines = vec![
        ManagedMachine {
            pmid: "pm-0".into(),
            bmc: lab.spec(0),
        },
        ManagedMachine {
            pmid: "pm-1".into(),
            bmc: lab.spec(1),
        },
    ];
    let done = svc
        .handle(AgentRequest::SyncMachines { machines })
        .await
        .unwrap();
    assert_eq!(done, AgentResponse::Done(Ok(())));
    // pm-0's session comes from a request, pm-1's from the power sync alone.
    status(&svc, lab.spec(0)).await;
    let deadline = Instant::now() + STEP;
    while lab.active_sessions(1) != 2 {
        assert!(Instant::now() < deadline, "the power sync never read pm-1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lab.active_sessions(0), 2);

    // pm-1 moves away; a machine with an unusable address is named.
    let mut broken = lab.spec(0);
    broken.address = "not an address".into();
    let machines = vec![
        ManagedMachine {
            pmid: "pm-0".into(),
            bmc: lab.spec(0),
        },
        ManagedMachine {
            pmid: "pm-bad".into(),
            bmc: broken,
        },
    ];
    let answer = svc
        .handle(AgentRequest::SyncMachines { machines })
        .await
        .unwrap();
    let AgentResponse::Done(Err(failure)) = answer else {
        panic!("expected the bad machine to be named, got {answer:?}");
    };
    assert!(failure.message.contains("pm-bad"), "{failure:?}");
    assert_eq!(lab.active_sessions(0), 2, "pm-0's session is kept");
    assert_eq!(lab.active_sessions(1), 1, "pm-1's session is closed");
    svc.shutdown().await;
}

// ---------------------------------------------------------------------------
// Power events

/// An event sink that records what it is given while its link is up.
struct FakeSink {
    link: watch::Sender<LinkState>,
    sent: mpsc::UnboundedSender<(u64, AgentEvent)>,
    /// This many sends fail as if the ack never came.
    fail: AtomicUsize,
}

impl FakeSink {
    fn new(connected: bool) -> (Arc<FakeSink>, mpsc::UnboundedReceiver<(u64, AgentEvent)>) {
        let (sent, rx) = mpsc::unbounded_channel();
        let (link, _) = watch::channel(LinkState::Connecting);
        let sink = Arc::new(FakeSink {
            link,
            sent,
            fail: AtomicUsize::new(0),
        });
        sink.set_connected(connected);
        (sink, rx)
    }

    fn set_connected(&self, up: bool) {
        self.link.send_replace(if up {
            LinkState::Connected {
                agent_id: AgentId::parse("agt-00000000000a").unwrap(),
            }
        } else {
            LinkState::Connecting
        });
    }
}

impl EventSink for FakeSink {
    async fn send_event(&self, seq: u64, event: AgentEvent) -> Result<(), EventError> {
        if !matches!(*self.link.borrow(), LinkState::Connected { .. }) {
            return Err(EventError::Offline);
        }
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(EventError::Timeout { seq });
        }
        let _ = self.sent.send((seq, event));
        Ok(())
    }

    fn link_state(&self) -> watch::Receiver<LinkState> {
        self.link.subscribe()
    }
}

fn observed(event: &AgentEvent) -> (&str, Option<PowerState>, bool) {
    match event {
        AgentEvent::PowerObserved {
            pmid,
            state,
            connected,
            observed_unix_ms,
            ..
        } => {
            assert!(*observed_unix_ms > 1_600_000_000_000, "{observed_unix_ms}");
            (pmid.as_str(), *state, *connected)
        }
        other => panic!("expected PowerObserved, got {other:?}"),
    }
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(STEP, rx.recv())
        .await
        .expect("an event in time")
        .expect("sink alive")
}

#[tokio::test]
async fn sync_machines_then_a_change_made_with_ipmitool_is_reported() {
    init_tracing();
    let lab = IpmiLab::start(1);
    let pool = BmcPool::new(driver_options());
    let config = PowerSyncConfig {
        interval: Duration::from_millis(300),
        ..PowerSyncConfig::default()
    };
    let (sync, events) = PowerSync::spawn(pool.clone(), config, vec![]);
    let svc = AgentService::new(pool, driver_options(), Some(sync));
    let (sink, mut sent) = FakeSink::new(true);
    let forwarder = EventForwarder::spawn(sink.clone(), events);

    let machines = vec![ManagedMachine {
        pmid: "pm-0".into(),
        bmc: lab.spec(0),
    }];
    let done = svc
        .handle(AgentRequest::SyncMachines { machines })
        .await
        .unwrap();
    assert_eq!(done, AgentResponse::Done(Ok(())));
    let (seq1, first) = next(&mut sent).await;
    assert_eq!(observed(&first), ("pm-0", Some(PowerState::Off), true));

    lab.ipmitool(0, &["power", "on"]);
    let (seq2, second) = next(&mut sent).await;
    assert_eq!(observed(&second), ("pm-0", Some(PowerState::On), true));
    assert!(seq2 > seq1, "{seq1} then {seq2}");

    // No change, no event: several sweeps pass in silence.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(sent.try_recv().is_err(), "an event without a change");

    forwarder.shutdown().await;
    svc.shutdown().await;
}

fn power_event(pmid: &str, state: PowerState, connected: bool) -> PowerEvent {
    PowerEvent {
        machine_id: pmid.into(),
        power_state: Some(match state {
            PowerState::On => ironrack_agent::bmc::PowerState::On,
            PowerState::Off => ironrack_agent::bmc::PowerState::Off,
        }),
        ipmi_connected: connected,
        error: (!connected).then(|| "BMC ipmi://198.51.100.1:623 is unreachable".to_owned()),
    }
}

#[tokio::test]
async fn while_the_link_is_down_the_latest_state_per_machine_waits_and_is_sent_on_reconnect() {
    init_tracing();
    let (sink, mut sent) = FakeSink::new(false);
    let (tx, rx) = mpsc::channel(16);
    let forwarder = EventForwarder::spawn(sink.clone(), rx);
    tx.send(power_event("pm-1", PowerState::Off, true))
        .await
        .unwrap();
    tx.send(power_event("pm-2", PowerState::On, true))
        .await
        .unwrap();
    tx.send(power_event("pm-1", PowerState::On, true))
        .await
        .unwrap();
    tx.send(power_event("pm-1", PowerState::On, false))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sent.try_recv().is_err(), "sent while offline");

    sink.set_connected(true);
    let mut got = [next(&mut sent).await, next(&mut sent).await];
    got.sort_by_key(|a| a.0);
    assert!(got[0].0 < got[1].0);
    let mut states: Vec<_> = got.iter().map(|(_, e)| observed(e)).collect();
    states.sort_by_key(|s| s.0);
    assert_eq!(
        states,
        vec![
            ("pm-1", Some(PowerState::On), false),
            ("pm-2", Some(PowerState::On), true)
        ],
        "only the latest state of each machine"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sent.try_recv().is_err(), "nothing else");

    // A send whose ack is lost is retried with the same number.
    sink.fail.store(1, Ordering::SeqCst);
    tx.send(power_event("pm-2", PowerState::Off, true))
        .await
        .unwrap();
    let (seq, event) = next(&mut sent).await;
    assert_eq!(observed(&event), ("pm-2", Some(PowerState::Off), true));
    assert!(seq > got[1].0);
    tx.send(power_event("pm-3", PowerState::Off, true))
        .await
        .unwrap();
    let (seq3, _) = next(&mut sent).await;
    assert_eq!(seq3, seq + 1, "the retried event kept its number");
    forwarder.shutdown().await;
}

// ---------------------------------------------------------------------------
// The whole agent against an in-process controller hub

struct HubEnv {
    hub: Hub,
    dir: tempfile::TempDir,
}

impl HubEnv {
    async fn new() -> HubEnv {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn HubStore> = Arc::new(MemoryHubStore::new());
        let config = HubConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            server_names: vec!["127.0.0.1".into()],
            data_dir: dir.path().join("controller"),
        };
        let hub = Hub::start(config, store).await.unwrap();
        HubEnv { hub, dir }
    }

    fn token(&self) -> String {
        self.hub
            .create_token(REGION, Duration::from_secs(600))
            .unwrap()
            .to_token_string()
    }

    fn agent_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    fn config(&self) -> Config {
        let file = FileConfig::parse(
            "bmc_networks = [\"127.0.0.0/8\"]\n[power_sync]\ninterval_s = 1\n",
            Path::new("test.toml"),
        )
        .unwrap();
        Config::finish(
            file,
            Overrides {
                data_dir: Some(self.agent_dir()),
                controller: Some(self.hub.local_addr().to_string()),
                region: Some(REGION.into()),
                rack: Some(RACK.into()),
                ..Overrides::default()
            },
        )
        .unwrap()
    }

    async fn wait_connected(&self) -> AgentId {
        let deadline = Instant::now() + STEP;
        loop {
            let agents = self.hub.agents().unwrap();
            if let Some(a) = agents.iter().find(|a| a.connected) {
                return a.id.clone();
            }
            assert!(Instant::now() < deadline, "the agent never connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn next_event(events: &mut mpsc::Receiver<ReceivedEvent>) -> ReceivedEvent {
    tokio::time::timeout(STEP, events.recv())
        .await
        .expect("an event in time")
        .expect("hub alive")
}

#[tokio::test]
async fn enroll_then_power_a_machine_through_the_hub_and_see_its_events() {
    let lab = IpmiLab::start(1);
    let env = HubEnv::new().await;
    let mut events = env.hub.take_events().unwrap();

    // Without an identity and without a token, the agent says what to do.
    let err = run(AgentSettings::new(env.config(), None), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::TokenRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("--token"), "{err}");

    let mut settings = AgentSettings::new(env.config(), Some(SecretString::new(env.token())));
    settings.driver = driver_options();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run(settings, async {
        let _ = stopped.await;
    }));
    let id = env.wait_connected().await;
    assert!(env.agent_dir().join(identity::AGENT_CERT_FILE).exists());
    let info = env.hub.agents().unwrap().remove(0);
    assert_eq!((info.region.as_str(), info.rack.as_str()), (REGION, RACK));
    assert_eq!(info.bmc_networks, vec!["127.0.0.0/8".to_owned()]);

    let answer = env
        .hub
        .call(&id, power("pm-0", lab.spec(0), PowerAction::On), STEP)
        .await
        .unwrap();
    let AgentResponse::Power(Ok(report)) = answer else {
        panic!("power on through the hub failed: {answer:?}");
    };
    assert_eq!(report.final_state, PowerState::On);
    assert_eq!(lab.power(0), PowerState::On);

    let machines = vec![ManagedMachine {
        pmid: "pm-0".into(),
        bmc: lab.spec(0),
    }];
    let answer = env
        .hub
        .call(&id, AgentRequest::SyncMachines { machines }, STEP)
        .await
        .unwrap();
    assert_eq!(answer, AgentResponse::Done(Ok(())));
    let first = next_event(&mut events).await;
    assert_eq!(first.agent_id, id);
    assert_eq!(observed(&first.event), ("pm-0", Some(PowerState::On), true));

    lab.ipmitool(0, &["power", "off"]);
    let second = next_event(&mut events).await;
    assert_eq!(
        observed(&second.event),
        ("pm-0", Some(PowerState::Off), true)
    );
    assert!(second.seq > first.seq);

    stop.send(()).unwrap();
    let end = tokio::time::timeout(STEP, agent).await.unwrap().unwrap();
    assert!(end.is_ok(), "{end:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!env.hub.is_connected(&id));
    assert_eq!(lab.active_sessions(0), 1, "the agent closed its session");

    // Started again, already enrolled: a token is ignored, the same id
    // connects; a revocation then stops it with an error.
    let settings = AgentSettings::new(env.config(), Some(SecretString::new(env.token())));
    let agent = tokio::spawn(run(settings, std::future::pending()));
    assert_eq!(env.wait_connected().await, id);
    env.hub.revoke(&id).unwrap();
    let end = tokio::time::timeout(STEP, agent).await.unwrap().unwrap();
    assert!(
        matches!(end, Err(AgentError::Tunnel(RunError::Revoked))),
        "{end:?}"
    );
    env.hub.shutdown().await;
}

// ---------------------------------------------------------------------------
// The binary

fn agent_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ironrack-agent"))
}

#[tokio::test]
async fn the_binary_enrolls_serves_and_stops_cleanly_on_sigterm() {
    let lab = IpmiLab::start(1);
    let env = HubEnv::new().await;
    let controller = env.hub.local_addr().to_string();
    let dir = env.agent_dir();
    let log = env.dir.path().join("agent.log");
    let token = env.token();
    let token_secret = token.rsplit('.').next().unwrap().to_owned();
    let mut cmd = agent_binary();
    cmd.args(["--data-dir", dir.to_str().unwrap()])
        .args(["--controller", &controller])
        .args(["--region", REGION, "--rack", RACK])
        .args(["--bmc-network", "127.0.0.0/8", "--bmc-network", "::1/128"])
        .env("IRONRACK_AGENT_TOKEN", &token)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let id = env.wait_connected().await;
    let info = env.hub.agents().unwrap().remove(0);
    assert_eq!(
        info.bmc_networks,
        vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
    );
    let answer = env
        .hub
        .call(&id, power("pm-0", lab.spec(0), PowerAction::On), STEP)
        .await
        .unwrap();
    assert!(matches!(answer, AgentResponse::Power(Ok(_))), "{answer:?}");
    assert_eq!(lab.power(0), PowerState::On);

    run_cmd(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let deadline = Instant::now() + STEP;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the agent ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}\n{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(text.contains("pm-0"), "{text}");
    assert!(!text.contains("\u{1b}["), "no ANSI colours off a terminal");
    assert!(
        !text.contains(IPMI_PASSWORD),
        "a password in the log:\n{text}"
    );
    assert!(!text.contains(&token_secret), "the token secret in the log");
    assert_eq!(lab.active_sessions(0), 1, "the agent closed its session");

    // Started again without a token: connects; revoked: exits non-zero,
    // saying why on one line.
    let mut child = agent_binary()
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(["--controller", &controller])
        .args(["--region", REGION, "--rack", RACK])
        .env_remove("IRONRACK_AGENT_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(env.wait_connected().await, id);
    env.hub.revoke(&id).unwrap();
    let deadline = Instant::now() + STEP;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "a revoked agent kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let errors: Vec<_> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("revoked"), "{text}");
    env.hub.shutdown().await;
}

#[test]
fn the_binary_explains_a_missing_token_and_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = agent_binary()
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args([
            "--controller",
            "127.0.0.1:9",
            "--region",
            "r",
            "--rack",
            "k",
        ])
        .env_remove("IRONRACK_AGENT_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("--token"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("ERROR")).count(), 1);

    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "controller = \"127.0.0.1:9\"\nrak = \"k\"\n").unwrap();
    let out = agent_binary()
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains(config.to_str().unwrap()), "{text}");
    assert!(text.contains("rak"), "{text}");

    // Flags fill in what the file lacks; a bad CIDR is refused by name.
    let out = agent_binary()
        .args([
            "--controller",
            "127.0.0.1:9",
            "--region",
            "r",
            "--rack",
            "k",
        ])
        .args(["--bmc-network", "198.51.100.3/16"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("198.51.0.0/16"), "{err}");
}

#[test]
fn config_errors_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "[power_sync]\nconcurency = 4\n").unwrap();
    let err = FileConfig::load(&path).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains(path.to_str().unwrap()), "{chain}");
    assert!(chain.contains("concurency"), "{chain}");

    std::fs::write(&path, "bmc_networks = [\"198.51.100.0/40\"]\n").unwrap();
    let err = FileConfig::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains(path.to_str().unwrap()), "{chain}");
    assert!(chain.contains("bmc_networks"), "{chain}");

    let missing = dir.path().join("nope.toml");
    let err = FileConfig::load(&missing).unwrap_err();
    assert!(err.to_string().contains("nope.toml"), "{err}");
}
