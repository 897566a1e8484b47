use super::*;
use registry_core::assignment::CustodyStrategy;

/// A small, quiet network: no hazards unless a test turns them on.
fn quiet(nodes: u32, items: u32, days: f64) -> SimConfig {
    SimConfig {
        nodes,
        items,
        days,
        monthly_failure_rate: 0.0,
        join_rate: Some(0.0),
        transient_rate: 0.0,
        message_loss: 0.0,
        audits_per_node_day: 0.0,
        ..SimConfig::default()
    }
}

fn comparable(mut r: RunResults) -> RunResults {
    r.wall_secs = 0.0;
    r
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let cfg = SimConfig {
        nodes: 300,
        items: 300,
        days: 10.0,
        monthly_failure_rate: 0.05,
        transient_rate: 4.0,
        message_loss: 0.2,
        byzantine_share: 0.1,
        audits_per_node_day: 4.0,
        ..SimConfig::default()
    };
    let a = comparable(run(&cfg, None).unwrap());
    let b = comparable(run(&cfg, None).unwrap());
    assert_eq!(a, b);
    assert!(a.counters.events > 10_000, "{:?}", a.counters);
    let c = comparable(
        run(
            &SimConfig {
                seed: 2,
                ..cfg.clone()
            },
            None,
        )
        .unwrap(),
    );
    assert_ne!(a.counters, c.counters);
}

#[test]
fn nothing_fails_nothing_moves() {
    let r = run(&quiet(200, 400, 60.0), None).unwrap();
    let c = &r.counters;
    assert_eq!(c.repairs, 0);
    assert_eq!(c.repair_bytes, 0);
    assert_eq!(c.items_lost, 0);
    assert_eq!(r.false_declarations, 0);
    assert_eq!(c.deaths + c.outages + c.false_silences, 0);
    // Heartbeats are still counted: 200 nodes x 60 days x 2880.
    assert!((r.heartbeats - 200.0 * 60.0 * 2_880.0).abs() < 1.0);
    // Beats write nothing: what a node writes is the budget's steady state
    // (nobody fails, nothing is repaired).
    let t = registry_core::budget::Timings::default();
    let steady = registry_core::budget::steady_state_total(&t);
    assert!(
        (r.records_per_node_day - steady).abs() < 1e-6,
        "{} vs {steady}",
        r.records_per_node_day
    );
    assert!(r.records_per_node_day < 200.0);
}

#[test]
fn a_dead_node_is_declared_within_one_tick_after_window_and_grace() {
    let cfg = SimConfig {
        detect_secs: 15,
        ..quiet(50, 20, 1.0)
    };
    let mut sim = Simulation::new(&cfg).unwrap();
    let victims: Vec<u32> = (0..10).collect();
    for (i, v) in victims.iter().enumerate() {
        sim.schedule_kill(*v, 3_600.0 * (i + 1) as f64 + 7.3 * i as f64)
            .unwrap();
    }
    let r = sim.run(None);
    assert_eq!(r.counters.true_detections, 10);
    let (w, g, i, d) = (60.0, 120.0, 30.0, 15.0);
    for &t in sim.detection_samples() {
        let t = t as f64;
        // Silence since the last heartbeat (0..30 s before death) must
        // exceed window + grace, and a tick follows within one period.
        assert!(t > w + g - i, "{t}");
        assert!(t <= w + g + 1.0 + d, "{t}");
    }
    assert!(r.suspicion_secs.max <= w + 1.0 + d);
    assert_eq!(r.false_declarations, 0);
    // Each victim's shards were rebuilt elsewhere.
    assert!(r.counters.repairs > 0);
    assert_eq!(r.counters.items_lost, 0);
}

