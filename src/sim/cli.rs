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
    let help = |_: &[String]| {
        println!("{USAGE}\n\n{}", crate::chord::sim_scale::help());
        0
    };
    let protocols = crate::cli::Subcommands {
        speaker: "peerloop sim",
        usage: USAGE,
        unknown: "no simulation of",
        missing: Some("which protocol?"),
    };
    protocols.run(
        args,
        &[
            (&["gossip"], &crate::gossip::sim_scale::main),
            (&["chord"], &crate::chord::sim_scale::main),
            (&["-h", "--help", "help"], &help),
        ],
    )
}
