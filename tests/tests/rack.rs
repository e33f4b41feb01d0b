//! The main job end to end: controller → QUIC tunnel → agent → ipmi_sim, checked with ipmitool.
//!
//! Every peer is real: the two ironrack binaries, OpenIPMI's `ipmi_sim` BMCs
//! started by `deploy/lab/ipmi-sim.sh`, and `ipmitool -I lanplus` reading
//! the simulator's state back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironrack_tests::{Api, Controller, assert_err, bin, free_udp_port};
use serde_json::Value;

const USER: &str = "admin";
const PASSWORD: &str = "ironrack";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn need(program: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: run deploy/lab/install-peers.sh"
    );
}

/// N simulated BMCs on 127.0.0.1, ports BASE..BASE+N.
struct Bmcs {
    dir: tempfile::TempDir,
    base: u16,
}

impl Bmcs {
    fn start(n: u16) -> Bmcs {
        Self::start_with(n, "1")
    }

    /// `soft_delay`: seconds a soft off takes on these BMCs (IPMI_SIM_SOFT_DELAY).
    fn start_with(n: u16, soft_delay: &str) -> Bmcs {
        need("ipmi_sim");
        need("ipmitool");
        let dir = tempfile::tempdir().unwrap();
        let base = free_udp_port().min(60000);
        let status = Command::new(repo().join("deploy/lab/ipmi-sim.sh"))
            .args([
                "start",
                dir.path().to_str().unwrap(),
                &n.to_string(),
                &base.to_string(),
            ])
            .env("IPMI_SIM_SOFT_DELAY", soft_delay)
            .status()
            .unwrap();
        assert!(status.success(), "ipmi-sim.sh start failed");
        Bmcs { dir, base }
    }

    fn addr(&self, i: u16) -> String {
        format!("127.0.0.1:{}", self.base + i)
    }

