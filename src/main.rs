//! The `peerloop` command line: one binary, one subcommand per role.

use std::process::ExitCode;

const USAGE: &str =
    "usage: peerloop <command> [options]   (peerloop <command> --help for its options)
       peerloop --version

commands:
  server        a CRC relay chat server
  client        a CRC chat client (interactive, or driven line by line on stdin)
  gossip        a gossip node (course API for local modules, push/pull between nodes)
  gossip-client a gossip module for the terminal: notify TYPE | announce TYPE DATA
  chord         a Chord DHT node (DHT API for clients)
  dht           a DHT API client: put or get one key
  test          replay scenario files against real processes on loopback
  bench         run a benchmark (crc, gossip, chord, bpcon)
  fuzz          random workloads and faults in the simulator, invariants checked
  sim           a protocol at scale in the simulator (sim gossip|chord --nodes N)
  relay         a byte-forwarding relay (the CRC benchmark's ceiling)
  keygen        write an RSA key pair for a BPCon replica
  paxos         a BPCon (Byzantine Paxos) replica of a key-value store
  propose       send operations to a BPCon replica (P,key,value / D,key,)
  kv            read a BPCon replica's store (get KEY / dump)
";

fn main() -> ExitCode {
    use peerloop::{bench, bpcon, chord, crc, fuzz, gossip, scenario, sim};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let help = |_: &[String]| {
        print!("{USAGE}");
        0
    };
    let version = |_: &[String]| {
        println!("peerloop {}", env!("CARGO_PKG_VERSION"));
        0
    };
    let commands = peerloop::cli::Subcommands {
        speaker: "peerloop",
        usage: USAGE,
        unknown: "unknown command",
        missing: None,
    };
    let code = commands.run(
        &args,
        &[
            (&["-h", "--help", "help"], &help),
            (&["-V", "--version"], &version),
            (&["server"], &crc::cli::server_main),
            (&["client"], &crc::cli::client_main),
            (&["chord"], &chord::cli::main),
            (&["dht"], &chord::dht_cli::main),
            (&["test"], &scenario::test_main),
            (&["gossip"], &gossip::cli::main),
            (&["gossip-client"], &gossip::client::main),
            (&["bench"], &bench::bench_main),
            (&["fuzz"], &fuzz::fuzz_main),
            (&["sim"], &sim::cli::sim_main),
            (&["relay"], &bench::relay::relay_main),
            (&["keygen"], &bpcon::cli::keygen_main),
            (&["paxos"], &bpcon::cli::paxos_main),
            (&["propose"], &bpcon::cli::propose_main),
            (&["kv"], &bpcon::cli::kv_main),
        ],
    );
    ExitCode::from(code)
}
