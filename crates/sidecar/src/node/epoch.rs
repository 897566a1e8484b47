//! The node's working keys: one working agent per epoch, delegated by the
//! identity, replaced when its epoch ends or its chain fills (see
//! `registry_core::delegation`).
//!
//! Rotation, in order, each step safe to repeat after a crash:
//! 1. install the hApp under a fresh agent as `elohim_orchestrator_work_<n>`;
//! 2. the identity writes the delegation (and its link from the new key);
//! 3. wait until the new agent sees itself delegated (`whoami`);
//! 4. record the new key in `working-key.json` (written atomically);
//! 5. switch routine writes to it and uninstall older working apps (what
//!    they wrote stays on the DHT: the identity and reader keep the DNA's
//!    store).
//!
//! After a restart the recorded key is reused while it is valid and its
//! epoch has not ended; a half-done rotation is finished or redone.

use crate::node::agent::{AppLink, NodeAgent, Working};
use crate::registry::conductor::ConductorError;
use crate::APP_ID;
use holochain_types::prelude::{ActionHash, AgentPubKey, Timestamp};
use node_registry_integrity::zome_fns::{DelegateWorkingKey, Whoami};
use node_registry_integrity::{ActingAs, DelegateInput};
use registry_core::delegation::{RotationPolicy, Window};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the node checks whether its working key is due for
/// replacement.
pub const KEY_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// How long a rotation waits for the new agent to see its delegation.
const DELEGATION_VISIBLE_WITHIN: Duration = Duration::from_secs(60);

/// The installed app id of working agent number `epoch`.
pub fn working_app_id(epoch: u64) -> String {
    format!("{APP_ID}_work_{epoch}")
}

/// The epoch number in a working app id, if it is one.
pub fn epoch_of(app_id: &str) -> Option<u64> {
    app_id
        .strip_prefix(&format!("{APP_ID}_work_"))
        .and_then(|n| n.parse().ok())
}

/// What `working-key.json` records: the working key in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkingKeyRecord {
    /// The epoch number.
    pub epoch: u64,
    /// The working app.
    pub app_id: String,
    /// The working agent (base64).
    pub agent: String,
    /// The delegation (base64 action hash).
    pub delegation: String,
    /// Its window, micros.
    pub valid_from_micros: i64,
    /// Its window's end, micros.
    pub valid_until_micros: i64,
}

fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join("working-key.json")
}

