//! The sidecar's configuration: a TOML file, overridden by flags and
//! environment variables, checked field by field.

use registry_core::region::parse_region;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A configuration problem, naming the field.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read or written. The cause is part of the
    /// message (not a chained source), so every way of printing shows it
    /// exactly once.
    #[error("config file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        cause: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the key).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, which names the offending key.
        message: String,
    },
    /// A value is out of range or unknown.
    #[error("invalid config field `{field}`: {reason}")]
    Invalid {
        /// Dotted field name, as in the file.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Where the conductor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConductorMode {
    /// A conductor inside this process, data under `data_dir` (default).
    Embedded,
    /// An existing conductor reached through its admin websocket.
    External,
}

/// The whole configuration.
#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Who this node is.
    pub node: NodeSection,
    /// What it gives to the network.
    pub participation: ParticipationSection,
    /// Overrides for detected capacity.
    pub capacity: CapacitySection,
    /// Heartbeat timing.
    pub heartbeat: HeartbeatSection,
    /// The conductor.
    pub conductor: ConductorSection,
    /// Bootstrap and relay.
    pub network: NetworkSection,
    /// The local HTTP server (metrics, APIs, pages).
    pub http: HttpSection,
    /// Failure detection, repair and reconciliation.
    pub custody: CustodySection,
    /// Monitoring peers, Byzantine scans and regional votes.
    pub peers: PeersSection,
    /// The node's working keys (see `registry_core::delegation`).
    pub keys: KeysSection,
    /// Shefa service summaries.
    pub rewards: RewardsSection,
}

/// `[keys]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// Seconds a working agent serves before a fresh one replaces it.
    pub epoch_secs: u64,
    /// Records on a working agent's chain after which it is replaced even
    /// within its epoch.
    pub max_working_records: u64,
}

impl Default for KeysSection {
    /// A week, or 2,000 records (`registry_core::delegation`).
    fn default() -> Self {
        KeysSection {
            epoch_secs: registry_core::delegation::DEFAULT_EPOCH_SECS as u64,
            max_working_records: registry_core::delegation::DEFAULT_MAX_WORKING_RECORDS,
        }
    }
}

/// `[rewards]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardsSection {
    /// Seconds between service summaries: what this node served each
    /// receiver is recorded once per period, not once per request.
    pub summary_interval_secs: u64,
}

impl Default for RewardsSection {
    fn default() -> Self {
        RewardsSection {
            summary_interval_secs: 3600,
        }
    }
}

/// `[peers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeersSection {
    /// Monitors this node beats to (see `registry_core::monitor`).
    pub monitors: u32,
    /// Seconds between reads of who is present, to pick the monitors.
    pub membership_refresh_secs: u64,
    /// Seconds between reads of the region's suspicions, to answer one
    /// about a node this node hears fine.
    pub suspicion_scan_secs: u64,
    /// Seconds between scans for lying attesters and failing nodes.
    pub byzantine_scan_interval_secs: u64,
    /// Seconds between checks for proposals to vote on.
    pub vote_interval_secs: u64,
}

impl Default for PeersSection {
    /// Four monitors: two distinct reporters even with two of them down.
    fn default() -> Self {
        PeersSection {
            monitors: registry_core::monitor::DEFAULT_MONITORS as u32,
            membership_refresh_secs: 60,
            suspicion_scan_secs: 60,
            byzantine_scan_interval_secs: 300,
            vote_interval_secs: 10,
        }
    }
}

/// `[custody]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustodySection {
    /// Seconds between failure-detection runs.
    pub detect_interval_secs: u64,
    /// Seconds between reconciliations of the store with the DHT.
    pub reconcile_interval_secs: u64,
    /// Silence after which a node is suspected.
    pub failure_window_secs: i64,
    /// Further silence before a suspected node is declared failed and its
    /// shards are re-homed (so a short blip moves no data).
    pub grace_secs: i64,
    /// Most bytes one publisher may have here ahead of assignments this
    /// node has not seen yet (held for now; 0 takes none early).
    pub provisional_per_sender_mb: u64,
    /// Most bytes all publishers together may have here that way.
    pub provisional_total_mb: u64,
    /// How long a shard that arrived ahead of its assignment waits for it
    /// before it is let go.
    pub provisional_keep_secs: u64,
}

