//! The discrete-event model itself.
//!
//! Nodes fail for good, go down for a while, or look silent because their
//! heartbeats are lost; detectors judge their silence with the real
//! `judge_liveness` at detector ticks; declared nodes' shards are re-homed
//! on custodians chosen by the real `rank` (weighted rendezvous on the next
//! round's `assignment_id`), and rebuilt from `k` reachable shards over
//! modelled links. Routine health audits sample attesters, weigh them with
//! `VettingPolicy` and `reputation`, and decide with `health_consensus`;
//! `contradicts` decides who is penalised. See `docs/SIMULATION.md`.

use crate::config::{DetectionMode, SECS_PER_MONTH};
use crate::heartbeat_model::{self as hb, Awaited, DetectorSchedule};
use crate::queue::{Event, EventQueue};
use crate::stats::{Counters, RunResults, Summary};
use crate::{SimConfig, SimError};
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use registry_core::assignment::assignment_id;
use registry_core::consensus::{
    contradicts, health_consensus, AttestationView, HealthConsensus, HealthVerdict,
    CONSENSUS_WINDOW_SECS,
};
use registry_core::heartbeat::{judge_liveness, LivenessPolicy};
use registry_core::reputation::{PenaltyDebt, PenaltyReason, VettingPolicy};
use registry_core::selection::{rank, Candidate, Criteria};
use registry_core::status::status_from_machine;
use registry_core::{NodeStatus, StewardTier, KNOWN_REGIONS, MICROS_PER_SEC};
use std::collections::BTreeSet;
use std::time::Instant;

const S: i64 = MICROS_PER_SEC;
const NONE: u32 = u32::MAX;
/// Period of the routine audit rounds: the sidecar's attestation interval,
/// so evaluations are spread through time as the real probes are.
const AUDIT_PERIOD: i64 = 60 * S;
/// Witnesses a penalty needs as evidence (as in the coordinator's
/// `detect_byzantine_attackers`).
const MIN_PENALTY_WITNESSES: usize = 3;
/// How long before the start the initial nodes registered (all vetted).
const PRE_REGISTERED: i64 = 30 * 86_400 * S;

struct Node {
    id: String,
    region: usize,
    tier: StewardTier,
    status: NodeStatus,
    max_custody: u64,
    assigned: u64,
    uptime_percent: f64,
    load: f64,
    registered_at: i64,
    byzantine: bool,
    /// Heartbeats fall at `phase + j * interval`.
    phase: i64,
    up: bool,
    dead: bool,
    declared: bool,
    /// End of the current outage (when `!up`).
    up_at: i64,
    /// Beat at which the current loss run ends (received), 0 if none.
    fs_end: i64,
    /// Whether detectors see no heartbeats now.
    silent: bool,
    /// When the current silence began (origin of needless repairs).
    silent_since: i64,
    /// Whether an outage (not only lost heartbeats) is part of the
    /// current silence: what a false declaration is blamed on.
    outage_silence: bool,
    /// Last heartbeat the detectors saw (valid while silent).
    last_seen: i64,
    /// When silence ends (a heartbeat is seen again); MAX if never.
    resume: i64,
    death_at: i64,
    gen: u32,
    up_since: i64,
    /// Shards it holds, is rebuilding, or held before being declared.
    slots: Vec<(u32, u16)>,
    /// Its penalties, fading with the configured half-life.
    debt: PenaltyDebt,
    /// How many penalties it got, by reason (contradicted consensus, false
    /// accusation, repeated failure).
    penalty_counts: [u32; 3],
    pool_pos: u32,
    /// When its last RepeatedFailure penalty was recorded.
    failure_penalised_at: i64,
}

#[derive(Clone)]
struct Slot {
    /// Custodian of the live assignment (NONE while unassigned).
    holder: u32,
    /// Custodian of the superseded assignment whose copy still exists
    /// until the replacement is stored.
    prev: u32,
    /// Node declared failed that this slot is being repaired for.
    failed: u32,
    ready: bool,
    /// The new custodian waits for its sources or for itself to be up;
    /// the next change to the content's custodians wakes it.
    waiting: bool,
    /// Placement attempts that found nobody (retries back off).
    assign_tries: u32,
    round: u32,
    gen: u32,
    missing_since: i64,
    origin: i64,
    needless: bool,
}

struct Item {
    owner: u32,
    slots: Vec<Slot>,
    lost: bool,
    unavailable_since: Option<i64>,
}

/// Why a node was declared failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Heartbeat,
    Attestation,
}

/// One simulated network. Build with [`Simulation::new`], optionally add
/// forced failures, then [`Simulation::run`].
pub struct Simulation {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    q: EventQueue,
    now: i64,
    end: i64,
    nodes: Vec<Node>,
    items: Vec<Item>,
    /// Registered nodes not declared failed: the directory as detectors
    /// and selection see it.
    pool: Vec<u32>,
    mark: Vec<u32>,
    stamp: u32,
    detectors: DetectorSchedule,
    policy: LivenessPolicy,
    select_policy: LivenessPolicy,
    vetting: VettingPolicy,
    interval: i64,
    lmin: u32,
    fs_rate: f64,
    shard_bytes: u64,
    need: u32,
    transfer: i64,
    death_rate: f64,
    outage_rate: f64,
    join_rate: f64,
    probe_fail: f64,
    cand_buf: Vec<Candidate>,
    cand_nodes: Vec<u32>,
    att_buf: Vec<AttestationView>,
    att_nodes: Vec<u32>,
    c: Counters,
    detection: Vec<f32>,
    suspicion: Vec<f32>,
    repair: Vec<f32>,
    ttr: Vec<f32>,
}

fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    // Box-Muller.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn content_id(item: u32) -> String {
    format!("content-{item:07}")
}

