//! The controller's shared state and its first-start bootstrap (seal key, store, admin key).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ironrack_common::ids::random_hex;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::rack::Rack;
use crate::seal::{SealError, Sealer, write_private_file};
use crate::store::{KeyRecord, RedbStore, Store, StoreError};

/// Who is calling: an admin sees everything, a tenant only its own CompanyID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Tenant(i64),
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub public_key: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The tenant a tenant key is bound to.
    pub fn tenant(&self) -> Option<i64> {
        match self.role {
            Role::Admin => None,
            Role::Tenant(c) => Some(c),
        }
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    /// The same store, as the backend the agent hub persists into.
    pub redb: Arc<RedbStore>,
    pub sealer: Arc<Sealer>,
    pub config: Config,
    /// The racks, once the tunnel endpoint is up (`serve` starts it).
    pub rack: OnceLock<Arc<Rack>>,
}

/// The file an operator (or the CLI) reads to call the API as admin.
#[derive(Debug, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(rename = "PublicKey")]
    pub public_key: String,
    #[serde(rename = "PrivateKey")]
    pub private_key: String,
    #[serde(rename = "Endpoint")]
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error("cannot write {path}")]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh key pair: a public key that is safe in URLs and logs, and a
/// 40-hex-character private key like UCloud's.
pub fn new_key_pair() -> (String, String) {
    (format!("irk-{}", random_hex(24)), random_hex(40))
}

impl App {
    /// Opens everything under `config.data_dir`, creating what is missing.
    /// On the very first start this mints an admin key and writes
    /// `admin-credentials.json` (mode 0600).
    pub fn open(config: Config) -> Result<App, BootstrapError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| BootstrapError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let sealer = Sealer::open_or_create(&dir.join("seal.key"))?;
        let store = Arc::new(RedbStore::open(&dir.join("controller.redb"))?);
        let app = App {
            store: store.clone(),
            redb: store,
            sealer: Arc::new(sealer),
            config,
            rack: OnceLock::new(),
        };
        app.ensure_admin_key(&dir)?;
        Ok(app)
    }

    /// The racks, or the RetCode saying the tunnel is not running.
    pub fn rack(&self) -> Result<&Arc<Rack>, ironrack_common::ApiError> {
        self.rack.get().ok_or_else(|| {
            ironrack_common::ApiError::Internal("the agent tunnel endpoint is not running".into())
        })
    }

    /// Tells the rack reconciler that machines changed.
    pub fn machines_changed(&self) {
        if let Some(r) = self.rack.get() {
            r.poke();
        }
    }

    fn ensure_admin_key(&self, dir: &Path) -> Result<(), BootstrapError> {
        let path = dir.join("admin-credentials.json");
        let has_admin = self.store.keys()?.iter().any(|k| k.company_id.is_none());
        if has_admin {
            return Ok(());
        }
        let (public_key, private_key) = new_key_pair();
        let record = KeyRecord {
            private_key_sealed: self
                .sealer
                .seal_str(&KeyRecord::private_key_context(&public_key), &private_key),
            public_key: public_key.clone(),
            company_id: None,
            description: "created on first start".into(),
            create_time: now_unix(),
        };
        let creds = Credentials {
            public_key: public_key.clone(),
            private_key,
            endpoint: self.config.endpoint(),
        };
        let json = serde_json::to_vec_pretty(&creds).expect("credentials serialise");
        // The file first: a crash between the two leaves a file with a key
        // the store does not know, and the next start simply mints another.
        write_private_file(&path, &json).map_err(|source| BootstrapError::Credentials {
            path: path.clone(),
            source,
        })?;
        self.store.put_key(&record)?;
        tracing::info!(public_key = %public_key, path = %path.display(), "admin key created");
        Ok(())
    }
}
