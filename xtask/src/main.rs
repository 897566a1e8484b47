//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `pack`: build both zomes to wasm and write `workdir/node_registry.dna`
//!   and `workdir/elohim_orchestrator.happ` with the bundle library `hc`
//!   itself uses, so `hc app install` accepts the result.
//! - `test [ARGS]`: install the wasm target and (on Debian/Ubuntu) the
//!   headless browser of the page tests if missing, pack, then run every
//!   test of the workspace, two test binaries at a time (`ELOHIM_TEST_LANES`;
//!   extra arguments run plain `cargo test` with them instead); a test
//!   binary killed by SIGBUS (the host, not a test) runs once more.
//! - `run [ARGS]`: pack, then start the sidecar with its embedded conductor
//!   (extra arguments go to `elohim-sidecar run`).

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod lanes;

const ZOMES: [&str; 2] = ["node_registry_integrity", "node_registry_coordinator"];
/// Built and copied to workdir/ for the tests, never bundled.
const TEST_ZOMES: [&str; 1] = ["mallory_coordinator"];
const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = workspace_root();
    match task.as_str() {
        "pack" => {
            ensure_wasm_target()?;
            pack(&root)
        }
        "test" => {
            ensure_wasm_target()?;
            ensure_browser()?;
            ensure_doorway_client(&root)?;
            ensure_promtool()?;
            pack(&root)?;
            let started = Instant::now();
            test_workspace(&root, &rest)?;
            eprintln!("xtask: tests passed in {:.0?}", started.elapsed());
            Ok(())
        }
        "run" => {
            ensure_wasm_target()?;
            pack(&root)?;
            let mut cmd = cargo();
            cmd.current_dir(&root)
                .args([
                    "run",
                    "--package",
                    "elohim_sidecar",
                    "--bin",
                    "elohim-sidecar",
                    "--",
                    "run",
                ])
                .args(&rest);
            status(cmd, "elohim-sidecar run")
        }
        "bench" => {
            ensure_wasm_target()?;
            pack(&root)?;
            // `--release` builds the benchmark (holochain included) with
            // optimisations first: ~30 min on 2 cores the first time.
            let release = rest.iter().any(|a| a == "--release");
            let rest: Vec<&String> = rest.iter().filter(|a| *a != "--release").collect();
            let mut cmd = cargo();
            cmd.current_dir(&root)
                .args(["run", "--package", "elohim_tests", "--bin", "elohim-bench"])
                .args(release.then_some("--release"))
                .arg("--")
                .args(rest);
            status(cmd, "elohim-bench")
        }
        other => {
            eprintln!(
                "usage: cargo xtask <pack|test|run|bench> [args]\n\
                 \n  pack   build the zomes and write workdir/node_registry.dna and workdir/elohim_orchestrator.happ\
                 \n  test   pack, then run every test in the workspace (two binaries at a time; args run plain cargo test with them)\
                 \n  run    pack, then run the sidecar with an embedded conductor (args go to elohim-sidecar run)\
                 \n  bench  pack, then measure a local network of conductors and sidecars (args go to elohim-bench; --help; --release builds it optimised)"
            );
            if other.is_empty() {
                Ok(())
            } else {
                bail!("unknown task {other:?}")
            }
        }
    }
}

/// The workspace this run was started in. `cargo run` tells the process
/// where its manifest is; the path compiled into the binary is only a
/// fallback, since a binary reused from a shared target directory may have
/// been built in another clone.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// A cargo command without the package variables `cargo run` gave this
/// process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...). Some build scripts
/// (ring's) ask to rerun when those change, and their values name this
/// clone: passed on, every build from another clone, or from a shell,
/// would rebuild ring and everything above it, holochain included.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Parallel lanes of test binaries when `ELOHIM_TEST_LANES` is unset.
const DEFAULT_LANES: usize = 2;

/// Runs every test of the workspace: the test binaries in parallel lanes
/// (`ELOHIM_TEST_LANES`, default 2; 1 runs them one at a time), all of them
/// even when one fails, then the doc tests. With extra arguments it is
/// plain `cargo test --workspace --no-fail-fast ARGS`, one binary at a time.
fn test_workspace(root: &Path, rest: &[String]) -> Result<()> {
    if !rest.is_empty() {
        return test_with_cargo(root, rest);
    }
    let lanes = match std::env::var("ELOHIM_TEST_LANES") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=8).contains(n))
            .with_context(|| {
                format!("ELOHIM_TEST_LANES must be a number from 1 to 8, not {v:?}")
            })?,
        Err(_) => DEFAULT_LANES,
    };
    let binaries = lanes::build(cargo(), root)?;
    let suites = lanes::run(binaries, lanes, &target_dir(root)?);
    let mut doc = cargo();
    doc.current_dir(root).args(["test", "--workspace", "--doc"]);
    let docs = status(doc, "cargo test --workspace --doc");
    suites.and(docs)
}

