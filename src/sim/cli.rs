//! `peerloop sim <protocol> ...`: a protocol at scale in the simulator.

const USAGE: &str = "usage: peerloop sim <chord> [options]   (peerloop sim chord --help)";

pub fn sim_main(args: &[String]) -> u8 {
    match args.first().map(String::as_str) {
        Some("chord") => crate::chord::sim_scale::main(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}\n\n{}", crate::chord::sim_scale::help());
            0
        }
        Some(other) => {
            eprintln!("peerloop sim: no simulation for '{other}'\n{USAGE}");
            2
        }
        None => {
            eprintln!("peerloop sim: which protocol?\n{USAGE}");
            2
        }
    }
}
