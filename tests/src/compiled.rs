//! Test conductors that start with the zomes already compiled.
//!
//! A conductor compiles a zome's wasm to native code the first time it runs
//! it and keeps the result in its own wasm database. Our three zomes (5 MB
//! of wasm with mallory's) took about 10 s of CPU per conductor on this
//! 2-core machine, and the suites start a few hundred conductors: that was
//! most of the set-up time of a sidecar network. So the zomes are compiled
//! once, on a template conductor, and every test conductor starts from a
//! copy of the template's wasm database (holochain looks for a compiled
//! module there before compiling, keyed by the wasm's hash).
//!
//! The template lives in the system temp directory under a name made of the
//! packed wasm's hash, so it is built once per zome build and shared by the
//! test binaries; another build's template is removed after a day unused.
//! Should a copy not load (another holochain's serialization, say), the
//! conductor compiles again as it would have: slower, never wrong.

use holochain::sweettest::*;
use node_registry_integrity::zome_fns::GetRegistryProperties;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::network::conductor_call_fn;
use crate::{install_mallory, packed, packed_dna, COORDINATOR, ROLE};

/// The files of a conductor's `databases/` directory that hold compiled
/// zomes: the wasm database (with its write-ahead log) and the key the
/// conductor's databases are opened with.
const TEMPLATE_FILES: [&str; 3] = ["db.key", "wasm.db", "wasm.db-wal"];

/// What a template directory is called, before the wasm's hash.
const TEMPLATE_PREFIX: &str = "elohim-compiled-zomes-";

/// How long another zome build's template stays unused before it goes.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A batch of conductors on one local rendezvous, one per config, each
/// starting with the zomes compiled, and the data directories they live
/// in (keep them as long as the conductors).
pub async fn conductor_batch(
    configs: Vec<SweetConductorConfig>,
) -> (SweetConductorBatch, Vec<tempfile::TempDir>) {
    let template = template().await;
    let mut dirs = Vec::new();
    let mut seeded = Vec::new();
    for mut config in configs {
        let dir = tempfile::Builder::new()
            .prefix("elohim-conductor-")
            .tempdir()
            .expect("a conductor's data directory");
        seed(&template, dir.path());
        config.data_root_path = Some(dir.path().to_path_buf().into());
        dirs.push(dir);
        seeded.push(config);
    }
    (
        SweetConductorBatch::from_configs_rendezvous(seeded).await,
        dirs,
    )
}

/// Copies the template's files into a new conductor's data root.
fn seed(template: &Path, data_root: &Path) {
    copy_template_files(template, &data_root.join("databases"));
}

/// Copies the files that hold compiled zomes from one directory to
/// another (created); a write-ahead log already merged is absent.
fn copy_template_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a compiled-zome directory");
    for name in TEMPLATE_FILES {
        let file = from.join(name);
        if file.exists() {
            std::fs::copy(&file, to.join(name)).expect("a compiled-zome file copies");
        }
    }
}

/// The directory holding this zome build's template, built on first use.
async fn template() -> PathBuf {
    static TEMPLATE: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let dir = std::env::temp_dir().join(format!("{TEMPLATE_PREFIX}{}", wasm_key()));
            remove_stale_templates(&dir);
            if !dir.join("wasm.db").exists() {
                build_template(&dir).await;
            }
            // Marks it used, for the removal of stale templates.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.set_modified(std::time::SystemTime::now());
            }
            dir
        })
        .await
        .clone()
}

/// A short hash of the packed zomes: a new build gets a new template.
fn wasm_key() -> String {
    let mut h = blake3::Hasher::new();
    for name in [
        "node_registry_integrity.wasm",
        "node_registry_coordinator.wasm",
        "mallory_coordinator.wasm",
    ] {
        h.update(&std::fs::read(packed(name)).expect("the packed wasm reads"));
    }
    h.finalize().to_hex()[..16].to_string()
}

/// Compiles every zome on a conductor of its own and keeps its wasm
/// database as `dir`. Built under another name and renamed, so a test
/// binary running beside this one never sees half a template.
async fn build_template(dir: &Path) {
    let mut c = SweetConductor::from_config_rendezvous(
        SweetConductorConfig::rendezvous(true),
        SweetLocalRendezvous::new().await,
    )
    .await;
    let app = c
        .setup_app("compile", &[(ROLE.to_string(), packed_dna().await)])
        .await
        .expect("the template's app installs");
    // Genesis ran the integrity zome; one call runs the coordinator; arming
    // mallory runs its coordinator.
    let cell = app.into_cells().remove(0);
    conductor_call_fn::<GetRegistryProperties>(&c, &cell.zome(COORDINATOR), ()).await;
    install_mallory(&mut c, cell.cell_id().clone()).await;
    c.shutdown().await;

    let building = dir.with_extension(format!("building-{}", std::process::id()));
    copy_template_files(&c.db_path().join("databases"), &building);
    if std::fs::rename(&building, dir).is_err() {
        // Another test binary got there first: use its template.
        let _ = std::fs::remove_dir_all(&building);
    }
}

/// Removes templates of other zome builds not used for a day.
fn remove_stale_templates(current: &Path) {
    let Some(parent) = current.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_template = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMPLATE_PREFIX));
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if is_template && stale && path != current {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
