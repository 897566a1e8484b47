//! Heartbeats, modelled statistically rather than one by one.
//!
//! 10^5 nodes beating every 30 s for a year is 10^11 heartbeats; what the
//! detectors act on is far rarer: *silences*. A node's heartbeats fall on a
//! fixed grid `phase + j * interval`. Two things make it silent:
//!
//! * it is really down (outage or death): the last heartbeat seen is the
//!   last grid point before it went down, minus any trailing lost beats;
//! * it is up but `L` consecutive heartbeats are lost (each independently
//!   with probability `p`). Detectors can only declare it failed if the
//!   silence outlasts window + grace: after the last received beat at `a`
//!   the silence grows until the next received beat at `a + (L+1) I`, and
//!   `judge_liveness` says Failed once `t - a >= (W + G + 1) s` (it floors
//!   to whole seconds and the bound is inclusive). So only runs of at least
//!   [`min_run_for_failure`] losses matter. Such a run starts after a given
//!   beat with probability `(1-p) p^Lmin`; these starts are drawn as a
//!   Poisson process of rate [`run_start_rate_per_sec`] per node, the run's
//!   length as `Lmin + Geometric(p)`, and then the detector ticks inside the
//!   silence are judged by the real `judge_liveness`.
//!
//! [`brute_force_false_declarations`] simulates every heartbeat and every
//! detector tick for a small case; [`statistical_false_declarations`] runs
//! the statistical model the simulator uses; the tests check that they agree
//! with each other and with [`expected_false_declarations_per_sec`].

use rand::Rng;
use registry_core::heartbeat::{judge_liveness, Liveness, LivenessPolicy};
use registry_core::MICROS_PER_SEC;

const S: i64 = MICROS_PER_SEC;

/// Fewest consecutive lost heartbeats after which a live node can be
/// declared failed: the smallest `L` with `(L+1) I > W + G + 1` seconds.
pub fn min_run_for_failure(interval_secs: i64, policy: LivenessPolicy) -> u32 {
    let need = policy.failure_window_secs + policy.grace_secs + 1;
    (need / interval_secs.max(1)) as u32
}

/// Rate, per node per second, at which runs of at least `lmin` lost
/// heartbeats start (a received beat followed by `lmin` lost ones).
pub fn run_start_rate_per_sec(loss: f64, lmin: u32, interval_secs: i64) -> f64 {
    (1.0 - loss) * loss.powi(lmin as i32) / interval_secs as f64
}

/// Failures before the first success of a Bernoulli(1 - p) trial:
/// `P(j) = p^j (1 - p)`. Used for the extra length of a loss run and for
/// heartbeats lost just before a node goes down.
pub fn geometric<R: Rng + ?Sized>(rng: &mut R, p: f64) -> u32 {
    if p <= 0.0 {
        return 0;
    }
    let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let j = (u.ln() / p.ln()).floor();
    if j.is_finite() && j >= 0.0 {
        j.min(1e6) as u32
    } else {
        0
    }
}

/// Total length of a loss run known to be at least `lmin` long.
pub fn draw_run_length<R: Rng + ?Sized>(rng: &mut R, loss: f64, lmin: u32) -> u32 {
    lmin + geometric(rng, loss)
}

/// Which judgement a detector tick is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// No longer alive (suspected or failed).
    NotAlive,
    /// Failed: repair starts.
    Failed,
}

/// When detectors run: `count` detectors each every `period`, at fixed
/// random phases. A node's silence is noticed at the first tick of any of
/// them at which `judge_liveness` gives the awaited judgement.
#[derive(Debug, Clone)]
pub struct DetectorSchedule {
    period: i64,
    phases: Vec<i64>,
}

impl DetectorSchedule {
    /// `count` detectors of period `period_secs`, phases drawn from `rng`.
    pub fn random<R: Rng + ?Sized>(period_secs: i64, count: u32, rng: &mut R) -> Self {
        let period = period_secs.max(1) * S;
        let phases = (0..count.max(1))
            .map(|_| rng.random_range(0..period))
            .collect();
        Self::with_phases(period, phases)
    }

