//! `ironrack`: the operator CLI — signs and calls any action, with friendly commands for common ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ironrack_common::signature;
use serde::Deserialize;
use serde_json::Value;

/// Call the ironrack action API.
///
/// Credentials come from --credentials, $IRONRACK_CREDENTIALS, or
/// ./admin-credentials.json (the file the controller writes on first start).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// JSON file with PublicKey, PrivateKey and Endpoint.
    #[arg(long, env = "IRONRACK_CREDENTIALS", global = true)]
    credentials: Option<PathBuf>,
    /// Overrides the Endpoint from the credentials file.
    #[arg(long, env = "IRONRACK_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// Region for the friendly commands.
    #[arg(long, env = "IRONRACK_REGION", global = true)]
    region: Option<String>,
    /// PEM CA certificate to trust for an HTTPS endpoint.
    #[arg(long, env = "IRONRACK_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Call any action: `ironrack call ListPMV2 Region=r1 PMIDs.0=pm-... Limit=10`.
    /// Prints the JSON answer; exits 1 when RetCode is not 0.
    Call {
        action: String,
        /// Parameters as Name=Value; dotted names for lists and objects.
        params: Vec<String>,
    },
    /// Machines.
    #[command(subcommand)]
    Pm(PmCmd),
    /// Tenants (admin).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// API keys (admin).
    #[command(subcommand)]
    Key(KeyCmd),
    /// Rack agents (admin).
    #[command(subcommand)]
    Agent(AgentCmd),
}

#[derive(Subcommand, Debug)]
enum AgentCmd {
    /// A one-time enrollment token for an agent of --region; prints the token.
    Token {
        /// Seconds the token stays valid (60 to 604800).
        #[arg(long, default_value_t = 3600)]
        expires_in: u32,
    },
    /// Enrolled agents as a table.
    List,
    /// Revoke an agent: its tunnel closes and it can never connect again.
    Revoke { agent_id: String },
}

#[derive(Subcommand, Debug)]
enum PmCmd {
    /// List machines as a table.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        keyword: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// Show one machine in full (JSON).
    Show { pmid: String },
    /// Register a machine by its BMC.
    Create {
        #[arg(long)]
        ipmi_ip: String,
        #[arg(long)]
        ipmi_user: Option<String>,
        /// Prefer --ipmi-password-env: command lines are visible to other users.
        #[arg(long)]
        ipmi_password: Option<String>,
        /// Name of an environment variable holding the BMC password.
        #[arg(long)]
        ipmi_password_env: Option<String>,
        #[arg(long)]
        bmc_type: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// Key=Value, repeatable.
        #[arg(long)]
        tag: Vec<String>,
        /// Allocate to this tenant at once.
        #[arg(long)]
        company: Option<i64>,
    },
    /// Delete machines (they must be out of tenants' hands).
    Delete { pmids: Vec<String> },
    /// Put a registered machine on the shelf (UpperPM).
    Upper { pmid: String },
    /// Give a machine to a tenant.
    Allocate {
        pmid: String,
        #[arg(long)]
        company: i64,
        #[arg(long)]
        project: Option<String>,
    },
    /// Take a machine back from its tenant.
    Recycle {
        pmid: String,
        #[arg(long)]
        company: i64,
    },
    /// Power a machine: on, off, soft, reset or cycle.
    Power { pmid: String, action: String },
    /// Read a machine's power state from its BMC now.
    Status { pmid: String },
}

#[derive(Subcommand, Debug)]
enum TenantCmd {
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        company: Option<i64>,
    },
    List,
    Delete {
        company: i64,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// A tenant key (--company) or an admin key (--admin); prints the private key once.
    Create {
        #[arg(long)]
        company: Option<i64>,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        description: Option<String>,
    },
    List,
    Delete {
        public_key: String,
    },
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(rename = "PublicKey")]
    public_key: String,
    #[serde(rename = "PrivateKey")]
    private_key: String,
    #[serde(rename = "Endpoint", default)]
    endpoint: Option<String>,
}

struct Client {
    http: reqwest::blocking::Client,
    endpoint: String,
    creds: Credentials,
}

impl Client {
    fn new(cli: &Cli) -> anyhow::Result<Client> {
        let path = cli
            .credentials
            .clone()
            .unwrap_or_else(|| PathBuf::from("admin-credentials.json"));
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read credentials {}; pass --credentials or set IRONRACK_CREDENTIALS",
                path.display()
            )
        })?;
        let creds: Credentials = serde_json::from_str(&text)
            .with_context(|| format!("credentials {} are not valid JSON", path.display()))?;
        let endpoint = cli
            .endpoint
            .clone()
            .or_else(|| creds.endpoint.clone())
            .context("no endpoint: pass --endpoint or put Endpoint in the credentials file")?;
        let mut builder =
            reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(ca) = &cli.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", ca.display()))?,
            );
        }
        Ok(Client {
            http: builder.build().context("cannot build the HTTP client")?,
            endpoint,
            creds,
        })
    }

    fn call(&self, action: &str, params: Vec<(String, String)>) -> anyhow::Result<Value> {
        let mut flat: BTreeMap<String, Value> = params
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        flat.insert("Action".into(), Value::String(action.into()));
        flat.insert(
            "PublicKey".into(),
            Value::String(self.creds.public_key.clone()),
        );
        let sig = signature::sign(&flat, &self.creds.private_key);
        let mut form: Vec<(String, String)> = flat
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect();
        form.push(("Signature".into(), sig));
        let resp = self
            .http
            .post(&self.endpoint)
            .form(&form)
            .send()
            .with_context(|| format!("cannot reach {}", self.endpoint))?;
        let status = resp.status();
        let body = resp.text().context("cannot read the answer")?;
        serde_json::from_str(&body)
            .with_context(|| format!("answer is not JSON (HTTP {status}): {body}"))
    }
}

