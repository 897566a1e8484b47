//! The conductor beside the sidecar: starting an embedded one, and
//! connecting to any one (embedded or external) over its websockets.

use holochain::conductor::{Conductor, ConductorHandle};
use holochain_client::{
    AdminWebsocket, AppWebsocket, AuthorizeSigningCredentialsPayload, ClientAgentSigner,
    ConductorApiError, InstallAppPayload,
};
use holochain_conductor_api::conductor::{ConductorConfig, KeystoreConfig, NetworkConfig};
use holochain_conductor_api::{
    AdminInterfaceConfig, CellInfo, ExternalApiWireError, InterfaceDriver,
};
use holochain_types::prelude::{AgentPubKey, AppBundleSource, CellId, ExternIO};
use holochain_types::websocket::AllowedOrigins;
use node_registry_integrity::zome_fns::ZomeFn;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// The websocket origin the sidecar presents, and one of the two its
/// embedded conductor's admin interface accepts: a web page cannot drive the
/// conductor.
pub const ORIGIN: &str = "elohim-sidecar";

/// The origin Holochain's own Rust client sends when told none, which the
/// stock `hc client` commands use (`zome-call-auth`, `zome-call`, `call`
/// without `--origin`). A browser always sends the page's own
/// `scheme://host[:port]` and cannot send this one, so accepting it lets an
/// operator's stock tools in on loopback (the interface binds nowhere else)
/// while web pages stay out.
pub const STOCK_TOOL_ORIGIN: &str = "holochain_websocket";

/// What went wrong with the conductor.
#[derive(Debug, Error)]
pub enum ConductorError {
    /// Filesystem trouble with the data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The embedded conductor did not start.
    #[error("the embedded conductor did not start: {0}")]
    Start(String),
    /// The conductor's API refused or failed a request.
    #[error("conductor {what}: {detail}")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The conductor's answer.
        detail: String,
        /// What it means for the caller, decided where it was made.
        kind: FailureKind,
    },
    /// A zome call failed.
    #[error("zome call {function}: {detail}")]
    ZomeCall {
        /// Function called.
        function: String,
        /// The error.
        detail: String,
        /// What it means for the caller, decided where it was made.
        kind: FailureKind,
    },
}

/// What a failed request means for whoever made it. It is decided once,
/// where the error is made, from holochain_client's error variant (and, for
/// a failure inside the conductor, the one message the wire carries), so
/// callers match a kind instead of searching an error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The websocket to the conductor failed: reconnecting may help.
    ConnectionLost,
    /// Another call of this agent committed first and the conductor rolled
    /// this one back whole: the same call may simply be made again.
    HeadMoved,
    /// Not possible yet: a record the write depends on has not reached this
    /// conductor, or a network read timed out. Try again a little later.
    NotYet,
    /// Refused for good (validation, bad input, authorization) or failed
    /// in a way repeating will not change.
    Final,
}

impl FailureKind {
    /// The kind of an error holochain_client returned.
    pub fn of(e: &ConductorApiError) -> FailureKind {
        match e {
            ConductorApiError::WebsocketError(_) | ConductorApiError::IoError(_) => {
                FailureKind::ConnectionLost
            }
            ConductorApiError::ExternalApiWireError(
                ExternalApiWireError::RibosomeError(m) | ExternalApiWireError::InternalError(m),
            ) => FailureKind::of_message(m),
            _ => FailureKind::Final,
        }
    }

    /// The kind of a failure the conductor reported as text (the wire
    /// carries ribosome and internal errors as their message only).
    pub fn of_message(m: &str) -> FailureKind {
        if m.contains("source chain head has moved") {
            FailureKind::HeadMoved
        } else if [
            "DepMissingFromDht",
            "may be retried",
            "Timeout",
            "timed out",
        ]
        .iter()
        .any(|s| m.contains(s))
        {
            FailureKind::NotYet
        } else {
            FailureKind::Final
        }
    }
}

impl ConductorError {
    /// What the failure means for the caller (`Final` for failures that
    /// are not the conductor's answer: a data directory, a start).
    pub fn kind(&self) -> FailureKind {
        match self {
            ConductorError::Api { kind, .. } | ConductorError::ZomeCall { kind, .. } => *kind,
            _ => FailureKind::Final,
        }
    }

    /// Whether the websocket itself failed (so reconnecting may help), as
    /// opposed to the conductor answering with an error.
    pub fn is_connection_lost(&self) -> bool {
        self.kind() == FailureKind::ConnectionLost
    }

    /// Whether another call of this agent committed first (the conductor
    /// rolled this one back whole), so the same call may be made again.
    pub fn is_head_moved(&self) -> bool {
        self.kind() == FailureKind::HeadMoved
    }

    /// Whether the same call may succeed if tried again a little later: the
    /// websocket dropped, another call of this agent committed first, a
    /// record the write depends on (a custodian's registration) has not
    /// reached this conductor yet, or a network read timed out. A refusal by
    /// validation, or bad input, is final and is not worth repeating.
    pub fn is_transient(&self) -> bool {
        self.kind() != FailureKind::Final
    }