impl Simulation {
    /// Builds the network at time 0: nodes registered a month earlier (so
    /// vetted), contents placed by `rank` with the content id as placement
    /// key, and every node's failure, outage and loss processes scheduled.
    pub fn new(cfg: &SimConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let policy = LivenessPolicy {
            failure_window_secs: cfg.window_secs,
            grace_secs: cfg.grace_secs,
        };
        let lmin = hb::min_run_for_failure(cfg.heartbeat_secs, policy);
        let shard_bytes = cfg.shard_bytes()?;
        let need = cfg.sources_needed();
        let up_bps = cfg.uplink_mbps * 1e6 / 8.0;
        let down_bps = cfg.downlink_mbps * 1e6 / 8.0;
        // Sources send in parallel, each at its uplink; the new custodian
        // receives all of them through its downlink.
        let transfer_secs = cfg.repair_setup_secs
            + (shard_bytes as f64 / up_bps).max(need as f64 * shard_bytes as f64 / down_bps);
        let detectors = DetectorSchedule::random(cfg.detect_secs, cfg.detectors, &mut rng);
        let month_hazard = -(1.0 - cfg.monthly_failure_rate).ln();
        let mut sim = Simulation {
            cfg: cfg.clone(),
            q: EventQueue::new(),
            now: 0,
            end: (cfg.days * 86_400.0 * S as f64) as i64,
            nodes: Vec::with_capacity(cfg.nodes as usize),
            items: Vec::with_capacity(cfg.items as usize),
            pool: Vec::with_capacity(cfg.nodes as usize),
            mark: Vec::new(),
            stamp: 0,
            detectors,
            policy,
            select_policy: LivenessPolicy {
                grace_secs: 0,
                ..policy
            },
            vetting: VettingPolicy::default(),
            interval: cfg.heartbeat_secs * S,
            lmin,
            fs_rate: hb::run_start_rate_per_sec(cfg.message_loss, lmin, cfg.heartbeat_secs),
            shard_bytes,
            need,
            transfer: (transfer_secs * S as f64) as i64,
            death_rate: month_hazard / SECS_PER_MONTH,
            outage_rate: cfg.transient_rate / SECS_PER_MONTH,
            join_rate: cfg.effective_join_rate() * cfg.nodes as f64 / SECS_PER_MONTH,
            probe_fail: cfg.message_loss.powi(cfg.probe_retries as i32),
            cand_buf: Vec::new(),
            cand_nodes: Vec::new(),
            att_buf: Vec::new(),
            att_nodes: Vec::new(),
            c: Counters::default(),
            detection: Vec::new(),
            suspicion: Vec::new(),
            repair: Vec::new(),
            ttr: Vec::new(),
            rng,
        };
        // Exactly the configured share of the initial nodes lies.
        let byz = (cfg.byzantine_share * cfg.nodes as f64).round() as usize;
        let mut liars: Vec<bool> = (0..cfg.nodes as usize).map(|i| i < byz).collect();
        liars.shuffle(&mut sim.rng);
        for liar in liars {
            sim.add_node(-PRE_REGISTERED, liar);
        }
        for item in 0..cfg.items {
            sim.place(item)?;
        }
        if sim.join_rate > 0.0 {
            let t = hb::exp_micros(&mut sim.rng, sim.join_rate);
            sim.push(t, Event::Join);
        }
        if cfg.audits_per_node_day > 0.0 || cfg.detection == DetectionMode::HeartbeatOrConsensus {
            let first = sim.rng.random_range(0..AUDIT_PERIOD);
            sim.push(first, Event::Audit);
        }
        Ok(sim)
    }

    fn push(&mut self, at: i64, ev: Event) {
        if at <= self.end {
            self.q.push(at, ev);
        }
    }

    fn add_node(&mut self, registered_at: i64, byzantine: bool) -> u32 {
        let id = self.nodes.len() as u32;
        let r = &mut self.rng;
        let tier = match r.random::<f64>() {
            x if x < 0.40 => StewardTier::Caretaker,
            x if x < 0.75 => StewardTier::Guardian,
            x if x < 0.95 => StewardTier::Steward,
            _ => StewardTier::Pioneer,
        };
        let load = r.random_range(0.0..1.8);
        let node = Node {
            id: format!("node-{id:07}"),
            region: r.random_range(0..KNOWN_REGIONS.len()),
            tier,
            status: status_from_machine(load, 0.5),
            max_custody: r.random_range(100_000_000_000u64..2_000_000_000_000),
            assigned: 0,
            uptime_percent: r.random_range(95.0..99.9),
            load,
            registered_at,
            byzantine,
            phase: r.random_range(0..self.interval),
            up: true,
            dead: false,
            declared: false,
            up_at: 0,
            fs_end: 0,
            silent: false,
            silent_since: 0,
            outage_silence: false,
            last_seen: 0,
            resume: 0,
            death_at: 0,
            gen: 0,
            up_since: self.now,
            slots: Vec::new(),
            debt: PenaltyDebt::default(),
            penalty_counts: [0; 3],
            pool_pos: NONE,
            failure_penalised_at: i64::MIN / 2,
        };
        self.nodes.push(node);
        self.mark.push(0);
        self.pool_add(id);
        let now = self.now;
        let t = now + hb::exp_micros(&mut self.rng, self.death_rate);
        self.push(t, Event::Death(id));
        let t = now + hb::exp_micros(&mut self.rng, self.outage_rate);
        self.push(t, Event::Outage(id));
        let t = now + hb::exp_micros(&mut self.rng, self.fs_rate);
        self.push(t, Event::FalseSilence(id));
        id
    }

    fn pool_add(&mut self, id: u32) {
        if self.nodes[id as usize].pool_pos == NONE {
            self.nodes[id as usize].pool_pos = self.pool.len() as u32;
            self.pool.push(id);
        }
    }

    fn pool_remove(&mut self, id: u32) {
        let pos = self.nodes[id as usize].pool_pos;
        if pos == NONE {
            return;
        }
        self.pool.swap_remove(pos as usize);
        if let Some(&moved) = self.pool.get(pos as usize) {
            self.nodes[moved as usize].pool_pos = pos;
        }
        self.nodes[id as usize].pool_pos = NONE;
    }

