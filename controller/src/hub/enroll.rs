//! Enrollment: a connection without a client certificate trades a one-time token for one.

use ironrack_common::tunnel::{
    AgentId, AgentOpen, ControllerHello, ENROLL_EXPORTER_LABEL, ENROLL_EXPORTER_LEN, EnrollRefusal,
    EnrollRequest, EnrollResponse, Enrolled, Fingerprint, HelloRefusal, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION, close_code, enroll_proof_message, token_secret_hash,
};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

use super::session::{error_chain, first_frame};
use super::store::{AgentRecord, ConsumeError, TokenRecord};
use super::{FIRST_FRAME_TIMEOUT, Inner, now_unix_s, wire};

// TODO-security(#3): enrollment connections are not rate-limited per source
// address; token ids and secrets are random enough that guessing is
// hopeless, but a flood of handshakes costs CPU.

/// Serves the one enrollment a connection without a client certificate may
/// make, then closes it.
pub(super) async fn enrollment_connection(inner: &Inner, conn: quinn::Connection) {
    let (mut send, open) = match first_frame(&conn).await {
        Ok(first) => first,
        Err(reason) => {
            tracing::debug!(%reason, "enrollment connection dropped");
            conn.close(close_code::PROTOCOL.into(), reason.as_bytes());
            return;
        }
    };
    let request = match open {
        AgentOpen::Enroll(request) => request,
        AgentOpen::Hello(_) => {
            let refusal = HelloRefusal::ClientCertificateRequired;
            tracing::warn!(reason = %refusal, "agent refused");
            let reply = ControllerHello {
                protocol_version: PROTOCOL_VERSION,
                agent_id: None,
                result: Err(refusal),
            };
            if wire::write_frame(&mut send, &reply).await.is_ok() {
                let _ = tokio::time::timeout(FIRST_FRAME_TIMEOUT, send.stopped()).await;
            }
            conn.close(close_code::REFUSED.into(), b"client certificate required");
            return;
        }
        AgentOpen::Event(_) => {
            conn.close(close_code::PROTOCOL.into(), b"enroll first");
            return;
        }
    };
    let span = tracing::debug_span!(
        "enroll",
        token_id = %request.token_id,
        region = %request.region,
        rack = %request.rack
    );
    let result = span.in_scope(|| enroll(inner, &conn, &request));
    match &result {
        Ok(enrolled) => span.in_scope(|| {
            tracing::debug!(agent_id = %enrolled.agent_id, "agent enrolled");
        }),
        Err(refusal) => span.in_scope(|| tracing::warn!(reason = %refusal, "enrollment refused")),
    }
    let response = EnrollResponse {
        protocol_version: PROTOCOL_VERSION,
        result,
    };
    if let Err(error) = wire::write_frame(&mut send, &response).await {
        tracing::debug!(error = %error_chain(&error), "enrollment reply failed");
        return;
    }
    // The agent closes the connection once it has read the reply; closing
    // here first could discard the reply still in flight.
    let _ = tokio::time::timeout(FIRST_FRAME_TIMEOUT, conn.closed()).await;
    conn.close(close_code::ENROLLED.into(), b"enrollment done");
}

/// Compares two hashes without an early exit, so timing reveals nothing.
fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a token against a request. The secret is checked first, so that
/// without it nobody learns whether a token id is used or expired.
fn validate_token(
    token: &TokenRecord,
    request: &EnrollRequest,
    now_unix_s: u64,
) -> Result<(), EnrollRefusal> {
    let token_id = token.id.clone();
    if !hashes_equal(
        &token.secret_sha256,
        &token_secret_hash(request.token_secret.expose()),
    ) {
        return Err(EnrollRefusal::WrongSecret { token_id });
    }
    if token.used_unix_s.is_some() {
        return Err(EnrollRefusal::TokenUsed { token_id });
    }
    if now_unix_s >= token.expires_unix_s {
        return Err(EnrollRefusal::TokenExpired { token_id });
    }
    if token.region != request.region {
        return Err(EnrollRefusal::RegionMismatch {
            token_region: token.region.clone(),
            requested: request.region.clone(),
        });
    }
    Ok(())
}

