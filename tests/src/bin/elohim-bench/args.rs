//! The command line: `elohim-bench`'s flags, their defaults and checks, and
//! the usage printed for `--help` or a bad flag. (A worker process's
//! arguments, `--worker ...`, are read in [`crate::worker`].)

pub struct Args {
    pub agents: usize,
    pub conductors: usize,
    pub samples: usize,
    pub sidecars: usize,
    pub sizes_mib: Vec<u64>,
    pub strategies: Vec<String>,
    pub out: std::path::PathBuf,
    pub skip_registry: bool,
    pub skip_custody: bool,
    pub wave: usize,
    pub window_secs: u32,
    /// How often the DHT-holding conductors start a gossip round, ms.
    pub gossip_ms: u32,
    /// Contents each node holds when selection is sampled under custody
    /// load, one level after another (empty: not sampled).
    pub custody_load: Vec<usize>,
    /// Source-chain lengths (records the observer authored) at which its
    /// own calls are sampled, one after another (empty: not sampled).
    pub chain_age: Vec<usize>,
    pub custody_held: Vec<usize>,
    /// Ages (days at the shipped defaults) at which a node's own writes are
    /// sampled, its chains fast-forwarded to what the record model says it
    /// holds then (empty: not sampled).
    pub age_days: Vec<u32>,
    /// Content sizes for the throughput stage (empty: skipped).
    pub throughput_mib: Vec<u64>,
    /// The bandwidth every node of the throughput stage declares, Mbit/s
    /// (None: the most a registration may, so serving is not paced): a
    /// holder serves at that pace, as between machines on a link that fast.
    pub throughput_mbps: Option<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: elohim-bench [--agents N (40)] [--conductors N (4)] [--samples N (40)] \
         [--sidecars N (9)] [--sizes-mib 10,100] \
         [--strategies full_replica,erasure_coded,threshold_split] [--out bench.json] [--skip-registry] [--skip-custody] \
         [--wave N (200), nodes per worker process] [--window-secs S (3600)] \
         [--gossip-ms N (1000), gossip interval of the DHT holders; the shipped conductor's is 120000] \
         [--custody-load 0,2,8: after the registry, sample selection again with each node holding that many contents] \
         [--chain-age 0,2000,8000: on a conductor of its own, sample a node's calls as its own source chain reaches that many records] \
         [--custody-held 0,128: on a conductor of its own, sample selection over beating custodians holding that many contents, before and after their totals take them in] \
         [--age-days 1,30,365: on a conductor of its own, sample a node's own writes with its identity and working chains holding what the shipped defaults write in that many days] \
         [--throughput-mib 256: four sidecars publish and retrieve content that large with each strategy, idle and with the conductors busy, against the disk's fsync'd write speed] \
         [--throughput-mbps 1000: the bandwidth those sidecars declare, so holders serve at a link's pace (default: unpaced)]"
    );
    std::process::exit(2)
}

/// A flag's whole-number value, or the usage after a clear error (also
/// when it does not fit the flag's type).
fn number<T: std::str::FromStr>(name: &str, v: String) -> T {
    v.parse().unwrap_or_else(|_| {
        eprintln!(
            "elohim-bench: {name} must be a whole number of at most {} bits, got {v:?}",
            std::mem::size_of::<T>() * 8
        );
        usage()
    })
}

/// A flag's comma-separated whole numbers, each checked as [`number`].
fn numbers<T: std::str::FromStr>(name: &str, v: String) -> Vec<T> {
    v.split(',')
        .map(|s| number(name, s.trim().to_string()))
        .collect()
}