    /// A failure of this process's own making around a conductor request
    /// (encoding, an answer that lacks what it must hold): final.
    pub fn api(what: &'static str, detail: impl Into<String>) -> ConductorError {
        ConductorError::Api {
            what,
            detail: detail.into(),
            kind: FailureKind::Final,
        }
    }

    /// A failed zome call, classified from holochain_client's error.
    pub fn zome_call(function: &str, e: &ConductorApiError) -> ConductorError {
        ConductorError::ZomeCall {
            function: function.to_string(),
            detail: format!("{e:?}"),
            kind: FailureKind::of(e),
        }
    }
}

/// Maps holochain_client's error for an admin or app API request `what`.
pub(crate) fn api(what: &'static str) -> impl FnOnce(ConductorApiError) -> ConductorError {
    move |e| ConductorError::Api {
        what,
        detail: format!("{e:?}"),
        kind: FailureKind::of(&e),
    }
}

/// How to run an embedded conductor.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// Where the conductor keeps its databases and keystore.
    pub data_dir: PathBuf,
    /// Admin websocket port on 127.0.0.1 (0 picks a free one).
    pub admin_port: u16,
    /// Bootstrap and relay URL shared by every node of the network.
    pub network_url: String,
}

/// A conductor running inside this process.
pub struct EmbeddedConductor {
    handle: ConductorHandle,
    admin_port: u16,
}

