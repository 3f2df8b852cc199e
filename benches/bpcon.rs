//! `cargo bench --bench bpcon [OPS_PER_PROPOSER]`: BPCon throughput and latency.

fn main() {
    let ops = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    if let Err(e) = peerloop::bpcon::bench::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_peerloop")),
        ops,
        256,
    ) {
        eprintln!("bpcon benchmark failed: {e}");
        std::process::exit(1);
    }
}
