//! The TFTP server against real clients (atftp, tftp-hpa, curl) and a raw UDP client, on 127.0.0.0/8 only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ironrack_agent::tftp::packet::{self, Packet, Request, RequestKind};
use ironrack_agent::tftp::{TftpConfig, TftpServer};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;
use tokio::process::Command;

const INSTALL: &str = "apt-get install atftp tftp-hpa curl";
/// Longest any single client run may take; the 33 MiB lockstep download
/// takes a few seconds.
const CLIENT_DEADLINE: Duration = Duration::from_secs(180);

/// Fails (never skips) when a client program is missing.
fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed; these tests need real TFTP clients: {INSTALL}"
    );
}

/// Deterministic pseudo-random content, so failures reproduce.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    format!("{:x}", Sha256::digest(bytes))
}

struct Lab {
    server: Option<TftpServer>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn start(tweak: impl FnOnce(&mut TftpConfig)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let other = dir.path().join("root-other");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::write(other.join("secret"), b"must not be served").unwrap();
        std::os::unix::fs::symlink(&other, root.join("escape")).unwrap();
        let mut config = TftpConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            root,
            ..TftpConfig::default()
        };
        tweak(&mut config);
        let server = TftpServer::spawn(&config).expect("server starts");
        Lab {
            server: Some(server),
            dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    fn port(&self) -> String {
        self.addr().port().to_string()
    }

    fn put_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("root").join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    async fn shutdown(mut self) {
        self.server.take().unwrap().shutdown().await;
    }
}

async fn run(cmd: &mut Command) -> Output {
    let described = format!("{cmd:?}");
    let child = cmd.kill_on_drop(true).output();
    match tokio::time::timeout(CLIENT_DEADLINE, child).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("{described} did not run ({e}); install with: {INSTALL}"),
        Err(_) => panic!("{described} took longer than {CLIENT_DEADLINE:?}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn atftp(lab: &Lab, remote: &str, local: &Path, options: &[&str]) -> Output {
    require("atftp");
    let mut cmd = Command::new("atftp");
    cmd.arg("--get").arg("-r").arg(remote).arg("-l").arg(local);
    for o in options {
        cmd.arg("--option").arg(o);
    }
    run(cmd.arg("127.0.0.1").arg(lab.port())).await
}

async fn tftp_hpa(lab: &Lab, command: &str, remote: &str, local: &Path) -> Output {
    require("tftp");
    // -m binary: tftp-hpa's default mode is netascii, which we refuse.
    let c = format!("{command} {remote} {}", local.display());
    run(Command::new("tftp")
        .args(["-m", "binary", "127.0.0.1", &lab.port(), "-c"])
        .args(c.split(' ')))
    .await
}

async fn curl(lab: &Lab, remote: &str, local: &Path, extra: &[&str]) -> Output {
    require("curl");
    let url = format!("tftp://127.0.0.1:{}/{remote}", lab.port());
    run(Command::new("curl")
        .args(["-sS", "--path-as-is", "--max-time", "170", "-o"])
        .arg(local)
        .args(extra)
        .arg(url))
    .await
}

fn assert_same(source: &Path, got: &Path, what: &str, out: &Output) {
    assert!(got.exists(), "{what}: nothing downloaded\n{}", text(out));
    assert_eq!(
        sha256(got),
        sha256(source),
        "{what}: content differs\n{}",
        text(out)
    );
}

/// Sizes around block edges, and one that spans many windows.
fn sample_files(lab: &Lab) -> Vec<(String, PathBuf)> {
    [0usize, 1, 511, 512, 513, 1468 * 16, 65_464, 3_000_001]
        .into_iter()
        .map(|len| {
            let name = format!("f{len}");
            let path = lab.put_file(&name, &content(len, len as u64));
            (name, path)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_downloads_are_byte_identical() {
    let lab = Lab::start(|_| {});
    let files = sample_files(&lab);
    let option_sets: &[&[&str]] = &[
        &[],
        &["blksize 1468"],
        &["tsize 0"],
        &["blksize 8"],
        &["blksize 65464"],
        &["windowsize 16"],
        &["blksize 1468", "windowsize 16", "tsize 0"],
        &["blksize 1024", "windowsize 64", "timeout 2"],
    ];
    for (name, source) in &files {
        for (i, options) in option_sets.iter().enumerate() {
            if options.contains(&"blksize 8") && source.metadata().unwrap().len() > 100_000 {
                continue; // 375k round trips add nothing over the small files.
            }
            let local = lab.out(&format!("atftp-{name}-{i}"));
            let out = atftp(&lab, name, &local, options).await;
            assert!(
                out.status.success(),
                "atftp {name} {options:?}\n{}",
                text(&out)
            );
            assert_same(source, &local, &format!("atftp {name} {options:?}"), &out);
        }
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_downloads_are_byte_identical() {
    let lab = Lab::start(|_| {});
    for (name, source) in sample_files(&lab) {
        let local = lab.out(&format!("hpa-{name}"));
        let out = tftp_hpa(&lab, "get", &name, &local).await;
        // tftp-hpa exits 0 even on errors: the content is the check.
        assert_same(&source, &local, &format!("tftp-hpa {name}"), &out);
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_are_byte_identical() {
    let lab = Lab::start(|_| {});
    let option_sets: &[&[&str]] = &[
        &[],
        &["--tftp-blksize", "1468"],
        &["--tftp-blksize", "65464"],
        &["--tftp-no-options"],
    ];
    for (name, source) in sample_files(&lab) {
        for (i, extra) in option_sets.iter().enumerate() {
            let local = lab.out(&format!("curl-{name}-{i}"));
            let out = curl(&lab, &name, &local, extra).await;
            assert!(
                out.status.success(),
                "curl {name} {extra:?}\n{}",
                text(&out)
            );
            assert_same(&source, &local, &format!("curl {name} {extra:?}"), &out);
        }
    }
    lab.shutdown().await;
}

/// 33 MiB at 512-byte blocks is 67,585 blocks: the block number rolls over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_numbers_roll_over_with_every_client() {
    let lab = Lab::start(|_| {});
    let len = 33 * 1024 * 1024 + 100;
    assert!(len / 512 > 65_535);
    let source = lab.put_file("big", &content(len, 7));

    let local = lab.out("big-atftp");
    let out = atftp(&lab, "big", &local, &[]).await;
    assert!(out.status.success(), "atftp\n{}", text(&out));
    assert_same(&source, &local, "atftp big", &out);

    let local = lab.out("big-hpa");
    let out = tftp_hpa(&lab, "get", "big", &local).await;
    assert_same(&source, &local, "tftp-hpa big", &out);

    let local = lab.out("big-curl");
    let out = curl(&lab, "big", &local, &["--tftp-no-options"]).await;
    assert!(out.status.success(), "curl\n{}", text(&out));
    assert_same(&source, &local, "curl big", &out);

    let local = lab.out("big-atftp-window");
    let out = atftp(&lab, "big", &local, &["blksize 512", "windowsize 8"]).await;
    assert!(out.status.success(), "atftp windowed\n{}", text(&out));
    assert_same(&source, &local, "atftp windowed big", &out);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_the_right_errors() {
    let lab = Lab::start(|_| {});
    lab.put_file("sub/ok", b"fine");
    let scratch = lab.out("scratch");

    // Missing file: ERROR 1.
    let out = atftp(&lab, "missing", &scratch, &[]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(text(&out).contains("File not found"), "{}", text(&out));
    let out = tftp_hpa(&lab, "get", "missing", &scratch).await;
    assert!(text(&out).contains("Error code 1"), "{}", text(&out));
    let out = curl(&lab, "missing", &scratch, &[]).await;
    assert_eq!(
        out.status.code(),
        Some(68),
        "curl: TFTP file not found\n{}",
        text(&out)
    );

    // Escapes: ERROR 2 (access violation), nothing served.
    for name in [
        "../root-other/secret",
        "sub/../../root-other/secret",
        "escape/secret",
        "/etc/passwd",
    ] {
        let out = atftp(&lab, name, &scratch, &[]).await;
        assert_eq!(out.status.code(), Some(255), "{name}\n{}", text(&out));
        assert!(
            text(&out).contains("Access violation"),
            "{name}\n{}",
            text(&out)
        );
        let out = tftp_hpa(&lab, "get", name, &scratch).await;
        assert!(
            text(&out).contains("Error code 2"),
            "{name}\n{}",
            text(&out)
        );
    }
    let out = curl(&lab, "../root-other/secret", &scratch, &[]).await;
    assert_eq!(
        out.status.code(),
        Some(69),
        "curl: TFTP access violation\n{}",
        text(&out)
    );

    // Write requests: ERROR 2, and nothing lands in the root.
    let upload = lab.out("upload");
    std::fs::write(&upload, b"payload").unwrap();
    let out = run(Command::new("atftp")
        .args(["--put", "-r", "uploaded", "-l"])
        .arg(&upload)
        .args(["127.0.0.1", &lab.port()]))
    .await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(
        text(&out).contains("Write requests are refused"),
        "{}",
        text(&out)
    );
    let out = tftp_hpa(
        &lab,
        "put",
        &upload.display().to_string(),
        &PathBuf::from("uploaded"),
    )
    .await;
    assert!(text(&out).contains("Error code 2"), "{}", text(&out));
    assert!(!lab.dir.path().join("root/uploaded").exists());

    // The same, with the exact codes on the wire.
    for (kind, name, mode, code) in [
        (RequestKind::Read, "missing", "octet", 1),
        (RequestKind::Read, "../root-other/secret", "octet", 2),
        (RequestKind::Read, "escape/secret", "OCTET", 2),
        (RequestKind::Write, "x", "octet", 2),
        (RequestKind::Read, "sub/ok", "netascii", 4),
    ] {
        let raw = Raw::request(lab.addr(), Ipv4Addr::LOCALHOST, kind, name, mode, &[]).await;
        match raw.first() {
            Packet::Error { code: got, .. } => assert_eq!(got, code, "{kind} {name} {mode}"),
            other => panic!("{kind} {name}: expected ERROR {code}, got {other:?}"),
        }
    }
    lab.shutdown().await;
}

/// A hand-driven client: sends one request and keeps the socket.
struct Raw {
    sock: UdpSocket,
    first: Vec<u8>,
    from: SocketAddr,
}

impl Raw {
    async fn request(
        server: SocketAddr,
        from_ip: Ipv4Addr,
        kind: RequestKind,
        name: &str,
        mode: &str,
        options: &[(&str, &str)],
    ) -> Raw {
        let sock = UdpSocket::bind((from_ip, 0)).await.unwrap();
        let req = Request {
            kind,
            filename: name.to_owned(),
            mode: mode.to_owned(),
            options: options
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        };
        sock.send_to(&packet::encode_request(&req), server)
            .await
            .unwrap();
        let mut buf = vec![0u8; 70_000];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        buf.truncate(n);
        Raw {
            sock,
            first: buf,
            from,
        }
    }

    fn first(&self) -> Packet<'_> {
        packet::parse(&self.first).expect("a valid TFTP packet")
    }

    async fn send(&self, pkt: &[u8]) {
        self.sock.send_to(pkt, self.from).await.unwrap();
    }

    /// Whatever arrives within `wait`, if anything.
    async fn next(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 70_000];
        let (n, _) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

fn is_busy(p: &Packet<'_>) -> bool {
    matches!(p, Packet::Error { code: 0, message } if message.contains("busy"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_and_total_limits() {
    let lab = Lab::start(|c| {
        c.max_per_client = 2;
        c.max_transfers = 3;
    });
    lab.put_file("f", &content(100_000, 1));
    let held = |ip| Raw::request(lab.addr(), ip, RequestKind::Read, "f", "octet", &[]);
    let ip = |last| Ipv4Addr::new(127, 0, 0, last);

    // Two unacknowledged transfers from 127.0.0.1 fill its share.
    let a = held(ip(1)).await;
    let b = held(ip(1)).await;
    assert!(matches!(a.first(), Packet::Data { block: 1, .. }));
    assert!(matches!(b.first(), Packet::Data { block: 1, .. }));
    let scratch = lab.out("scratch");
    let out = atftp(&lab, "f", &scratch, &[]).await;
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(
        text(&out).contains("busy"),
        "per-client limit\n{}",
        text(&out)
    );

    // Another client still gets in, and fills the total.
    let c = held(ip(2)).await;
    assert!(matches!(c.first(), Packet::Data { block: 1, .. }));
    let d = held(ip(3)).await;
    assert!(is_busy(&d.first()), "total limit: {:?}", d.first());

    // Ending transfers frees their places at once.
    let abort = packet::encode_error(packet::ErrorCode::NotDefined, "done");
    a.send(&abort).await;
    c.send(&abort).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = atftp(&lab, "f", &scratch, &[]).await;
    assert!(out.status.success(), "after release\n{}", text(&out));
    let e = held(ip(3)).await;
    assert!(matches!(e.first(), Packet::Data { block: 1, .. }));
    drop(b);
    lab.shutdown().await;
}

/// UEFI's size probe: RRQ with tsize, OACK, ERROR 8. The server must answer
/// nothing more and free the place at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uefi_tsize_probe_ends_quietly() {
    let lab = Lab::start(|c| c.max_per_client = 1);
    lab.put_file("shim.efi", &content(1_234_567, 2));
    let probe = Raw::request(
        lab.addr(),
        Ipv4Addr::LOCALHOST,
        RequestKind::Read,
        "shim.efi",
        "octet",
        &[("tsize", "0"), ("blksize", "1468")],
    )
    .await;
    let Packet::Oack(options) = probe.first() else {
        panic!("expected an OACK, got {:?}", probe.first())
    };
    assert_eq!(
        options,
        vec![
            ("tsize".to_owned(), "1234567".to_owned()),
            ("blksize".to_owned(), "1468".to_owned())
        ]
    );
    probe
        .send(&packet::encode_error(
            packet::ErrorCode::OptionNegotiation,
            "User aborted the transfer",
        ))
        .await;
    // The slot (max_per_client = 1) is free again: a real download works.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let local = lab.out("shim");
    let out = atftp(&lab, "shim.efi", &local, &["tsize 0", "blksize 1468"]).await;
    assert!(out.status.success(), "{}", text(&out));
    // And the probe's transfer never sent anything after the ERROR, not
    // even a retransmitted OACK after the 1 s timeout.
    assert_eq!(probe.next(Duration::from_millis(1500)).await, None);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oack_holds_only_requested_options() {
    let lab = Lab::start(|c| c.max_windowsize = 8);
    lab.put_file("f", &content(10_000, 3));
    for (asked, expect) in [
        (vec![("BLKSIZE", "1024")], vec![("BLKSIZE", "1024")]),
        (vec![("windowsize", "100")], vec![("windowsize", "8")]),
        (
            vec![("tsize", "0"), ("foo", "bar")],
            vec![("tsize", "10000")],
        ),
        (vec![("timeout", "3")], vec![("timeout", "3")]),
    ] {
        let raw = Raw::request(
            lab.addr(),
            Ipv4Addr::LOCALHOST,
            RequestKind::Read,
            "f",
            "Octet",
            &asked,
        )
        .await;
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(raw.first(), Packet::Oack(expect), "asked {asked:?}");
        raw.send(&packet::encode_error(packet::ErrorCode::NotDefined, "bye"))
            .await;
    }
    // No options at all: DATA 1 straight away.
    let raw = Raw::request(
        lab.addr(),
        Ipv4Addr::LOCALHOST,
        RequestKind::Read,
        "f",
        "octet",
        &[],
    )
    .await;
    assert!(matches!(raw.first(), Packet::Data { block: 1, data } if data.len() == 512));
    lab.shutdown().await;
}

/// Bound to 0.0.0.0, a request to 127.0.0.2 is answered from 127.0.0.2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_leave_from_the_address_the_request_reached() {
    let lab = Lab::start(|c| c.listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    lab.put_file("f", b"hello");
    for last in [1u8, 2, 77] {
        let dest = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            lab.addr().port(),
        );
        let raw = Raw::request(
            dest,
            Ipv4Addr::LOCALHOST,
            RequestKind::Read,
            "f",
            "octet",
            &[],
        )
        .await;
        assert_eq!(raw.from.ip(), dest.ip(), "reply source");
        assert_ne!(
            raw.from.port(),
            dest.port(),
            "a new TID, not the listening port"
        );
        assert_eq!(
            raw.first(),
            Packet::Data {
                block: 1,
                data: b"hello"
            }
        );
        raw.send(&packet::encode_ack(1)).await;
    }
    lab.shutdown().await;
}

/// The client stops acknowledging: the server retransmits on its timer, a
/// duplicate ACK does not trigger an extra DATA, and the transfer ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmits_on_timer_and_ignores_duplicate_acks() {
    let lab = Lab::start(|c| {
        c.timeout_ms = 300;
        c.retries = 2;
    });
    lab.put_file("f", &content(2000, 4));
    let raw = Raw::request(
        lab.addr(),
        Ipv4Addr::LOCALHOST,
        RequestKind::Read,
        "f",
        "octet",
        &[],
    )
    .await;
    assert!(matches!(raw.first(), Packet::Data { block: 1, .. }));
    raw.send(&packet::encode_ack(1)).await;
    let d2 = raw.next(Duration::from_millis(200)).await.expect("DATA 2");
    assert!(matches!(
        packet::parse(&d2).unwrap(),
        Packet::Data { block: 2, .. }
    ));
    // Duplicate ACK 1: nothing is sent in answer.
    raw.send(&packet::encode_ack(1)).await;
    let got = raw.next(Duration::from_millis(150)).await;
    assert_eq!(got, None, "a duplicate ACK was answered");
    // Two retransmissions of DATA 2, then silence.
    for _ in 0..2 {
        let again = raw
            .next(Duration::from_millis(600))
            .await
            .expect("retransmission");
        assert_eq!(again, d2);
    }
    assert_eq!(raw.next(Duration::from_millis(900)).await, None);
    lab.shutdown().await;
}

/// Bound to [::], IPv6 requests are answered from the IPv6 address they
/// reached, and (on a dual-stack socket) IPv4 ones from their IPv4 address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_and_dual_stack_replies() {
    use std::net::Ipv6Addr;
    let lab = Lab::start(|c| c.listen = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)));
    lab.put_file("f", b"six");
    let port = lab.addr().port();

    let sock = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
    let rrq = packet::encode_request(&Request {
        kind: RequestKind::Read,
        filename: "f".into(),
        mode: "octet".into(),
        options: vec![],
    });
    sock.send_to(&rrq, (Ipv6Addr::LOCALHOST, port))
        .await
        .unwrap();
    let mut buf = [0u8; 600];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an IPv6 answer")
        .unwrap();
    assert_eq!(from.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(
        packet::parse(&buf[..n]).unwrap(),
        Packet::Data {
            block: 1,
            data: b"six"
        }
    );

    let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    if v6only.trim() == "0" {
        let dest = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 9), port));
        let raw = Raw::request(
            dest,
            Ipv4Addr::LOCALHOST,
            RequestKind::Read,
            "f",
            "octet",
            &[],
        )
        .await;
        assert_eq!(raw.from.ip(), dest.ip(), "v4-mapped reply source");
        assert_eq!(
            raw.first(),
            Packet::Data {
                block: 1,
                data: b"six"
            }
        );
    }
    lab.shutdown().await;
}

/// The resolver hook: generated per-client content, everything else from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resolver_serves_generated_files() {
    use ironrack_agent::tftp::path::RequestPath;
    use ironrack_agent::tftp::{BoxFuture, FileSource, ResolveError, Resolver, RootResolver};
    use std::sync::Arc;

    struct Scripts(RootResolver);
    impl Resolver for Scripts {
        fn resolve<'a>(
            &'a self,
            peer: SocketAddr,
            path: &'a RequestPath,
        ) -> BoxFuture<'a, Result<FileSource, ResolveError>> {
            if path.to_string() == "boot.ipxe" {
                let script = format!("#!ipxe\necho hello {}\n", peer.ip());
                return Box::pin(async move { Ok(FileSource::Memory(script.into_bytes().into())) });
            }
            self.0.resolve(peer, path)
        }
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("disk"), b"from disk").unwrap();
    let config = TftpConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ..TftpConfig::default()
    };
    let resolver = Arc::new(Scripts(RootResolver::new(dir.path()).unwrap()));
    let server = TftpServer::spawn_with_resolver(&config, resolver).unwrap();
    let lab = Lab {
        server: Some(server),
        dir,
    };
    std::fs::create_dir_all(lab.out("x").parent().unwrap()).unwrap();

    let local = lab.out("script");
    let out = curl(&lab, "boot.ipxe", &local, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(&local).unwrap(),
        b"#!ipxe\necho hello 127.0.0.1\n"
    );
    let local = lab.out("disk");
    let out = atftp(&lab, "disk", &local, &["tsize 0"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&local).unwrap(), b"from disk");
    lab.shutdown().await;
}

/// Shutdown stops the listener and every transfer: the port is free again
/// and a transfer in progress goes quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_everything() {
    let lab = Lab::start(|c| c.timeout_ms = 100);
    lab.put_file("f", &content(10_000, 5));
    let addr = lab.addr();
    let raw = Raw::request(
        addr,
        Ipv4Addr::LOCALHOST,
        RequestKind::Read,
        "f",
        "octet",
        &[],
    )
    .await;
    assert!(matches!(raw.first(), Packet::Data { block: 1, .. }));
    lab.shutdown().await;
    std::net::UdpSocket::bind(addr).expect("listening port released");
    // Drain anything sent before the shutdown, then expect silence where
    // retransmissions every 100 ms would otherwise arrive.
    while raw.next(Duration::from_millis(10)).await.is_some() {}
    assert_eq!(raw.next(Duration::from_millis(400)).await, None);
}