pub fn parse_args() -> Args {
    let mut a = Args {
        agents: 40,
        conductors: 4,
        samples: 40,
        sidecars: 9,
        sizes_mib: vec![10, 100],
        strategies: vec![
            "full_replica".into(),
            "erasure_coded".into(),
            "threshold_split".into(),
        ],
        out: "bench.json".into(),
        skip_registry: false,
        skip_custody: false,
        wave: 200,
        gossip_ms: 1000,
        window_secs: 3600,
        custody_load: Vec::new(),
        chain_age: Vec::new(),
        custody_held: Vec::new(),
        age_days: Vec::new(),
        throughput_mib: Vec::new(),
        throughput_mbps: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next().unwrap_or_else(|| {
                eprintln!("elohim-bench: {name} needs a value");
                usage()
            })
        };
        match flag.as_str() {
            "--agents" => a.agents = number("--agents", value("--agents")),
            "--conductors" => a.conductors = number("--conductors", value("--conductors")),
            "--samples" => a.samples = number("--samples", value("--samples")),
            "--sidecars" => a.sidecars = number("--sidecars", value("--sidecars")),
            "--sizes-mib" => a.sizes_mib = numbers("--sizes-mib", value("--sizes-mib")),
            "--strategies" => {
                a.strategies = value("--strategies")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect();
                for st in &a.strategies {
                    if !["full_replica", "erasure_coded", "threshold_split"].contains(&st.as_str())
                    {
                        eprintln!("elohim-bench: unknown strategy {st:?}");
                        usage()
                    }
                }
            }
            "--out" => a.out = value("--out").into(),
            "--wave" => a.wave = number("--wave", value("--wave")),
            "--window-secs" => a.window_secs = number("--window-secs", value("--window-secs")),
            "--gossip-ms" => a.gossip_ms = number("--gossip-ms", value("--gossip-ms")),
            "--custody-load" => {
                a.custody_load = numbers("--custody-load", value("--custody-load"));
                if !a.custody_load.is_sorted() {
                    eprintln!("elohim-bench: --custody-load levels must grow");
                    usage()
                }
            }
            "--chain-age" => {
                a.chain_age = numbers("--chain-age", value("--chain-age"));
                if !a.chain_age.is_sorted() {
                    eprintln!("elohim-bench: --chain-age lengths must grow");
                    usage()
                }
            }
            "--custody-held" => {
                a.custody_held = numbers("--custody-held", value("--custody-held"));
                if !a.custody_held.is_sorted() {
                    eprintln!("elohim-bench: --custody-held levels must grow");
                    usage()
                }
            }
            "--age-days" => {
                a.age_days = numbers("--age-days", value("--age-days"));
                if !a.age_days.is_sorted() || a.age_days.first() == Some(&0) {
                    eprintln!("elohim-bench: --age-days must grow from 1");
                    usage()
                }
            }
            "--throughput-mib" => {
                a.throughput_mib = numbers("--throughput-mib", value("--throughput-mib"));
                if a.throughput_mib.contains(&0) {
                    eprintln!("elohim-bench: --throughput-mib sizes must be at least 1");
                    usage()
                }
            }
            "--throughput-mbps" => {
                let mbps = number("--throughput-mbps", value("--throughput-mbps"));
                if mbps == 0 || mbps > registry_core::capacity::MAX_BANDWIDTH_MBPS {
                    eprintln!(
                        "elohim-bench: --throughput-mbps must be 1 to {}",
                        registry_core::capacity::MAX_BANDWIDTH_MBPS
                    );
                    usage()
                }
                a.throughput_mbps = Some(mbps);
            }
            "--skip-registry" => a.skip_registry = true,
            "--skip-custody" => a.skip_custody = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("elohim-bench: unknown flag {other}");
                usage()
            }
        }
    }
    if a.conductors == 0
        || a.agents < a.conductors
        || a.sidecars < 5
        || a.samples == 0
        || a.wave == 0
        || a.window_secs < 60
        || a.gossip_ms < 100
    {
        eprintln!(
            "elohim-bench: need --agents >= --conductors >= 1, --samples >= 1, --wave >= 1, \
             --window-secs >= 60, --gossip-ms >= 100 and --sidecars >= 5 \
             (an owner, the custodians and a spare; with fewer than 8, contents get fewer shards)"
        );
        usage()
    }
    a
}
