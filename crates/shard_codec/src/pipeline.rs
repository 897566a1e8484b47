//! A tiny ordered worker pool: the calling thread reads input, hashes content
//! and writes output in stripe order, while workers do the per-stripe heavy
//! lifting (coding, piece hashing, encryption). With one thread everything runs
//! inline on the caller's thread: same code, no threads spawned.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Mutex};
use std::thread::Scope;

use crate::error::CodecError;

/// Per-stripe work shared (by reference) with every worker.
pub(crate) trait Work: Sync {
    /// A stripe in flight: carries its buffers there and its outcome back.
    type Job: Send;
    /// Per-worker scratch (codec work buffers), created on the worker thread.
    type State;
    fn state(&self) -> Self::State;
    fn run(&self, state: &mut Self::State, job: &mut Self::Job);
    /// Receives the calling thread's state at the end, e.g. to keep it for the
    /// next call on this thread.
    fn retire(&self, _state: Self::State) {}
}

type Jobs<J> = Mutex<mpsc::Receiver<(u64, J)>>;
type Results<J> = mpsc::Sender<(u64, Option<J>)>;

/// Workers not yet started: the first stripe runs inline, and workers are
/// only spawned when a second stripe arrives, so single-stripe content never
/// pays for thread start-up.
struct Idle<'s, 'e, W: Work> {
    scope: &'s Scope<'s, 'e>,
    jobs: &'e Jobs<W::Job>,
    results: Results<W::Job>,
    threads: usize,
}

/// Handle the calling thread uses to submit jobs and take them back in order.
pub(crate) struct Lanes<'s, 'e, W: Work> {
    work: &'e W,
    local: Option<W::State>,
    idle: Option<Idle<'s, 'e, W>>,
    tx: Option<mpsc::SyncSender<(u64, W::Job)>>,
    rx: Option<mpsc::Receiver<(u64, Option<W::Job>)>>,
    ready: BTreeMap<u64, W::Job>,
    in_flight: usize,
    depth: usize,
}

impl<'s, 'e, W: Work> Lanes<'s, 'e, W> {
    pub fn can_submit(&self) -> bool {
        self.in_flight < self.depth
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn submit(&mut self, seq: u64, mut job: W::Job) -> Result<(), CodecError> {
        if self.tx.is_some() && seq > 0 {
            self.start_workers();
        }
        self.in_flight += 1;
        match (&self.tx, &self.idle) {
            (Some(tx), None) => tx
                .send((seq, job))
                .map_err(|_| CodecError::Internal("worker pool stopped".into())),
            _ => {
                self.run_local(&mut job);
                self.ready.insert(seq, job);
                Ok(())
            }
        }
    }

    fn start_workers(&mut self) {
        let Some(idle) = self.idle.take() else { return };
        let work = self.work;
        for _ in 0..idle.threads {
            let results = idle.results.clone();
            let jobs = idle.jobs;
            idle.scope.spawn(move || {
                let mut state = None;
                loop {
                    let next = match jobs.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, mut job)) = next else { break };
                    let st = state.get_or_insert_with(|| work.state());
                    let ok = catch_unwind(AssertUnwindSafe(|| work.run(st, &mut job))).is_ok();
                    if results.send((seq, ok.then_some(job))).is_err() || !ok {
                        break;
                    }
                }
            });
        }
    }

    /// Runs a job on the calling thread (inline mode, and repairs).
    pub fn run_local(&mut self, job: &mut W::Job) {
        let work = self.work;
        let state = self.local.get_or_insert_with(|| work.state());
        work.run(state, job);
    }

    /// Waits for the job submitted with `seq`.
    pub fn take(&mut self, seq: u64) -> Result<W::Job, CodecError> {
        loop {
            if let Some(job) = self.ready.remove(&seq) {
                self.in_flight -= 1;
                return Ok(job);
            }
            let rx = self
                .rx
                .as_ref()
                .ok_or_else(|| CodecError::Internal(format!("stripe {seq} was never submitted")))?;
            match rx.recv() {
                Ok((s, Some(job))) => {
                    self.ready.insert(s, job);
                }
                Ok((s, None)) => {
                    return Err(CodecError::Internal(format!(
                        "worker panicked on stripe {s}"
                    )))
                }
                Err(_) => return Err(CodecError::Internal("worker pool stopped".into())),
            }
        }
    }
}

/// Runs `body` with a pool of `threads` workers (inline when `threads <= 1`).
/// At most `2 * threads` stripes are in flight, which bounds memory.
pub(crate) fn run_pipeline<W: Work, T>(
    work: &W,
    threads: usize,
    body: impl for<'s, 'e> FnOnce(&mut Lanes<'s, 'e, W>) -> T,
) -> T {
    if threads <= 1 {
        let mut lanes = Lanes {
            work,
            local: None,
            idle: None,
            tx: None,
            rx: None,
            ready: BTreeMap::new(),
            in_flight: 0,
            depth: 1,
        };
        let out = body(&mut lanes);
        if let Some(state) = lanes.local.take() {
            work.retire(state);
        }
        return out;
    }
    let depth = threads * 2;
    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, W::Job)>(depth);
    let job_rx: Jobs<W::Job> = Mutex::new(job_rx);
    let (res_tx, res_rx) = mpsc::channel::<(u64, Option<W::Job>)>();
    std::thread::scope(|scope| {
        let mut lanes = Lanes {
            work,
            local: None,
            idle: Some(Idle {
                scope,
                jobs: &job_rx,
                results: res_tx,
                threads,
            }),
            tx: Some(job_tx),
            rx: Some(res_rx),
            ready: BTreeMap::new(),
            in_flight: 0,
            depth,
        };
        let out = body(&mut lanes);
        if let Some(state) = lanes.local.take() {
            work.retire(state);
        }
        // Dropping the sender lets the workers finish before the scope joins.
        drop(lanes);
        out
    })
}