/// Reads the keystore passphrase kept in the data directory, creating a
/// random one (readable by the owner only) on first start. The daemon must
/// restart unattended, so the passphrase lives beside the data it protects:
/// this guards the keystore file if copied alone, not the whole directory.
fn passphrase(data_dir: &Path) -> Result<Vec<u8>, ConductorError> {
    let path = data_dir.join("keystore-passphrase");
    let dd = |source| ConductorError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(p) if !p.is_empty() => return Ok(p),
        Ok(_) => {
            return Err(dd(std::io::Error::other(
                "the passphrase file is empty; restore it from a backup",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(dd(e)),
    }
    let text = crate::encoding::random_hex(32).map_err(dd)?;
    crate::datadir::write_private(&path, text.as_bytes()).map_err(dd)?;
    Ok(text.into_bytes())
}

/// The network section every embedded node uses: local bootstrap and relay
/// at one URL, plain HTTP allowed for that relay.
pub fn network_config(network_url: &str) -> NetworkConfig {
    NetworkConfig {
        bootstrap_url: url2::Url2::parse(network_url),
        relay_url: url2::Url2::parse(network_url),
        advanced: Some(serde_json::json!({
            "irohTransport": { "relayAllowPlainText": true }
        })),
        ..NetworkConfig::default()
    }
}

impl EmbeddedConductor {
    /// Starts a conductor with its data and keystore under `data_dir`.
    pub async fn start(settings: &EmbeddedSettings) -> Result<Self, ConductorError> {
        // The holochain binary installs a TLS provider first; so must we.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let root = settings.data_dir.join("conductor");
        crate::datadir::private_dir(&settings.data_dir).map_err(|source| {
            ConductorError::DataDir {
                path: settings.data_dir.clone(),
                source,
            }
        })?;
        std::fs::create_dir_all(&root).map_err(|source| ConductorError::DataDir {
            path: root.clone(),
            source,
        })?;
        let pass = passphrase(&settings.data_dir)?;
        let config = ConductorConfig {
            data_root_path: Some(root.clone().into()),
            keystore: KeystoreConfig::LairServerInProc { lair_root: None },
            admin_interfaces: Some(vec![AdminInterfaceConfig {
                driver: InterfaceDriver::Websocket {
                    port: settings.admin_port,
                    danger_bind_addr: None,
                    allowed_origins: AllowedOrigins::Origins(
                        [ORIGIN, STOCK_TOOL_ORIGIN]
                            .into_iter()
                            .map(String::from)
                            .collect(),
                    ),
                },
            }]),
            network: network_config(&settings.network_url),
            ..Default::default()
        };
        let handle = Conductor::builder()
            .config(config)
            .passphrase(Some(Arc::new(std::sync::Mutex::new(
                sodoken::LockedArray::from(pass),
            ))))
            .no_print_setup()
            .build()
            .await
            .map_err(|e| ConductorError::Start(e.to_string()))?;
        let admin_port = handle
            .get_arbitrary_admin_websocket_port()
            .ok_or_else(|| ConductorError::Start("no admin interface came up".into()))?;
        Ok(EmbeddedConductor { handle, admin_port })
    }

    /// The admin websocket port on 127.0.0.1.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Stops the conductor and waits for its tasks to end.
    pub async fn shutdown(self) {
        let _ = self.handle.shutdown().await;
    }
}

/// An open connection to a conductor running the hApp: admin and app
/// websockets, with signing credentials for the hApp's cell.
pub struct Connection {
    /// Admin websocket.
    pub admin: AdminWebsocket,
    /// App websocket for the hApp.
    pub app: AppWebsocket,
    /// The node registry cell.
    pub cell_id: CellId,
    /// The app interface port.
    pub app_port: u16,
}

impl Connection {
    /// Connects to the conductor's admin websocket at `admin_addr`, installs
    /// the hApp from `happ` if it is not installed, enables it, and opens an
    /// app websocket for it.
    pub async fn open(
        admin_addr: SocketAddr,
        happ: &Path,
        app_id: &str,
        role: &str,
    ) -> Result<Self, ConductorError> {
        let admin = AdminWebsocket::connect(admin_addr, Some(ORIGIN.to_string()))
            .await
            .map_err(api("admin websocket connect"))?;
        let apps = admin.list_apps(None).await.map_err(api("list apps"))?;
        if !apps.iter().any(|a| a.installed_app_id == app_id) {
            tracing::info!(happ = %happ.display(), "installing the hApp");
            admin
                .install_app(InstallAppPayload {
                    agent_key: None,
                    installed_app_id: Some(app_id.to_string()),
                    network_seed: None,
                    roles_settings: None,
                    source: AppBundleSource::Path(happ.to_path_buf()),
                    ignore_genesis_failure: false,
                    restore_from_dht: false,
                })
                .await
                .map_err(api("install app"))?;
        }
        admin
            .enable_app(app_id.to_string())
            .await
            .map_err(api("enable app"))?;

        let existing = admin
            .list_app_interfaces()
            .await
            .map_err(api("list app interfaces"))?
            .into_iter()
            .find(|i| i.installed_app_id.as_deref() == Some(app_id));
        let app_port = match existing {
            Some(i) => i.port,
            None => admin
                .attach_app_interface(
                    0,
                    None,
                    AllowedOrigins::from(ORIGIN.to_string()),
                    Some(app_id.to_string()),
                )
                .await
                .map_err(api("attach app interface"))?,
        };
        let token = admin
            .issue_app_auth_token(app_id.to_string().into())
            .await
            .map_err(api("issue app token"))?;
        let signer = ClientAgentSigner::default();
        let app = AppWebsocket::connect(
            (admin_addr.ip(), app_port),
            token.token,
            signer.clone().into(),
            Some(ORIGIN.to_string()),
        )
        .await
        .map_err(api("app websocket connect"))?;
        let info = app
            .app_info()
            .await
            .map_err(api("app info"))?
            .ok_or_else(|| ConductorError::api("app info", format!("app {app_id} not found")))?;
        let cell_id = info
            .cell_info
            .get(role)
            .and_then(|cells| {
                cells.iter().find_map(|c| match c {
                    CellInfo::Provisioned(p) => Some(p.cell_id.clone()),
                    _ => None,
                })
            })
            .ok_or_else(|| {
                ConductorError::api("app info", format!("no provisioned {role} cell"))
            })?;
        // The grant is a record on the agent's chain: it loses a commit race
        // to the node's own writes when another client (the daemon, after
        // a conductor restart) is busy on the same agent, and is then simply
        // made again.
        let (admin_ref, cell) = (&admin, &cell_id);
        let credentials = super::retry::retry_head_moved(|| async move {
            admin_ref
                .authorize_signing_credentials(AuthorizeSigningCredentialsPayload {
                    cell_id: cell.clone(),
                    functions: None,
                })
                .await
                .map_err(api("authorize signing credentials"))
        })
        .await?;
        signer.add_credentials(cell_id.clone(), credentials);
        Ok(Connection {
            admin,
            app,
            cell_id,
            app_port,
        })
    }

    /// The agent of the hApp's cell.
    pub fn agent(&self) -> &AgentPubKey {
        self.cell_id.agent_pubkey()
    }

    /// Calls a function of the node registry's coordinator on the hApp's
    /// cell. Typed: `F` names the function and fixes what goes in and comes
    /// out (see [`zome_fns`](node_registry_integrity::zome_fns)), so a
    /// renamed function or a changed shape fails the build, not a call.
    pub async fn call_fn<F: ZomeFn>(&self, input: F::Input) -> Result<F::Output, ConductorError> {
        self.call(crate::COORDINATOR, F::NAME, input).await
    }

    /// Calls a function of `zome` on the hApp's cell, by name, with
    /// whatever input and output the caller picks. Prefer
    /// [`call_fn`](Self::call_fn) for the coordinator's functions: this is
    /// unchecked, and stays public for the tests (and for what no marker
    /// names, such as the `recv_remote_signal` callback).
    pub async fn call<I, O>(
        &self,
        zome: &str,
        function: &str,
        payload: I,
    ) -> Result<O, ConductorError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        // Encoding here and decoding the answer are this side's failures:
        // final, as a refusal is.
        let zc = |detail: String| ConductorError::ZomeCall {
            function: function.to_string(),
            detail,
            kind: FailureKind::Final,
        };
        let payload = ExternIO::encode(payload).map_err(|e| zc(e.to_string()))?;
        let out = self
            .app
            .call_zome(
                self.cell_id.clone().into(),
                zome.into(),
                function.into(),
                payload,
            )
            .await
            .map_err(|e| ConductorError::zome_call(function, &e))?;
        out.decode().map_err(|e| zc(e.to_string()))
    }
}
