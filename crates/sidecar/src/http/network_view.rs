//! The network as this node sees it, for its dashboard: the region's nodes
//! (alive, suspected, failed), this node's own content at risk, the repairs
//! it is running or queued, and a short history of heartbeat latency and
//! shard bytes moved, drawn as inline SVG.
//!
//! A page view only reads: the DHT through the reader agent (whose chain
//! stays at its genesis), the rest from memory. Looking at the network
//! costs no records (the write budget counts records per node per day).
//!
//! The judgements are pure functions ([`judge_region`], [`content_health`],
//! [`plot_svg`], [`History`], [`RepairLog`]) so they are tested without a
//! conductor; [`NetworkView::snapshot`] gathers their inputs.

use crate::custody::Custody;
use crate::metrics::Metrics;
use crate::node::agent::NodeAgent;
use maud::{html, Markup};
use node_registry_integrity::zome_fns::{
    DetectFailedNodes, GetAssignmentsForOwner, GetNodesByRegion,
};
use node_registry_integrity::{
    AssignmentRecord, CustodianAssignment, DetectionInput, NodeLiveness, NodeRegistration,
    RepairReport,
};
use registry_core::heartbeat::Liveness;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How long one read for the page may take before the page shows it as
/// unavailable instead of waiting on a slow DHT.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Samples the history keeps: four hours at the default one a minute.
pub const HISTORY_SAMPLES: usize = 240;
/// Queued repairs remembered for the page.
pub const REPAIRS_KEPT: usize = 32;

// --- the region's nodes ----------------------------------------------------

/// How a node is judged now (worst first, so sorting puts trouble on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeState {
    /// Two vetted monitors suspect it past window and grace, or it holds no
    /// lease: its shards are being re-homed.
    Failed,
    /// Silent past the failure window (or suspected by one monitor): data
    /// is not moved yet.
    Suspected,
    /// Neither of the above.
    Alive,
}

impl NodeState {
    /// The word the page shows.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Failed => "failed",
            NodeState::Suspected => "suspected",
            NodeState::Alive => "alive",
        }
    }
}

/// A node of this node's region as the page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionNode {
    /// Its node id.
    pub node_id: String,
    /// Its display name.
    pub display_name: String,
    /// Its steward tier.
    pub tier: String,
    /// Whether it takes custody.
    pub custodian_opt_in: bool,
    /// How it is judged.
    pub state: NodeState,
    /// Seconds since it was last heard, for a node not alive.
    pub silent_secs: Option<i64>,
    /// Distinct vetted monitors suspecting it.
    pub reporters: u32,
    /// Whether it is this node.
    pub is_self: bool,
}

/// The state of every node `detect_failed_nodes` lists (it lists only
/// nodes that are not alive), with its silence and reporters.
fn judged_states(judged: &[NodeLiveness]) -> HashMap<&str, (NodeState, Option<i64>, u32)> {
    judged
        .iter()
        .map(|n| {
            let (state, silent) = match n.liveness {
                Liveness::Alive { silent_secs } => (NodeState::Alive, Some(silent_secs)),
                Liveness::Suspected { silent_secs } => (NodeState::Suspected, Some(silent_secs)),
                Liveness::Failed { silent_secs } => (NodeState::Failed, silent_secs),
            };
            (n.node_id.as_str(), (state, silent, n.reporters))
        })
        .collect()
}

/// The region's registered nodes, each judged as `detect_failed_nodes`
/// (under this node's own window and grace) judged it: a node it does not
/// list is alive. Failed first, then suspected, then alive; by name within.
pub fn judge_region(
    me: &str,
    registered: Vec<NodeRegistration>,
    judged: &[NodeLiveness],
) -> Vec<RegionNode> {
    let states = judged_states(judged);
    let mut out: Vec<RegionNode> = registered
        .into_iter()
        .map(|r| {
            let (state, silent_secs, reporters) = states
                .get(r.node_id.as_str())
                .copied()
                .unwrap_or((NodeState::Alive, None, 0));
            RegionNode {
                is_self: r.node_id == me,
                node_id: r.node_id,
                display_name: r.display_name,
                tier: r.steward_tier,
                custodian_opt_in: r.custodian_opt_in,
                state,
                silent_secs,
                reporters,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (a.state, &a.display_name, &a.node_id).cmp(&(b.state, &b.display_name, &b.node_id))
    });
    out
}

/// How many nodes are in each state: (alive, suspected, failed).
pub fn region_counts(nodes: &[RegionNode]) -> (usize, usize, usize) {
    let n = |s| nodes.iter().filter(|x| x.state == s).count();
    (
        n(NodeState::Alive),
        n(NodeState::Suspected),
        n(NodeState::Failed),
    )
}

// --- content at risk -------------------------------------------------------

/// How safe one content is (worst first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    /// Fewer holders not judged failed than it needs to be restored.
    AtRisk,
    /// Restorable, but not every shard has an alive holder (one is
    /// suspected, failed or has no live assignment): a repair is due.
    Degraded,
    /// Every shard has an alive holder.
    Healthy,
}

