//! Runs the workspace's test binaries in parallel lanes.
//!
//! `cargo test` runs one test binary at a time, and a sweettest suite keeps
//! two cores only about three quarters busy (conductors wait on gossip,
//! windows and timeouts). Two lanes overlap those waits. Each binary runs as
//! cargo would run it (in its package's directory, with the package's
//! `CARGO_*` variables); its output goes to a log file and is printed whole
//! when it ends, so two suites' lines never interleave.
//!
//! The longest binaries start first (by the times the last run recorded in
//! the target directory, else by [`EXPECTED_SECS`]), so the run ends when
//! the longest one does, not after it.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long each suite took in a two-lane run on 2 cores (2026-12-07):
/// the order of a run whose target directory has no times recorded yet
/// (a cold CI cache). Longest first, each next binary to the lane that
/// frees first, ends both lanes within a minute of each other.
const EXPECTED_SECS: &[(&str, u64)] = &[
    ("custody", 842),
    ("budget", 325),
    ("recovery", 289),
    ("sidecar", 261),
    ("byzantine", 242),
    ("cli", 242),
    ("registry", 131),
    ("participation", 118),
    ("rewards", 92),
    ("validation", 75),
    ("foundation", 15),
];

/// SIGBUS: a memory-mapped page could not be read (the host ran short of
/// disk or memory), not a failed test.
const SIGBUS: i32 = 7;

/// One test binary cargo built, and how cargo would run it.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// `package/kind/name`, e.g. `elohim_tests/test/custody`.
    pub label: String,
    /// The target's name (a suite's file name, or the crate's for unit tests).
    pub name: String,
    /// The executable.
    pub path: PathBuf,
    /// Its package's directory, where cargo runs it.
    pub package_dir: PathBuf,
    /// Its package's name and version, set as cargo sets them.
    pub package: (String, String),
}

/// How one binary ended.
#[derive(Debug)]
enum Outcome {
    Passed,
    Failed(String),
    /// Killed by SIGBUS: run again alone at the end.
    Crashed,
}

/// Builds every test binary of the workspace and lists them.
pub fn build(mut cargo: Command, root: &Path) -> Result<Vec<TestBinary>> {
    cargo.current_dir(root).args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    cargo.stdout(Stdio::piped());
    let mut child = cargo
        .spawn()
        .context("could not start cargo test --no-run")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut found = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        if let Some(b) = test_binary(&line) {
            found.push(b);
        }
    }
    let st = child.wait().context("waiting for cargo test --no-run")?;
    if !st.success() {
        bail!("building the tests failed ({st})");
    }
    Ok(found)
}

/// The test binary a line of cargo's JSON messages announces, if any.
fn test_binary(line: &str) -> Option<TestBinary> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
        return None;
    }
    let path = PathBuf::from(msg["executable"].as_str()?);
    let name = msg["target"]["name"].as_str()?.to_string();
    let kind = msg["target"]["kind"][0].as_str().unwrap_or("lib");
    let manifest = PathBuf::from(msg["manifest_path"].as_str()?);
    // A package id is `path+file:///dir#name@version` (or `#version` when
    // the name is the directory's).
    let id = msg["package_id"].as_str()?;
    let (_, tail) = id.rsplit_once('#')?;
    let (package, version) = match tail.split_once('@') {
        Some((n, v)) => (n.to_string(), v.to_string()),
        None => (
            manifest.parent()?.file_name()?.to_str()?.to_string(),
            tail.to_string(),
        ),
    };
    Some(TestBinary {
        label: format!("{package}/{kind}/{name}"),
        name,
        path,
        package_dir: manifest.parent()?.to_path_buf(),
        package: (package, version),
    })
}

