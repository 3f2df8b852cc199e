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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let code = match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            0
        }
        "-V" | "--version" => {
            println!("peerloop {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "server" => peerloop::crc::cli::server_main(rest),
        "client" => peerloop::crc::cli::client_main(rest),
        "chord" => peerloop::chord::cli::main(rest),
        "dht" => peerloop::chord::dht_cli::main(rest),
        "test" => peerloop::scenario::test_main(rest),
        "gossip" => peerloop::gossip::cli::main(rest),
        "gossip-client" => peerloop::gossip::client::main(rest),
        "bench" => peerloop::bench::bench_main(rest),
        "fuzz" => peerloop::fuzz::fuzz_main(rest),
        "sim" => peerloop::sim::cli::sim_main(rest),
        "relay" => peerloop::bench::relay::relay_main(rest),
        "keygen" => peerloop::bpcon::cli::keygen_main(rest),
        "paxos" => peerloop::bpcon::cli::paxos_main(rest),
        "propose" => peerloop::bpcon::cli::propose_main(rest),
        "kv" => peerloop::bpcon::cli::kv_main(rest),
        other => {
            eprintln!("peerloop: unknown command '{other}'\n");
            eprint!("{USAGE}");
            2
        }
    };
    ExitCode::from(code)
}
