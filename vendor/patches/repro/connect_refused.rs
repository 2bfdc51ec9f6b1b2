//! Connection::connect to a port where nothing listens (ECONNREFUSED at once),
//! N times, each bounded by a 3 s timeout: counts attempts that neither
//! succeed nor fail (hang) and how many lapin-io-loop threads / tasks leak.
use lapin::{Connection, ConnectionProperties};
use std::time::{Duration, Instant};

fn io_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .map(|c| c.trim() == "lapin-io-loop")
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let url = std::env::args().nth(2).unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5791/%2f?heartbeat=10".into());
    let (mut ok, mut err, mut hung) = (0, 0, 0);
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    let t0 = Instant::now();
    for i in 0..n {
        match tokio::time::timeout(Duration::from_secs(3), Connection::connect(&url, ConnectionProperties::default())).await {
            Ok(Ok(_c)) => ok += 1,
            Ok(Err(e)) => {
                err += 1;
                *errors.entry(e.to_string()).or_default() += 1;
            }
            Err(_) => {
                hung += 1;
                println!("attempt {i}: HUNG (no result within 3 s); lapin-io-loop threads alive: {}", io_threads());
            }
        }
    }
    println!("{n} attempts in {:?}: ok {ok}, error {err}, hung {hung}; errors: {errors:?}; io threads alive at end: {}", t0.elapsed(), io_threads());
}