    /// Up to `want` distinct random registered nodes into `out`, skipping
    /// those `skip` rejects.
    fn sample_pool(&mut self, want: usize, out: &mut Vec<u32>, skip: impl Fn(&Node) -> bool) {
        out.clear();
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.stamp = 1;
        }
        let len = self.pool.len();
        if len == 0 {
            return;
        }
        if len <= want * 2 {
            // Small network: take everyone eligible.
            for i in 0..len {
                let id = self.pool[i];
                if !skip(&self.nodes[id as usize]) {
                    out.push(id);
                }
            }
            out.shuffle(&mut self.rng);
            out.truncate(want);
            return;
        }
        let mut tries = 0;
        while out.len() < want && tries < want * 8 {
            tries += 1;
            let id = self.pool[self.rng.random_range(0..len)];
            if self.mark[id as usize] == self.stamp || skip(&self.nodes[id as usize]) {
                continue;
            }
            self.mark[id as usize] = self.stamp;
            out.push(id);
        }
    }

    fn last_beat(&self, id: u32, t: i64) -> i64 {
        let n = &self.nodes[id as usize];
        n.phase + (t - n.phase).div_euclid(self.interval) * self.interval
    }

    fn next_beat(&self, id: u32, t: i64) -> i64 {
        let b = self.last_beat(id, t);
        if b == t {
            t
        } else {
            b + self.interval
        }
    }

    /// The last heartbeat a reader of the DHT sees now.
    fn last_heard(&self, id: u32) -> i64 {
        let n = &self.nodes[id as usize];
        if n.silent {
            n.last_seen
        } else {
            self.last_beat(id, self.now)
        }
    }

    /// The selection view of one node, written into a reused candidate.
    fn fill_candidate(&self, id: u32, c: &mut Candidate) {
        let n = &self.nodes[id as usize];
        c.node_id.clone_from(&n.id);
        c.region.clear();
        c.region.push_str(KNOWN_REGIONS[n.region]);
        c.tier = n.tier;
        c.opted_in = true;
        c.status = Some(n.status);
        // As the zome does: alive within the failure window, no grace.
        c.alive =
            judge_liveness(Some(self.last_heard(id)), self.now, self.select_policy).is_alive();
        c.max_custody_bytes = n.max_custody;
        c.assigned_bytes = n.assigned;
        c.current_load = n.load;
        c.uptime_percent = n.uptime_percent;
        c.reputation = n
            .debt
            .reputation_at(self.now, self.cfg.penalty_half_life_secs);
    }

    /// Ranks a random sample of registered nodes with `rank` and returns
    /// the best `want` eligible ones.
    fn choose(&mut self, criteria: &Criteria, want: usize) -> Vec<u32> {
        let sample = (self.cfg.candidate_sample as usize).max(2 * want + criteria.exclude.len());
        let mut picked = std::mem::take(&mut self.cand_nodes);
        self.sample_pool(sample, &mut picked, |_| false);
        let mut cands = std::mem::take(&mut self.cand_buf);
        while cands.len() < picked.len() {
            cands.push(Candidate {
                node_id: String::new(),
                region: String::new(),
                tier: StewardTier::Caretaker,
                opted_in: true,
                status: None,
                alive: false,
                max_custody_bytes: 0,
                assigned_bytes: 0,
                current_load: 0.0,
                uptime_percent: 0.0,
                reputation: 0.0,
            });
        }
        for (i, &id) in picked.iter().enumerate() {
            self.fill_candidate(id, &mut cands[i]);
        }
        let out = rank(&cands[..picked.len()], criteria)
            .iter()
            .take(want)
            .map(|r| picked[r.index])
            .collect();
        self.cand_buf = cands;
        self.cand_nodes = picked;
        out
    }

    fn place(&mut self, item: u32) -> Result<(), SimError> {
        let owner = self.pool[self.rng.random_range(0..self.pool.len())];
        let n = self.cfg.n as usize;
        let criteria = Criteria {
            exclude: BTreeSet::from([self.nodes[owner as usize].id.clone()]),
            needed_bytes: self.shard_bytes,
            placement_key: Some(content_id(item)),
            ..Default::default()
        };
        let chosen = self.choose(&criteria, n);
        if chosen.len() < n {
            return Err(SimError::Config(format!(
                "only {} of {n} custodians eligible for content {item}: raise --nodes or --candidate-sample",
                chosen.len()
            )));
        }
        let mut slots = Vec::with_capacity(n);
        for (s, &holder) in chosen.iter().enumerate() {
            self.nodes[holder as usize].assigned += self.shard_bytes;
            self.nodes[holder as usize].slots.push((item, s as u16));
            slots.push(Slot {
                holder,
                prev: NONE,
                failed: NONE,
                ready: true,
                waiting: false,
                assign_tries: 0,
                round: 0,
                gen: 0,
                missing_since: 0,
                origin: 0,
                needless: false,
            });
        }
        self.items.push(Item {
            owner,
            slots,
            lost: false,
            unavailable_since: None,
        });
        Ok(())
    }

    /// Schedules a permanent failure of `node` at `at_secs` (for
    /// comparisons with benchmarks that kill a node on purpose).
    pub fn schedule_kill(&mut self, node: u32, at_secs: f64) -> Result<(), SimError> {
        let at = self.forced_at(node, at_secs)?;
        self.push(at, Event::Death(node));
        Ok(())
    }

    fn forced_at(&self, node: u32, at_secs: f64) -> Result<i64, SimError> {
        if node as usize >= self.nodes.len() {
            return Err(SimError::Config(format!(
                "node {node} does not exist ({} nodes)",
                self.nodes.len()
            )));
        }
        if !(at_secs.is_finite() && at_secs >= 0.0) {
            return Err(SimError::Config(format!(
                "event time must be a non-negative number of seconds (got {at_secs})"
            )));
        }
        Ok((at_secs.min(1e12) * S as f64) as i64)
    }

    /// Schedules a transient outage of `node` from `at_secs` for `secs`
    /// (for tests and comparisons that take a node down on purpose).
    pub fn schedule_outage(&mut self, node: u32, at_secs: f64, secs: u32) -> Result<(), SimError> {
        let at = self.forced_at(node, at_secs)?;
        self.push(at, Event::ForcedOutage { node, secs });
        Ok(())
    }

    /// Current custodians of a content's shards (for picking a victim).
    pub fn holders_of(&self, item: u32) -> Vec<u32> {
        self.items
            .get(item as usize)
            .map(|it| {
                it.slots
                    .iter()
                    .map(|s| s.holder)
                    .filter(|h| *h != NONE)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Death to declaration, seconds, of every detected permanent failure.
    pub fn detection_samples(&self) -> &[f32] {
        &self.detection
    }

    /// Declaration to rebuilt shard, seconds, of repairs after deaths.
    pub fn repair_samples(&self) -> &[f32] {
        &self.repair
    }

    /// Death to rebuilt shard, seconds.
    pub fn time_to_repair_samples(&self) -> &[f32] {
        &self.ttr
    }

    /// Runs to the horizon, advancing `progress` (simulated seconds) now
    /// and then, and returns the results.
    pub fn run(&mut self, progress: Option<&ProgressBar>) -> RunResults {
        let started = Instant::now();
        while let Some((at, ev)) = self.q.pop() {
            if at > self.end {
                break;
            }
            self.now = at;
            self.c.events += 1;
            if self.c.events & 0xffff == 0 {
                if let Some(p) = progress {
                    p.set_position((at / S) as u64);
                }
            }
            self.handle(ev);
        }
        self.now = self.end;
        if let Some(p) = progress {
            p.set_position((self.end / S) as u64);
        }
        self.results(started.elapsed().as_secs_f64())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Outage(id) => self.on_outage(id),
            Event::ForcedOutage { node, secs } => self.start_outage(node, secs as f64, false),
            Event::Return { node, random } => self.on_return(node, random),
            Event::Death(id) => self.on_death(id),
            Event::FalseSilence(id) => self.on_false_silence(id),
            Event::Visible { node, gen } => self.on_visible(node, gen),
            Event::Detect { node, gen } => self.on_detect(node, gen),
            Event::Assign { item, slot, gen } => self.on_assign(item, slot, gen),
            Event::Fetch { item, slot, gen } => self.on_fetch(item, slot, gen),
            Event::RepairDone { item, slot, gen } => self.on_repair_done(item, slot, gen),
            Event::Join => {
                self.c.nodes_joined += 1;
                let liar = self.rng.random::<f64>() < self.cfg.byzantine_share;
                self.add_node(self.now, liar);
                let t = self.now + hb::exp_micros(&mut self.rng, self.join_rate);
                self.push(t, Event::Join);
            }
            Event::Audit => self.on_audit(),
        }
    }

    fn account_down(&mut self, id: u32) {
        let n = &mut self.nodes[id as usize];
        if n.up {
            self.c.node_up_secs += (self.now - n.up_since) as f64 / S as f64;
        }
    }

    /// Last heartbeat detectors saw of a node that stops beating now:
    /// the last grid beat, minus any that were lost just before.
    fn start_silence(&mut self, id: u32) {
        if self.nodes[id as usize].silent {
            return;
        }
        let lost = hb::geometric(&mut self.rng, self.cfg.message_loss) as i64;
        let last = self.last_beat(id, self.now) - lost * self.interval;
        let n = &mut self.nodes[id as usize];
        n.silent = true;
        n.silent_since = self.now;
        n.last_seen = last;
    }

    /// Recomputes when a silent node will be heard again and reschedules
    /// its detection (the old events become stale).
    fn silence_changed(&mut self, id: u32) {
        let now = self.now;
        let n = &self.nodes[id as usize];
        let block = if n.dead {
            i64::MAX
        } else {
            let mut b = i64::MIN;
            if !n.up {
                b = b.max(n.up_at);
            }
            if n.fs_end > now {
                b = b.max(n.fs_end);
            }
            if b == i64::MIN {
                return;
            }
            b
        };
        let resume = if block == i64::MAX {
            i64::MAX
        } else {
            self.next_beat(id, block)
        };
        let n = &mut self.nodes[id as usize];
        n.gen = n.gen.wrapping_add(1);
        n.resume = resume;
        let (gen, last, declared) = (n.gen, n.last_seen, n.declared);
        if resume != i64::MAX {
            self.push(resume, Event::Visible { node: id, gen });
        }
        if !declared {
            if let Some(t) =
                self.detectors
                    .first_tick_judged(last, now, resume, self.policy, Awaited::Failed)
            {
                self.push(t, Event::Detect { node: id, gen });
            }
        }
    }

    fn on_outage(&mut self, id: u32) {
        let n = &self.nodes[id as usize];
        if n.dead {
            return;
        }
        if !n.up {
            // Down already (a forced outage): the process goes on.
            let t = self.now + hb::exp_micros(&mut self.rng, self.outage_rate);
            self.push(t, Event::Outage(id));
            return;
        }
        let secs = lognormal(
            &mut self.rng,
            self.cfg.transient_median_secs,
            self.cfg.transient_sigma,
        )
        .clamp(1.0, 1e9);
        self.start_outage(id, secs, true);
    }

    /// Takes a live, up node down for `secs`.
    fn start_outage(&mut self, id: u32, secs: f64, random: bool) {
        let n = &self.nodes[id as usize];
        if n.dead || !n.up {
            return;
        }
        self.c.outages += 1;
        if secs > self.cfg.window_secs as f64 {
            // Its monitors probe, get no answer, suspect it, and take the
            // suspicion back when it returns.
            self.c.suspicions += 1;
            self.c.retractions += 1;
        }
        self.account_down(id);
        self.start_silence(id);
        let up_at = self.now + (secs * S as f64) as i64;
        let n = &mut self.nodes[id as usize];
        n.up = false;
        n.up_at = up_at;
        n.outage_silence = true;
        self.push(up_at, Event::Return { node: id, random });
        self.silence_changed(id);
        self.touch_items(id);
    }

    fn on_return(&mut self, id: u32, random: bool) {
        let n = &mut self.nodes[id as usize];
        if n.dead || n.up {
            return;
        }
        n.up = true;
        n.up_since = self.now;
        self.touch_items(id);
        if random {
            let t = self.now + hb::exp_micros(&mut self.rng, self.outage_rate);
            self.push(t, Event::Outage(id));
        }
    }

    fn on_death(&mut self, id: u32) {
        if self.nodes[id as usize].dead {
            return;
        }
        self.c.deaths += 1;
        self.c.suspicions += 1;
        self.account_down(id);
        self.start_silence(id);
        let n = &mut self.nodes[id as usize];
        n.dead = true;
        n.up = false;
        n.death_at = self.now;
        if n.declared {
            self.c.deaths_already_declared += 1;
        }
        self.silence_changed(id);
        self.touch_items(id);
    }

    fn on_false_silence(&mut self, id: u32) {
        let t = self.now + hb::exp_micros(&mut self.rng, self.fs_rate);
        self.push(t, Event::FalseSilence(id));
        let n = &self.nodes[id as usize];
        if n.dead || !n.up || n.silent {
            // A run cannot start inside another silence (Poisson thinning).
            return;
        }
        self.c.false_silences += 1;
        let a = self.last_beat(id, self.now);
        let l = hb::draw_run_length(&mut self.rng, self.cfg.message_loss, self.lmin) as i64;
        let n = &mut self.nodes[id as usize];
        n.silent = true;
        n.silent_since = a;
        n.last_seen = a;
        n.fs_end = a + (l + 1) * self.interval;
        self.silence_changed(id);
    }

    fn on_visible(&mut self, id: u32, gen: u32) {
        let n = &mut self.nodes[id as usize];
        if n.gen != gen || !n.silent {
            return;
        }
        n.silent = false;
        n.fs_end = 0;
        n.outage_silence = false;
        if n.declared {
            n.declared = false;
            self.c.returns_after_declaration += 1;
            self.pool_add(id);
        }
    }

    fn on_detect(&mut self, id: u32, gen: u32) {
        let n = &self.nodes[id as usize];
        if n.gen != gen || n.declared || !n.silent {
            return;
        }
        let (last, resume) = (n.last_seen, n.resume);
        let mut honest_would_clear = false;
        if self.cfg.detection == DetectionMode::HeartbeatAndConsensus {
            let (c, honest_healthy) = self.consensus_round(id, true);
            if c.status == HealthVerdict::Healthy {
                self.c.cleared_by_consensus += 1;
                if let Some(t) = self.detectors.first_tick_judged(
                    last,
                    self.now + 1,
                    resume,
                    self.policy,
                    Awaited::Failed,
                ) {
                    self.push(t, Event::Detect { node: id, gen });
                }
                return;
            }
            honest_would_clear = honest_healthy;
        }
        self.declare(id, Via::Heartbeat, honest_would_clear);
    }

    /// Declares a node failed and re-homes every shard it is custodian of.
    fn declare(&mut self, id: u32, via: Via, honest_would_clear: bool) {
        let now = self.now;
        let n = &mut self.nodes[id as usize];
        n.declared = true;
        let (dead, up, byz, outage) = (n.dead, n.up, n.byzantine, n.outage_silence);
        let (death_at, last_seen, silent_since) = (n.death_at, n.last_seen, n.silent_since);
        self.pool_remove(id);
        let origin = if dead {
            self.c.true_detections += 1;
            self.detection
                .push(((now - death_at) as f64 / S as f64) as f32);
            let sus = self
                .detectors
                .first_tick_judged(
                    last_seen,
                    death_at,
                    i64::MAX,
                    self.policy,
                    Awaited::NotAlive,
                )
                .unwrap_or(now);
            self.suspicion
                .push(((sus.min(now) - death_at) as f64 / S as f64) as f32);
            death_at
        } else {
            if via == Via::Attestation {
                self.c.false_by_attestation += 1;
            } else if !up || outage {
                // Down, or back but not yet heard from: the outage's fault.
                self.c.false_by_outage += 1;
            } else {
                self.c.false_by_message_loss += 1;
            }
            if up && !byz && (via == Via::Attestation || honest_would_clear) {
                self.c.honest_up_declared_by_attestation += 1;
            }
            silent_since.min(now)
        };
        let slots = std::mem::take(&mut self.nodes[id as usize].slots);
        for &(item, s) in &slots {
            let it = &mut self.items[item as usize];
            let slot = &mut it.slots[s as usize];
            if slot.holder != id || it.lost {
                continue;
            }
            if slot.ready {
                slot.prev = if dead { NONE } else { id };
                slot.origin = origin;
                slot.needless = !dead;
            }
            slot.failed = id;
            slot.holder = NONE;
            slot.ready = false;
            slot.waiting = false;
            slot.assign_tries = 0;
            slot.gen = slot.gen.wrapping_add(1);
            slot.missing_since = now;
            let gen = slot.gen;
            let n = &mut self.nodes[id as usize];
            n.assigned = n.assigned.saturating_sub(self.shard_bytes);
            self.push(now, Event::Assign { item, slot: s, gen });
            self.update_item(item);
        }
        self.nodes[id as usize].slots = slots;
        self.prune_slots(id);
        // Declared by attestation while its heartbeats still arrive: the
        // directory (`judge_liveness`) keeps showing it alive, so selection
        // may pick it again at once, as the zomes would.
        let n = &mut self.nodes[id as usize];
        if !n.silent {
            n.declared = false;
            self.c.returns_after_declaration += 1;
            self.pool_add(id);
        }
    }

    fn prune_slots(&mut self, id: u32) {
        let mut slots = std::mem::take(&mut self.nodes[id as usize].slots);
        slots.retain(|&(item, s)| {
            let sl = &self.items[item as usize].slots[s as usize];
            sl.holder == id || sl.prev == id
        });
        self.nodes[id as usize].slots = slots;
    }

    /// Re-evaluates every content the node holds a copy of.
    fn touch_items(&mut self, id: u32) {
        let slots = std::mem::take(&mut self.nodes[id as usize].slots);
        for &(item, _) in &slots {
            self.update_item(item);
        }
        self.nodes[id as usize].slots = slots;
        self.prune_slots(id);
    }

    /// Loss (fewer than k copies exist anywhere) and unavailability (fewer
    /// than k on up custodians) of one content.
    fn update_item(&mut self, item: u32) {
        let it = &self.items[item as usize];
        if it.lost {
            return;
        }
        let (mut present, mut reach) = (0u32, 0u32);
        for s in &it.slots {
            let holder_ok = s.ready && s.holder != NONE;
            // The live copy, or else the superseded one not yet deleted.
            let copy = if holder_ok { s.holder } else { s.prev };
            if copy != NONE && !self.nodes[copy as usize].dead {
                present += 1;
            }
            if holder_ok && self.nodes[s.holder as usize].up {
                reach += 1;
            }
        }
        let k = self.cfg.k;
        let now = self.now;
        let it = &mut self.items[item as usize];
        if reach < k && it.unavailable_since.is_none() {
            it.unavailable_since = Some(now);
            self.c.unavailability_episodes += 1;
        } else if reach >= k {
            if let Some(since) = it.unavailable_since.take() {
                self.c.unavailable_item_secs += (now - since) as f64 / S as f64;
            }
        }
        if present < k {
            it.lost = true;
            self.c.items_lost += 1;
            if let Some(since) = it.unavailable_since.take() {
                self.c.unavailable_item_secs += (now - since) as f64 / S as f64;
            }
            return;
        }
        // Something changed among the custodians: waiting repairs look
        // again at the new custodian's next reconciliation.
        for s in 0..it.slots.len() {
            let slot = &mut self.items[item as usize].slots[s];
            if slot.waiting {
                slot.waiting = false;
                let gen = slot.gen;
                let at = now + self.rng.random_range(0..self.cfg.reconcile_secs * S);
                self.push(
                    at,
                    Event::Fetch {
                        item,
                        slot: s as u16,
                        gen,
                    },
                );
            }
        }
    }

    fn slot_current(&self, item: u32, s: u16, gen: u32) -> bool {
        let it = &self.items[item as usize];
        !it.lost && it.slots[s as usize].gen == gen
    }

    fn on_assign(&mut self, item: u32, s: u16, gen: u32) {
        if !self.slot_current(item, s, gen) {
            return;
        }
        let it = &self.items[item as usize];
        let slot = &it.slots[s as usize];
        let mut exclude = BTreeSet::new();
        exclude.insert(self.nodes[it.owner as usize].id.clone());
        for o in &it.slots {
            for id in [o.holder, o.prev, o.failed] {
                if id != NONE {
                    exclude.insert(self.nodes[id as usize].id.clone());
                }
            }
        }
        let round = slot.round + 1;
        let criteria = Criteria {
            exclude,
            needed_bytes: self.shard_bytes,
            placement_key: Some(assignment_id(&content_id(item), s as u32, round)),
            ..Default::default()
        };
        let Some(&target) = self.choose(&criteria, 1).first() else {
            // "The next run retries them": a detector run, backing off
            // (up to 256 runs) while nobody fits.
            self.c.unplaced += 1;
            let slot = &mut self.items[item as usize].slots[s as usize];
            let backoff = 1i64 << slot.assign_tries.min(8);
            slot.assign_tries += 1;
            let t = self.now + self.cfg.detect_secs * S * backoff;
            self.push(t, Event::Assign { item, slot: s, gen });
            return;
        };
        let slot = &mut self.items[item as usize].slots[s as usize];
        slot.assign_tries = 0;
        slot.holder = target;
        slot.ready = false;
        slot.round = round;
        slot.gen = slot.gen.wrapping_add(1);
        let gen = slot.gen;
        self.nodes[target as usize].assigned += self.shard_bytes;
        self.nodes[target as usize].slots.push((item, s));
        // The remote signal may be lost; reconciliation then finds it.
        let delay = if self.rng.random::<f64>() < self.cfg.message_loss {
            self.c.signals_lost += 1;
            self.rng.random_range(0..self.cfg.reconcile_secs * S)
        } else {
            0
        };
        self.push(self.now + delay, Event::Fetch { item, slot: s, gen });
    }

    fn on_fetch(&mut self, item: u32, s: u16, gen: u32) {
        if !self.slot_current(item, s, gen) {
            return;
        }
        let it = &self.items[item as usize];
        let target = it.slots[s as usize].holder;
        let tn = &self.nodes[target as usize];
        if tn.dead || !tn.up {
            // Woken when it returns (or re-homed when declared).
            self.items[item as usize].slots[s as usize].waiting = true;
            return;
        }
        let sources = it
            .slots
            .iter()
            .enumerate()
            .filter(|(j, o)| {
                *j != s as usize && o.ready && o.holder != NONE && self.nodes[o.holder as usize].up
            })
            .count() as u32;
        if sources < self.need {
            self.c.fetch_waits += 1;
            self.items[item as usize].slots[s as usize].waiting = true;
            return;
        }
        self.push(
            self.now + self.transfer,
            Event::RepairDone { item, slot: s, gen },
        );
    }

    fn on_repair_done(&mut self, item: u32, s: u16, gen: u32) {
        if !self.slot_current(item, s, gen) {
            return;
        }
        let target = self.items[item as usize].slots[s as usize].holder;
        let tn = &self.nodes[target as usize];
        if tn.dead || !tn.up {
            self.c.interrupted += 1;
            self.items[item as usize].slots[s as usize].waiting = true;
            return;
        }
        let now = self.now;
        let slot = &mut self.items[item as usize].slots[s as usize];
        slot.ready = true;
        slot.prev = NONE;
        slot.failed = NONE;
        // Network traffic: the new custodian downloads `need` shards and
        // rebuilds its own locally (the write is disk, not traffic).
        let bytes = self.need as u64 * self.shard_bytes;
        self.c.repairs += 1;
        self.c.repair_bytes = self.c.repair_bytes.saturating_add(bytes);
        if slot.needless {
            self.c.repairs_needless += 1;
            self.c.repair_bytes_needless = self.c.repair_bytes_needless.saturating_add(bytes);
        } else {
            self.repair
                .push(((now - slot.missing_since) as f64 / S as f64) as f32);
            self.ttr
                .push(((now - slot.origin) as f64 / S as f64) as f32);
        }
        self.update_item(item);
    }

    fn penalize(&mut self, id: u32, reason: PenaltyReason) {
        self.c.penalties += 1;
        let (now, half_life) = (self.now, self.cfg.penalty_half_life_secs);
        let n = &mut self.nodes[id as usize];
        n.debt.add(reason, now, half_life);
        n.penalty_counts[match reason {
            PenaltyReason::ContradictedConsensus => 0,
            PenaltyReason::FalseAccusation => 1,
            PenaltyReason::RepeatedFailure => 2,
        }] += 1;
    }

    /// One health-consensus evaluation of `subject`: sampled up attesters
    /// probe it (liars always report failure), each weighted by vetting
    /// and reputation; contradicting attesters are penalised. Returns the
    /// consensus and, if asked, whether honest attesters alone would have
    /// found the subject healthy.
    fn consensus_round(&mut self, subject: u32, want_honest: bool) -> (HealthConsensus, bool) {
        let now = self.now;
        let subject_up = self.nodes[subject as usize].up;
        let mut who = std::mem::take(&mut self.att_nodes);
        let want = self.cfg.attesters as usize;
        self.sample_pool(want + 1, &mut who, |n| n.dead || !n.up);
        who.retain(|&a| a != subject);
        who.truncate(want);
        let mut atts = std::mem::take(&mut self.att_buf);
        while atts.len() < who.len() {
            atts.push(AttestationView {
                attester: String::new(),
                success: false,
                response_time_ms: 20,
                timestamp_micros: 0,
                weight: 0.0,
            });
        }
        for (i, &a) in who.iter().enumerate() {
            let n = &self.nodes[a as usize];
            let success = if n.byzantine {
                false
            } else {
                subject_up && self.rng.random::<f64>() >= self.probe_fail
            };
            let view = &mut atts[i];
            view.attester.clone_from(&n.id);
            view.success = success;
            view.timestamp_micros = now;
            view.weight = self.vetting.attestation_weight(
                n.registered_at,
                now,
                n.debt.reputation_at(now, self.cfg.penalty_half_life_secs),
            );
        }
        let m = who.len();
        let c = health_consensus(&atts[..m], now);
        self.c.consensus_evaluations += 1;
        let sn = &self.nodes[subject as usize];
        if !sn.byzantine && sn.up && c.status == HealthVerdict::Unhealthy {
            self.c.false_unhealthy_verdicts += 1;
        }
        // As detect_byzantine_attackers does: only a confident Healthy or
        // Unhealthy verdict penalises, and only with at least
        // MIN_PENALTY_WITNESSES vetted attesters agreeing with it (other
        // than the offender) as evidence.
        if c.confidence >= self.cfg.min_confidence
            && matches!(c.status, HealthVerdict::Healthy | HealthVerdict::Unhealthy)
        {
            let agrees = |i: usize| !contradicts(atts[i].success, &c, 0.0);
            let witnesses = (0..m)
                .filter(|&i| atts[i].weight > 0.0 && agrees(i))
                .count();
            for i in 0..m {
                if agrees(i) {
                    continue;
                }
                // The offender disagrees, so it is never among the witnesses.
                if witnesses >= MIN_PENALTY_WITNESSES {
                    let reason = if !atts[i].success && c.status == HealthVerdict::Healthy {
                        PenaltyReason::FalseAccusation
                    } else {
                        PenaltyReason::ContradictedConsensus
                    };
                    self.penalize(who[i], reason);
                }
            }
            // The coordinator keys a RepeatedFailure on one witness
            // attestation of the 5-minute window, so an outage costs about
            // one penalty per window however often it is evaluated.
            let window = CONSENSUS_WINDOW_SECS * S;
            if c.status == HealthVerdict::Unhealthy
                && witnesses >= MIN_PENALTY_WITNESSES
                && now - self.nodes[subject as usize].failure_penalised_at >= window
            {
                self.nodes[subject as usize].failure_penalised_at = now;
                self.penalize(subject, PenaltyReason::RepeatedFailure);
            }
        }
        let honest_healthy = want_honest && subject_up && {
            let honest: Vec<AttestationView> = atts[..m]
                .iter()
                .zip(&who)
                .filter(|(_, a)| !self.nodes[**a as usize].byzantine)
                .map(|(v, _)| v.clone())
                .collect();
            health_consensus(&honest, now).status == HealthVerdict::Healthy
        };
        self.att_buf = atts;
        self.att_nodes = who;
        (c, honest_healthy)
    }

    fn on_audit(&mut self) {
        let expected = self.cfg.audits_per_node_day * self.pool.len() as f64 * AUDIT_PERIOD as f64
            / (86_400 * S) as f64;
        let mut m = expected.floor() as usize;
        if self.rng.random::<f64>() < expected.fract() {
            m += 1;
        }
        for _ in 0..m {
            // Peers probe every registered node of their region, declared
            // or not (the dead are skipped: nothing about them matters).
            let total = self.nodes.len();
            let Some(subject) = (0..64)
                .map(|_| self.rng.random_range(0..total) as u32)
                .find(|&id| !self.nodes[id as usize].dead)
            else {
                break;
            };
            let (c, _) = self.consensus_round(subject, false);
            if self.cfg.detection == DetectionMode::HeartbeatOrConsensus
                && c.status == HealthVerdict::Unhealthy
                && c.confidence >= self.cfg.min_confidence
                && !self.nodes[subject as usize].declared
            {
                self.declare(subject, Via::Attestation, false);
            }
        }
        self.push(self.now + AUDIT_PERIOD, Event::Audit);
    }

    fn results(&mut self, wall_secs: f64) -> RunResults {
        let end = self.end;
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.up {
                self.c.node_up_secs += (end - n.up_since) as f64 / S as f64;
            }
        }
        for it in &mut self.items {
            if let Some(since) = it.unavailable_since.take() {
                self.c.unavailable_item_secs += (end - since) as f64 / S as f64;
            }
        }
        let k = self.cfg.k;
        let items_stranded_end = self
            .items
            .iter()
            .filter(|it| {
                !it.lost
                    && it
                        .slots
                        .iter()
                        .filter(|s| {
                            s.ready && s.holder != NONE && !self.nodes[s.holder as usize].dead
                        })
                        .count()
                        < k as usize
            })
            .count() as u64;
        let cfg = &self.cfg;
        let c = self.c.clone();
        let node_years: f64 = c.node_up_secs / (365.0 * 86_400.0);
        let false_decl = c.false_by_message_loss + c.false_by_outage + c.false_by_attestation;
        let (mut byz, mut byz_w0, mut hon, mut hon_w0, mut hon_rep) = (0u64, 0u64, 0u64, 0u64, 0.0);
        let rep_at_end = |n: &Node| n.debt.reputation_at(end, cfg.penalty_half_life_secs);
        for n in &self.nodes {
            let w = self
                .vetting
                .attestation_weight(n.registered_at, end, rep_at_end(n));
            if n.byzantine {
                byz += 1;
                byz_w0 += (w == 0.0) as u64;
            } else if !n.dead {
                hon += 1;
                hon_w0 += (w == 0.0) as u64;
                hon_rep += rep_at_end(n);
            }
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let heartbeats = c.node_up_secs / cfg.heartbeat_secs as f64;
        let months = cfg.days * 86_400.0 / SECS_PER_MONTH;
        let hp = hb::HeartbeatParams {
            interval_secs: cfg.heartbeat_secs,
            policy: self.policy,
            loss: cfg.message_loss,
            detect_secs: cfg.detect_secs,
        };
        let avg_nodes = (c.node_up_secs / (cfg.days * 86_400.0)).max(1.0);
        let records = records_written(&c, avg_nodes, cfg.days);
        RunResults {
            config: cfg.clone(),
            shard_bytes: self.shard_bytes,
            storage_overhead: cfg.n as f64 * self.shard_bytes as f64 / cfg.content_bytes as f64,
            wall_secs,
            nodes_registered_end: self.pool.len() as u64,
            deaths_undetected_at_end: self.nodes.iter().filter(|n| n.dead && !n.declared).count()
                as u64,
            items_lost_fraction: c.items_lost as f64 / cfg.items as f64,
            items_stranded_end,
            detection_secs: Summary::of(&mut self.detection.clone()),
            suspicion_secs: Summary::of(&mut self.suspicion.clone()),
            detection_target_secs: cfg.detection_target_secs(),
            detection_within_target: Summary::share_within(
                &self.detection,
                cfg.detection_target_secs(),
            ),
            repair_secs: Summary::of(&mut self.repair.clone()),
            time_to_repair_secs: Summary::of(&mut self.ttr.clone()),
            false_declarations: false_decl,
            false_declarations_per_node_year: if node_years > 0.0 {
                false_decl as f64 / node_years
            } else {
                0.0
            },
            repair_bytes_per_node_month: c.repair_bytes as f64 / avg_nodes / months,
            repair_needless_share: if c.repair_bytes == 0 {
                0.0
            } else {
                c.repair_bytes_needless as f64 / c.repair_bytes as f64
            },
            byzantine_nodes: byz,
            byzantine_weightless_end: ratio(byz_w0, byz),
            honest_weightless_end: ratio(hon_w0, hon),
            honest_mean_reputation_end: if hon == 0 { 0.0 } else { hon_rep / hon as f64 },
            false_silence_per_node_year: hb::expected_false_declarations_per_sec(hp)
                * 365.0
                * 86_400.0,
            heartbeats,
            records_by_kind: records.by_kind,
            records_per_node_day: records.per_node_day,
            bytes_per_node_day: records.bytes_per_node_day,
            dht_bytes_per_year: records.bytes_per_node_day * avg_nodes * 365.0,
            counters: c,
        }
    }
}

/// What the nodes wrote over a run.
struct Written {
    by_kind: Vec<(String, f64)>,
    per_node_day: f64,
    bytes_per_node_day: f64,
}

/// The records of a run: the write budget's steady state for every node-day
/// (`registry_core::budget`), plus what the simulated events write: each
/// suspicion a verdict and a suspicion-index pair from each of a node's
/// monitors, each retraction the same and a lease, each rebuilt shard an
/// assignment and its links.
fn records_written(c: &Counters, avg_nodes: f64, days: f64) -> Written {
    use registry_core::budget::*;
    let monitors = (registry_core::monitor::DEFAULT_MONITORS as f64)
        .min(avg_nodes - 1.0)
        .max(0.0);
    let t = Timings {
        monitors,
        ..Timings::default()
    };
    let node_days = (avg_nodes * days).max(1e-9);
    let mut by: std::collections::BTreeMap<RecordKind, f64> = Default::default();
    for (kind, per_day) in steady_state_per_day(&t) {
        *by.entry(kind).or_default() += per_day * node_days;
    }
    let changes = (c.suspicions + c.retractions) as f64 * monitors;
    *by.entry(RecordKind::Verdict).or_default() += changes * VERDICT_RECORDS;
    *by.entry(RecordKind::SuspicionIndex).or_default() += changes * 2.0;
    *by.entry(RecordKind::PresenceLease).or_default() += c.retractions as f64;
    *by.entry(RecordKind::Custody).or_default() += c.repairs as f64 * ASSIGNMENT_RECORDS;
    let bytes: f64 = by.iter().map(|(k, n)| n * record_bytes(*k)).sum();
    let total: f64 = by.values().sum();
    Written {
        by_kind: by
            .into_iter()
            .map(|(k, n)| (k.as_str().to_string(), n))
            .collect(),
        per_node_day: total / node_days,
        bytes_per_node_day: bytes / node_days,
    }
}

/// Builds and runs one simulation with an optional progress bar.
pub fn run(cfg: &SimConfig, progress: Option<&ProgressBar>) -> Result<RunResults, SimError> {
    let mut sim = Simulation::new(cfg)?;
    Ok(sim.run(progress))
}

#[cfg(test)]
mod tests;