    /// A schedule with given phases (micros, reduced modulo the period).
    pub fn with_phases(period_micros: i64, mut phases: Vec<i64>) -> Self {
        let period = period_micros.max(1);
        for p in &mut phases {
            *p = p.rem_euclid(period);
        }
        if phases.is_empty() {
            phases.push(0);
        }
        phases.sort_unstable();
        DetectorSchedule { period, phases }
    }

    /// The first tick at or after `t`.
    pub fn next_tick_at_or_after(&self, t: i64) -> i64 {
        let base = t - t.rem_euclid(self.period);
        let off = t - base;
        let i = self.phases.partition_point(|&p| p < off);
        match self.phases.get(i) {
            Some(p) => base + p,
            None => base + self.period + self.phases[0],
        }
    }

    /// The first tick in `[from, until)` at which `judge_liveness`, given
    /// the last heartbeat seen at `last`, gives the awaited judgement. The
    /// search starts at the earliest time the policy could say so and asks
    /// the policy itself at each tick.
    pub fn first_tick_judged(
        &self,
        last: i64,
        from: i64,
        until: i64,
        policy: LivenessPolicy,
        awaited: Awaited,
    ) -> Option<i64> {
        let thresh = match awaited {
            Awaited::NotAlive => policy.failure_window_secs,
            Awaited::Failed => policy.failure_window_secs + policy.grace_secs,
        };
        let start = from.max(last.saturating_add(thresh.saturating_mul(S)));
        let mut t = self.next_tick_at_or_after(start);
        for _ in 0..1_000_000 {
            if t >= until {
                return None;
            }
            let j = judge_liveness(Some(last), t, policy);
            let hit = match awaited {
                Awaited::NotAlive => !j.is_alive(),
                Awaited::Failed => matches!(j, Liveness::Failed { .. }),
            };
            if hit {
                return Some(t);
            }
            t = self.next_tick_at_or_after(t + 1);
        }
        None
    }
}

/// The inputs of the false-silence model.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatParams {
    /// Heartbeat interval, seconds.
    pub interval_secs: i64,
    /// Window and grace.
    pub policy: LivenessPolicy,
    /// Probability that one heartbeat is lost.
    pub loss: f64,
    /// Period of the (single) detector, seconds.
    pub detect_secs: i64,
}

/// Expected false failure declarations per live node per second, in closed
/// form: a run of exactly `L` losses between two received beats (probability
/// `(1-p)^2 p^L` per beat) is declared if one detector tick lands in the
/// `(L+1) I - (W+G+1)` seconds during which the policy says Failed.
pub fn expected_false_declarations_per_sec(h: HeartbeatParams) -> f64 {
    let p = h.loss;
    if p <= 0.0 {
        return 0.0;
    }
    let i = h.interval_secs as f64;
    let need = (h.policy.failure_window_secs + h.policy.grace_secs + 1) as f64;
    let lmin = min_run_for_failure(h.interval_secs, h.policy);
    let mut total = 0.0;
    let mut l = lmin;
    loop {
        let window = (l as f64 + 1.0) * i - need;
        let q = (window / h.detect_secs as f64).clamp(0.0, 1.0);
        let pl = p.powi(l as i32);
        if q >= 1.0 {
            // Every longer run is declared too: the geometric tail.
            total += (1.0 - p) * pl;
            break;
        }
        total += (1.0 - p) * (1.0 - p) * pl * q;
        if pl < 1e-300 || l > lmin + 10_000 {
            break;
        }
        l += 1;
    }
    total / i
}

