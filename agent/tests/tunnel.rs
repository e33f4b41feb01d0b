//! Tunnel tests: a real hub and real agents over loopback QUIC, in one process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironrack_agent::tunnel::{
    self, EnrollError, LinkState, RequestHandler, RunError, Tunnel, TunnelConfig, identity,
};
use ironrack_common::tunnel::{
    AgentEvent, AgentHello, AgentId, AgentOpen, AgentRequest, AgentResponse, ControllerHello,
    EnrollRefusal, MAX_FRAME_LEN, PROTOCOL_VERSION, ResponseFrame, TunnelError, decode_payload,
    encode_frame,
};
use ironrack_controller::ca::ControllerCa;
use ironrack_controller::hub::{Hub, HubConfig, HubError, HubStore, MemoryHubStore};

const REGION: &str = "cn-test-1";
const RACK: &str = "rack-7";
const STEP: Duration = Duration::from_secs(10);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}

/// Answers Ping and Echo; an Echo of `b"slow"` takes 5 s.
struct TestHandler;

impl RequestHandler for TestHandler {
    async fn handle(&self, request: AgentRequest) -> Result<AgentResponse, TunnelError> {
        match request {
            AgentRequest::Ping => Ok(AgentResponse::Pong),
            AgentRequest::Echo(bytes) if bytes == b"slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(AgentResponse::Echo(bytes))
            }
            AgentRequest::Echo(bytes) => Ok(AgentResponse::Echo(bytes)),
            other => Err(TunnelError::Failed {
                message: format!("the test handler does not do {}", other.kind()),
            }),
        }
    }
}

struct Env {
    hub: Hub,
    store: Arc<MemoryHubStore>,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryHubStore::new());
        let hub = start_hub(
            &dir.path().join("controller"),
            "127.0.0.1:0".parse().unwrap(),
            &store,
        )
        .await;
        Env { hub, store, dir }
    }

    fn addr(&self) -> String {
        self.hub.local_addr().to_string()
    }

    fn agent_dir(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn token(&self) -> String {
        self.hub
            .create_token(REGION, Duration::from_secs(600))
            .unwrap()
            .to_token_string()
    }

    async fn enroll(&self, name: &str) -> AgentId {
        tunnel::enroll(
            &self.addr(),
            &self.token(),
            REGION,
            RACK,
            &self.agent_dir(name),
        )
        .await
        .unwrap()
    }

    fn config(&self, name: &str) -> TunnelConfig {
        let mut config = TunnelConfig::new(self.addr(), self.agent_dir(name), REGION, RACK);
        config.bmc_networks = vec!["198.51.0.0/16".into()];
        config
    }

    /// Enrolls an agent, starts its tunnel and waits until it is connected.
    async fn connected_agent(&self, name: &str) -> (AgentId, Tunnel) {
        let id = self.enroll(name).await;
        let tunnel = Tunnel::start(self.config(name), Arc::new(TestHandler)).unwrap();
        assert_eq!(wait_connected(&tunnel).await, id);
        (id, tunnel)
    }
}

async fn start_hub(data_dir: &Path, listen: SocketAddr, store: &Arc<MemoryHubStore>) -> Hub {
    let config = HubConfig {
        listen,
        server_names: vec!["127.0.0.1".into()],
        data_dir: data_dir.to_owned(),
    };
    // The old endpoint's socket is released by its driver task shortly
    // after shutdown; give a restart a moment to find the port free.
    let started = Instant::now();
    loop {
        let store: Arc<dyn HubStore> = store.clone();
        match Hub::start(config.clone(), store).await {
            Ok(hub) => return hub,
            Err(HubError::Bind { .. }) if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("hub start: {e:?}"),
        }
    }
}

