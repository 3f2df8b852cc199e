//! `peerloop sim <protocol>`: one protocol's unmodified code, many nodes,
//! on the simulated network, with figures of the run. Each protocol adds
//! one arm to the match.

const USAGE: &str = "usage: peerloop sim <protocol> [options]   (peerloop sim <protocol> --help)

protocols:
  gossip   [--nodes N] [--degree D] [--seed S] [--join SECONDS]
           N gossip nodes with modules: time for one item to reach them all
  chord    [--nodes N] [--seed S] [--keys K] [--limit SECS]
           N chord nodes: time to an exact ring, lookup hops, K keys PUT then GET";

pub fn sim_main(args: &[String]) -> u8 {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        Some("gossip") => crate::gossip::sim_scale::main(rest),
        Some("chord") => crate::chord::sim_scale::main(rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}\n\n{}", crate::chord::sim_scale::help());
            0
        }
        Some(other) => {
            eprintln!("peerloop sim: no simulation of '{other}'\n\n{USAGE}");
            2
        }
        None => {
            eprintln!("peerloop sim: which protocol?\n\n{USAGE}");
            2
        }
    }
}