impl Default for CustodySection {
    fn default() -> Self {
        CustodySection {
            detect_interval_secs: 15,
            reconcile_interval_secs: 30,
            failure_window_secs: 60,
            grace_secs: 120,
            provisional_per_sender_mb: 2048,
            provisional_total_mb: 8192,
            provisional_keep_secs: 3600,
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Label of the node id (`<label>-<key suffix>`).
    pub label: String,
    /// Name shown to people; empty means "<hostname>'s Rack".
    pub display_name: String,
    /// One of the 20 known regions.
    pub region: String,
    /// Optional latitude.
    pub latitude: Option<f64>,
    /// Optional longitude.
    pub longitude: Option<f64>,
}

/// `[participation]`: the "organ donation" defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParticipationSection {
    /// Take custody of others' content (opt-in by default).
    pub custodian_opt_in: bool,
    /// Share of free storage offered, percent.
    pub storage_percent: f64,
    /// Share of bandwidth offered, percent: serving and rebuilding shards
    /// are paced to it (one token bucket).
    pub bandwidth_percent: f64,
    /// Share of CPU offered, percent.
    pub cpu_percent: f64,
    /// Off-peak window start hour (local time): rebuilds that can wait (the
    /// content still has a spare holder) run only in the window. Equal
    /// start and end hours are the whole day.
    pub off_peak_start_hour: u8,
    /// Off-peak window end hour (local time).
    pub off_peak_end_hour: u8,
    /// Privacy: share only aggregate capacity figures with the network.
    pub aggregate_metrics_only: bool,
    /// Privacy: keep custodied content encrypted.
    pub encrypt_custodied_content: bool,
    /// Privacy: let family approve emergency access for disaster recovery.
    pub allow_emergency_access: bool,
    /// Whether the owner went through the first-time setup page (until then
    /// the local page opens on it; the defaults apply meanwhile).
    pub setup_complete: bool,
}

/// `[capacity]`: leave unset to detect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CapacitySection {
    /// Link bandwidth in Mbps; unset reads the network link speed.
    pub bandwidth_mbps: Option<u32>,
    /// Storage to declare in GB; unset measures free space on the data disk.
    pub storage_gb: Option<f64>,
}

/// `[heartbeat]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatSection {
    /// Seconds between beats to this node's monitors (direct signals that
    /// write nothing; the presence lease is renewed once per lease period).
    pub interval_secs: u64,
    /// Longest wait between retries when the conductor is unreachable.
    pub max_backoff_secs: u64,
    /// How long the machine must stay loaded (or unloaded) before the node
    /// publishes a new status: each change is a record.
    pub status_dwell_secs: u64,
}

/// `[conductor]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConductorSection {
    /// embedded or external.
    pub mode: ConductorMode,
    /// Data directory (embedded conductor, shard store, state).
    pub data_dir: PathBuf,
    /// The packed hApp, installed when missing.
    pub happ: PathBuf,
    /// Embedded: admin port on 127.0.0.1 (0 picks a free one).
    pub admin_port: u16,
    /// External: the conductor's admin websocket address.
    pub admin_addr: Option<SocketAddr>,
}

/// `[network]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Bootstrap + relay address shared by every node; the first embedded
    /// node on a machine serves it when nothing listens there yet.
    pub rendezvous: SocketAddr,
    /// Serve the rendezvous when nothing listens at its address.
    pub serve_rendezvous: bool,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Where the local HTTP server listens (metrics, APIs, pages, shard
    /// transfers).
    pub listen: SocketAddr,
    /// The URL other nodes use to reach this sidecar; unset means
    /// `http://<listen address>` (right on one machine; set a LAN address
    /// when nodes run on several).
    pub advertise: Option<String>,
    /// Seconds between samples of the dashboard's history plot (heartbeat
    /// latency, bytes moved); it keeps the last 240, in memory.
    pub history_sample_secs: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            label: "rack".into(),
            display_name: String::new(),
            region: "global".into(),
            latitude: None,
            longitude: None,
        }
    }
}

impl Default for ParticipationSection {
    /// Opted in, 10% storage, 20% bandwidth off-peak 22:00-06:00, 15% CPU.
    fn default() -> Self {
        ParticipationSection {
            custodian_opt_in: true,
            storage_percent: 10.0,
            bandwidth_percent: 20.0,
            cpu_percent: 15.0,
            off_peak_start_hour: 22,
            off_peak_end_hour: 6,
            aggregate_metrics_only: true,
            encrypt_custodied_content: true,
            allow_emergency_access: false,
            setup_complete: false,
        }
    }
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        HeartbeatSection {
            interval_secs: 30,
            max_backoff_secs: 60,
            status_dwell_secs: registry_core::status::DEFAULT_STATUS_DWELL_SECS as u64,
        }
    }
}