impl Risk {
    /// The words the page shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::AtRisk => "at risk",
            Risk::Degraded => "degraded",
            Risk::Healthy => "healthy",
        }
    }
}

/// One content this node published, with who holds its shards now.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHealth {
    /// The content id.
    pub content_id: String,
    /// The file name it was published from, when this node's catalog has it.
    pub name: Option<String>,
    /// full_replica, erasure_coded or threshold_split.
    pub strategy: String,
    /// Shards needed to restore it: `k`, or 1 for a full replica.
    pub needed: u32,
    /// Shards in total (`n`).
    pub shards: u32,
    /// Shards whose custodian is alive.
    pub alive: u32,
    /// Shards whose custodian is suspected (still counted as holding).
    pub suspected: u32,
    /// Shards whose custodian is judged failed (not counted).
    pub failed: u32,
    /// Shards with no live assignment at all.
    pub missing: u32,
    /// The verdict.
    pub risk: Risk,
}

impl ContentHealth {
    /// Shards held by a custodian not judged failed: what a restore or a
    /// repair can draw on.
    pub fn usable(&self) -> u32 {
        self.alive + self.suspected
    }
}

/// Judges each content of `records` (the live assignments of this node's
/// own content, from `get_assignments_for_owner`) against who is failed or
/// suspected now:
///
/// - a shard counts as held when one of its live assignments names a
///   custodian not judged failed (an alive one beats a suspected one);
/// - the content is **at risk** when fewer shards are held than it needs
///   (`k` of `n`; 1 for `full_replica`): the network cannot restore it now;
/// - **degraded** when it can, but some shard has no alive holder;
/// - **healthy** otherwise.
///
/// At risk first, then degraded, then healthy; by name within.
pub fn content_health(
    records: &[AssignmentRecord],
    judged: &[NodeLiveness],
    names: &HashMap<String, String>,
) -> Vec<ContentHealth> {
    let states = judged_states(judged);
    let state_of = |node: &str| states.get(node).map(|s| s.0).unwrap_or(NodeState::Alive);
    // content id -> (an assignment of it, best state per shard index)
    let mut by_content: BTreeMap<&str, (&CustodianAssignment, BTreeMap<u32, NodeState>)> =
        BTreeMap::new();
    for r in records {
        let a = &r.assignment;
        let entry = by_content
            .entry(a.content_id.as_str())
            .or_insert_with(|| (a, BTreeMap::new()));
        let s = state_of(&a.custodian_node_id);
        entry
            .1
            .entry(a.shard_index)
            .and_modify(|best| *best = (*best).max(s))
            .or_insert(s);
        if a.shard_count > entry.0.shard_count {
            entry.0 = a;
        }
    }
    let mut out: Vec<ContentHealth> = by_content
        .into_iter()
        .map(|(id, (a, shards))| {
            let total = a.shard_count.max(shards.keys().max().map_or(0, |i| i + 1));
            let count = |s| shards.values().filter(|x| **x == s).count() as u32;
            let (alive, suspected, failed) = (
                count(NodeState::Alive),
                count(NodeState::Suspected),
                count(NodeState::Failed),
            );
            let needed = a.shards_needed();
            let risk = if alive + suspected < needed {
                Risk::AtRisk
            } else if alive < total {
                Risk::Degraded
            } else {
                Risk::Healthy
            };
            ContentHealth {
                content_id: id.to_string(),
                name: names.get(id).cloned(),
                strategy: a.strategy.clone(),
                needed,
                shards: total,
                alive,
                suspected,
                failed,
                missing: total - (alive + suspected + failed).min(total),
                risk,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.risk, &a.name, &a.content_id).cmp(&(b.risk, &b.name, &b.content_id)));
    out
}

// --- repairs ---------------------------------------------------------------

/// A shard this node is rebuilding now, as its new custodian.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuild {
    /// The content.
    pub content_id: String,
    /// The shard being rebuilt.
    pub shard_index: u32,
    /// Its hash.
    pub shard_hash: String,
    /// Its size, bytes.
    pub shard_bytes: u64,
    /// Shards to fetch from other holders (1 for a full replica, `k`
    /// otherwise).
    pub needed: u32,
    /// Shards fetched and verified so far.
    pub fetched: u32,
    /// When it started, Unix milliseconds.
    pub started_ms: i64,
}

impl Rebuild {
    /// A rebuild of `a`'s shard starting now, nothing fetched yet.
    pub fn of(a: &CustodianAssignment) -> Rebuild {
        Rebuild {
            content_id: a.content_id.clone(),
            shard_index: a.shard_index,
            shard_hash: a.shard_hash.clone(),
            shard_bytes: a.shard_size_bytes,
            needed: a.shards_needed(),
            fetched: 0,
            started_ms: crate::clock::unix_ms(),
        }
    }
}

/// What became of one shard this node set out to re-home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// A replacement assignment was written for this node.
    Queued {
        /// The new custodian.
        to: String,
    },
    /// No node could take it; it stays on its old assignment until a
    /// later run succeeds.
    Unplaced {
        /// Why.
        reason: String,
    },
}