fn load_record(data_dir: &Path) -> Option<WorkingKeyRecord> {
    let text = std::fs::read_to_string(record_path(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the record atomically and durably
/// ([`crate::datadir::write_private`]): a crash leaves the old record or the
/// new, never half.
fn save_record(data_dir: &Path, r: &WorkingKeyRecord) -> std::io::Result<()> {
    crate::datadir::write_private(
        &record_path(data_dir),
        serde_json::to_string_pretty(r)?.as_bytes(),
    )
}

impl NodeAgent {
    fn rotation_policy(&self) -> RotationPolicy {
        RotationPolicy {
            epoch_secs: self.config().keys.epoch_secs as i64,
            max_records: self.config().keys.max_working_records,
        }
    }

    /// Makes sure a delegated working agent is in force: reuses the one in
    /// force (or recorded, after a restart) while its epoch lasts, and
    /// replaces it when due. Returns whether a new key took over.
    pub async fn maintain_working_key(&self) -> Result<bool, ConductorError> {
        let policy = self.rotation_policy();
        let now = Timestamp::now().as_micros();
        let current = self.working.read().await.clone();
        let current = match current {
            Some(w) => Some(w),
            None => self.adopt_recorded().await,
        };
        let next_epoch = match &current {
            Some(w) => {
                let me: Option<ActingAs> = w
                    .link
                    .connection(self.admin_addr, &self.happ)
                    .await?
                    .call_fn::<Whoami>(())
                    .await?;
                let records = me.map(|m| m.chain_len as u64).unwrap_or(u64::MAX);
                if !policy.due(w.window, records, now) {
                    let switched = self.working.read().await.is_none();
                    if switched {
                        *self.working.write().await = Some(w.clone());
                    }
                    return Ok(switched);
                }
                w.epoch + 1
            }
            None => self.highest_installed_epoch().await?.map_or(1, |e| e + 1),
        };
        self.rotate(next_epoch).await?;
        Ok(true)
    }

    /// The working key `working-key.json` names, if its app is still
    /// installed and it still writes for this node.
    async fn adopt_recorded(&self) -> Option<Arc<Working>> {
        let data_dir = &self.config().conductor.data_dir;
        let r = load_record(data_dir)?;
        let delegation = ActionHash::try_from(r.delegation.as_str()).ok()?;
        let link = AppLink::open(
            self.admin_addr,
            &self.happ,
            &r.app_id,
            Some(self.signal_sink()),
        )
        .await
        .ok()?;
        let me: Option<ActingAs> = link
            .connection(self.admin_addr, &self.happ)
            .await
            .ok()?
            .call_fn::<Whoami>(())
            .await
            .ok()?;
        let me = me?;
        if me.node_id != self.node_id || me.delegation.as_ref() != Some(&delegation) {
            return None;
        }
        Some(Arc::new(Working {
            agent: link.agent().await,
            link,
            window: Window {
                from_micros: r.valid_from_micros,
                until_micros: r.valid_until_micros,
            },
            epoch: r.epoch,
        }))
    }

    async fn highest_installed_epoch(&self) -> Result<Option<u64>, ConductorError> {
        let conn = self.connection().await?;
        let apps = conn
            .admin
            .list_apps(None)
            .await
            .map_err(crate::registry::conductor::api("list apps"))?;
        Ok(apps
            .iter()
            .filter_map(|a| epoch_of(&a.installed_app_id))
            .max())
    }

    /// Installs working agent number `epoch`, delegates to it, waits until
    /// it sees the delegation, records it, switches to it and uninstalls
    /// the older working apps.
    async fn rotate(&self, epoch: u64) -> Result<(), ConductorError> {
        let app_id = working_app_id(epoch);
        tracing::info!(epoch, app = %app_id, "installing a new working key");
        // Its signals (a repair it ran that found no custodian) reach the
        // daemon like the identity's.
        let link = AppLink::open(
            self.admin_addr,
            &self.happ,
            &app_id,
            Some(self.signal_sink()),
        )
        .await?;
        let agent: AgentPubKey = link.agent().await;
        let window = self.rotation_policy().window_from(
            Timestamp::now().as_micros(),
            self.properties.max_delegation_secs as i64,
        );
        let input = DelegateInput {
            delegate: agent.clone(),
            valid_from: Timestamp::from_micros(window.from_micros),
            valid_until: Timestamp::from_micros(window.until_micros),
        };
        let delegation: ActionHash = self
            .retrying(|| self.call_fn::<DelegateWorkingKey>(input.clone()))
            .await?;
        let deadline = tokio::time::Instant::now() + DELEGATION_VISIBLE_WITHIN;
        loop {
            let me: Option<ActingAs> = link
                .connection(self.admin_addr, &self.happ)
                .await?
                .call_fn::<Whoami>(())
                .await?;
            if me.is_some_and(|m| m.delegation.as_ref() == Some(&delegation)) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ConductorError::api(
                    "working key",
                    format!(
                        "the new working agent did not see its delegation within {DELEGATION_VISIBLE_WITHIN:?}"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let record = WorkingKeyRecord {
            epoch,
            app_id: app_id.clone(),
            agent: agent.to_string(),
            delegation: delegation.to_string(),
            valid_from_micros: window.from_micros,
            valid_until_micros: window.until_micros,
        };
        let data_dir = &self.config().conductor.data_dir;
        save_record(data_dir, &record).map_err(|source| ConductorError::DataDir {
            path: record_path(data_dir),
            source,
        })?;
        *self.working.write().await = Some(Arc::new(Working {
            link,
            agent,
            window,
            epoch,
        }));
        self.retire_working_apps_before(epoch).await;
        Ok(())
    }

    /// Uninstalls the working apps of epochs before `epoch` (best effort:
    /// one left behind only costs a little memory until the next rotation).
    async fn retire_working_apps_before(&self, epoch: u64) {
        let Ok(conn) = self.connection().await else {
            return;
        };
        let Ok(apps) = conn.admin.list_apps(None).await else {
            return;
        };
        for app in apps {
            let id = app.installed_app_id;
            if epoch_of(&id).is_some_and(|e| e < epoch) {
                match conn.admin.uninstall_app(id.clone(), false).await {
                    Ok(()) => tracing::info!(app = %id, "retired an old working key"),
                    Err(e) => {
                        tracing::warn!(app = %id, "could not retire an old working key: {e:?}")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_app_ids_carry_their_epoch() {
        assert_eq!(epoch_of(&working_app_id(7)), Some(7));
        assert_eq!(epoch_of(APP_ID), None);
        assert_eq!(epoch_of(crate::READER_APP_ID), None);
        assert_eq!(epoch_of("elohim_orchestrator_work_x"), None);
    }

    #[test]
    fn the_record_survives_a_round_trip_and_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_record(dir.path()), None);
        let r = WorkingKeyRecord {
            epoch: 3,
            app_id: working_app_id(3),
            agent: "uhCAk".into(),
            delegation: "uhCkk".into(),
            valid_from_micros: 1,
            valid_until_micros: 2,
        };
        save_record(dir.path(), &r).unwrap();
        assert_eq!(load_record(dir.path()), Some(r.clone()));
        let next = WorkingKeyRecord { epoch: 4, ..r };
        save_record(dir.path(), &next).unwrap();
        assert_eq!(load_record(dir.path()), Some(next));
        assert!(!dir.path().join("working-key.json.tmp").exists());
    }
}