    /// What ipmitool says, straight at the simulator: "on" or "off".
    fn power(&self, i: u16) -> String {
        let out = Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
            .arg((self.base + i).to_string())
            .args(["-U", USER, "-P", PASSWORD, "power", "status"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("is on") {
            "on".into()
        } else if text.contains("is off") {
            "off".into()
        } else {
            panic!("ipmitool: {text} {}", String::from_utf8_lossy(&out.stderr))
        }
    }

    fn set_power(&self, i: u16, on: bool) {
        let ok = Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
            .arg((self.base + i).to_string())
            .args([
                "-U",
                USER,
                "-P",
                PASSWORD,
                "power",
                if on { "on" } else { "off" },
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Bmcs {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("deploy/lab/ipmi-sim.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

/// A running `ironrack-agent`.
struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl Agent {
    fn start(c: &Controller, token: &str, rack: &str, nets: &[&str]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            "[power_sync]\nenabled = true\ninterval_s = 1\n",
        )
        .unwrap();
        let mut args = vec![
            "--config".to_string(),
            dir.path().join("agent.toml").display().to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--controller".into(),
            c.tunnel.to_string(),
            "--region".into(),
            "r1".into(),
            "--rack".into(),
            rack.into(),
        ];
        for n in nets {
            args.push("--bmc-network".into());
            args.push(n.to_string());
        }
        let mut a = Agent {
            child: None,
            dir,
            args,
        };
        a.spawn(Some(token));
        a
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn spawn(&mut self, token: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(bin("ironrack-agent"));
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        self.child = Some(cmd.spawn().expect("cannot start ironrack-agent"));
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.log_text());
        }
    }
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn connected(api: &Api, rack: &str) -> bool {
    let v = api.ok("ListAgents", &[]);
    v["Infos"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["Rack"] == rack && a["Connected"] == true)
}

fn token(api: &Api) -> String {
    api.ok(
        "CreateAgentToken",
        &[("Region", "r1"), ("ExpiresIn", "600")],
    )["Token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn machine(api: &Api, addr: &str, password: &str) -> Value {
    api.ok(
        "CreatePMV2",
        &[
            ("Region", "r1"),
            ("IPMIIP", addr),
            ("IPMIUsername", USER),
            ("IPMIPassword", password),
        ],
    )
}

fn power(api: &Api, pmid: &str, action: &str) -> Value {
    api.call(
        "PowerControlPMV2",
        &[("Region", "r1"), ("PMID", pmid), ("PowerAction", action)],
    )
}

fn describe(api: &Api, pmid: &str) -> Value {
    api.ok("DescribePM", &[("Region", "r1"), ("PMIDs.0", pmid)])["Infos"][0].clone()
}

#[test]
fn power_actions_reach_the_bmc_through_the_tunnel() {
    let bmcs = Bmcs::start(2);
    let c = Controller::start();
    let api = c.admin();
    let _agent = Agent::start(&c, &token(&api), "rack-a", &["127.0.0.0/8"]);
    wait_until("the agent to connect", Duration::from_secs(30), || {
        connected(&api, "rack-a")
    });

    let created = machine(&api, &bmcs.addr(0), PASSWORD);
    let pmid = created["PMID"].as_str().unwrap().to_owned();
    assert_eq!(
        created["SN"], "LAB-SN-0000",
        "CreatePMV2 reads the SN from the BMC: {created}"
    );
    assert_eq!(describe(&api, &pmid)["RackState"], "online");
    assert_eq!(bmcs.power(0), "off");

    let v = power(&api, &pmid, "ON");
    assert_eq!(v["RetCode"], 0, "{v}");
    assert_eq!(bmcs.power(0), "on");
    let v = api.ok("GetPMPowerStatusV2", &[("Region", "r1"), ("PMID", &pmid)]);
    assert_eq!(v["PowerStatus"], "on");
    assert!(!v["LastChecked"].as_str().unwrap().is_empty());
    // Idempotent: on when on sends nothing.
    let v = api.ok("PowerONPM", &[("PMID", &pmid)]);
    assert!(v["Message"].as_str().unwrap().contains("already on"), "{v}");
    api.ok("PowerOFFPM", &[("PMID", &pmid)]);
    assert_eq!(bmcs.power(0), "off");
    api.ok("PowerCyclePM", &[("PMID", &pmid)]);
    assert_eq!(bmcs.power(0), "on", "cycle powers an off machine on");
    api.ok("PowerSoftPM", &[("PMID", &pmid)]);
    assert_eq!(bmcs.power(0), "off");
    api.ok("PowerResetPM", &[("PMID", &pmid)]);
    assert_eq!(bmcs.power(0), "on", "reset powers an off machine on");
    assert_eq!(describe(&api, &pmid)["PowerStatus"], "on");

    // The power sync notices a change made behind ironrack's back.
    bmcs.set_power(0, false);
    wait_until(
        "the power sync to report off",
        Duration::from_secs(30),
        || describe(&api, &pmid)["PowerStatus"] == "off",
    );

    // Tenants power their own machines only.
    let t = api.ok("CreateTenant", &[("CompanyName", "Acme")]);
    let company = t["CompanyID"].as_i64().unwrap().to_string();
    api.ok("UpperPM", &[("Region", "r1"), ("PMID", &pmid)]);
    api.ok(
        "AllocatePM",
        &[("Region", "r1"), ("PMID", &pmid), ("CompanyID", &company)],
    );
    let k = api.ok("CreateAPIKey", &[("CompanyID", &company)]);
    let tenant = Api::new(
        &api.endpoint,
        k["PublicKey"].as_str().unwrap(),
        k["PrivateKey"].as_str().unwrap(),
    );
    assert_eq!(power(&tenant, &pmid, "on")["RetCode"], 0);
    assert_eq!(bmcs.power(0), "on");
    let other = machine(&api, &bmcs.addr(1), PASSWORD)["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_err(&power(&tenant, &other, "on"), 1010, &other);
    // An install range may not overlap a BMC network of the region's racks.
    assert_err(
        &api.call(
            "SetPhysicsVPCSubnet",
            &[("Region", "r1"), ("Network", "127.9.0.0/24")],
        ),
        230,
        "overlaps BMC network 127.0.0.0/8 of rack rack-a",
    );
    api.ok(
        "SetPhysicsVPCSubnet",
        &[("Region", "r1"), ("Network", "198.51.100.0/24")],
    );
    assert_err(&power(&api, &pmid, "sideways"), 230, "[PowerAction]");

    // BMC checks through the agent that reaches the address.
    let v = api.ok(
        "TestPMIPMIV2",
        &[
            ("Region", "r1"),
            ("IPMIIP", &bmcs.addr(1)),
            ("IPMIUsername", USER),
            ("IPMIPassword", PASSWORD),
        ],
    );
    assert_eq!(v["Success"], true, "{v}");
    assert_eq!(v["SerialNumber"], "LAB-SN-0001");
    let v = api.ok(
        "TestPMIPMIV2",
        &[
            ("Region", "r1"),
            ("IPMIIP", &bmcs.addr(1)),
            ("IPMIUsername", USER),
            ("IPMIPassword", "wrong"),
        ],
    );
    assert_eq!(v["Success"], false);
    assert!(
        !v["Message"].as_str().unwrap().contains("wrong"),
        "the password must not echo: {v}"
    );
    let v = api.ok(
        "DetectBMCTypeV2",
        &[
            ("Region", "r1"),
            ("IPMIIP", &bmcs.addr(1)),
            ("IPMIUsername", USER),
            ("IPMIPassword", PASSWORD),
        ],
    );
    assert_eq!(v["BMCTypeName"], "ipmi", "{v}");
}

#[test]
fn failures_answer_at_once_with_their_own_retcode() {
    let bmcs = Bmcs::start(1);
    let c = Controller::start();
    let api = c.admin();

    // Registered before any agent exists: visibly unassigned.
    let early = machine(&api, &bmcs.addr(0), PASSWORD)["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = describe(&api, &early);
    assert_eq!(d["RackState"], "unassigned");
    assert_err(&power(&api, &early, "on"), 1040, "not assigned to a rack");

    let mut agent = Agent::start(&c, &token(&api), "rack-a", &["127.0.0.0/8"]);
    wait_until("the agent to connect", Duration::from_secs(30), || {
        connected(&api, "rack-a")
    });
    assert_eq!(
        describe(&api, &early)["RackState"],
        "online",
        "assigned once an agent covers it"
    );

    // A BMC nobody answers for.
    let down_port = free_udp_port();
    let down = machine(&api, &format!("127.0.0.1:{down_port}"), PASSWORD)["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let v = power(&api, &down, "on");
    assert!(
        [2001, 2002].contains(&v["RetCode"].as_u64().unwrap()),
        "a silent BMC is unreachable or timed out: {v}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let outside = machine(&api, "203.0.113.9", PASSWORD)["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_err(&power(&api, &outside, "on"), 1040, "203.0.113.9");

    // Wrong credentials: a machine with the right address but a bad password.
    api.ok("DeletePMV2", &[("Region", "r1"), ("PMIDs.0", &early)]);
    let bad = machine(&api, &bmcs.addr(0), "not-the-password")["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = power(&api, &bad, "on");
    assert_err(&v, 1050, "");
    assert!(!v["Message"].as_str().unwrap().contains("not-the-password"));

    // Agent gone: answered at once with 2000 (retryable), and DescribePM says so.
    agent.kill9();
    wait_until(
        "the controller to see the agent gone",
        Duration::from_secs(40),
        || !connected(&api, "rack-a"),
    );
    let started = Instant::now();
    assert_err(&power(&api, &bad, "on"), 2000, "offline");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "offline must not hang"
    );
    assert_eq!(describe(&api, &bad)["RackState"], "offline");

    // The agent restarts without a token (it is enrolled) and works again.
    agent.spawn(None);
    wait_until("the agent to reconnect", Duration::from_secs(30), || {
        connected(&api, "rack-a")
    });
    api.ok(
        "UpdatePMV2",
        &[("Region", "r1"), ("PMID", &bad), ("IPMIPassword", PASSWORD)],
    );
    api.ok(
        "PowerControlPMV2",
        &[("Region", "r1"), ("PMID", &bad), ("PowerAction", "on")],
    );
    assert_eq!(bmcs.power(0), "on");
}

#[test]
fn racks_survive_a_controller_restart_and_tokens_work_once() {
    let bmcs = Bmcs::start(1);
    let mut c = Controller::start();
    let api = c.admin();
    let t = token(&api);
    let _agent = Agent::start(&c, &t, "rack-a", &["127.0.0.0/8"]);
    wait_until("the agent to connect", Duration::from_secs(30), || {
        connected(&api, "rack-a")
    });
    let pmid = machine(&api, &bmcs.addr(0), PASSWORD)["PMID"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same token again: refused, and the second agent says why and exits.
    let mut replay = Agent::start(&c, &t, "rack-b", &["127.0.0.0/8"]);
    let code = replay.wait_exit(Duration::from_secs(30));
    assert!(
        matches!(code, Some(c) if c != 0),
        "a replayed token must fail: {code:?}"
    );
    assert!(
        replay.log_text().to_lowercase().contains("used"),
        "log: {}",
        replay.log_text()
    );

    // kill -9 the controller; the agent comes back by itself.
    c.restart();
    let api = c.admin();
    wait_until(
        "the agent to reconnect after the restart",
        Duration::from_secs(25),
        || connected(&api, "rack-a"),
    );
    let v = power(&api, &pmid, "on");
    assert_eq!(v["RetCode"], 0, "{v}");
    assert_eq!(bmcs.power(0), "on");

    // A revoked agent is cut off and its machines become offline-unassigned.
    let id = api.ok("ListAgents", &[])["Infos"][0]["AgentID"]
        .as_str()
        .unwrap()
        .to_owned();
    api.ok("RevokeAgent", &[("AgentID", &id)]);
    assert_err(&power(&api, &pmid, "off"), 1040, "");
    assert_err(
        &api.call("RevokeAgent", &[("AgentID", "agt-000000000000")]),
        1010,
        "agt-000000000000",
    );
}

/// sushy-tools' Redfish emulator over HTTPS with basic auth, one system.
struct Redfish {
    dir: tempfile::TempDir,
    port: u16,
}

impl Redfish {
    fn start() -> Redfish {
        let dir = tempfile::tempdir().unwrap();
        let port = ironrack_tests::free_port();
        let status = Command::new(repo().join("deploy/lab/redfish-sim.sh"))
            .args(["start", dir.path().to_str().unwrap(), &port.to_string()])
            .env("REDFISH_SIM_SYSTEMS", "1")
            .env("REDFISH_SIM_TLS", "1")
            .env("REDFISH_SIM_USER", USER)
            .env("REDFISH_SIM_PASSWORD", PASSWORD)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "redfish-sim.sh start failed: run deploy/lab/install-peers.sh"
        );
        Redfish { dir, port }
    }

    /// PowerState as the emulator itself reports it.
    fn power(&self) -> String {
        let out = Command::new("curl")
            .args(["-sk", "-u", &format!("{USER}:{PASSWORD}")])
            .arg(format!(
                "https://127.0.0.1:{}/redfish/v1/Systems/00000000-0000-4000-8000-000000000000",
                self.port
            ))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["PowerState"].as_str().unwrap_or_default().to_lowercase()
    }
}

impl Drop for Redfish {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("deploy/lab/redfish-sim.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

#[test]
fn redfish_power_through_the_controller() {
    let rf = Redfish::start();
    let c = Controller::start();
    let api = c.admin();
    let _agent = Agent::start(&c, &token(&api), "rack-a", &["127.0.0.0/8"]);
    wait_until("the agent to connect", Duration::from_secs(30), || {
        connected(&api, "rack-a")
    });
    let pmid = api.ok(
        "CreatePMV2",
        &[
            ("Region", "r1"),
            ("IPMIIP", &format!("127.0.0.1:{}", rf.port)),
            ("IPMIUsername", USER),
            ("IPMIPassword", PASSWORD),
            ("BMCTypeName", "redfish"),
        ],
    )["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(rf.power(), "off");
    let v = power(&api, &pmid, "on");
    assert_eq!(v["RetCode"], 0, "{v}");
    assert_eq!(
        rf.power(),
        "on",
        "the driver waits until the emulator reports the change"
    );
    let v = api.ok("GetPMPowerStatusV2", &[("Region", "r1"), ("PMID", &pmid)]);
    assert_eq!(v["PowerStatus"], "on");
    let v = power(&api, &pmid, "off");
    assert_eq!(v["RetCode"], 0, "{v}");
    assert_eq!(rf.power(), "off");
    // Wrong credentials are their own RetCode over Redfish too.
    api.ok(
        "UpdatePMV2",
        &[("Region", "r1"), ("PMID", &pmid), ("IPMIPassword", "nope")],
    );
    assert_err(&power(&api, &pmid, "on"), 1050, "");
}

#[test]
fn a_controller_killed_mid_request_loses_nothing_on_the_rack() {
    let bmcs = Bmcs::start_with(1, "4");
    let mut c = Controller::start();
    let api = c.admin();
    let _agent = Agent::start(&c, &token(&api), "rack-a", &["127.0.0.0/8"]);
    wait_until("the agent to connect", Duration::from_secs(30), || {
        connected(&api, "rack-a")
    });
    let pmid = machine(&api, &bmcs.addr(0), PASSWORD)["PMID"]
        .as_str()
        .unwrap()
        .to_owned();
    api.ok("PowerONPM", &[("PMID", &pmid)]);

    // A soft off takes 4 s on this BMC; the controller dies after 1 s.
    let caller = {
        let api = api.clone();
        let pmid = pmid.clone();
        std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                api.call("PowerSoftPM", &[("PMID", &pmid)])
            }))
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    c.kill9();
    assert!(
        caller.join().unwrap().is_err(),
        "the caller saw the controller die"
    );

    // The rack finished the soft off on its own; after the restart the
    // agent reconnects and its power sync brings the controller up to date.
    c.restart();
    let api = c.admin();
    wait_until("the BMC to be off", Duration::from_secs(20), || {
        bmcs.power(0) == "off"
    });
    wait_until("the agent to reconnect", Duration::from_secs(40), || {
        connected(&api, "rack-a")
    });
    wait_until(
        "the controller to learn the machine is off",
        Duration::from_secs(30),
        || describe(&api, &pmid)["PowerStatus"] == "off",
    );
    assert_eq!(power(&api, &pmid, "on")["RetCode"], 0);
    assert_eq!(bmcs.power(0), "on");
}