/// Reference: every heartbeat of `nodes` live nodes over `horizon_secs`,
/// each lost with probability `loss`, and every tick of one detector per
/// node (random phases), judged by `judge_liveness`. Returns how many times
/// a live node was declared failed (once per silence).
pub fn brute_force_false_declarations<R: Rng + ?Sized>(
    h: HeartbeatParams,
    nodes: u32,
    horizon_secs: f64,
    rng: &mut R,
) -> u64 {
    let iv = h.interval_secs * S;
    let dp = h.detect_secs * S;
    let horizon = (horizon_secs * S as f64) as i64;
    let mut count = 0;
    for _ in 0..nodes {
        let mut beat = rng.random_range(0..iv);
        let mut tick = rng.random_range(0..dp);
        let mut last = beat; // the first beat is taken as received
        beat += iv;
        let mut declared = false;
        while beat.min(tick) < horizon {
            if beat <= tick {
                if rng.random::<f64>() >= h.loss {
                    last = beat;
                    declared = false;
                }
                beat += iv;
            } else {
                if !declared
                    && matches!(
                        judge_liveness(Some(last), tick, h.policy),
                        Liveness::Failed { .. }
                    )
                {
                    declared = true;
                    count += 1;
                }
                tick += dp;
            }
        }
    }
    count
}

/// The statistical model, as the simulator runs it, for the same case as
/// [`brute_force_false_declarations`]: loss runs of at least the minimum
/// length start as a Poisson process, their length is drawn, and the
/// detector ticks inside the silence are judged by `judge_liveness`.
pub fn statistical_false_declarations<R: Rng + ?Sized>(
    h: HeartbeatParams,
    nodes: u32,
    horizon_secs: f64,
    rng: &mut R,
) -> u64 {
    let iv = h.interval_secs * S;
    let horizon = (horizon_secs * S as f64) as i64;
    let lmin = min_run_for_failure(h.interval_secs, h.policy);
    let rate = run_start_rate_per_sec(h.loss, lmin, h.interval_secs);
    if rate <= 0.0 {
        return 0;
    }
    let mut count = 0;
    for _ in 0..nodes {
        let phase = rng.random_range(0..iv);
        let sched = DetectorSchedule::random(h.detect_secs, 1, rng);
        let mut t = exp_micros(rng, rate);
        while t < horizon {
            let a = phase + (t - phase).div_euclid(iv) * iv;
            let l = draw_run_length(rng, h.loss, lmin) as i64;
            let resume = a + (l + 1) * iv;
            if sched
                .first_tick_judged(a, a, resume.min(horizon), h.policy, Awaited::Failed)
                .is_some()
            {
                count += 1;
            }
            t = t.max(resume) + exp_micros(rng, rate);
        }
    }
    count
}

/// Reference for the other half of the model, detecting a node that dies:
/// for each trial, every heartbeat from time 0 up to a random death time is
/// sent and lost independently with probability `loss`, and the detector's
/// ticks after the death are judged by `judge_liveness` until it says
/// Failed. Returns the death-to-declaration times, seconds.
pub fn brute_force_detection_secs<R: Rng + ?Sized>(
    h: HeartbeatParams,
    trials: u32,
    rng: &mut R,
) -> Vec<f64> {
    let iv = h.interval_secs * S;
    let mut out = Vec::with_capacity(trials as usize);
    for _ in 0..trials {
        let phase = rng.random_range(0..iv);
        let sched = DetectorSchedule::random(h.detect_secs, 1, rng);
        // Long enough a history that the first beat is never the last seen.
        let death = 200 * iv + rng.random_range(0..iv);
        let mut last = None;
        let mut beat = phase;
        while beat <= death {
            if rng.random::<f64>() >= h.loss {
                last = Some(beat);
            }
            beat += iv;
        }
        let mut tick = sched.next_tick_at_or_after(death);
        while !matches!(
            judge_liveness(last, tick, h.policy),
            Liveness::Failed { .. }
        ) {
            tick = sched.next_tick_at_or_after(tick + 1);
        }
        out.push((tick - death) as f64 / S as f64);
    }
    out
}