#[test]
fn outages_longer_than_window_and_grace_are_false_declarations() {
    let long = SimConfig {
        transient_rate: 30.0,
        transient_median_secs: 600.0,
        transient_sigma: 0.0,
        ..quiet(100, 50, 30.0)
    };
    let r = run(&long, None).unwrap();
    assert!(r.counters.outages > 2_000);
    // Every 600 s outage outlasts 180 s of window + grace.
    let (declared, outages) = (r.counters.false_by_outage, r.counters.outages);
    assert!(
        declared <= outages && declared as f64 >= 0.98 * outages as f64,
        "{declared} of {outages}"
    );
    assert!(r.counters.repairs_needless > 0);
    assert_eq!(r.counters.repairs_needless, r.counters.repairs);
    let short = SimConfig {
        transient_median_secs: 100.0,
        ..long
    };
    let r = run(&short, None).unwrap();
    assert!(r.counters.outages > 2_000);
    assert_eq!(r.counters.false_by_outage, 0, "100 s + < 30 s < 181 s");
    assert_eq!(r.counters.repairs, 0);
}

#[test]
fn k_live_shards_keep_content_k_minus_one_lose_it() {
    for (killed, lost) in [(3usize, 0u64), (4, 1)] {
        let cfg = quiet(40, 1, 1.0);
        let mut sim = Simulation::new(&cfg).unwrap();
        let holders = sim.holders_of(0);
        assert_eq!(holders.len(), 6);
        for h in &holders[..killed] {
            sim.schedule_kill(*h, 1_000.0).unwrap();
        }
        let r = sim.run(None);
        assert_eq!(r.counters.items_lost, lost, "{killed} of 6 killed, k = 3");
        if lost == 0 {
            // Repaired back to six live shards.
            assert_eq!(r.counters.repairs, killed as u64);
            let holders = sim.holders_of(0);
            assert_eq!(holders.len(), 6);
        }
    }
}

#[test]
fn a_single_copy_is_lost_with_its_node() {
    let cfg = SimConfig {
        strategy: CustodyStrategy::FullReplica,
        k: 1,
        n: 1,
        monthly_failure_rate: 0.2,
        ..quiet(200, 400, 60.0)
    };
    let r = run(&cfg, None).unwrap();
    assert!(r.counters.items_lost > 0);
    assert_eq!(r.counters.repairs, 0, "nothing to rebuild from");
}

#[test]
fn more_failures_more_repair_traffic() {
    let at = |rate: f64| {
        run(
            &SimConfig {
                monthly_failure_rate: rate,
                ..quiet(300, 300, 90.0)
            },
            None,
        )
        .unwrap()
    };
    let low = at(0.01);
    let high = at(0.10);
    assert!(
        high.counters.repair_bytes > 3 * low.counters.repair_bytes.max(1),
        "{} vs {}",
        high.counters.repair_bytes,
        low.counters.repair_bytes
    );
    assert!(high.counters.deaths > low.counters.deaths);
    assert_eq!(high.counters.items_lost, 0, "3-of-6 survives 10%/month");
    // Each repair fetched k = 3 shards over the network.
    let per = 3 * high.shard_bytes;
    assert_eq!(high.counters.repair_bytes, high.counters.repairs * per);
}

#[test]
fn message_loss_declares_live_nodes_and_consensus_spares_them() {
    let lossy = SimConfig {
        message_loss: 0.35,
        // Probes retry until one gets through; heartbeats do not.
        probe_retries: 10,
        ..quiet(150, 100, 4.0)
    };
    let hb_only = run(&lossy, None).unwrap();
    assert!(
        hb_only.counters.false_by_message_loss > 50,
        "{:?}",
        hb_only.counters
    );
    let gated = run(
        &SimConfig {
            detection: DetectionMode::HeartbeatAndConsensus,
            ..lossy
        },
        None,
    )
    .unwrap();
    assert!(gated.counters.cleared_by_consensus > 0);
    assert!(
        gated.counters.false_by_message_loss * 10 < hb_only.counters.false_by_message_loss,
        "{} vs {}",
        gated.counters.false_by_message_loss,
        hb_only.counters.false_by_message_loss
    );
}