impl Default for ConductorSection {
    fn default() -> Self {
        ConductorSection {
            mode: ConductorMode::Embedded,
            data_dir: PathBuf::from("elohim-data"),
            happ: PathBuf::from("workdir/elohim_orchestrator.happ"),
            admin_port: 0,
            admin_addr: None,
        }
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            rendezvous: ([127, 0, 0, 1], 45555).into(),
            serve_rendezvous: true,
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: ([127, 0, 0, 1], 8787).into(),
            advertise: None,
            history_sample_secs: 60,
        }
    }
}

fn percent(field: &'static str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{v} is not a percentage (0 to 100)"),
        ))
    }
}

impl Config {
    /// Reads a config file. Unknown keys and wrong types are errors that name
    /// the key; then every value is checked.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks every value, naming the first bad field.
    pub fn check(&self) -> Result<(), ConfigError> {
        let label = registry_core::node_id::slugify(&self.node.label);
        if self.node.label.trim().is_empty() || label != self.node.label {
            return Err(invalid(
                "node.label",
                format!(
                    "{:?} must be lowercase letters, digits and inner dashes (e.g. {label:?})",
                    self.node.label
                ),
            ));
        }
        if self.node.display_name.chars().count() > registry_core::capacity::MAX_DISPLAY_NAME {
            return Err(invalid("node.display_name", "longer than 64 characters"));
        }
        parse_region(&self.node.region).map_err(|e| invalid("node.region", e.to_string()))?;
        registry_core::capacity::check_location(self.node.latitude, None)
            .map_err(|e| invalid("node.latitude", e.to_string()))?;
        registry_core::capacity::check_location(None, self.node.longitude)
            .map_err(|e| invalid("node.longitude", e.to_string()))?;
        let p = &self.participation;
        percent("participation.storage_percent", p.storage_percent)?;
        percent("participation.bandwidth_percent", p.bandwidth_percent)?;
        percent("participation.cpu_percent", p.cpu_percent)?;
        if p.off_peak_start_hour > 23 {
            return Err(invalid(
                "participation.off_peak_start_hour",
                "must be 0 to 23",
            ));
        }
        if p.off_peak_end_hour > 23 {
            return Err(invalid(
                "participation.off_peak_end_hour",
                "must be 0 to 23",
            ));
        }
        if let Some(gb) = self.capacity.storage_gb {
            if !(gb.is_finite()
                && (0.0..=registry_core::capacity::MAX_STORAGE_TB * 1000.0).contains(&gb))
            {
                return Err(invalid(
                    "capacity.storage_gb",
                    format!("{gb} is out of range"),
                ));
            }
        }
        if let Some(bw) = self.capacity.bandwidth_mbps {
            if bw == 0 || bw > registry_core::capacity::MAX_BANDWIDTH_MBPS {
                return Err(invalid(
                    "capacity.bandwidth_mbps",
                    format!("{bw} is out of range"),
                ));
            }
        }
        if !(1..=3600).contains(&self.heartbeat.interval_secs) {
            return Err(invalid(
                "heartbeat.interval_secs",
                "must be 1 to 3600 seconds",
            ));
        }
        if self.heartbeat.status_dwell_secs > 86_400 {
            return Err(invalid(
                "heartbeat.status_dwell_secs",
                "must be 0 to 86400 seconds",
            ));
        }
        if self.heartbeat.max_backoff_secs == 0 {
            return Err(invalid("heartbeat.max_backoff_secs", "must be at least 1"));
        }
        if !(1..=3600).contains(&self.http.history_sample_secs) {
            return Err(invalid(
                "http.history_sample_secs",
                "must be 1 to 3600 seconds",
            ));
        }
        if let Some(url) = &self.http.advertise {
            registry_core::capacity::check_endpoint(url)
                .map_err(|e| invalid("http.advertise", e.to_string()))?;
        }
        let c = &self.custody;
        if !(1..=3600).contains(&c.detect_interval_secs) {
            return Err(invalid(
                "custody.detect_interval_secs",
                "must be 1 to 3600 seconds",
            ));
        }
        if !(1..=86_400).contains(&c.reconcile_interval_secs) {
            return Err(invalid(
                "custody.reconcile_interval_secs",
                "must be 1 to 86400 seconds",
            ));
        }
        if !(5..=86_400).contains(&c.failure_window_secs) {
            return Err(invalid(
                "custody.failure_window_secs",
                "must be 5 to 86400 seconds",
            ));
        }
        if !(0..=604_800).contains(&c.grace_secs) {
            return Err(invalid("custody.grace_secs", "must be 0 to 604800 seconds"));
        }
        if c.provisional_per_sender_mb > c.provisional_total_mb {
            return Err(invalid(
                "custody.provisional_per_sender_mb",
                "must not exceed custody.provisional_total_mb",
            ));
        }
        if c.provisional_total_mb > 1 << 30 {
            return Err(invalid(
                "custody.provisional_total_mb",
                "must be at most 1073741824",
            ));
        }
        if !(1..=604_800).contains(&c.provisional_keep_secs) {
            return Err(invalid(
                "custody.provisional_keep_secs",
                "must be 1 to 604800 seconds",
            ));
        }
        let p = &self.peers;
        if !(2..=16).contains(&p.monitors) {
            return Err(invalid(
                "peers.monitors",
                "must be 2 to 16 (a failure needs two reporters)",
            ));
        }
        if !(1..=86_400).contains(&p.membership_refresh_secs) {
            return Err(invalid(
                "peers.membership_refresh_secs",
                "must be 1 to 86400 seconds",
            ));
        }
        if !(1..=86_400).contains(&p.suspicion_scan_secs) {
            return Err(invalid(
                "peers.suspicion_scan_secs",
                "must be 1 to 86400 seconds",
            ));
        }
        if !(10..=86_400).contains(&p.byzantine_scan_interval_secs) {
            return Err(invalid(
                "peers.byzantine_scan_interval_secs",
                "must be 10 to 86400 seconds",
            ));
        }
        if !(1..=3600).contains(&p.vote_interval_secs) {
            return Err(invalid(
                "peers.vote_interval_secs",
                "must be 1 to 3600 seconds",
            ));
        }
        if !(60..=30 * 86_400).contains(&self.keys.epoch_secs) {
            return Err(invalid(
                "keys.epoch_secs",
                "must be 60 to 2592000 seconds (30 days)",
            ));
        }
        if self.keys.max_working_records < 100 {
            return Err(invalid("keys.max_working_records", "must be at least 100"));
        }
        if !(1..=86_400).contains(&self.rewards.summary_interval_secs) {
            return Err(invalid(
                "rewards.summary_interval_secs",
                "must be 1 to 86400 seconds",
            ));
        }
        if self.conductor.mode == ConductorMode::External && self.conductor.admin_addr.is_none() {
            return Err(invalid(
                "conductor.admin_addr",
                "required when conductor.mode = \"external\"",
            ));
        }
        Ok(())
    }