/// Verifies the agent's proof that it holds the private key of the public
/// key it wants certified, bound to this TLS session.
fn verify_proof(conn: &quinn::Connection, request: &EnrollRequest) -> Result<(), EnrollRefusal> {
    if request.public_key.len() != 65 || request.public_key[0] != 0x04 {
        return Err(EnrollRefusal::BadPublicKey);
    }
    let mut binding = [0u8; ENROLL_EXPORTER_LEN];
    conn.export_keying_material(&mut binding, ENROLL_EXPORTER_LABEL, b"")
        .map_err(|_| EnrollRefusal::Internal {
            message: "TLS exporter unavailable".into(),
        })?;
    let message = enroll_proof_message(&request.token_id, &request.public_key, &binding);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &request.public_key)
        .verify(&message, &request.proof)
        .map_err(|_| EnrollRefusal::BadProof)
}

fn enroll(
    inner: &Inner,
    conn: &quinn::Connection,
    request: &EnrollRequest,
) -> Result<Enrolled, EnrollRefusal> {
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&request.protocol_version) {
        return Err(EnrollRefusal::UnsupportedVersion {
            agent: request.protocol_version,
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
        });
    }
    verify_proof(conn, request)?;
    let internal = |what: &str, e: &dyn std::error::Error| {
        tracing::error!(error = %error_chain(e), "enrollment failed: {what}");
        EnrollRefusal::Internal {
            message: format!("{what} failed"),
        }
    };
    let agent_id = AgentId::generate();
    // Issue before consuming: a failure here leaves the token usable.
    let cert = inner
        .ca
        .issue_agent_cert(&agent_id, &request.public_key)
        .map_err(|e| internal("certificate issuance", &e))?;
    let now = now_unix_s();
    inner
        .store
        .consume_token(&request.token_id, now, &agent_id, &|token| {
            validate_token(token, request, now)
        })
        .map_err(|e| match e {
            ConsumeError::Refused(refusal) => refusal,
            ConsumeError::Store(e) => internal("token store", &e),
        })?;
    inner
        .store
        .upsert_agent(AgentRecord {
            id: agent_id.clone(),
            region: request.region.clone(),
            rack: request.rack.clone(),
            bmc_networks: Vec::new(),
            agent_version: request.agent_version.clone(),
            cert_fingerprint: Fingerprint::of_der(&cert),
            enrolled_unix_s: now,
            last_seen_unix_s: None,
            revoked: false,
        })
        .map_err(|e| internal("agent store", &e))?;
    Ok(Enrolled {
        agent_id,
        client_cert_der: cert.to_vec(),
        ca_cert_der: inner.ca.cert_der().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use ironrack_common::tunnel::SecretString;

    use super::*;

    fn request(secret: &str, region: &str) -> EnrollRequest {
        EnrollRequest {
            protocol_version: PROTOCOL_VERSION,
            token_id: "t".into(),
            token_secret: SecretString::new(secret),
            region: region.into(),
            rack: "rack-1".into(),
            agent_version: "0".into(),
            public_key: vec![],
            proof: vec![],
        }
    }

    fn token(expires: u64, used: bool) -> TokenRecord {
        TokenRecord {
            id: "t".into(),
            secret_sha256: token_secret_hash("s3cret"),
            region: "r1".into(),
            created_unix_s: 0,
            expires_unix_s: expires,
            used_unix_s: used.then_some(1),
            used_by: None,
        }
    }

    #[test]
    fn tokens_are_checked_secret_first() {
        let ok = request("s3cret", "r1");
        assert_eq!(validate_token(&token(100, false), &ok, 50), Ok(()));
        assert!(matches!(
            validate_token(&token(100, false), &ok, 100),
            Err(EnrollRefusal::TokenExpired { .. })
        ));
        assert!(matches!(
            validate_token(&token(100, true), &ok, 50),
            Err(EnrollRefusal::TokenUsed { .. })
        ));
        assert!(matches!(
            validate_token(&token(100, false), &request("s3cret", "r2"), 50),
            Err(EnrollRefusal::RegionMismatch { .. })
        ));
        // A wrong secret learns nothing about the token's state.
        assert!(matches!(
            validate_token(&token(10, true), &request("guess", "r1"), 50),
            Err(EnrollRefusal::WrongSecret { .. })
        ));
    }
}