async fn wait_connected(tunnel: &Tunnel) -> AgentId {
    let mut state = tunnel.state();
    let state = tokio::time::timeout(
        STEP,
        state.wait_for(|s| matches!(s, LinkState::Connected { .. })),
    )
    .await
    .expect("tunnel connects in time")
    .expect("link task alive")
    .clone();
    match state {
        LinkState::Connected { agent_id } => agent_id,
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test]
async fn enroll_then_call_ping_and_echo_and_send_events() {
    let env = Env::new().await;
    let (id, tunnel) = env.connected_agent("a1").await;

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.agent_dir("a1").join(identity::AGENT_KEY_FILE))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let pong = env.hub.call(&id, AgentRequest::Ping, STEP).await.unwrap();
    assert_eq!(pong, AgentResponse::Pong);
    let echo = env
        .hub
        .call(&id, AgentRequest::Echo(b"hi there".to_vec()), STEP)
        .await
        .unwrap();
    assert_eq!(echo, AgentResponse::Echo(b"hi there".to_vec()));
    // A frame close to the limit still goes through.
    let big = vec![0xab; MAX_FRAME_LEN - 64];
    let echo = env
        .hub
        .call(&id, AgentRequest::Echo(big.clone()), STEP)
        .await
        .unwrap();
    assert_eq!(echo, AgentResponse::Echo(big));

    let agents = env.hub.agents().unwrap();
    assert_eq!(agents.len(), 1);
    let info = &agents[0];
    assert_eq!(info.id, id);
    assert!(info.connected && !info.revoked);
    assert_eq!((info.region.as_str(), info.rack.as_str()), (REGION, RACK));
    assert_eq!(info.bmc_networks, vec!["198.51.0.0/16".to_owned()]);
    assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(info.remote_addr.unwrap().ip().is_loopback());
    assert!(info.last_seen_unix_s.is_some());

    let mut events = env.hub.take_events().unwrap();
    assert!(env.hub.take_events().is_none());
    let event = AgentEvent::Notice {
        message: "bmc 198.51.0.9 unreachable".into(),
    };
    tunnel.send_event(17, event.clone()).await.unwrap();
    let got = tokio::time::timeout(STEP, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.agent_id, got.seq, got.event), (id, 17, event));

    tunnel.shutdown().await.unwrap();
    env.hub.shutdown().await;
}