/// One shard re-homed (or not) by this node's detector or hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRepair {
    /// The node that lost it.
    pub failed_node: String,
    /// The content.
    pub content_id: String,
    /// The shard.
    pub shard_index: u32,
    /// What happened.
    pub outcome: RepairOutcome,
    /// First time this was reported, Unix milliseconds.
    pub first_ms: i64,
    /// Last time (a shard no node can take is retried every detection).
    pub last_ms: i64,
    /// How many runs reported it.
    pub runs: u32,
}

/// The repairs this node queued recently, newest last, at most `cap`; a
/// repeat of the same outcome for the same shard updates its entry.
#[derive(Debug, Clone)]
pub struct RepairLog {
    cap: usize,
    entries: VecDeque<QueuedRepair>,
}

impl RepairLog {
    /// An empty log keeping at most `cap` entries.
    pub fn new(cap: usize) -> RepairLog {
        RepairLog {
            cap: cap.max(1),
            entries: VecDeque::new(),
        }
    }

    /// Takes in one recovery run's report at `now_ms`.
    pub fn note(&mut self, report: &RepairReport, now_ms: i64) {
        let placed = report.replacements.iter().map(|r| {
            (
                r.assignment.content_id.clone(),
                r.assignment.shard_index,
                RepairOutcome::Queued {
                    to: r.assignment.custodian_node_id.clone(),
                },
            )
        });
        let unplaced = report.unplaced.iter().map(|u| {
            (
                u.content_id.clone(),
                u.shard_index,
                RepairOutcome::Unplaced {
                    reason: u.reason.clone(),
                },
            )
        });
        for (content_id, shard_index, outcome) in placed.chain(unplaced) {
            let same = self.entries.iter().position(|e| {
                e.failed_node == report.failed_node_id
                    && e.content_id == content_id
                    && e.shard_index == shard_index
                    && e.outcome == outcome
            });
            let entry = match same.and_then(|i| self.entries.remove(i)) {
                Some(mut e) => {
                    e.last_ms = now_ms;
                    e.runs += 1;
                    e
                }
                None => QueuedRepair {
                    failed_node: report.failed_node_id.clone(),
                    content_id,
                    shard_index,
                    outcome,
                    first_ms: now_ms,
                    last_ms: now_ms,
                    runs: 1,
                },
            };
            self.entries.push_back(entry);
            while self.entries.len() > self.cap {
                self.entries.pop_front();
            }
        }
    }

    /// The entries, newest first.
    pub fn recent(&self) -> Vec<QueuedRepair> {
        self.entries.iter().rev().cloned().collect()
    }
}

// --- history ---------------------------------------------------------------

/// The running totals a history sample is the difference of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Shard bytes received or fetched.
    pub bytes_in: u64,
    /// Shard bytes served or pushed.
    pub bytes_out: u64,
    /// Lease rounds (register, working key, lease when due): seconds summed
    /// and rounds.
    pub lease: (f64, u64),
    /// Beats to the monitors: seconds summed and beats.
    pub beat: (f64, u64),
}

impl Counters {
    /// Reads the totals from the sidecar's metrics.
    pub fn read(m: &Metrics) -> Counters {
        let round = |part: &str| m.heartbeat_round_totals(part);
        let bytes = |direction: &str| {
            m.transfer_bytes
                .get(&vec![("direction".to_string(), direction.to_string())])
                .map_or(0, |c| c.get())
        };
        Counters {
            bytes_in: bytes("in"),
            bytes_out: bytes("out"),
            lease: round("lease"),
            beat: round("beat"),
        }
    }
}

/// What happened between two readings of the counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// End of the span, Unix milliseconds.
    pub at_ms: i64,
    /// Length of the span, milliseconds (at least 1).
    pub span_ms: i64,
    /// Mean lease round in the span, milliseconds (None: no round ended).
    pub lease_ms: Option<f64>,
    /// Mean beat in the span, milliseconds (None: no beat was sent).
    pub beat_ms: Option<f64>,
    /// Shard bytes in during the span.
    pub bytes_in: u64,
    /// Shard bytes out during the span.
    pub bytes_out: u64,
}

impl Sample {
    fn between(from: (i64, Counters), to: (i64, Counters)) -> Sample {
        let mean = |a: (f64, u64), b: (f64, u64)| {
            let n = b.1.saturating_sub(a.1);
            (n > 0).then(|| (b.0 - a.0).max(0.0) / n as f64 * 1000.0)
        };
        Sample {
            at_ms: to.0,
            span_ms: (to.0 - from.0).max(1),
            lease_ms: mean(from.1.lease, to.1.lease),
            beat_ms: mean(from.1.beat, to.1.beat),
            bytes_in: to.1.bytes_in.saturating_sub(from.1.bytes_in),
            bytes_out: to.1.bytes_out.saturating_sub(from.1.bytes_out),
        }
    }

    /// Bytes per second in and out over the span.
    pub fn rates(&self) -> (f64, f64) {
        let secs = self.span_ms as f64 / 1000.0;
        (self.bytes_in as f64 / secs, self.bytes_out as f64 / secs)
    }
}

