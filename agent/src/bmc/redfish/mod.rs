//! Redfish driver: reqwest (rustls with ring) and our own small models; one
//! request at a time per BMC, HTTP basic auth on each request.

mod model;

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tracing::{debug, trace};

pub use model::RedfishPowerState;

use self::model::{BootPatch, Collection, ComputerSystem, ResetAction, ResetRequest, ServiceRoot};
use super::error::BmcError;
use super::types::{
    BmcEndpoint, BmcIdentity, BmcTarget, BmcType, BootDevice, Password, PowerCommand, PowerState,
};

/// Timeouts of the Redfish driver's HTTP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedfishOptions {
    /// TCP and TLS setup. Default 5 s.
    pub connect_timeout: Duration,
    /// One whole request. Default 15 s: some BMCs take seconds per GET.
    pub request_timeout: Duration,
}

impl Default for RedfishOptions {
    fn default() -> Self {
        RedfishOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

pub struct RedfishDriver {
    client: reqwest::Client,
    base: Url,
    address: String,
    username: String,
    password: Password,
    system_id: Option<String>,
    opts: RedfishOptions,
    /// Held for each operation, so a BMC sees one client request at a time;
    /// caches the ComputerSystem's path once discovered.
    system_path: Mutex<Option<String>>,
}

impl RedfishDriver {
    pub fn new(target: BmcTarget, opts: RedfishOptions) -> Result<Self, BmcError> {
        let address = target.address();
        let BmcEndpoint::Redfish {
            base_url,
            disable_certificate_verification,
            system_id,
        } = target.endpoint
        else {
            return Err(BmcError::protocol(&address, "not a Redfish endpoint"));
        };
        let base = Url::parse(&base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .ok_or_else(|| {
                BmcError::protocol(&address, "the base URL must be https://host[:port]")
            })?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .danger_accept_invalid_certs(disable_certificate_verification)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            // Redirects could carry the basic-auth header elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BmcError::Protocol {
                address: address.clone(),
                detail: "cannot build the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(RedfishDriver {
            client,
            base,
            address,
            username: target.username,
            password: target.password,
            system_id,
            opts,
            system_path: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> Result<Url, BmcError> {
        self.base
            .join(path)
            .map_err(|_| BmcError::protocol(&self.address, format!("bad resource path {path:?}")))
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, BmcError> {
        let url = self.url(path)?;
        let mut req = self
            .client
            .request(method.clone(), url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(path, e))?;
        let status = resp.status();
        trace!(bmc = %self.address, %method, path, status = status.as_u16(), "redfish");
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let detail = redfish_message(&text).unwrap_or_else(|| status.to_string());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => BmcError::AuthFailed {
                address: self.address.clone(),
                username: self.username.clone(),
                detail: format!("{method} {path}: {detail}"),
            },
            StatusCode::NOT_IMPLEMENTED | StatusCode::METHOD_NOT_ALLOWED => BmcError::Unsupported {
                address: self.address.clone(),
                op: format!("{method} {path} ({detail})"),
            },
            _ => BmcError::protocol(
                &self.address,
                format!("{method} {path}: {status}: {detail}"),
            ),
        })
    }

    fn transport_error(&self, path: &str, e: reqwest::Error) -> BmcError {
        if e.is_timeout() {
            return BmcError::Timeout {
                address: self.address.clone(),
                operation: "HTTP request",
                waited: self.opts.request_timeout,
            };
        }
        // A TLS failure is a connect error too; say so, it needs a different fix.
        let chain = error_chain(&e);
        if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
            return BmcError::Protocol {
                address: self.address.clone(),
                detail: format!("TLS setup failed on {path}"),
                source: Some(Box::new(e)),
            };
        }
        if e.is_connect() {
            return BmcError::Unreachable {
                address: self.address.clone(),
                detail: format!("cannot connect for {path}"),
                source: Some(Box::new(e)),
            };
        }
        BmcError::Protocol {
            address: self.address.clone(),
            detail: format!("HTTP request for {path} failed"),
            source: Some(Box::new(e)),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BmcError> {
        let resp = self.request(Method::GET, path, None).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| BmcError::Protocol {
            address: self.address.clone(),
            detail: format!("GET {path}: unexpected JSON"),
            source: Some(Box::new(e)),
        })
    }

    /// The ComputerSystem's path: the configured id, or the only member of
    /// the Systems collection.
    async fn system(&self, cached: &mut Option<String>) -> Result<String, BmcError> {
        if let Some(p) = cached {
            return Ok(p.clone());
        }
        let root: ServiceRoot = self.get("/redfish/v1").await?;
        let systems = root
            .systems
            .map(|l| l.odata_id)
            .ok_or_else(|| BmcError::Unsupported {
                address: self.address.clone(),
                op: "ComputerSystem (the service root has no Systems)".into(),
            })?;
        let collection: Collection = self.get(&systems).await?;
        let members: Vec<String> = collection.members.into_iter().map(|l| l.odata_id).collect();
        let path = match &self.system_id {
            Some(id) => members
                .into_iter()
                .find(|m| m.trim_end_matches('/').rsplit('/').next() == Some(id.as_str()))
                .ok_or_else(|| {
                    BmcError::protocol(&self.address, format!("no system {id:?} in {systems}"))
                })?,
            None if members.len() == 1 => members.into_iter().next().unwrap_or_default(),
            None => {
                return Err(BmcError::protocol(
                    &self.address,
                    format!(
                        "{} systems in {systems}: the target must name one (system_id)",
                        members.len()
                    ),
                ));
            }
        };
        debug!(bmc = %self.address, system = %path, "redfish system found");
        *cached = Some(path.clone());
        Ok(path)
    }

    async fn computer_system(&self) -> Result<(String, ComputerSystem), BmcError> {
        let mut cached = self.system_path.lock().await;
        let path = self.system(&mut cached).await?;
        let system = self.get(&path).await?;
        Ok((path, system))
    }

    fn power_of(&self, system: &ComputerSystem) -> Result<PowerState, BmcError> {
        system
            .power_state
            .and_then(RedfishPowerState::to_power_state)
            .ok_or_else(|| {
                BmcError::protocol(
                    &self.address,
                    format!("PowerState {:?}", system.power_state),
                )
            })
    }

    pub async fn power_status(&self) -> Result<PowerState, BmcError> {
        let (_, system) = self.computer_system().await?;
        self.power_of(&system)
    }

    /// The power commands this BMC's `ResetType@Redfish.AllowableValues` offers.
    pub async fn offered(&self) -> Result<Vec<PowerCommand>, BmcError> {
        let (_, system) = self.computer_system().await?;
        Ok(ResetAction::offered(system.actions.reset.as_ref())
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    pub async fn send_power(&self, command: PowerCommand) -> Result<(), BmcError> {
        let (path, system) = self.computer_system().await?;
        let reset = system.actions.reset.as_ref();
        let offered = ResetAction::offered(reset);
        let Some((_, reset_type)) = offered.iter().find(|(c, _)| *c == command) else {
            return Err(BmcError::Unsupported {
                address: self.address.clone(),
                op: format!("ResetType for {command:?}"),
            });
        };
        let target = reset
            .and_then(|r| r.target.clone())
            .unwrap_or_else(|| format!("{path}/Actions/ComputerSystem.Reset"));
        let body = serde_json::to_value(ResetRequest { reset_type }).unwrap_or_default();
        let _guard = self.system_path.lock().await;
        self.request(Method::POST, &target, Some(body)).await?;
        debug!(bmc = %self.address, reset_type, "redfish reset sent");
        Ok(())
    }

    pub async fn set_next_boot(&self, device: BootDevice) -> Result<(), BmcError> {
        let (path, system) = self.computer_system().await?;
        let wanted = model::boot_target(device);
        if let Some(allowed) = system
            .boot
            .as_ref()
            .and_then(|b| b.allowed_targets.as_ref())
            && !allowed.iter().any(|t| t == wanted)
        {
            return Err(BmcError::Unsupported {
                address: self.address.clone(),
                op: format!("boot override to {wanted}"),
            });
        }
        let body = serde_json::to_value(BootPatch::once(device)).unwrap_or_default();
        {
            let _guard = self.system_path.lock().await;
            self.request(Method::PATCH, &path, Some(body)).await?;
        }
        // Read back: a 2xx is not proof the BMC took the override.
        let (_, after) = self.computer_system().await?;
        let boot = after.boot.as_ref();
        let target = boot.and_then(|b| b.boot_source_override_target.as_deref());
        if target != Some(wanted) {
            return Err(BmcError::protocol(
                &self.address,
                format!("boot override to {wanted} not applied (target now {target:?})"),
            ));
        }
        // TODO-correctness(#3): sushy-tools (and some BMCs) keep
        // `Continuous` after a `Once` PATCH; the override then persists
        // until changed. Reported in the log, not as an error.
        let enabled = boot.and_then(|b| b.boot_source_override_enabled.as_deref());
        debug!(bmc = %self.address, target = wanted, enabled = ?enabled, "redfish boot override set");
        Ok(())
    }

    pub async fn identify(&self) -> Result<BmcIdentity, BmcError> {
        let root: ServiceRoot = {
            let _guard = self.system_path.lock().await;
            self.get("/redfish/v1").await?
        };
        let (_, system) = self.computer_system().await?;
        let version = root.redfish_version.unwrap_or_else(|| "unknown".into());
        let mut info = format!("Redfish {version}");
        if let Some(bios) = &system.bios_version {
            info.push_str(&format!(", BIOS {bios}"));
        }
        Ok(BmcIdentity {
            bmc_type: BmcType::Redfish,
            serial_number: system.serial_number.filter(|s| !s.trim().is_empty()),
            manufacturer: system.manufacturer,
            product: system.model,
            // TODO-correctness(#3): the BMC firmware version lives on the
            // Manager resource (Managers/<id>.FirmwareVersion); not read yet.
            firmware_version: None,
            bmc_info: info,
        })
    }
}

/// The first message of a Redfish error body (`error.@Message.ExtendedInfo`
/// or `error.message`), if the body is one.
fn redfish_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let err = v.get("error")?;
    err.get("@Message.ExtendedInfo")
        .and_then(|i| i.get(0))
        .and_then(|i| i.get("Message"))
        .or_else(|| err.get("message"))
        .and_then(|m| m.as_str())
        .map(|s| s.chars().take(200).collect())
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redfish_error_messages_are_extracted() {
        let body = r#"{"error": {"code": "Base.1.0.GeneralError", "message": "Oops",
            "@Message.ExtendedInfo": [{"Message": "Power state Nmi is not supported"}]}}"#;
        assert_eq!(
            redfish_message(body).as_deref(),
            Some("Power state Nmi is not supported")
        );
        assert_eq!(redfish_message("<html>").as_deref(), None);
    }

    #[test]
    fn base_url_must_be_http_or_https() {
        let target = |url: &str| {
            BmcTarget::new(
                BmcEndpoint::Redfish {
                    base_url: url.into(),
                    disable_certificate_verification: false,
                    system_id: None,
                },
                "admin",
                Password::new("x"),
            )
        };
        assert!(RedfishDriver::new(target("ftp://bmc"), RedfishOptions::default()).is_err());
        assert!(RedfishDriver::new(target("https://bmc:8443"), RedfishOptions::default()).is_ok());
    }
}
