//! The binary end to end: a small run writes its table and JSON, and bad
//! arguments are refused with a message and a non-zero exit, never a panic.

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_elohim-sim"))
}

#[test]
fn a_small_run_prints_a_table_and_writes_json() {
    let dir = std::env::temp_dir().join(format!("elohim-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let out = sim()
        .args(["run", "--nodes", "100", "--days", "5", "--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    for needle in ["items lost", "time to detect", "repair traffic", "elapsed:"] {
        assert!(table.contains(needle), "missing {needle:?} in\n{table}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["config"]["nodes"], 100);
    assert!(v["counters"]["events"].as_u64().unwrap() > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_cleanly() {
    for args in [
        vec!["run", "--k", "9"],
        vec!["run", "--nodes", "3"],
        vec!["run", "--message-loss", "1.5"],
        vec!["run", "--strategy", "raid5"],
        vec!["run", "--detection", "vibes"],
        vec!["sweep", "--param", "colour"],
        vec![
            "sweep", "--param", "k-n", "--values", "3x6", "--nodes", "50", "--days", "1",
        ],
        vec!["compare", "--bench", "/nonexistent/bench.json"],
        // Refused before simulating, not after.
        vec![
            "run",
            "--nodes",
            "100000",
            "--json",
            "/nonexistent/dir/out.json",
        ],
        vec!["heartbeat-check", "--window-secs", "10"],
    ] {
        let out = sim().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn compare_reads_the_fixture() {
    let out = sim()
        .args([
            "compare",
            "--bench",
            "tests/fixtures/bench.json",
            "--trials",
            "20",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("detection, measured") && s.contains("detection, model"),
        "{s}"
    );
}
