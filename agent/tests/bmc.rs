//! BMC drivers against real peers: OpenIPMI's ipmi_sim (read back with
//! ipmitool) and sushy-tools' fake Redfish (read back with curl), started on
//! free loopback ports through deploy/lab scripts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ironrack_agent::bmc::sync::{PowerSync, PowerSyncConfig, SyncMachine};
use ironrack_agent::bmc::{
    BmcDriver, BmcEndpoint, BmcError, BmcPool, BmcTarget, BmcType, BootDevice, CipherSuite,
    DriverOptions, IpmiOptions, Password, PowerAction, PowerCommand, PowerState, PowerTimeouts,
};

const IPMI_USER: &str = "admin";
const IPMI_PASSWORD: &str = "ironrack";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails (never skips) when a peer program is missing.
fn require(program: &str) {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    assert!(
        found,
        "{program} is missing: run deploy/lab/install-peers.sh (as root) first"
    );
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn options() -> DriverOptions {
    DriverOptions {
        power: PowerTimeouts {
            hard: Duration::from_secs(30),
            soft: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
        },
        ..DriverOptions::default()
    }
}

/// N ipmi_sim BMCs in a temporary folder, stopped on drop.
struct IpmiLab {
    dir: tempfile::TempDir,
    base: u16,
}

impl IpmiLab {
    fn start(n: u16, env: &[(&str, &str)]) -> IpmiLab {
        require("ipmi_sim");
        require("ipmitool");
        let dir = tempfile::tempdir().unwrap();
        // Consecutive free ports: retry a few bases.
        let base = (0..20)
            .map(|_| free_port(true))
            .find(|&b| {
                b < u16::MAX - n
                    && (0..n).all(|i| std::net::UdpSocket::bind(("127.0.0.1", b + i)).is_ok())
            })
            .expect("free UDP ports");
        let mut cmd = Command::new(repo().join("deploy/lab/ipmi-sim.sh"));
        cmd.args([
            "start",
            dir.path().to_str().unwrap(),
            &n.to_string(),
            &base.to_string(),
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd);
        IpmiLab { dir, base }
    }

    fn port(&self, i: u16) -> u16 {
        self.base + i
    }

    fn bmc_dir(&self, i: u16) -> PathBuf {
        self.dir.path().join(format!("bmc{i}"))
    }

    fn events(&self, i: u16) -> String {
        std::fs::read_to_string(self.bmc_dir(i).join("events")).unwrap_or_default()
    }

    fn target(&self, i: u16) -> BmcTarget {
        ipmi_target(self.port(i), IPMI_PASSWORD, CipherSuite::Suite3)
    }

    fn ipmitool(&self, i: u16, args: &[&str]) -> String {
        let port = self.port(i).to_string();
        let mut cmd = Command::new("ipmitool");
        cmd.args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port]);
        cmd.args(["-U", IPMI_USER, "-P", IPMI_PASSWORD]);
        cmd.args(args);
        run(&mut cmd)
    }

    fn ipmitool_power(&self, i: u16) -> PowerState {
        let out = self.ipmitool(i, &["power", "status"]);
        match out.trim() {
            "Chassis Power is on" => PowerState::On,
            "Chassis Power is off" => PowerState::Off,
            other => panic!("ipmitool power status: {other:?}"),
        }
    }

    fn stop(&self) {
        run(Command::new(repo().join("deploy/lab/ipmi-sim.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()]));
    }
}

impl Drop for IpmiLab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("deploy/lab/ipmi-sim.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

fn ipmi_target(port: u16, password: &str, suite: CipherSuite) -> BmcTarget {
    BmcTarget::new(
        BmcEndpoint::Ipmi {
            host: "127.0.0.1".into(),
            port,
            cipher_suite: suite,
        },
        IPMI_USER,
        Password::new(password),
    )
}

#[tokio::test]
async fn ipmi_power_actions_match_ipmitool() {
    let lab = IpmiLab::start(1, &[]);
    let bmc = BmcDriver::new(lab.target(0), options()).unwrap();
    assert_eq!(bmc.bmc_type(), BmcType::Ipmi);

    assert_eq!(bmc.power_status().await.unwrap(), PowerState::Off);
    assert_eq!(lab.ipmitool_power(0), PowerState::Off);

    let on = bmc.power(PowerAction::On).await.unwrap();
    assert_eq!(on.commands, vec![PowerCommand::On]);
    assert_eq!(on.final_state, PowerState::On);
    assert_eq!(lab.ipmitool_power(0), PowerState::On);

    // Idempotent: on an on machine nothing reaches the chassis.
    let events_before = lab.events(0);
    let again = bmc.power(PowerAction::On).await.unwrap();
    assert!(again.commands.is_empty());
    assert_eq!(lab.events(0), events_before);

    let off = bmc.power(PowerAction::Off).await.unwrap();
    assert_eq!(off.commands, vec![PowerCommand::ForceOff]);
    assert_eq!(lab.ipmitool_power(0), PowerState::Off);
    let events_before = lab.events(0);
    let off_again = bmc.power(PowerAction::Off).await.unwrap();
    assert!(off_again.commands.is_empty());
    assert_eq!(lab.events(0), events_before, "no command on an off machine");

    // Off -> on -> off again: state follows every time.
    bmc.power(PowerAction::On).await.unwrap();
    assert_eq!(lab.ipmitool_power(0), PowerState::On);

    // Cycle on an on machine: the simulator sees off, then on.
    let mark = lab.events(0).len();
    let cycle = bmc.power(PowerAction::Cycle).await.unwrap();
    assert_eq!(cycle.commands, vec![PowerCommand::PowerCycle]);
    assert_eq!(lab.ipmitool_power(0), PowerState::On);
    let tail = lab.events(0)[mark..].to_string();
    let off_at = tail.find("power 0").expect("cycle powered off");
    let on_at = tail.find("power 1").expect("cycle powered on");
    assert!(off_at < on_at, "{tail}");

    // Reset on an on machine: a hard reset, still on.
    let mark = lab.events(0).len();
    let reset = bmc.power(PowerAction::Reset).await.unwrap();
    assert_eq!(reset.commands, vec![PowerCommand::ForceRestart]);
    assert!(lab.events(0)[mark..].contains("reset 1"));
    assert_eq!(lab.ipmitool_power(0), PowerState::On);

    // Soft off: the simulated OS shuts down about a second later.
    let soft = bmc.power(PowerAction::Soft).await.unwrap();
    assert_eq!(soft.commands, vec![PowerCommand::GracefulShutdown]);
    assert_eq!(soft.final_state, PowerState::Off);
    assert!(soft.elapsed >= Duration::from_millis(500), "{soft:?}");
    assert_eq!(lab.ipmitool_power(0), PowerState::Off);

    // Reset and cycle of an off machine power it on.
    let reset = bmc.power(PowerAction::Reset).await.unwrap();
    assert_eq!(reset.commands, vec![PowerCommand::On]);
    assert_eq!(lab.ipmitool_power(0), PowerState::On);
    bmc.power(PowerAction::Off).await.unwrap();
    let cycle = bmc.power(PowerAction::Cycle).await.unwrap();
    assert_eq!(cycle.commands, vec![PowerCommand::On]);
    assert_eq!(lab.ipmitool_power(0), PowerState::On);
    bmc.shutdown().await;
}

#[tokio::test]
async fn ipmi_soft_off_that_never_completes_is_reported() {
    let lab = IpmiLab::start(1, &[("IPMI_SIM_SOFT_DELAY", "never")]);
    let mut opts = options();
    opts.power.soft = Duration::from_secs(2);
    let bmc = BmcDriver::new(lab.target(0), opts).unwrap();
    bmc.power(PowerAction::On).await.unwrap();
    let started = Instant::now();
    let err = bmc.power(PowerAction::Soft).await.unwrap_err();
    match &err {
        BmcError::ActionDidNotComplete {
            action, observed, ..
        } => {
            assert_eq!(*action, PowerAction::Soft);
            assert_eq!(*observed, PowerState::On);
        }
        other => panic!("expected ActionDidNotComplete, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(!err.retryable());
    // The soft off was sent once, not retried.
    assert_eq!(lab.events(0).matches("shutdown 1").count(), 1);
    assert_eq!(lab.ipmitool_power(0), PowerState::On);
}

#[tokio::test]
async fn ipmi_boot_override_pxe_is_visible_to_ipmitool() {
    let lab = IpmiLab::start(1, &[]);
    let bmc = BmcDriver::new(lab.target(0), options()).unwrap();
    bmc.set_next_boot(BootDevice::Pxe).await.unwrap();
    let hook = std::fs::read_to_string(lab.bmc_dir(0).join("boot")).unwrap();
    assert_eq!(hook.trim(), "pxe");
    let param = lab.ipmitool(0, &["chassis", "bootparam", "get", "5"]);
    assert!(param.contains("Force PXE"), "{param}");
    assert!(param.contains("Options apply to only next boot"), "{param}");

    bmc.set_next_boot(BootDevice::Disk).await.unwrap();
    let param = lab.ipmitool(0, &["chassis", "bootparam", "get", "5"]);
    assert!(
        param.contains("Force Boot from default Hard-Drive"),
        "{param}"
    );
}

#[tokio::test]
async fn ipmi_identify_reads_device_id_and_fru() {
    let lab = IpmiLab::start(1, &[]);
    let bmc = BmcDriver::new(lab.target(0), options()).unwrap();
    let id = bmc.identify().await.unwrap();
    assert_eq!(id.bmc_type, BmcType::Ipmi);
    assert_eq!(id.serial_number.as_deref(), Some("LAB-SN-0000"));
    assert_eq!(id.manufacturer.as_deref(), Some("Ironrack Lab"));
    assert_eq!(id.product.as_deref(), Some("ironrack-lab"));
    assert_eq!(id.firmware_version.as_deref(), Some("2.15"));
    assert!(id.bmc_info.contains("IPMI 2.0"), "{}", id.bmc_info);
    // ipmitool reads the same FRU.
    assert!(
        lab.ipmitool(0, &["fru", "print", "0"])
            .contains("LAB-SN-0000")
    );
}

#[tokio::test]
async fn ipmi_wrong_password_or_user_is_auth_failed() {
    let lab = IpmiLab::start(1, &[]);
    let bad = BmcDriver::new(
        ipmi_target(lab.port(0), "not-the-password", CipherSuite::Suite3),
        options(),
    )
    .unwrap();
    let err = bad.power_status().await.unwrap_err();
    assert!(matches!(err, BmcError::AuthFailed { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-the-password"));
    assert!(err.to_string().contains(&lab.port(0).to_string()));

    let mut target = lab.target(0);
    target.username = "nobody".into();
    let err = BmcDriver::new(target, options())
        .unwrap()
        .power_status()
        .await
        .unwrap_err();
    assert!(matches!(err, BmcError::AuthFailed { .. }), "{err:?}");
}

#[tokio::test]
async fn ipmi_bmc_down_fails_fast() {
    require("ipmi_sim");
    let port = free_port(true);
    let bmc = BmcDriver::new(
        ipmi_target(port, IPMI_PASSWORD, CipherSuite::Suite3),
        options(),
    )
    .unwrap();
    let started = Instant::now();
    let err = bmc.power_status().await.unwrap_err();
    assert!(
        matches!(err, BmcError::Unreachable { .. } | BmcError::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn ipmi_silent_peer_times_out_after_retransmissions() {
    // A UDP socket that reads and never answers: a BMC that lost its mind.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let opts = DriverOptions {
        ipmi: IpmiOptions {
            attempt_timeout: Duration::from_millis(300),
            attempts: 3,
        },
        ..options()
    };
    let bmc = BmcDriver::new(ipmi_target(port, IPMI_PASSWORD, CipherSuite::Suite3), opts).unwrap();
    let started = Instant::now();
    let err = bmc.power_status().await.unwrap_err();
    assert!(matches!(err, BmcError::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Three pings went out: the setup was retransmitted.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let mut pings = 0;
    while silent.recv(&mut buf).is_ok() {
        pings += 1;
    }
    assert_eq!(pings, 3);
}

#[tokio::test]
async fn ipmi_cipher_suite_17_is_unsupported() {
    let lab = IpmiLab::start(1, &[]);
    let bmc = BmcDriver::new(
        ipmi_target(lab.port(0), IPMI_PASSWORD, CipherSuite::Suite17),
        options(),
    )
    .unwrap();
    let err = bmc.power_status().await.unwrap_err();
    match err {
        BmcError::UnsupportedCipherSuite { suite, .. } => assert_eq!(suite, 17),
        other => panic!("expected UnsupportedCipherSuite, got {other:?}"),
    }
}

fn active_sessions(lab: &IpmiLab) -> usize {
    // "active sessions : N" counts ipmitool's own session too.
    let out = lab.ipmitool(0, &["session", "info", "active"]);
    out.lines()
        .find_map(|l| l.strip_prefix("active sessions"))
        .and_then(|rest| rest.trim_start_matches([' ', ':']).trim().parse().ok())
        .unwrap_or_else(|| panic!("no session count in {out}"))
}

#[tokio::test]
async fn ipmi_session_is_reused_and_closed() {
    let lab = IpmiLab::start(1, &[]);
    let bmc = BmcDriver::new(lab.target(0), options()).unwrap();
    for _ in 0..20 {
        bmc.power_status().await.unwrap();
    }
    // Concurrent callers share the one session too.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let b = bmc.clone();
            tokio::spawn(async move { b.power_status().await })
        })
        .collect();
    for r in reads {
        r.await.unwrap().unwrap();
    }
    assert_eq!(active_sessions(&lab), 2, "ours and ipmitool's");
    bmc.shutdown().await;
    assert_eq!(active_sessions(&lab), 1, "ours is closed");
}

#[tokio::test]
async fn ipmi_session_survives_a_bmc_restart() {
    let lab = IpmiLab::start(1, &[]);
    let bmc = BmcDriver::new(lab.target(0), options()).unwrap();
    bmc.power(PowerAction::On).await.unwrap();
    lab.stop();
    let err = bmc.power_status().await.unwrap_err();
    assert!(err.retryable(), "{err:?}");
    // Same folder and port: the hook's power file keeps the state across
    // the restart, and the driver opens a new session by itself.
    run(Command::new(repo().join("deploy/lab/ipmi-sim.sh")).args([
        "start",
        lab.dir.path().to_str().unwrap(),
        "1",
        &lab.base.to_string(),
    ]));
    assert_eq!(bmc.power_status().await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn power_sync_reports_changes_and_outages() {
    let lab = IpmiLab::start(3, &[]);
    let pool = BmcPool::new(options());
    let machines: Vec<_> = (0..3)
        .map(|i| SyncMachine {
            id: format!("pm-{i}"),
            target: lab.target(i),
        })
        .collect();
    let config = PowerSyncConfig {
        interval: Duration::from_secs(3600),
        ..PowerSyncConfig::default()
    };
    let (sync, mut events) = PowerSync::spawn(pool.clone(), config, machines);
    let report = sync.sync_now().await.unwrap();
    assert_eq!((report.polled, report.ok), (3, 3));
    let mut first = Vec::new();
    while let Ok(e) = events.try_recv() {
        first.push(e);
    }
    first.sort_by(|a, b| a.machine_id.cmp(&b.machine_id));
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first
            .iter()
            .all(|e| e.ipmi_connected && e.power_state == Some(PowerState::Off))
    );

    // A change made elsewhere shows up as one event; nothing else changes.
    lab.ipmitool(1, &["power", "on"]);
    sync.sync_now().await.unwrap();
    let e = events.try_recv().unwrap();
    assert_eq!(e.machine_id, "pm-1");
    assert_eq!(e.power_state, Some(PowerState::On));
    assert!(events.try_recv().is_err());

    // The same driver serves actions: no second session.
    let driver = pool.driver(&lab.target(2)).unwrap();
    driver.power(PowerAction::On).await.unwrap();
    sync.sync_now().await.unwrap();
    let e = events.try_recv().unwrap();
    assert_eq!(
        (e.machine_id.as_str(), e.power_state),
        ("pm-2", Some(PowerState::On))
    );

    lab.stop();
    let report = sync.sync_now().await.unwrap();
    assert_eq!(report.failed, 3);
    let mut down = Vec::new();
    while let Ok(e) = events.try_recv() {
        down.push(e);
    }
    assert_eq!(down.len(), 3);
    assert!(down.iter().all(|e| !e.ipmi_connected && e.error.is_some()));
    sync.shutdown().await;
    assert!(sync.sync_now().await.is_err(), "stopped");
    pool.shutdown().await;
}

// ---------------------------------------------------------------- Redfish

/// One sushy-tools emulator (TLS, basic auth) in a temporary folder.
struct RedfishLab {
    dir: tempfile::TempDir,
    port: u16,
}

const RF_USER: &str = "admin";
const RF_PASSWORD: &str = "redfish-pw";

impl RedfishLab {
    fn start() -> RedfishLab {
        require(repo().join(".venv/bin/sushy-emulator").to_str().unwrap());
        require("openssl");
        require("curl");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(false);
        run(Command::new(repo().join("deploy/lab/redfish-sim.sh"))
            .args(["start", dir.path().to_str().unwrap(), &port.to_string()])
            .env("REDFISH_SIM_USER", RF_USER)
            .env("REDFISH_SIM_PASSWORD", RF_PASSWORD)
            .env("REDFISH_SIM_TLS", "1"));
        RedfishLab { dir, port }
    }

    fn target(&self, system: u32, password: &str, insecure: bool) -> BmcTarget {
        BmcTarget::new(
            BmcEndpoint::Redfish {
                base_url: format!("https://127.0.0.1:{}", self.port),
                disable_certificate_verification: insecure,
                system_id: Some(format!("00000000-0000-4000-8000-{system:012}")),
            },
            RF_USER,
            Password::new(password),
        )
    }

    fn system_json(&self, system: u32) -> serde_json::Value {
        let url = format!(
            "https://127.0.0.1:{}/redfish/v1/Systems/00000000-0000-4000-8000-{system:012}",
            self.port
        );
        let out = run(Command::new("curl").args([
            "-sk",
            "-u",
            &format!("{RF_USER}:{RF_PASSWORD}"),
            &url,
        ]));
        serde_json::from_str(&out).unwrap()
    }

    fn curl_power(&self, system: u32) -> PowerState {
        match self.system_json(system)["PowerState"].as_str() {
            Some("On") => PowerState::On,
            Some("Off") => PowerState::Off,
            other => panic!("PowerState {other:?}"),
        }
    }
}

impl Drop for RedfishLab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("deploy/lab/redfish-sim.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

#[tokio::test]
async fn redfish_power_on_off_and_idempotence() {
    let lab = RedfishLab::start();
    let bmc = BmcDriver::new(lab.target(0, RF_PASSWORD, true), options()).unwrap();
    assert_eq!(bmc.power_status().await.unwrap(), PowerState::Off);
    let off = bmc.power(PowerAction::Off).await.unwrap();
    assert!(off.commands.is_empty());

    let on = bmc.power(PowerAction::On).await.unwrap();
    assert_eq!(on.commands, vec![PowerCommand::On]);
    assert_eq!(lab.curl_power(0), PowerState::On);
    assert!(
        bmc.power(PowerAction::On)
            .await
            .unwrap()
            .commands
            .is_empty()
    );

    let soft = bmc.power(PowerAction::Soft).await.unwrap();
    assert_eq!(soft.commands, vec![PowerCommand::GracefulShutdown]);
    assert_eq!(lab.curl_power(0), PowerState::Off);
}

#[tokio::test]
async fn redfish_cycle_is_emulated_and_reset_is_native() {
    let lab = RedfishLab::start();
    let bmc = BmcDriver::new(lab.target(1, RF_PASSWORD, true), options()).unwrap();
    // Off machine: cycle powers on.
    let cycle = bmc.power(PowerAction::Cycle).await.unwrap();
    assert_eq!(cycle.commands, vec![PowerCommand::On]);
    assert_eq!(lab.curl_power(1), PowerState::On);
    // sushy-tools offers no PowerCycle: off, wait, on, wait.
    let cycle = bmc.power(PowerAction::Cycle).await.unwrap();
    assert_eq!(
        cycle.commands,
        vec![PowerCommand::ForceOff, PowerCommand::On]
    );
    assert_eq!(lab.curl_power(1), PowerState::On);
    let reset = bmc.power(PowerAction::Reset).await.unwrap();
    assert_eq!(reset.commands, vec![PowerCommand::ForceRestart]);
    assert_eq!(reset.final_state, PowerState::On);
    assert_eq!(lab.curl_power(1), PowerState::On);
}

#[tokio::test]
async fn redfish_boot_override_identify_and_errors() {
    let lab = RedfishLab::start();
    let bmc = BmcDriver::new(lab.target(2, RF_PASSWORD, true), options()).unwrap();
    bmc.set_next_boot(BootDevice::Disk).await.unwrap();
    assert_eq!(
        lab.system_json(2)["Boot"]["BootSourceOverrideTarget"],
        "Hdd"
    );
    bmc.set_next_boot(BootDevice::Pxe).await.unwrap();
    assert_eq!(
        lab.system_json(2)["Boot"]["BootSourceOverrideTarget"],
        "Pxe"
    );

    let id = bmc.identify().await.unwrap();
    assert_eq!(id.bmc_type, BmcType::Redfish);
    assert_eq!(id.manufacturer.as_deref(), Some("Sushy Emulator"));
    assert!(id.bmc_info.starts_with("Redfish 1."), "{}", id.bmc_info);

    let bad = BmcDriver::new(lab.target(2, "wrong", true), options()).unwrap();
    let err = bad.power_status().await.unwrap_err();
    assert!(matches!(err, BmcError::AuthFailed { .. }), "{err:?}");
    assert!(!err.chain().contains("wrong\""));

    // The self-signed certificate is refused unless verification is off.
    let strict = BmcDriver::new(lab.target(2, RF_PASSWORD, false), options()).unwrap();
    let err = strict.power_status().await.unwrap_err();
    assert!(matches!(err, BmcError::Protocol { .. }), "{err:?}");
    assert!(
        err.chain().to_lowercase().contains("certificate"),
        "{}",
        err.chain()
    );

    // Several systems and none named: the driver says so.
    let mut unnamed = lab.target(0, RF_PASSWORD, true);
    if let BmcEndpoint::Redfish { system_id, .. } = &mut unnamed.endpoint {
        *system_id = None;
    }
    let err = BmcDriver::new(unnamed, options())
        .unwrap()
        .power_status()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("system_id"), "{err}");
}

#[tokio::test]
async fn redfish_bmc_down_is_unreachable() {
    let port = free_port(false);
    let target = BmcTarget::new(
        BmcEndpoint::Redfish {
            base_url: format!("https://127.0.0.1:{port}"),
            disable_certificate_verification: true,
            system_id: None,
        },
        RF_USER,
        Password::new(RF_PASSWORD),
    );
    let started = Instant::now();
    let err = BmcDriver::new(target, options())
        .unwrap()
        .power_status()
        .await
        .unwrap_err();
    assert!(matches!(err, BmcError::Unreachable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