    /// Writes the `[participation]` section into the config file at `path`
    /// (creating it from the commented default when missing), keeping every
    /// other key and comment as the owner wrote them. The result is checked
    /// by parsing it back before it replaces the file, atomically.
    pub fn save_participation(path: &Path, p: &ParticipationSection) -> Result<(), ConfigError> {
        let io = |cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_CONFIG.to_string(),
            Err(e) => return Err(io(e)),
        };
        let mut doc: toml_edit::DocumentMut =
            text.parse()
                .map_err(|e: toml_edit::TomlError| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        if !doc.contains_table("participation") {
            doc["participation"] = toml_edit::table();
        }
        let t = &mut doc["participation"];
        t["custodian_opt_in"] = toml_edit::value(p.custodian_opt_in);
        t["storage_percent"] = toml_edit::value(p.storage_percent);
        t["bandwidth_percent"] = toml_edit::value(p.bandwidth_percent);
        t["cpu_percent"] = toml_edit::value(p.cpu_percent);
        t["off_peak_start_hour"] = toml_edit::value(p.off_peak_start_hour as i64);
        t["off_peak_end_hour"] = toml_edit::value(p.off_peak_end_hour as i64);
        t["aggregate_metrics_only"] = toml_edit::value(p.aggregate_metrics_only);
        t["encrypt_custodied_content"] = toml_edit::value(p.encrypt_custodied_content);
        t["allow_emergency_access"] = toml_edit::value(p.allow_emergency_access);
        t["setup_complete"] = toml_edit::value(p.setup_complete);
        let out = doc.to_string();
        let back = Config::parse(&out)?;
        if back.participation != *p {
            return Err(invalid(
                "participation",
                "the saved section does not read back as written",
            ));
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, out).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Writes a commented default config, refusing to overwrite a file.
    pub fn write_default(path: &Path) -> Result<(), ConfigError> {
        use std::io::Write;
        let io = |cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        f.write_all(DEFAULT_CONFIG.as_bytes()).map_err(io)?;
        Ok(())
    }
}

/// The file `elohim-sidecar init` writes. Every value is the default, so the
/// file parses to `Config::default()` (a unit test holds us to that).
pub const DEFAULT_CONFIG: &str = r#"# Elohim sidecar configuration.
# Every value below is the default; flags and ELOHIM_* environment variables
# override the file (see `elohim-sidecar run --help`).

[node]
# Your node id is "<label>-<16 hex digits of your agent key>".
label = "rack"
# Shown to other people; empty means "<hostname>'s Rack".
display_name = ""
# One of: us-west us-central us-east ca-west ca-central ca-east mx-central
# eu-west eu-central eu-north eu-south ap-south ap-southeast ap-northeast
# ap-east sa-east af-south me-central oc-southeast global
region = "global"
# latitude = 45.5
# longitude = -122.6

[participation]
# "Organ donation": your node keeps encrypted copies of others' content
# unless you opt out here. Opting out is honoured everywhere.
custodian_opt_in = true
# Shares of this machine you offer (your steward tier follows from them).
storage_percent = 10.0
bandwidth_percent = 20.0
cpu_percent = 15.0
# Serving and rebuilding shards are paced to bandwidth_percent of the link.
# Rebuilds that can wait run in this window, local time (22:00-06:00);
# a content down to its last needed shards is rebuilt at once. Equal hours
# mean the whole day.
off_peak_start_hour = 22
off_peak_end_hour = 6
# Privacy controls (also on the local settings page).
aggregate_metrics_only = true
encrypt_custodied_content = true
allow_emergency_access = false
# Set once you have been through the first-time setup page.
setup_complete = false

[capacity]
# Leave unset to detect: bandwidth from the network link speed, storage as
# the free space on the data directory's disk.
# bandwidth_mbps = 100
# storage_gb = 500.0

[heartbeat]
# Beats to this node's monitors (signals: nothing is written).
interval_secs = 30
# Retries back off up to this long while the conductor is unreachable.
max_backoff_secs = 60
# A new status (degraded under load, online again) is published only once
# the machine has stayed that way this long: each change is a record.
status_dwell_secs = 900

[conductor]
# "embedded" runs a conductor in this process; "external" uses yours.
mode = "embedded"
data_dir = "elohim-data"
happ = "workdir/elohim_orchestrator.happ"
# Embedded: admin websocket port on 127.0.0.1 (0 picks a free one).
admin_port = 0
# External: your conductor's admin websocket, e.g. "127.0.0.1:4444".
# admin_addr = "127.0.0.1:4444"

[network]
# Bootstrap and relay for every node of your network. The first embedded
# node on a machine serves it here; across machines use a LAN address.
rendezvous = "127.0.0.1:45555"
serve_rendezvous = true

[http]
# Metrics (/metrics), the local pages and APIs, and shard transfers.
listen = "127.0.0.1:8787"
# How other nodes reach this one; unset means http://<listen>. Set a LAN
# address (e.g. "http://192.168.1.20:8787") when nodes run on several machines.
# advertise = "http://192.168.1.20:8787"
# The dashboard's history plot takes a sample this often (it keeps 240).
history_sample_secs = 60

[custody]
# How often to look for failed nodes and to check this node holds every
# shard it is assigned.
detect_interval_secs = 15
reconcile_interval_secs = 30
# A node silent this long is suspected; after the grace period on top it is
# declared failed and its shards are rebuilt elsewhere (a blip moves nothing).
failure_window_secs = 60
grace_secs = 120
# A publisher sends shards while their assignments still travel the DHT;
# this node holds such shards for now, up to these many MB per publisher
# and in all, and lets go of any whose assignment it does not see within
# provisional_keep_secs (0 MB takes none early: they then wait).
provisional_per_sender_mb = 2048
provisional_total_mb = 8192
provisional_keep_secs = 3600

[peers]
# This node beats to a few monitors chosen among its region's nodes, and
# watches the nodes that beat to it; a monitor records a verdict only when
# it changes. How many monitors, and how often to re-read who is present.
monitors = 4
membership_refresh_secs = 60
# How often to read the region's suspicions, to answer one about a node
# this node hears fine (evidence against liars).
suspicion_scan_secs = 60
# How often to look for attesters that contradict the consensus.
byzantine_scan_interval_secs = 300
# How often to look for regional custody proposals to vote on.
vote_interval_secs = 10

[keys]
# Routine writes go through a working key replaced every epoch (or once its
# chain holds this many records), so the node's calls never slow with age.
epoch_secs = 604800
max_working_records = 2000

[rewards]
# What this node served each receiver is recorded once per period.
summary_interval_secs = 3600
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_default_is_the_default() {
        assert_eq!(Config::parse(DEFAULT_CONFIG).unwrap(), Config::default());
    }