/// A ring of the last samples (one per sampling period), in memory only:
/// a restart starts it afresh.
#[derive(Debug, Clone)]
pub struct History {
    cap: usize,
    ring: VecDeque<Sample>,
    last: Option<(i64, Counters)>,
    started: Option<(i64, Counters)>,
}

impl History {
    /// An empty history keeping the last `cap` samples.
    pub fn new(cap: usize) -> History {
        History {
            cap: cap.max(1),
            ring: VecDeque::new(),
            last: None,
            started: None,
        }
    }

    /// Takes a reading at `at_ms`: the first only sets the baseline, each
    /// later one adds the sample of the span since the previous one.
    pub fn record(&mut self, at_ms: i64, c: Counters) {
        if let Some(prev) = self.last {
            if at_ms <= prev.0 {
                return;
            }
            self.ring.push_back(Sample::between(prev, (at_ms, c)));
            while self.ring.len() > self.cap {
                self.ring.pop_front();
            }
        } else {
            self.started = Some((at_ms, c));
        }
        self.last = Some((at_ms, c));
    }

    /// The kept samples, oldest first, plus the span from the last reading
    /// to `now` (if any time passed), so the plot ends at the present.
    pub fn samples_until(&self, now_ms: i64, c: Counters) -> Vec<Sample> {
        let mut out: Vec<Sample> = self.ring.iter().copied().collect();
        if let Some(prev) = self.last {
            if now_ms > prev.0 {
                out.push(Sample::between(prev, (now_ms, c)));
            }
        }
        out
    }

    /// Totals since the first reading: (bytes in, bytes out).
    pub fn moved_since_start(&self, c: Counters) -> (u64, u64) {
        match self.started {
            Some((_, s)) => (
                c.bytes_in.saturating_sub(s.bytes_in),
                c.bytes_out.saturating_sub(s.bytes_out),
            ),
            None => (0, 0),
        }
    }
}

// --- the plot --------------------------------------------------------------

/// One line of a plot: points at (Unix ms, value); `None` is a gap.
#[derive(Debug, Clone)]
pub struct Series {
    /// A short name, shown in the legend and kept as `data-series`.
    pub name: String,
    /// Its CSS colour.
    pub color: &'static str,
    /// Its points, in time order.
    pub points: Vec<(i64, Option<f64>)>,
}

/// Plot width and height in SVG units (the page scales it to its column).
const PLOT_W: f64 = 600.0;
const PLOT_H: f64 = 150.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 8.0;
const PAD_T: f64 = 10.0;
const PAD_B: f64 = 20.0;