/// `cargo test --workspace --no-fail-fast ARGS`. A binary the kernel killed
/// with SIGBUS (a page of a memory-mapped file, such as a conductor's
/// database, could not be read: the host's disk or memory ran short) did
/// not fail a test: it is said so and run once more, alone. Any other
/// failure, or a second crash, fails the run.
fn test_with_cargo(root: &Path, rest: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(rest)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("could not start cargo test")?;
    let stderr = child.stderr.take().context("cargo test's stderr")?;
    let mut failures = FailedTargets::default();
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading cargo test's output")?;
        eprintln!("{line}");
        failures.read(&line);
    }
    let st = child.wait().context("waiting for cargo test")?;
    if st.success() {
        return Ok(());
    }
    if failures.targets.is_empty() || !failures.all_crashed_by_sigbus() {
        bail!("cargo test --workspace failed ({st})");
    }
    for target in &failures.targets {
        eprintln!(
            "xtask: `{}` was killed by SIGBUS, not failed by a test (a memory-mapped file \
             could not be read; disk or memory on this host ran short); running it once more",
            target.args.join(" ")
        );
        let mut cmd = cargo();
        cmd.current_dir(root)
            .args(["test", "--workspace"])
            .args(target.selector())
            .args(rest);
        status(cmd, &format!("cargo test {}", target.args.join(" ")))?;
    }
    Ok(())
}

/// The test binaries a `cargo test` run reports as failed, read from its
/// error output.
#[derive(Debug, Default)]
struct FailedTargets {
    targets: Vec<FailedTarget>,
}

#[derive(Debug)]
struct FailedTarget {
    /// What to pass `cargo test` to run it alone (`-p pkg --test name`).
    args: Vec<String>,
    /// Whether the binary died of SIGBUS rather than reporting a failure.
    sigbus: bool,
}

impl FailedTarget {
    /// The target's selector without its package (`--test y`), to run it
    /// with `--workspace`: built for one package, its dependencies would get
    /// that package's features and be compiled again.
    fn selector(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut args = self.args.iter();
        while let Some(a) = args.next() {
            if a == "-p" || a == "--package" {
                args.next();
            } else {
                out.push(a.as_str());
            }
        }
        out
    }
}

impl FailedTargets {
    /// Takes in one line of cargo's error output. Cargo names a failed
    /// binary (`to rerun pass `-p x --test y``) and then, for a crash,
    /// the signal that ended it.
    fn read(&mut self, line: &str) {
        if let Some(rerun) = line
            .split_once("to rerun pass `")
            .and_then(|(_, tail)| tail.split_once('`'))
            .map(|(args, _)| args)
        {
            self.targets.push(FailedTarget {
                args: rerun.split_whitespace().map(String::from).collect(),
                sigbus: false,
            });
        } else if line.contains("(signal: 7, SIGBUS") {
            if let Some(last) = self.targets.last_mut() {
                last.sigbus = true;
            }
        }
    }

    fn all_crashed_by_sigbus(&self) -> bool {
        self.targets.iter().all(|t| t.sigbus)
    }
}

fn status(mut cmd: Command, what: &str) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("could not start {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}

/// Installs the wasm target with rustup when it is missing.
fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("xtask: installing the {WASM_TARGET} target with rustup");
            let mut cmd = Command::new("rustup");
            cmd.args(["target", "add", WASM_TARGET]);
            status(cmd, "rustup target add")
        }
        Err(e) => {
            eprintln!("xtask: rustup not found ({e}); assuming {WASM_TARGET} is installed");
            Ok(())
        }
    }
}

/// The browser the participation page tests drive.
const BROWSER_BINS: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

/// Installs Debian's `chromium` and `chromium-driver` with apt-get when
/// either binary is missing (a fresh CI machine), saying what it does; as a
/// non-root user it goes through sudo.
fn ensure_browser() -> Result<()> {
    let missing: Vec<&str> = BROWSER_BINS
        .into_iter()
        .filter(|b| !Path::new(b).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: {} missing; installing the headless browser for the page tests: \
         apt-get update && apt-get install -y chromium chromium-driver",
        missing.join(" and ")
    );
    apt_install(&["chromium", "chromium-driver"])
}

/// `apt-get update && apt-get install -y <packages>`, through sudo when not
/// root.
fn apt_install(packages: &[&str]) -> Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    status(apt(&["update"]), "apt-get update")?;
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(packages);
    let what = format!("apt-get {}", install.join(" "));
    status(apt(&install), &what)
        .with_context(|| format!("install {} yourself, then rerun", packages.join(" ")))?;
    Ok(())
}

/// Installs Debian's `prometheus` (for `promtool`, which checks the alert
/// rules in docs/grafana/) when `promtool` is missing.
fn ensure_promtool() -> Result<()> {
    if Command::new("promtool").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("xtask: promtool missing; installing it: apt-get install -y prometheus");
    apt_install(&["prometheus"])
}