/// The same detection times as the simulator draws them: the last heartbeat
/// seen is the last one sent before the death minus a geometric number of
/// lost ones, and the first detector tick judged Failed is searched for
/// directly.
pub fn statistical_detection_secs<R: Rng + ?Sized>(
    h: HeartbeatParams,
    trials: u32,
    rng: &mut R,
) -> Vec<f64> {
    let iv = h.interval_secs * S;
    let mut out = Vec::with_capacity(trials as usize);
    for _ in 0..trials {
        let phase = rng.random_range(0..iv);
        let sched = DetectorSchedule::random(h.detect_secs, 1, rng);
        let death = 200 * iv + rng.random_range(0..iv);
        let grid = phase + (death - phase).div_euclid(iv) * iv;
        let last = grid - geometric(rng, h.loss) as i64 * iv;
        if let Some(t) = sched.first_tick_judged(last, death, i64::MAX, h.policy, Awaited::Failed) {
            out.push((t - death) as f64 / S as f64);
        }
    }
    out
}

/// Largest distance between the empirical distribution functions of two
/// samples (the Kolmogorov-Smirnov statistic): how far apart the brute
/// force and the model are over the whole distribution, not just the mean.
pub fn ks_distance(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(|x, y| x.total_cmp(y));
    b.sort_by(|x, y| x.total_cmp(y));
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// An exponential delay of rate `rate_per_sec`, in micros (saturating far
/// beyond any horizon when the rate is zero).
pub fn exp_micros<R: Rng + ?Sized>(rng: &mut R, rate_per_sec: f64) -> i64 {
    if rate_per_sec.is_nan() || rate_per_sec <= 0.0 {
        return i64::MAX / 4;
    }
    let u: f64 = 1.0 - rng.random::<f64>();
    let secs = -u.ln() / rate_per_sec;
    if secs * S as f64 >= (i64::MAX / 4) as f64 {
        i64::MAX / 4
    } else {
        (secs * S as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn policy(w: i64, g: i64) -> LivenessPolicy {
        LivenessPolicy {
            failure_window_secs: w,
            grace_secs: g,
        }
    }

    #[test]
    fn minimum_run_matches_the_policy() {
        // 60 + 120 s at 30 s: a run of 6 lost beats leaves 210 s of silence.
        assert_eq!(min_run_for_failure(30, policy(60, 120)), 6);
        // 5 lost beats leave exactly 180 s, which the policy still calls
        // suspected (its bound is inclusive): not enough.
        let last = 0;
        assert!(!matches!(
            judge_liveness(Some(last), 180 * S, policy(60, 120)),
            Liveness::Failed { .. }
        ));
        assert_eq!(min_run_for_failure(30, policy(60, 135)), 6);
        assert_eq!(min_run_for_failure(10, policy(60, 0)), 6);
    }

    #[test]
    fn ticks_are_found_across_detectors_and_periods() {
        let s = DetectorSchedule::with_phases(15 * S, vec![5 * S, 10 * S]);
        assert_eq!(s.next_tick_at_or_after(0), 5 * S);
        assert_eq!(s.next_tick_at_or_after(5 * S), 5 * S);
        assert_eq!(s.next_tick_at_or_after(6 * S), 10 * S);
        assert_eq!(s.next_tick_at_or_after(11 * S), 20 * S);
        assert_eq!(s.next_tick_at_or_after(-1), 5 * S);
        assert_eq!(s.next_tick_at_or_after(-6 * S), -5 * S);
    }

    #[test]
    fn a_node_down_past_window_and_grace_is_failed_within_one_tick() {
        let p = policy(60, 120);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let s = DetectorSchedule::random(15, 1, &mut rng);
            let last = rng.random_range(0..1_000 * S);
            let t = s
                .first_tick_judged(last, last, i64::MAX, p, Awaited::Failed)
                .unwrap();
            assert!(t >= last + 181 * S, "never before the policy allows");
            assert!(t < last + 181 * S + 15 * S, "within one detect period");
            let sus = s
                .first_tick_judged(last, last, i64::MAX, p, Awaited::NotAlive)
                .unwrap();
            assert!(sus >= last + 61 * S && sus < last + 76 * S);
            // A silence that ends first is never declared.
            assert_eq!(
                s.first_tick_judged(last, last, last + 181 * S, p, Awaited::Failed),
                None
            );
        }
    }

    #[test]
    fn geometric_has_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 200_000;
        let mean = (0..n).map(|_| geometric(&mut rng, 0.3) as f64).sum::<f64>() / n as f64;
        // E = p / (1 - p) = 0.4286
        assert!((mean - 0.3 / 0.7).abs() < 0.01, "{mean}");
        assert_eq!(geometric(&mut rng, 0.0), 0);
    }

    /// The faithfulness check: the statistical model against every
    /// single heartbeat, for a case where false declarations are common
    /// enough to count.
    #[test]
    fn statistical_model_matches_brute_force() {
        for (g, d) in [(120, 15), (135, 60)] {
            let h = HeartbeatParams {
                interval_secs: 30,
                policy: policy(60, g),
                loss: 0.3,
                detect_secs: d,
            };
            let (nodes, horizon) = (400, 2.5e5);
            let brute = brute_force_false_declarations(
                h,
                nodes,
                horizon,
                &mut ChaCha8Rng::seed_from_u64(1),
            );
            let stat = statistical_false_declarations(
                h,
                nodes,
                horizon,
                &mut ChaCha8Rng::seed_from_u64(2),
            );
            let expected = expected_false_declarations_per_sec(h) * nodes as f64 * horizon;
            let tol = 4.0 * expected.sqrt() + 0.03 * expected;
            assert!(expected > 200.0, "case too rare to test: {expected}");
            assert!(
                (brute as f64 - expected).abs() < tol,
                "grace {g}, detect {d}: brute force {brute} vs formula {expected:.0}"
            );
            assert!(
                (stat as f64 - expected).abs() < tol,
                "grace {g}, detect {d}: model {stat} vs formula {expected:.0}"
            );
        }
    }

    /// Detection of dead nodes: the model's shortcut (geometric trailing
    /// losses) against every heartbeat before the death.
    #[test]
    fn detection_times_match_brute_force() {
        for loss in [0.0, 0.3] {
            let h = HeartbeatParams {
                interval_secs: 30,
                policy: policy(60, 120),
                loss,
                detect_secs: 15,
            };
            let n = 4_000;
            let brute = brute_force_detection_secs(h, n, &mut ChaCha8Rng::seed_from_u64(5));
            let stat = statistical_detection_secs(h, n, &mut ChaCha8Rng::seed_from_u64(6));
            assert_eq!((brute.len(), stat.len()), (n as usize, n as usize));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (mb, ms) = (mean(&brute), mean(&stat));
            // Silence since the last beat seen must reach 181 s; a death
            // 0..30 s after the last beat sent and a tick within 15 s give
            // 151..196 s at no loss. Each beat lost just before the death
            // starts the silence 30 s earlier: p / (1 - p) of them on average.
            let expected = 181.0 - 15.0 + 7.5 - 30.0 * loss / (1.0 - loss);
            assert!((mb - expected).abs() < 2.0, "loss {loss}: brute mean {mb}");
            assert!(
                (ms - mb).abs() < 2.0,
                "loss {loss}: model {ms} vs brute {mb}"
            );
            // 1% critical value of the two-sample KS test is 0.036 here.
            let d = ks_distance(&brute, &stat);
            assert!(d < 0.036, "loss {loss}: KS distance {d}");
        }
        assert_eq!(ks_distance(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(ks_distance(&[1.0], &[2.0]), 1.0);
    }

    #[test]
    fn no_loss_means_no_false_silence() {
        let h = HeartbeatParams {
            interval_secs: 30,
            policy: policy(60, 120),
            loss: 0.0,
            detect_secs: 15,
        };
        assert_eq!(expected_false_declarations_per_sec(h), 0.0);
        assert_eq!(run_start_rate_per_sec(0.0, 6, 30), 0.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(brute_force_false_declarations(h, 2, 1e5, &mut rng), 0);
    }
}