/// A span of time as the axis says it ("4 h", "12 min", "40 s").
fn span_words(ms: i64) -> String {
    let s = ms / 1000;
    if s >= 2 * 3600 {
        format!("{} h", s / 3600)
    } else if s >= 120 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// Draws `series` from `from_ms` to `to_ms` as an inline SVG line plot
/// (no script, no network): one polyline per unbroken run of points (a
/// lone point is a dot), the y axis from 0 to the largest value with its
/// label from `label`, the x axis from "-span" to "now". `testid` names
/// the SVG for tests. With no value at all it says so instead of drawing
/// empty axes.
pub fn plot_svg(
    testid: &str,
    title: &str,
    from_ms: i64,
    to_ms: i64,
    series: &[Series],
    label: &dyn Fn(f64) -> String,
) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let any = series
        .iter()
        .any(|s| s.points.iter().any(|p| p.1.is_some_and(f64::is_finite)));
    if !any {
        return html! {
            p.hint data-testid=(testid) { (title) ": no samples yet." }
        };
    }
    let top = if max > 0.0 { max } else { 1.0 };
    let span = (to_ms - from_ms).max(1) as f64;
    let x =
        |t: i64| PAD_L + ((t - from_ms) as f64 / span).clamp(0.0, 1.0) * (PLOT_W - PAD_L - PAD_R);
    let y = |v: f64| PAD_T + (1.0 - (v / top).clamp(0.0, 1.0)) * (PLOT_H - PAD_T - PAD_B);
    // Unbroken runs of each series.
    let runs = |s: &Series| -> Vec<Vec<(f64, f64)>> {
        let mut out = vec![Vec::new()];
        for (t, v) in &s.points {
            match v.filter(|v| v.is_finite()) {
                Some(v) => out.last_mut().expect("never empty").push((x(*t), y(v))),
                None => {
                    if !out.last().expect("never empty").is_empty() {
                        out.push(Vec::new());
                    }
                }
            }
        }
        out.retain(|r| !r.is_empty());
        out
    };
    let fmt = |p: &[(f64, f64)]| {
        p.iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let bottom = PLOT_H - PAD_B;
    html! {
        svg data-testid=(testid) role="img" aria-label=(title)
            viewBox=(format!("0 0 {PLOT_W} {PLOT_H}")) width="100%"
            preserveAspectRatio="xMidYMid meet" {
            title { (title) }
            g class="axes" stroke="#c9ced9" stroke-width="1" {
                line x1=(PAD_L) y1=(PAD_T) x2=(PLOT_W - PAD_R) y2=(PAD_T) {}
                line x1=(PAD_L) y1=(y(top / 2.0)) x2=(PLOT_W - PAD_R) y2=(y(top / 2.0)) {}
                line x1=(PAD_L) y1=(bottom) x2=(PLOT_W - PAD_R) y2=(bottom) {}
            }
            g font-size="11" fill="#5a6272" {
                text x=(PAD_L - 4.0) y=(PAD_T + 4.0) text-anchor="end" { (label(top)) }
                text x=(PAD_L - 4.0) y=(y(top / 2.0) + 4.0) text-anchor="end" { (label(top / 2.0)) }
                text x=(PAD_L - 4.0) y=(bottom + 4.0) text-anchor="end" { "0" }
                text x=(PAD_L) y=(PLOT_H - 4.0) text-anchor="start" { "-" (span_words(to_ms - from_ms)) }
                text x=(PLOT_W - PAD_R) y=(PLOT_H - 4.0) text-anchor="end" { "now" }
            }
            @for s in series {
                g data-series=(s.name) stroke=(s.color) fill=(s.color) {
                    @for run in runs(s) {
                        @if run.len() == 1 {
                            circle cx=(format!("{:.1}", run[0].0)) cy=(format!("{:.1}", run[0].1)) r="2.5" {}
                        } @else {
                            polyline fill="none" stroke-width="1.8" points=(fmt(&run)) {}
                        }
                    }
                }
            }
        }
    }
}

// --- the shared state and the snapshot ---------------------------------------

/// What the sidecar keeps in memory for the page: the history ring and the
/// repairs it queued. Fed by the daemon's workers.
pub struct NetworkView {
    history: Mutex<History>,
    repairs: Mutex<RepairLog>,
}

impl Default for NetworkView {
    fn default() -> Self {
        NetworkView {
            history: Mutex::new(History::new(HISTORY_SAMPLES)),
            repairs: Mutex::new(RepairLog::new(REPAIRS_KEPT)),
        }
    }
}

/// Everything the page shows about the network, read once per view. A
/// read that failed (or took longer than [`READ_TIMEOUT`]) is kept as its
/// error, shown as text.
pub struct NetworkSnapshot {
    /// This node's region.
    pub region: String,
    /// The region's nodes, judged.
    pub nodes: Result<Vec<RegionNode>, String>,
    /// This node's own content, judged.
    pub contents: Result<Vec<ContentHealth>, String>,
    /// Shards this node is rebuilding now.
    pub rebuilds: Vec<Rebuild>,
    /// Repairs this node queued recently, newest first.
    pub queued: Vec<QueuedRepair>,
    /// The history, oldest first, ending now.
    pub history: Vec<Sample>,
    /// Now, Unix milliseconds.
    pub now_ms: i64,
    /// Shard bytes (in, out) since the sidecar started.
    pub moved: (u64, u64),
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, crate::registry::conductor::ConductorError>>,
) -> Result<T, String> {
    match tokio::time::timeout(READ_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            READ_TIMEOUT.as_secs()
        )),
    }
}

impl NetworkView {
    /// Takes a history reading from `metrics` now (the daemon calls this
    /// once per sampling period, and once at start for the baseline).
    pub fn sample(&self, metrics: &Metrics) {
        self.history
            .lock()
            .unwrap()
            .record(crate::clock::unix_ms(), Counters::read(metrics));
    }

    /// Remembers what one recovery run (detection's or a hand-over's) did.
    pub fn note_repairs(&self, report: &RepairReport) {
        self.repairs
            .lock()
            .unwrap()
            .note(report, crate::clock::unix_ms());
    }