/// Installs the Doorway example's JavaScript client (`@holochain/client`, at
/// the version `doorway/package-lock.json` pins) when it is missing, for
/// the test that runs the plan's calls from JavaScript. Needs Node.js and
/// npm (the npm registry is reachable from CI).
fn ensure_doorway_client(root: &Path) -> Result<()> {
    let dir = root.join("doorway");
    // npm writes its own record of an install (with the time it ran; the
    // packages' files keep their tarballs' times).
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if dir.join("node_modules/@holochain/client").exists() && fresh(&installed) >= fresh(&lock) {
        return Ok(());
    }
    eprintln!("xtask: installing the Doorway example's client: npm ci in doorway/");
    let mut cmd = Command::new("npm");
    cmd.current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    status(cmd, "npm ci (in doorway/)").context(
        "the Doorway test needs Node.js 20+ and npm on PATH (Debian: apt-get install nodejs npm)",
    )
}

/// The cargo target directory (honours CARGO_TARGET_DIR and config).
fn target_dir(root: &Path) -> Result<PathBuf> {
    let out = cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

fn pack(root: &Path) -> Result<()> {
    let started = Instant::now();
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--profile", "zome", "--target", WASM_TARGET]);
    for z in ZOMES.iter().chain(&TEST_ZOMES) {
        cmd.args(["--package", z]);
    }
    status(cmd, "building the zomes to wasm")?;

    let workdir = root.join("workdir");
    std::fs::create_dir_all(&workdir)?;
    let built = target_dir(root)?.join(WASM_TARGET).join("zome");
    for z in ZOMES.iter().chain(&TEST_ZOMES) {
        let from = built.join(format!("{z}.wasm"));
        let to = workdir.join(format!("{z}.wasm"));
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }

    let dna = workdir.join("node_registry.dna");
    let happ = workdir.join("elohim_orchestrator.happ");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        use holochain_types::prelude::{AppManifest, ValidatedDnaManifest};
        mr_bundle::FileSystemBundler::bundle_to::<ValidatedDnaManifest>(
            root.join("dnas/node_registry/dna.yaml"),
            &dna,
        )
        .await
        .context("packing the DNA")?;
        mr_bundle::FileSystemBundler::bundle_to::<AppManifest>(root.join("happ.yaml"), &happ)
            .await
            .context("packing the hApp")?;
        anyhow::Ok(())
    })?;
    let dna_hash = rt.block_on(dna_hash(&dna))?;
    for (name, path) in [("dna", &dna), ("happ", &happ)] {
        let len = std::fs::metadata(path)?.len();
        eprintln!(
            "xtask: wrote {} ({name}, {} KiB)",
            path.display(),
            len / 1024
        );
    }
    eprintln!(
        "xtask: DNA hash {dna_hash}; packed in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

/// The hash of the packed DNA, to compare with what a conductor reports.
async fn dna_hash(path: &Path) -> Result<String> {
    use holochain_types::prelude::DnaBundle;
    let bytes = tokio::fs::read(path).await?;
    let bundle = DnaBundle::unpack(std::io::Cursor::new(bytes))?;
    let (dna_file, _) = bundle.into_dna_file(Default::default()).await?;
    Ok(dna_file.dna_hash().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &str) -> FailedTargets {
        let mut f = FailedTargets::default();
        for l in lines.lines() {
            f.read(l);
        }
        f
    }

    #[test]
    fn a_sigbus_crash_is_told_from_a_failed_test() {
        let f = read(
            "error: test failed, to rerun pass `-p elohim_tests --test custody`\n\
             \n\
             Caused by:\n  \
             process didn't exit successfully: `/t/custody-b21a` (signal: 7, SIGBUS: access to undefined memory)\n\
             error: test failed, to rerun pass `-p elohim_tests --test recovery`\n\
             \n\
             Caused by:\n  \
             process didn't exit successfully: `/t/recovery-9c1d` (exit status: 101)\n",
        );
        let read: Vec<(String, bool)> = f
            .targets
            .iter()
            .map(|t| (t.args.join(" "), t.sigbus))
            .collect();
        assert_eq!(
            read,
            [
                ("-p elohim_tests --test custody".to_string(), true),
                ("-p elohim_tests --test recovery".to_string(), false),
            ]
        );
        assert!(!f.all_crashed_by_sigbus());
        assert_eq!(f.targets[0].selector(), ["--test", "custody"]);
    }

    #[test]
    fn only_sigbus_crashes_are_run_again() {
        let f = read(
            "error: test failed, to rerun pass `-p elohim_tests --test custody`\n\
             process didn't exit successfully: `/t/custody` (signal: 7, SIGBUS: access to undefined memory)\n",
        );
        assert!(f.all_crashed_by_sigbus());
        let f = read(
            "error: test failed, to rerun pass `-p elohim_tests --test custody`\n\
             process didn't exit successfully: `/t/custody` (signal: 11, SIGSEGV: invalid memory reference)\n",
        );
        assert!(!f.all_crashed_by_sigbus());
    }
}