    #[test]
    fn organ_donation_defaults() {
        let p = ParticipationSection::default();
        assert!(p.custodian_opt_in);
        assert_eq!(
            (p.storage_percent, p.bandwidth_percent, p.cpu_percent),
            (10.0, 20.0, 15.0)
        );
        assert_eq!((p.off_peak_start_hour, p.off_peak_end_hour), (22, 6));
        assert_eq!(HeartbeatSection::default().interval_secs, 30);
    }

    fn field_of(text: &str) -> String {
        match Config::parse(text) {
            Err(ConfigError::Invalid { field, .. }) => field.to_string(),
            Err(e) => e.to_string(),
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(field_of("[node]\nregion = \"mars-north\""), "node.region");
        assert_eq!(field_of("[node]\nlabel = \"My Rack!\""), "node.label");
        assert_eq!(field_of("[node]\nlatitude = 91.0"), "node.latitude");
        assert_eq!(
            field_of("[participation]\nstorage_percent = 150.0"),
            "participation.storage_percent"
        );
        assert_eq!(
            field_of("[participation]\ncpu_percent = -1.0"),
            "participation.cpu_percent"
        );
        assert_eq!(
            field_of("[participation]\noff_peak_end_hour = 24"),
            "participation.off_peak_end_hour"
        );
        assert_eq!(
            field_of("[capacity]\nbandwidth_mbps = 0"),
            "capacity.bandwidth_mbps"
        );
        assert_eq!(
            field_of("[heartbeat]\ninterval_secs = 0"),
            "heartbeat.interval_secs"
        );
        assert_eq!(
            field_of("[http]\nhistory_sample_secs = 0"),
            "http.history_sample_secs"
        );
        assert_eq!(field_of("[peers]\nmonitors = 1"), "peers.monitors");
        assert_eq!(field_of("[keys]\nepoch_secs = 10"), "keys.epoch_secs");
        assert_eq!(
            field_of("[rewards]\nsummary_interval_secs = 0"),
            "rewards.summary_interval_secs"
        );
        assert_eq!(
            field_of("[conductor]\nmode = \"external\""),
            "conductor.admin_addr"
        );
    }

    #[test]
    fn saving_participation_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("elohim.toml");
        std::fs::write(
            &path,
            "# my rack\n[node]\nregion = \"eu-west\" # home\n[participation]\ncpu_percent = 5.0\n",
        )
        .unwrap();
        let p = ParticipationSection {
            custodian_opt_in: false,
            storage_percent: 42.5,
            setup_complete: true,
            ..Default::default()
        };
        Config::save_participation(&path, &p).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# my rack") && text.contains("# home"),
            "{text}"
        );
        let c = Config::load(&path).unwrap();
        assert_eq!(c.participation, p);
        assert_eq!(c.node.region, "eu-west");

        // No file yet: the commented default is written with the section.
        let fresh = dir.path().join("new.toml");
        Config::save_participation(&fresh, &p).unwrap();
        assert_eq!(Config::load(&fresh).unwrap().participation, p);

        // A value the config refuses is never written.
        let bad = ParticipationSection {
            cpu_percent: 150.0,
            ..Default::default()
        };
        assert!(Config::save_participation(&path, &bad).is_err());
        assert_eq!(Config::load(&path).unwrap().participation, p);
    }

    #[test]
    fn unknown_and_mistyped_keys_name_the_key() {
        let e = field_of("[node]\nregoin = \"eu-west\"");
        assert!(e.contains("regoin"), "{e}");
        let e = field_of("[heartbeat]\ninterval_secs = \"often\"");
        assert!(e.contains("interval_secs"), "{e}");
        let e = field_of("[conductor]\nmode = \"cloud\"");
        assert!(e.contains("mode") || e.contains("cloud"), "{e}");
    }
}