#[test]
fn liars_take_honest_nodes_down_only_when_consensus_alone_can_declare() {
    let liars = SimConfig {
        byzantine_share: 0.4,
        audits_per_node_day: 6.0,
        ..quiet(200, 100, 10.0)
    };
    let hb_only = run(&liars, None).unwrap();
    assert!(hb_only.counters.false_unhealthy_verdicts > 0);
    assert_eq!(hb_only.counters.honest_up_declared_by_attestation, 0);
    assert_eq!(hb_only.false_declarations, 0);
    let or_mode = run(
        &SimConfig {
            detection: DetectionMode::HeartbeatOrConsensus,
            ..liars.clone()
        },
        None,
    )
    .unwrap();
    assert!(or_mode.counters.honest_up_declared_by_attestation > 0);
    // Reputation catches liars: most weigh nothing after ten days.
    assert!(
        hb_only.byzantine_weightless_end > 0.5,
        "{}",
        hb_only.byzantine_weightless_end
    );
    let honest = run(
        &SimConfig {
            byzantine_share: 0.0,
            detection: DetectionMode::HeartbeatOrConsensus,
            ..liars
        },
        None,
    )
    .unwrap();
    assert_eq!(honest.counters.false_unhealthy_verdicts, 0);
    assert_eq!(honest.counters.honest_up_declared_by_attestation, 0);
}

#[test]
fn a_superseded_copy_does_not_count_as_a_repair_source() {
    // Three of six custodians die; a fourth goes down just after and stays
    // down past window + grace, so it is declared too and its assignment
    // superseded. Two live assignments remain: repair (which fetches from
    // live assignments only, as `get_shard_holders` does) cannot rebuild,
    // although the fourth node comes back with its copy.
    let cfg = quiet(40, 1, 1.0);
    let mut sim = Simulation::new(&cfg).unwrap();
    let holders = sim.holders_of(0);
    for h in &holders[..3] {
        sim.schedule_kill(*h, 1_000.0).unwrap();
    }
    sim.schedule_outage(holders[3], 1_001.0, 600).unwrap();
    let r = sim.run(None);
    assert_eq!(r.counters.items_lost, 0, "three copies still exist");
    assert_eq!(r.items_stranded_end, 1);
    assert_eq!(r.counters.repairs, 0);
    assert_eq!(r.counters.false_by_outage, 1);
    // The same outage after the repairs is harmless.
    let mut sim = Simulation::new(&cfg).unwrap();
    for h in &holders[..3] {
        sim.schedule_kill(*h, 1_000.0).unwrap();
    }
    sim.schedule_outage(holders[3], 2_000.0, 600).unwrap();
    let r = sim.run(None);
    assert_eq!(r.items_stranded_end, 0);
    assert_eq!(r.counters.repairs, 4);
    assert!(sim.schedule_kill(1_000, 1.0).is_err());
    assert!(sim.schedule_outage(0, f64::NAN, 1).is_err());
}

#[test]
fn an_outage_costs_one_failure_penalty_per_consensus_window() {
    // Every node evaluated about once a minute; node 0 down for 30 minutes.
    let cfg = SimConfig {
        audits_per_node_day: 1_440.0,
        ..quiet(60, 10, 0.1)
    };
    let mut sim = Simulation::new(&cfg).unwrap();
    sim.schedule_outage(0, 1_000.0, 1_800).unwrap();
    let r = sim.run(None);
    assert!(r.counters.consensus_evaluations > 4_000);
    let failures = |id: usize| sim.nodes[id].penalty_counts[2];
    // About 30 Unhealthy evaluations, one penalty per 300 s window.
    let n = failures(0);
    assert!((4..=7).contains(&n), "{n} RepeatedFailure penalties");
    assert!((1..60).all(|id| failures(id) == 0));
}