    /// Reads what the page shows: the region's registrations, who is not
    /// alive and this node's own live assignments, at once and through the
    /// reader agent (nothing written); the rest from memory.
    pub async fn snapshot(&self, agent: &NodeAgent, custody: &Custody) -> NetworkSnapshot {
        let region = agent.config().node.region.clone();
        let cfg = &agent.config().custody;
        let policy = DetectionInput {
            failure_window_secs: Some(cfg.failure_window_secs),
            grace_secs: Some(cfg.grace_secs),
        };
        let (registered, judged, mine) = tokio::join!(
            timed(
                "the region's nodes",
                agent.read_fn::<GetNodesByRegion>(region.clone())
            ),
            timed(
                "who is failed or suspected",
                agent.read_fn::<DetectFailedNodes>(Some(policy))
            ),
            timed(
                "this node's content",
                agent.read_fn::<GetAssignmentsForOwner>(agent.agent().clone())
            ),
        );
        let names: HashMap<String, String> = custody
            .catalog
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.content_id, c.name))
            .collect();
        let nodes = match (&registered, &judged) {
            (Ok(r), Ok(j)) => Ok(judge_region(&agent.node_id, r.clone(), j)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let contents = match (&mine, &judged) {
            (Ok(m), Ok(j)) => Ok(content_health(m, j, &names)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let now = crate::clock::unix_ms();
        let counters = Counters::read(&agent.metrics);
        let (history, moved) = {
            let h = self.history.lock().unwrap();
            (
                h.samples_until(now, counters),
                h.moved_since_start(counters),
            )
        };
        let mut rebuilds = custody.rebuilds();
        rebuilds.sort_by_key(|r| r.started_ms);
        NetworkSnapshot {
            region,
            nodes,
            contents,
            rebuilds,
            queued: self.repairs.lock().unwrap().recent(),
            history,
            now_ms: now,
            moved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holochain_types::prelude::{AgentPubKey, EntryHash, Timestamp};
    use node_registry_integrity::UnplacedShard;

    fn reg(id: &str, name: &str) -> NodeRegistration {
        NodeRegistration {
            node_id: id.into(),
            agent_pub_key: AgentPubKey::from_raw_32(vec![1; 32]),
            display_name: name.into(),
            cpu_cores: 4,
            memory_gb: 8.0,
            storage_tb: 1.0,
            bandwidth_mbps: 100,
            region: "eu-west".into(),
            latitude: None,
            longitude: None,
            zomes_hosted: vec![],
            steward_tier: "guardian".into(),
            custodian_opt_in: true,
            max_custody_gb: 50.0,
            max_bandwidth_mbps: 20,
            max_cpu_percent: 15.0,
            off_peak_hours: Default::default(),
            uptime_percent: 99.0,
            endpoint: None,
            registered_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
        }
    }

    fn down(id: &str, liveness: Liveness, reporters: u32) -> NodeLiveness {
        NodeLiveness {
            node_id: id.into(),
            agent: AgentPubKey::from_raw_32(vec![2; 32]),
            liveness,
            last_heartbeat: None,
            reporters,
        }
    }

    fn failed(id: &str) -> NodeLiveness {
        down(
            id,
            Liveness::Failed {
                silent_secs: Some(300),
            },
            2,
        )
    }

    fn suspected(id: &str) -> NodeLiveness {
        down(id, Liveness::Suspected { silent_secs: 20 }, 1)
    }

    #[test]
    fn the_region_is_judged_by_detection_and_trouble_comes_first() {
        let nodes = judge_region(
            "me",
            vec![
                reg("me", "Mine"),
                reg("b", "Bea"),
                reg("c", "Cy"),
                reg("d", "Dee"),
            ],
            &[failed("c"), suspected("d"), failed("elsewhere")],
        );
        let order: Vec<(&str, NodeState)> = nodes
            .iter()
            .map(|n| (n.node_id.as_str(), n.state))
            .collect();
        assert_eq!(
            order,
            [
                ("c", NodeState::Failed),
                ("d", NodeState::Suspected),
                ("b", NodeState::Alive),
                ("me", NodeState::Alive),
            ]
        );
        assert!(nodes[3].is_self && !nodes[0].is_self);
        assert_eq!((nodes[0].silent_secs, nodes[0].reporters), (Some(300), 2));
        assert_eq!(region_counts(&nodes), (2, 1, 1));
        assert_eq!(region_counts(&[]), (0, 0, 0));
    }

    fn record(
        content: &str,
        strategy: &str,
        k: u32,
        n: u32,
        index: u32,
        on: &str,
    ) -> AssignmentRecord {
        let a: CustodianAssignment = CustodianAssignment {
            assignment_id: format!("{content}-{index}"),
            content_id: content.into(),
            content_hash: "h".into(),
            content_size_bytes: 3000,
            shard_size_bytes: 1000,
            shard_hash: format!("{content}{index}"),
            owner_agent: AgentPubKey::from_raw_32(vec![3; 32]),
            reach: "private".into(),
            custodian_node_id: on.into(),
            custodian_registration: holochain_types::prelude::ActionHash::from_raw_32(vec![4; 32]),
            strategy: strategy.into(),
            threshold: k,
            shard_count: n,
            shard_index: index,
            round_custodians: vec![],
            decided_by: "publisher".into(),
            decision_round: 0,
            replaces: None,
            preferred_region: None,
            required_tier: None,
            quorum_proposal: None,
            quorum_votes: vec![],
            relationship: None,
        };
        AssignmentRecord {
            assignment: a,
            entry_hash: EntryHash::from_raw_32(vec![5; 32]),
            assigned_at: None,
        }
    }

    fn health<'a>(all: &'a [ContentHealth], id: &str) -> &'a ContentHealth {
        all.iter().find(|c| c.content_id == id).unwrap()
    }

    #[test]
    fn content_is_at_risk_below_its_threshold_of_holders_not_failed() {
        let records = vec![
            // 2-of-3, one holder failed: restorable, degraded.
            record("ec", "erasure_coded", 2, 3, 0, "a"),
            record("ec", "erasure_coded", 2, 3, 1, "b"),
            record("ec", "erasure_coded", 2, 3, 2, "dead1"),
            // 2-of-3, two failed: at risk.
            record("ts", "threshold_split", 2, 3, 0, "a"),
            record("ts", "threshold_split", 2, 3, 1, "dead1"),
            record("ts", "threshold_split", 2, 3, 2, "dead2"),
            // Full replica on one failed node and one suspected: a
            // suspected holder still counts, so degraded, not at risk.
            record("fr", "full_replica", 1, 2, 0, "dead1"),
            record("fr", "full_replica", 1, 2, 1, "slow"),
            // Full replica whose only holder failed: at risk.
            record("lone", "full_replica", 1, 1, 0, "dead2"),
            // 2-of-3 with one shard's assignment gone: degraded, missing 1.
            record("gap", "erasure_coded", 2, 3, 0, "a"),
            record("gap", "erasure_coded", 2, 3, 2, "b"),
            // Everything alive.
            record("ok", "erasure_coded", 2, 3, 0, "a"),
            record("ok", "erasure_coded", 2, 3, 1, "b"),
            record("ok", "erasure_coded", 2, 3, 2, "c"),
        ];
        let judged = [failed("dead1"), failed("dead2"), suspected("slow")];
        let names: HashMap<String, String> = [("ok".to_string(), "photo.jpg".to_string())].into();
        let all = content_health(&records, &judged, &names);
        let ec = health(&all, "ec");
        assert_eq!(
            (
                ec.risk,
                ec.needed,
                ec.shards,
                ec.alive,
                ec.failed,
                ec.usable()
            ),
            (Risk::Degraded, 2, 3, 2, 1, 2)
        );
        let ts = health(&all, "ts");
        assert_eq!((ts.risk, ts.usable(), ts.failed), (Risk::AtRisk, 1, 2));
        let fr = health(&all, "fr");
        assert_eq!((fr.risk, fr.needed, fr.suspected), (Risk::Degraded, 1, 1));
        assert_eq!(health(&all, "lone").risk, Risk::AtRisk);
        let gap = health(&all, "gap");
        assert_eq!((gap.risk, gap.missing, gap.alive), (Risk::Degraded, 1, 2));
        let ok = health(&all, "ok");
        assert_eq!(
            (ok.risk, ok.name.as_deref()),
            (Risk::Healthy, Some("photo.jpg"))
        );
        // At risk first, healthy last.
        assert_eq!(all.first().unwrap().risk, Risk::AtRisk);
        assert_eq!(all.last().unwrap().content_id, "ok");
    }

    #[test]
    fn a_shard_with_an_alive_holder_beside_a_failed_one_is_held() {
        // A repair's new round is live before the old one is marked.
        let records = vec![
            record("x", "full_replica", 1, 1, 0, "dead"),
            record("x", "full_replica", 1, 1, 0, "new"),
        ];
        let all = content_health(&records, &[failed("dead")], &HashMap::new());
        assert_eq!(
            (all[0].risk, all[0].alive, all[0].failed, all[0].missing),
            (Risk::Healthy, 1, 0, 0)
        );
        assert!(content_health(&[], &[], &HashMap::new()).is_empty());
    }

    #[test]
    fn the_repair_log_is_bounded_and_folds_repeats() {
        let mut log = RepairLog::new(3);
        let unplaced = RepairReport {
            failed_node_id: "dead".into(),
            replacements: vec![],
            unplaced: vec![UnplacedShard {
                content_id: "c".into(),
                shard_index: 0,
                reason: "no eligible custodian with room".into(),
            }],
        };
        log.note(&unplaced, 1);
        log.note(&unplaced, 2);
        let r = log.recent();
        assert_eq!(r.len(), 1, "a retried shard is one entry");
        assert_eq!((r[0].first_ms, r[0].last_ms, r[0].runs), (1, 2, 2));
        let placed = RepairReport {
            failed_node_id: "dead".into(),
            replacements: vec![record("c", "full_replica", 1, 1, 0, "new")],
            unplaced: vec![],
        };
        log.note(&placed, 3);
        assert_eq!(
            log.recent()[0].outcome,
            RepairOutcome::Queued { to: "new".into() },
            "newest first"
        );
        for i in 1..=5 {
            let mut more = placed.clone();
            more.replacements[0].assignment.shard_index = i;
            log.note(&more, 3 + i as i64);
        }
        let r = log.recent();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].shard_index, 5);
        assert_eq!(r[2].shard_index, 3);
    }

    fn counters(bytes_in: u64, bytes_out: u64, lease: (f64, u64), beat: (f64, u64)) -> Counters {
        Counters {
            bytes_in,
            bytes_out,
            lease,
            beat,
        }
    }

    #[test]
    fn the_history_ring_keeps_differences_and_ends_now() {
        let mut h = History::new(3);
        assert!(h.samples_until(1_000, Counters::default()).is_empty());
        h.record(0, counters(100, 0, (0.0, 0), (0.0, 0)));
        // A minute: 6,000 bytes in, two beats of 2 ms and 4 ms, no lease.
        h.record(60_000, counters(6_100, 0, (0.0, 0), (0.006, 2)));
        let s = h.samples_until(60_000, Counters::default());
        assert_eq!(s.len(), 1, "nothing added for a moment that did not pass");
        assert_eq!(
            (s[0].bytes_in, s[0].span_ms, s[0].lease_ms),
            (6_000, 60_000, None)
        );
        assert!((s[0].beat_ms.unwrap() - 3.0).abs() < 1e-9);
        assert!((s[0].rates().0 - 100.0).abs() < 1e-9);
        // A reading back in time is ignored.
        h.record(30_000, counters(0, 0, (0.0, 0), (0.0, 0)));
        for i in 2..=5 {
            h.record(
                i * 60_000,
                counters(6_100, 50 * i as u64, (0.1, 1), (0.006, 2)),
            );
        }
        let now = counters(6_100, 1_000, (0.1, 1), (0.006, 2));
        let s = h.samples_until(330_000, now);
        assert_eq!(s.len(), 4, "three kept and the span until now");
        assert_eq!(
            s.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
            [180_000, 240_000, 300_000, 330_000]
        );
        assert_eq!(s[0].lease_ms, None, "no round ended in that minute");
        assert_eq!((s[3].bytes_out, s[3].span_ms), (750, 30_000));
        assert_eq!(h.moved_since_start(now), (6_000, 1_000));
    }

    fn series(name: &str, points: Vec<(i64, Option<f64>)>) -> Series {
        Series {
            name: name.into(),
            color: "#123456",
            points,
        }
    }

    /// The coordinates of each polyline or dot of series `name`.
    fn shapes(svg: &str, name: &str) -> Vec<Vec<(f64, f64)>> {
        let group = svg
            .split(&format!("data-series=\"{name}\""))
            .nth(1)
            .unwrap()
            .split("</g>")
            .next()
            .unwrap();
        let mut out = Vec::new();
        for part in group.split('<').skip(1) {
            if let Some(p) = part.split("points=\"").nth(1) {
                let pts = p.split('"').next().unwrap();
                out.push(
                    pts.split(' ')
                        .map(|xy| {
                            let (x, y) = xy.split_once(',').unwrap();
                            (x.parse().unwrap(), y.parse().unwrap())
                        })
                        .collect(),
                );
            } else if part.starts_with("circle") {
                let attr = |a: &str| -> f64 {
                    part.split(&format!("{a}=\""))
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                };
                out.push(vec![(attr("cx"), attr("cy"))]);
            }
        }
        out
    }

    #[test]
    fn the_plot_scales_to_its_box_and_breaks_at_gaps() {
        let svg = plot_svg(
            "p",
            "Latency <ms>",
            0,
            100_000,
            &[
                series(
                    "a",
                    vec![
                        (0, Some(0.0)),
                        (50_000, Some(10.0)),
                        (60_000, None),
                        (100_000, Some(5.0)),
                    ],
                ),
                series("b", vec![(0, Some(2.0)), (100_000, Some(4.0))]),
            ],
            &|v| format!("{v:.0} ms"),
        )
        .into_string();
        let a = shapes(&svg, "a");
        assert_eq!(a.len(), 2, "a gap splits the line: {svg}");
        assert_eq!(
            a[0],
            vec![
                (PAD_L, PLOT_H - PAD_B),
                (PAD_L + (PLOT_W - PAD_L - PAD_R) / 2.0, PAD_T)
            ]
        );
        assert_eq!(a[1].len(), 1, "a lone point is a dot");
        assert_eq!(a[1][0].0, PLOT_W - PAD_R);
        let b = shapes(&svg, "b");
        assert_eq!(b.len(), 1);
        for (x, y) in a.iter().chain(b.iter()).flatten() {
            assert!((PAD_L..=PLOT_W - PAD_R).contains(x) && (PAD_T..=PLOT_H - PAD_B).contains(y));
        }
        assert!(svg.contains(">10 ms<") && svg.contains(">5 ms<"), "{svg}");
        assert!(svg.contains(">-100 s<") && svg.contains(">now<"));
        assert!(
            svg.contains("Latency &lt;ms&gt;") && !svg.contains("<ms>"),
            "escaped"
        );
        assert!(svg.starts_with("<svg") && svg.contains("role=\"img\""));
    }

    #[test]
    fn a_plot_without_values_says_so_and_zeros_stay_on_the_axis() {
        let empty = plot_svg("p", "Bytes", 0, 1, &[series("a", vec![(0, None)])], &|v| {
            v.to_string()
        })
        .into_string();
        assert!(empty.contains("no samples yet") && !empty.contains("<svg"));
        let flat = plot_svg(
            "p",
            "Bytes",
            0,
            10,
            &[series(
                "a",
                vec![(0, Some(0.0)), (10, Some(0.0)), (5, Some(f64::NAN))],
            )],
            &|v| v.to_string(),
        )
        .into_string();
        let a = shapes(&flat, "a");
        assert!(
            a.iter().flatten().all(|(_, y)| *y == PLOT_H - PAD_B),
            "{flat}"
        );
        assert!(!flat.contains("NaN"));
    }

    #[test]
    fn time_spans_read_naturally() {
        assert_eq!(span_words(40_000), "40 s");
        assert_eq!(span_words(12 * 60_000), "12 min");
        assert_eq!(span_words(4 * 3_600_000), "4 h");
    }
}