#[tokio::test]
async fn a_token_works_once() {
    let env = Env::new().await;
    let token = env.token();
    tunnel::enroll(&env.addr(), &token, REGION, RACK, &env.agent_dir("a1"))
        .await
        .unwrap();
    let err = tunnel::enroll(&env.addr(), &token, REGION, RACK, &env.agent_dir("a2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnrollError::Refused(EnrollRefusal::TokenUsed { .. })),
        "{err:?}"
    );
    assert!(identity::exists(&env.agent_dir("a2")).is_none());
    // Enrolling the same data dir twice is refused locally.
    let err = tunnel::enroll(
        &env.addr(),
        &env.token(),
        REGION,
        RACK,
        &env.agent_dir("a1"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, EnrollError::AlreadyEnrolled { .. }),
        "{err:?}"
    );
    env.hub.shutdown().await;
}

#[tokio::test]
async fn expired_forged_unknown_and_wrong_region_tokens_are_refused() {
    let env = Env::new().await;
    let expired = env
        .hub
        .create_token(REGION, Duration::ZERO)
        .unwrap()
        .to_token_string();
    let err = tunnel::enroll(&env.addr(), &expired, REGION, RACK, &env.agent_dir("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EnrollError::Refused(EnrollRefusal::TokenExpired { .. })
        ),
        "{err:?}"
    );

    let genuine = env.token();
    let (head, secret) = genuine.rsplit_once('.').unwrap();
    let other_secret: String = secret
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let forged = format!("{head}.{other_secret}");
    let err = tunnel::enroll(&env.addr(), &forged, REGION, RACK, &env.agent_dir("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnrollError::Refused(EnrollRefusal::WrongSecret { .. })),
        "{err:?}"
    );

    let err = tunnel::enroll(
        &env.addr(),
        &genuine,
        "other-region",
        RACK,
        &env.agent_dir("x"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            EnrollError::Refused(EnrollRefusal::RegionMismatch { .. })
        ),
        "{err:?}"
    );

    let fp = env.hub.ca().fingerprint();
    let unknown = format!("irt1.{fp}.0123456789abcdef.0123456789abcdef0123456789abcdef");
    let err = tunnel::enroll(&env.addr(), &unknown, REGION, RACK, &env.agent_dir("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EnrollError::Refused(EnrollRefusal::UnknownToken { .. })
        ),
        "{err:?}"
    );
    assert!(identity::exists(&env.agent_dir("x")).is_none());

    // The failed attempts did not burn the genuine token.
    tunnel::enroll(&env.addr(), &genuine, REGION, RACK, &env.agent_dir("x"))
        .await
        .unwrap();
    env.hub.shutdown().await;
}

#[tokio::test]
async fn an_agent_refuses_to_enroll_with_a_controller_the_token_does_not_pin() {
    let env = Env::new().await;
    let fake_store = Arc::new(MemoryHubStore::new());
    let fake = start_hub(
        &env.dir.path().join("fake-controller"),
        "127.0.0.1:0".parse().unwrap(),
        &fake_store,
    )
    .await;
    // A token from the real controller, presented to the fake one.
    let token = env.token();
    let err = tunnel::enroll(
        &fake.local_addr().to_string(),
        &token,
        REGION,
        RACK,
        &env.agent_dir("a1"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, EnrollError::WrongController { .. }),
        "{err:?}"
    );
    assert!(identity::exists(&env.agent_dir("a1")).is_none());
    // The fake controller never saw the enrollment.
    assert!(fake_store.list_agents().unwrap().is_empty());
    fake.shutdown().await;
    env.hub.shutdown().await;
}

/// Writes an agent identity whose certificate comes from `issuer`, trusting
/// `trusted_ca` (DER) as the controller CA.
fn write_identity(dir: &Path, issuer: &ControllerCa, trusted_ca: &[u8]) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = issuer
        .issue_agent_cert(&AgentId::generate(), key.public_key_raw())
        .unwrap();
    identity::store(dir, &key.serialize_pem(), &cert, trusted_ca).unwrap();
}

/// Whether a connection error is a TLS alert (QUIC codes 0x100–0x1ff).
fn is_tls_alert(error: &quinn::ConnectionError) -> bool {
    let code = match error {
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        quinn::ConnectionError::TransportError(e) => e.code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_fails_the_handshake() {
    let env = Env::new().await;
    let foreign = ControllerCa::load_or_create(&env.dir.path().join("foreign-ca")).unwrap();
    let dir = env.agent_dir("intruder");
    write_identity(&dir, &foreign, env.hub.ca().cert_der());

    let identity = identity::load(&dir).unwrap();
    let client_config = tunnel::tls::tunnel_config(&identity).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(client_config, env.hub.local_addr(), "127.0.0.1")
        .unwrap()
        .await;
    // TLS 1.3: the client finishes its side before the server has checked
    // the client certificate, so the refusal may show on first use.
    let error = match conn {
        Err(e) => e,
        Ok(conn) => {
            let (mut send, mut recv) = match conn.open_bi().await {
                Ok(s) => s,
                Err(e) => panic!("stream refused without a TLS alert? {e:?}"),
            };
            let hello = encode_frame(&AgentOpen::Hello(AgentHello {
                protocol_version: PROTOCOL_VERSION,
                agent_version: "x".into(),
                region: REGION.into(),
                rack: RACK.into(),
                bmc_networks: vec![],
            }))
            .unwrap();
            let _ = send.write_all(&hello).await;
            let _ = send.finish();
            let read = recv.read_to_end(1 << 16).await;
            assert!(read.is_err(), "the hub answered a foreign certificate");
            conn.closed().await
        }
    };
    assert!(is_tls_alert(&error), "not a TLS refusal: {error:?}");
    assert!(env.hub.agents().unwrap().is_empty());

    // Through the tunnel client the same identity never gets connected and
    // is not told "unknown agent" (which would be a hello refusal).
    let tunnel = Tunnel::start(env.config("intruder"), Arc::new(TestHandler)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*tunnel.state().borrow(), LinkState::Connecting);
    tunnel.shutdown().await.unwrap();
    env.hub.shutdown().await;
}

#[tokio::test]
async fn a_revoked_agent_is_disconnected_and_refused() {
    let env = Env::new().await;
    let (id, tunnel) = env.connected_agent("a1").await;
    env.hub.call(&id, AgentRequest::Ping, STEP).await.unwrap();

    env.hub.revoke(&id).unwrap();
    let end = tokio::time::timeout(STEP, tunnel.join()).await.unwrap();
    assert!(matches!(end, Err(RunError::Revoked)), "{end:?}");
    assert!(!env.hub.is_connected(&id));
    let err = env
        .hub
        .call(&id, AgentRequest::Ping, STEP)
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::AgentOffline { .. }), "{err:?}");
    let info = &env.hub.agents().unwrap()[0];
    assert!(info.revoked && !info.connected);

    // Starting again with the same certificate is refused at the hello.
    let tunnel = Tunnel::start(env.config("a1"), Arc::new(TestHandler)).unwrap();
    let end = tokio::time::timeout(STEP, tunnel.join()).await.unwrap();
    assert!(matches!(end, Err(RunError::Revoked)), "{end:?}");
    assert!(!env.hub.is_connected(&id));
    env.hub.shutdown().await;
}

#[tokio::test]
async fn a_call_to_an_offline_agent_fails_at_once() {
    let env = Env::new().await;
    let id = env.enroll("a1").await;
    let started = Instant::now();
    let err = env
        .hub
        .call(&id, AgentRequest::Ping, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::AgentOffline { .. }), "{err:?}");
    assert!(err.is_retryable());
    let err = env
        .hub
        .call(
            &AgentId::generate(),
            AgentRequest::Ping,
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::AgentOffline { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    env.hub.shutdown().await;
}

#[tokio::test]
async fn a_call_past_its_deadline_times_out_and_the_link_survives() {
    let env = Env::new().await;
    let (id, tunnel) = env.connected_agent("a1").await;
    let started = Instant::now();
    let err = env
        .hub
        .call(
            &id,
            AgentRequest::Echo(b"slow".to_vec()),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    // Either side may notice first: the hub's own timer, or the agent
    // cutting its handler off at the same deadline and saying so.
    assert!(
        matches!(
            err,
            HubError::Timeout { .. }
                | HubError::Agent {
                    source: TunnelError::DeadlineExceeded,
                    ..
                }
        ),
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    let pong = env.hub.call(&id, AgentRequest::Ping, STEP).await.unwrap();
    assert_eq!(pong, AgentResponse::Pong);
    tunnel.shutdown().await.unwrap();
    env.hub.shutdown().await;
}

#[tokio::test]
async fn oversize_frames_are_refused_on_both_sides() {
    let env = Env::new().await;
    let (id, tunnel) = env.connected_agent("a1").await;

    // The hub refuses to send one.
    let err = env
        .hub
        .call(&id, AgentRequest::Echo(vec![0; MAX_FRAME_LEN]), STEP)
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::Encode { .. }), "{err:?}");

    // The hub refuses to receive one: an agent stream announcing 4 GiB is
    // reset from its length alone, and the connection lives on.
    let dir = env.agent_dir("raw");
    let raw_id = env.enroll("raw").await;
    let identity = identity::load(&dir).unwrap();
    let client_config = tunnel::tls::tunnel_config(&identity).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(client_config, env.hub.local_addr(), "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = AgentOpen::Hello(AgentHello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "raw".into(),
        region: REGION.into(),
        rack: RACK.into(),
        bmc_networks: vec![],
    });
    send.write_all(&encode_frame(&hello).unwrap())
        .await
        .unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1 << 16).await.unwrap();
    let reply: ControllerHello = decode_payload(&reply[4..]).unwrap();
    assert_eq!(reply.result, Ok(()));
    assert_eq!(reply.agent_id, Some(raw_id.clone()));

    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    send.write_all(&[0; 64]).await.unwrap();
    let read = tokio::time::timeout(STEP, recv.read_to_end(1 << 16))
        .await
        .unwrap();
    assert!(
        matches!(
            read,
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))
        ),
        "{read:?}"
    );
    assert!(env.hub.is_connected(&raw_id));
    assert_eq!(
        env.hub.call(&id, AgentRequest::Ping, STEP).await.unwrap(),
        AgentResponse::Pong
    );
    conn.close(0u32.into(), b"done");
    tunnel.shutdown().await.unwrap();
    env.hub.shutdown().await;
}