fn pairs(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("parameter {a:?} is not Name=Value"))
        })
        .collect()
}

fn ret_code(v: &Value) -> i64 {
    v.get("RetCode").and_then(Value::as_i64).unwrap_or(-1)
}

fn fail_if_error(v: &Value) -> anyhow::Result<()> {
    if ret_code(v) != 0 {
        bail!(
            "RetCode {}: {}",
            ret_code(v),
            v.get("Message").and_then(Value::as_str).unwrap_or("")
        );
    }
    Ok(())
}

fn region(cli: &Cli) -> anyhow::Result<String> {
    cli.region
        .clone()
        .context("no region: pass --region or set IRONRACK_REGION")
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON prints"));
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn print_machines(v: &Value) {
    let rows = v
        .get("Infos")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    println!(
        "{:<16} {:<12} {:<9} {:<20} {:<22} {:<16} {:<8}",
        "PMID", "STATUS", "COMPANY", "NAME", "IPMIIP", "SN", "POWER"
    );
    for m in &rows {
        println!(
            "{:<16} {:<12} {:<9} {:<20} {:<22} {:<16} {:<8}",
            s(m, "PMID"),
            s(m, "Status"),
            m.get("CompanyID").and_then(Value::as_i64).unwrap_or(0),
            s(m, "Name"),
            s(m, "IPMIIP"),
            s(m, "SN"),
            s(m, "PowerStatus"),
        );
    }
    println!(
        "{} shown, {} in all",
        rows.len(),
        v.get("TotalCount").and_then(Value::as_u64).unwrap_or(0)
    );
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let client = Client::new(cli)?;
    let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    match &cli.command {
        Cmd::Call { action, params } => {
            let v = client.call(action, pairs(params)?)?;
            print_json(&v);
            if ret_code(&v) != 0 {
                std::process::exit(1);
            }
        }
        Cmd::Pm(cmd) => {
            let r = region(cli)?;
            match cmd {
                PmCmd::List {
                    status,
                    keyword,
                    tag,
                    limit,
                    offset,
                } => {
                    let mut ps = vec![
                        p("Region", &r),
                        p("Limit", &limit.to_string()),
                        p("Offset", &offset.to_string()),
                    ];
                    for (k, v) in [("Status", status), ("Keyword", keyword), ("Tag", tag)] {
                        if let Some(v) = v {
                            ps.push(p(k, v));
                        }
                    }
                    let v = client.call("ListPMV2", ps)?;
                    fail_if_error(&v)?;
                    print_machines(&v);
                }
                PmCmd::Show { pmid } => {
                    let v = client.call("DescribePM", vec![p("Region", &r), p("PMIDs.0", pmid)])?;
                    fail_if_error(&v)?;
                    match v.get("Infos").and_then(|i| i.get(0)) {
                        Some(m) => print_json(m),
                        None => bail!("machine {pmid} not found in region {r}"),
                    }
                }
                PmCmd::Create {
                    ipmi_ip,
                    ipmi_user,
                    ipmi_password,
                    ipmi_password_env,
                    bmc_type,
                    name,
                    hostname,
                    tag,
                    company,
                } => {
                    let mut ps = vec![p("Region", &r), p("IPMIIP", ipmi_ip)];
                    let password =
                        match (ipmi_password, ipmi_password_env) {
                            (Some(pw), _) => Some(pw.clone()),
                            (None, Some(var)) => Some(std::env::var(var).with_context(|| {
                                format!("environment variable {var} is not set")
                            })?),
                            (None, None) => None,
                        };
                    for (k, v) in [
                        ("IPMIUsername", ipmi_user.clone()),
                        ("IPMIPassword", password),
                        ("BMCTypeName", bmc_type.clone()),
                        ("Name", name.clone()),
                        ("Hostname", hostname.clone()),
                        ("CompanyID", company.map(|c| c.to_string())),
                    ] {
                        if let Some(v) = v {
                            ps.push(p(k, &v));
                        }
                    }
                    for (i, t) in tag.iter().enumerate() {
                        let (k, v) = t.split_once('=').unwrap_or((t, ""));
                        ps.push(p(&format!("Tags.{i}.Key"), k));
                        ps.push(p(&format!("Tags.{i}.Value"), v));
                    }
                    let v = client.call("CreatePMV2", ps)?;
                    fail_if_error(&v)?;
                    println!("{}", s(&v, "PMID"));
                }
                PmCmd::Delete { pmids } => {
                    if pmids.is_empty() {
                        bail!("name at least one PMID");
                    }
                    let mut ps = vec![p("Region", &r)];
                    for (i, id) in pmids.iter().enumerate() {
                        ps.push(p(&format!("PMIDs.{i}"), id));
                    }
                    let v = client.call("DeletePMV2", ps)?;
                    fail_if_error(&v)?;
                    println!("{}", s(&v, "Message"));
                }
                PmCmd::Upper { pmid } => {
                    fail_if_error(
                        &client.call("UpperPM", vec![p("Region", &r), p("PMID", pmid)])?,
                    )?;
                }
                PmCmd::Allocate {
                    pmid,
                    company,
                    project,
                } => {
                    let mut ps = vec![
                        p("Region", &r),
                        p("PMID", pmid),
                        p("CompanyID", &company.to_string()),
                    ];
                    if let Some(pr) = project {
                        ps.push(p("ProjectID", pr));
                    }
                    fail_if_error(&client.call("AllocatePM", ps)?)?;
                }
                PmCmd::Power { pmid, action } => {
                    let v = client.call(
                        "PowerControlPMV2",
                        vec![p("Region", &r), p("PMID", pmid), p("PowerAction", action)],
                    )?;
                    fail_if_error(&v)?;
                    println!("{}", s(&v, "Message"));
                }
                PmCmd::Status { pmid } => {
                    let v = client
                        .call("GetPMPowerStatusV2", vec![p("Region", &r), p("PMID", pmid)])?;
                    fail_if_error(&v)?;
                    println!("{}", s(&v, "PowerStatus"));
                }
                PmCmd::Recycle { pmid, company } => {
                    fail_if_error(&client.call(
                        "RecyclePM",
                        vec![
                            p("Region", &r),
                            p("PMID", pmid),
                            p("CompanyID", &company.to_string()),
                        ],
                    )?)?;
                }
            }
        }
        Cmd::Tenant(cmd) => {
            let v = match cmd {
                TenantCmd::Create {
                    name,
                    email,
                    company,
                } => {
                    let mut ps = vec![p("CompanyName", name)];
                    if let Some(e) = email {
                        ps.push(p("Email", e));
                    }
                    if let Some(c) = company {
                        ps.push(p("CompanyID", &c.to_string()));
                    }
                    client.call("CreateTenant", ps)?
                }
                TenantCmd::List => client.call("ListTenants", vec![p("Limit", "1000")])?,
                TenantCmd::Delete { company } => {
                    client.call("DeleteTenant", vec![p("CompanyID", &company.to_string())])?
                }
            };
            fail_if_error(&v)?;
            print_json(&v);
        }
        Cmd::Agent(cmd) => match cmd {
            AgentCmd::Token { expires_in } => {
                let r = region(cli)?;
                let v = client.call(
                    "CreateAgentToken",
                    vec![p("Region", &r), p("ExpiresIn", &expires_in.to_string())],
                )?;
                fail_if_error(&v)?;
                println!("{}", s(&v, "Token"));
            }
            AgentCmd::List => {
                let v = client.call("ListAgents", vec![])?;
                fail_if_error(&v)?;
                println!(
                    "{:<17} {:<10} {:<12} {:<10} {:<28} {:<10}",
                    "AGENT", "REGION", "RACK", "STATE", "BMC NETWORKS", "VERSION"
                );
                for a in v["Infos"].as_array().cloned().unwrap_or_default() {
                    let state = if a["Revoked"] == true {
                        "revoked"
                    } else if a["Connected"] == true {
                        "online"
                    } else {
                        "offline"
                    };
                    let nets: Vec<&str> = a["BMCNetworks"]
                        .as_array()
                        .map(|n| n.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!(
                        "{:<17} {:<10} {:<12} {:<10} {:<28} {:<10}",
                        s(&a, "AgentID"),
                        s(&a, "Region"),
                        s(&a, "Rack"),
                        state,
                        nets.join(","),
                        s(&a, "Version")
                    );
                }
            }
            AgentCmd::Revoke { agent_id } => {
                fail_if_error(&client.call("RevokeAgent", vec![p("AgentID", agent_id)])?)?;
            }
        },
        Cmd::Key(cmd) => {
            let v = match cmd {
                KeyCmd::Create {
                    company,
                    admin,
                    description,
                } => {
                    let mut ps = Vec::new();
                    if let Some(c) = company {
                        ps.push(p("CompanyID", &c.to_string()));
                    }
                    if *admin {
                        ps.push(p("Admin", "true"));
                    }
                    if let Some(d) = description {
                        ps.push(p("Description", d));
                    }
                    client.call("CreateAPIKey", ps)?
                }
                KeyCmd::List => client.call("ListAPIKeys", vec![p("Limit", "1000")])?,
                KeyCmd::Delete { public_key } => {
                    client.call("DeleteAPIKey", vec![p("KeyPublicKey", public_key)])?
                }
            };
            fail_if_error(&v)?;
            print_json(&v);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironrack: {e:#}");
            ExitCode::FAILURE
        }
    }
}