/// Longest first: by the seconds recorded in `times`, else the expected
/// ones; binaries never timed (unit tests) last, by label.
pub fn order(binaries: &mut [TestBinary], times: &BTreeMap<String, f64>) {
    let secs = |b: &TestBinary| -> f64 {
        times.get(&b.label).copied().unwrap_or_else(|| {
            EXPECTED_SECS
                .iter()
                .find(|(n, _)| *n == b.name)
                .map_or(0.0, |(_, s)| *s as f64)
        })
    };
    binaries.sort_by(|a, b| secs(b).total_cmp(&secs(a)).then(a.label.cmp(&b.label)));
}

/// The times file's contents (`label seconds` per line); empty when absent
/// or unreadable (it is only an ordering hint).
pub fn read_times(file: &Path) -> BTreeMap<String, f64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (label, secs) = l.rsplit_once(' ')?;
            Some((label.to_string(), secs.parse().ok()?))
        })
        .collect()
}

fn write_times(file: &Path, times: &BTreeMap<String, f64>) {
    let text: String = times.iter().map(|(l, s)| format!("{l} {s:.0}\n")).collect();
    // Only a hint for the next run's order: losing it costs nothing.
    let _ = std::fs::write(file, text);
}

/// Runs `binaries` in `lanes` parallel lanes, all of them even when one
/// fails; a binary killed by SIGBUS runs once more, alone, at the end.
/// Records each binary's time in `state_dir` for the next run's order.
pub fn run(binaries: Vec<TestBinary>, lanes: usize, state_dir: &Path) -> Result<()> {
    let logs = state_dir.join("xtask-test-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let times_file = state_dir.join("xtask-test-times.txt");
    let mut times = read_times(&times_file);
    let mut binaries = binaries;
    order(&mut binaries, &times);
    eprintln!(
        "xtask: running {} test binaries in {lanes} lanes, longest first: {}",
        binaries.len(),
        binaries
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let queue = Arc::new(Mutex::new(binaries.into_iter().collect::<VecDeque<_>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..lanes.max(1))
        .map(|_| {
            let queue = queue.clone();
            let results = results.clone();
            let logs = logs.clone();
            std::thread::spawn(move || loop {
                let Some(b) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let (outcome, took) = run_one(&b, &logs);
                results.lock().unwrap().push((b, outcome, took));
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a test lane panicked"))?;
    }
    let results = std::mem::take(&mut *results.lock().unwrap());

    let mut failed = Vec::new();
    let mut crashed = Vec::new();
    for (b, outcome, took) in results {
        match outcome {
            Outcome::Passed => {
                times.insert(b.label.clone(), took.as_secs_f64());
            }
            Outcome::Failed(why) => failed.push(format!("{} ({why})", b.label)),
            Outcome::Crashed => crashed.push(b),
        }
    }
    for b in crashed {
        eprintln!(
            "xtask: {} was killed by SIGBUS, not failed by a test (a memory-mapped file \
             could not be read; disk or memory on this host ran short); running it once more, alone",
            b.label
        );
        match run_one(&b, &logs) {
            (Outcome::Passed, took) => {
                times.insert(b.label.clone(), took.as_secs_f64());
            }
            (Outcome::Failed(why), _) => failed.push(format!("{} ({why})", b.label)),
            (Outcome::Crashed, _) => failed.push(format!("{} (SIGBUS twice)", b.label)),
        }
    }
    write_times(&times_file, &times);
    if !failed.is_empty() {
        bail!(
            "{} test binar{} failed: {}",
            failed.len(),
            if failed.len() == 1 { "y" } else { "ies" },
            failed.join(", ")
        );
    }
    Ok(())
}

/// Runs one binary as cargo would, its output to `logs/<name>.log`, then
/// printed whole.
fn run_one(b: &TestBinary, logs: &Path) -> (Outcome, Duration) {
    let log_path = logs.join(format!("{}.log", b.label.replace('/', "-")));
    eprintln!("xtask: {} started", b.label);
    let started = Instant::now();
    let outcome = (|| -> Result<Outcome> {
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let st = Command::new(&b.path)
            // Each test's time on its result line, so a slow CI run shows
            // which test grew. `--report-time` is a libtest option behind
            // `-Z unstable-options`, which the stable harness accepts only
            // with `RUSTC_BOOTSTRAP` set; it changes nothing else.
            .args(["-Z", "unstable-options", "--report-time"])
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(&b.package_dir)
            .env("CARGO_MANIFEST_DIR", &b.package_dir)
            .env("CARGO_PKG_NAME", &b.package.0)
            .env("CARGO_PKG_VERSION", &b.package.1)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("could not start {}", b.path.display()))?;
        Ok(if st.success() {
            Outcome::Passed
        } else if st.signal() == Some(SIGBUS) {
            Outcome::Crashed
        } else {
            Outcome::Failed(st.to_string())
        })
    })()
    .unwrap_or_else(|e| Outcome::Failed(format!("{e:#}")));
    let took = started.elapsed();
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    // One write, so a lane's block is not cut by another's.
    let verdict = match &outcome {
        Outcome::Passed => "passed".to_string(),
        Outcome::Failed(why) => format!("FAILED ({why})"),
        Outcome::Crashed => "crashed (SIGBUS)".to_string(),
    };
    let block = format!(
        "xtask: ---- {} ({}) ----\n{output}xtask: {} {verdict} in {:.0} s\n",
        b.label,
        b.path.display(),
        b.label,
        took.as_secs_f64()
    );
    let _ = std::io::stderr().lock().write_all(block.as_bytes());
    (outcome, took)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(label: &str) -> TestBinary {
        let name = label.rsplit('/').next().unwrap().to_string();
        TestBinary {
            label: label.into(),
            name,
            path: PathBuf::new(),
            package_dir: PathBuf::new(),
            package: Default::default(),
        }
    }

    #[test]
    fn cargo_messages_name_the_test_binaries_and_their_packages() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#elohim_tests@0.1.0","manifest_path":"/w/tests/Cargo.toml","target":{"kind":["test"],"name":"custody"},"profile":{"test":true},"executable":"/t/debug/deps/custody-1f"}"#;
        let b = test_binary(line).unwrap();
        assert_eq!(b.label, "elohim_tests/test/custody");
        assert_eq!(b.package_dir, PathBuf::from("/w/tests"));
        assert_eq!(b.package, ("elohim_tests".into(), "0.1.0".into()));
        assert_eq!(b.path, PathBuf::from("/t/debug/deps/custody-1f"));
        // A package id without a name: the directory's.
        let line = line.replace("#elohim_tests@0.1.0", "#0.1.0");
        assert_eq!(test_binary(&line).unwrap().package.0, "tests");
        // A library built for other crates, not a test.
        let lib = line.replace(r#""test":true"#, r#""test":false"#);
        assert!(test_binary(&lib).is_none());
        assert!(test_binary("not json").is_none());
    }

    #[test]
    fn the_longest_binaries_start_first() {
        let mut bins = vec![
            bin("shard_codec/lib/shard_codec"),
            bin("elohim_tests/test/foundation"),
            bin("elohim_tests/test/custody"),
            bin("elohim_tests/test/byzantine"),
        ];
        order(&mut bins, &BTreeMap::new());
        let names: Vec<&str> = bins.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["custody", "byzantine", "foundation", "shard_codec"]);
        // A recorded time wins over the expected one.
        let times = BTreeMap::from([("elohim_tests/test/foundation".to_string(), 2000.0)]);
        order(&mut bins, &times);
        assert_eq!(bins[0].name, "foundation");
    }

    #[test]
    fn times_survive_a_round_trip_and_junk_is_skipped() {
        let dir = std::env::temp_dir().join(format!("xtask-times-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.txt");
        let times = BTreeMap::from([("a/test/x".to_string(), 12.0)]);
        write_times(&file, &times);
        std::fs::write(
            &file,
            format!("{}garbage\n", std::fs::read_to_string(&file).unwrap()),
        )
        .unwrap();
        assert_eq!(read_times(&file), times);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