#[tokio::test]
async fn agents_reconnect_by_themselves_after_a_controller_restart() {
    let env = Env::new().await;
    let (id, tunnel) = env.connected_agent("a1").await;
    let addr = env.hub.local_addr();
    let data_dir = env.dir.path().join("controller");

    env.hub.shutdown().await;
    drop(env.hub);
    let mut state = tunnel.state();
    tokio::time::timeout(STEP, state.wait_for(|s| *s == LinkState::Connecting))
        .await
        .unwrap()
        .unwrap();

    let started = Instant::now();
    let hub = start_hub(&data_dir, addr, &env.store).await;
    assert_eq!(wait_connected(&tunnel).await, id);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(8),
        "reconnect took {elapsed:?}"
    );
    assert_eq!(
        hub.call(&id, AgentRequest::Ping, STEP).await.unwrap(),
        AgentResponse::Pong
    );
    tunnel.shutdown().await.unwrap();
    hub.shutdown().await;
}

/// A stand-in for a newer controller: sends a request kind this agent does
/// not know, on a hand-made frame, and expects `Unsupported` back while the
/// agent keeps serving.
#[tokio::test]
async fn an_unknown_request_kind_from_a_newer_controller_is_answered_unsupported() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let ca = ControllerCa::load_or_create(&dir.path().join("ca")).unwrap();
    let agent_dir = dir.path().join("agent");
    write_identity(&agent_dir, &ca, ca.cert_der());

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_id = ca.issue_server_identity(&["127.0.0.1".into()]).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_id.chain, server_id.key)
        .unwrap();
    tls.alpn_protocols = vec![ironrack_common::tunnel::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();

    let config = TunnelConfig::new(
        server.local_addr().unwrap().to_string(),
        &agent_dir,
        REGION,
        RACK,
    );
    let tunnel = Tunnel::start(config, Arc::new(TestHandler)).unwrap();

    let conn = server.accept().await.unwrap().await.unwrap();
    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
    let hello = recv.read_to_end(1 << 16).await.unwrap();
    assert!(matches!(
        decode_payload::<AgentOpen>(&hello[4..]).unwrap(),
        AgentOpen::Hello(_)
    ));
    let welcome = ControllerHello {
        protocol_version: PROTOCOL_VERSION,
        agent_id: Some(AgentId::generate()),
        result: Ok(()),
    };
    send.write_all(&encode_frame(&welcome).unwrap())
        .await
        .unwrap();
    send.finish().unwrap();
    wait_connected(&tunnel).await;

    let deadline = u64::MAX / 2;
    let future_variant = AgentRequest::VARIANT_COUNT + 3;
    let mut payload = postcard::to_allocvec(&(9u64, deadline, future_variant)).unwrap();
    payload.extend([0xde, 0xad, 0xbe, 0xef]);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame).await.unwrap();
    send.finish().unwrap();
    let answer = tokio::time::timeout(STEP, recv.read_to_end(1 << 16))
        .await
        .unwrap()
        .unwrap();
    let answer: ResponseFrame = decode_payload(&answer[4..]).unwrap();
    assert_eq!(answer.id, 9);
    assert_eq!(
        answer.body,
        Err(TunnelError::Unsupported {
            kind: "request".into(),
            variant: future_variant,
        })
    );

    // The agent still serves known requests on the same connection.
    let ping = ironrack_common::tunnel::RequestFrame {
        id: 10,
        deadline_unix_ms: deadline,
        body: AgentRequest::Ping,
    };
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode_frame(&ping).unwrap()).await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1 << 16).await.unwrap();
    let answer: ResponseFrame = decode_payload(&answer[4..]).unwrap();
    assert_eq!(answer.body, Ok(AgentResponse::Pong));

    tunnel.shutdown().await.unwrap();
    server.close(0u32.into(), b"done");
}
