//! Helpers for the end-to-end tests: start real binaries on free loopback ports and call them signed.
//!
//! The binaries are taken from `target/debug` (or `$IRONRACK_BIN_DIR`);
//! `deploy/test.sh` builds them before the tests run. A controller's log is
//! printed only when the test using it fails.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironrack_common::signature;
use serde_json::Value;

/// Where the built binaries are.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("IRONRACK_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (deploy/test.sh does)",
        path.display()
    );
    path
}

/// A UDP port nobody listens on right now (for the tunnel).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback UDP port")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback port")
}

pub fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A running `ironrack-controller` with its own data directory.
pub struct Controller {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    /// The UDP address agents dial; kept across restarts.
    pub tunnel: SocketAddr,
    pub log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
}

impl Controller {
    pub fn start() -> Controller {
        Self::start_with_env(&[])
    }

    pub fn start_with_env(env: &[(&str, &str)]) -> Controller {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut c = Controller {
            child: None,
            data_dir: tmp.path().join("data"),
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            tunnel: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
            log: tmp.path().join("controller.log"),
            _tmp: Some(tmp),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        c.spawn();
        c
    }

    /// Starts the process and waits until it says it serves. Another test
    /// may grab the same free port first; then the controller exits and we
    /// try again on a fresh port.
    fn spawn(&mut self) {
        for _ in 0..5 {
            if self.spawn_once() {
                return;
            }
            self.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            self.tunnel = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        }
        panic!("controller did not start; log:\n{}", self.log_text());
    }

    fn spawn_once(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(bin("ironrack-controller"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--tunnel-listen")
            .arg(self.tunnel.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot start ironrack-controller");
        let marker = format!("listen={}", self.addr);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self
                .log_text()
                .lines()
                .any(|l| l.contains("serving the action API") && l.contains(&marker))
            {
                self.child = Some(child);
                return wait_for_port(self.addr, Duration::from_secs(5));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// A client signing with the admin key from `admin-credentials.json`.
    pub fn admin(&self) -> Api {
        let text = std::fs::read_to_string(self.data_dir.join("admin-credentials.json"))
            .expect("admin-credentials.json");
        let v: Value = serde_json::from_str(&text).expect("credentials JSON");
        Api::new(
            &self.endpoint(),
            v["PublicKey"].as_str().unwrap(),
            v["PrivateKey"].as_str().unwrap(),
        )
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- controller log ---\n{}", self.log_text());
        }
    }
}

/// A signed API client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::blocking::Client,
    pub endpoint: String,
    pub public_key: String,
    pub private_key: String,
}

impl Api {
    pub fn new(endpoint: &str, public_key: &str, private_key: &str) -> Api {
        Api {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            endpoint: endpoint.to_owned(),
            public_key: public_key.to_owned(),
            private_key: private_key.to_owned(),
        }
    }

    /// Signs and posts a form, as UCloud SDKs do.
    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let mut flat: BTreeMap<String, Value> = params
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        flat.insert("Action".into(), action.into());
        flat.insert("PublicKey".into(), self.public_key.clone().into());
        let sig = signature::sign(&flat, &self.private_key);
        let mut form: Vec<(String, String)> = flat
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
            .collect();
        form.push(("Signature".into(), sig));
        let resp = self.http.post(&self.endpoint).form(&form).send().unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    }

    /// Signs and posts a JSON body (values flattened for the signature).
    pub fn call_json(&self, mut body: serde_json::Map<String, Value>) -> Value {
        body.insert("PublicKey".into(), self.public_key.clone().into());
        let flat: BTreeMap<String, Value> = body.clone().into_iter().collect();
        body.insert(
            "Signature".into(),
            signature::sign(&flat, &self.private_key).into(),
        );
        let resp = self.http.post(&self.endpoint).json(&body).send().unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    }

    /// Posts raw bytes with a content type, unsigned.
    pub fn raw(&self, content_type: &str, body: Vec<u8>) -> Value {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    }

    /// Calls and asserts success, returning the answer.
    pub fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let v = self.call(action, params);
        assert_eq!(v["RetCode"], 0, "{action} failed: {v}");
        v
    }
}

/// Asserts a RetCode and that the message mentions `needle`.
#[track_caller]
pub fn assert_err(v: &Value, code: u64, needle: &str) {
    assert_eq!(v["RetCode"].as_u64(), Some(code), "unexpected answer: {v}");
    let msg = v["Message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message {msg:?} does not mention {needle:?}"
    );
}
