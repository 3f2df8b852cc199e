//! `--logs DIR`: one transcript per scenario, every machine's lines
//! interleaved by time, in the reference's form (`[theshire] \tReceived ...`).
//! Its top says how the file's ports were remapped (`*PORTS.......` lines,
//! which have no counterpart in the course's reference transcripts: a
//! comparison with those skips them, see [`reference_lines`]).

use super::context::Context;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// How the port-mapping lines of a transcript begin (the width of `*CMD.........`).
pub const PORTS_PREFIX: &str = "*PORTS.......\t";
/// How the simulator's header line begins (`--sim`: the seed that replays it).
pub const SIM_PREFIX: &str = "*SIM.........\t";

/// The lines of a transcript that the course's reference also has: without
/// our port-mapping header (and the blank line after it).
pub fn reference_lines(transcript: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut after_ports = false;
    for line in transcript.lines() {
        if line.starts_with(PORTS_PREFIX) || line.starts_with(SIM_PREFIX) {
            after_ports = true;
            continue;
        }
        if after_ports && line.is_empty() {
            after_ports = false;
            continue;
        }
        after_ports = false;
        lines.push(line);
    }
    lines
}

pub fn merge(ctx: &Context, scenario: &str, verdict: bool) -> String {
    let mut lines: Vec<(u128, usize, String)> = Vec::new();
    for (at, text) in &ctx.notes {
        lines.push((*at, lines.len(), format!("*CMD.........\t{text}")));
    }
    if let Some(sim) = &ctx.sim {
        for machine in &sim.machines {
            for (at, text) in &machine.log {
                lines.push((*at, lines.len(), format!("[{}] \t{text}", machine.name)));
            }
        }
    }
    for machine in &ctx.machines {
        let Ok(text) = std::fs::read_to_string(&machine.log_file) else {
            continue;
        };
        for line in text.lines() {
            if let Some((at, text)) = crate::logging::parse_line(line) {
                lines.push((at, lines.len(), format!("[{}] \t{text}", machine.name)));
            }
        }
    }
    lines.sort();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n##############################################\nBeginning test {scenario}\n"
    );
    if let Some(sim) = &ctx.sim {
        let _ = writeln!(
            out,
            "{SIM_PREFIX}simulated, seed {} (times are virtual)\n",
            sim.world.seed()
        );
    }
    let map = ctx.port_map();
    if !map.is_empty() {
        let _ = writeln!(
            out,
            "{PORTS_PREFIX}the file's ports run on free ones: {}\n",
            map.iter()
                .map(|(file, used)| format!("{file} -> {used}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (_, _, line) in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\nTest passed:{}",
        if verdict { "True" } else { "False" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_port_mapping_is_said_once_at_the_top_and_left_out_of_comparisons() {
        let mut ctx = Context::new(PathBuf::from("peerloop"), 1.0, false, std::env::temp_dir());
        let a = ctx.port(34202);
        let b = ctx.port(34201);
        assert_eq!(ctx.port(34201), b, "one mapping per port");
        ctx.note(format!("Running: LAUNCHSERVER --port 34201 (now {b})"));
        let text = merge(&ctx, "x", true);
        let header =
            format!("*PORTS.......\tthe file's ports run on free ones: 34201 -> {b}, 34202 -> {a}");
        assert_eq!(text.matches("*PORTS").count(), 1, "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "##############################################");
        assert_eq!(lines[2], "Beginning test x");
        assert_eq!(lines[4], header, "{text}");
        // Without the header, the transcript has the reference's shape.
        let reference = reference_lines(&text);
        assert_eq!(
            reference[..4],
            [
                "",
                "##############################################",
                "Beginning test x",
                ""
            ]
        );
        assert!(
            reference[4].starts_with("*CMD.........\tRunning: "),
            "{reference:?}"
        );
        assert_eq!(reference.len(), lines.len() - 2);
        // No remapped port, no header.
        let empty = Context::new(PathBuf::from("peerloop"), 1.0, false, std::env::temp_dir());
        assert!(!merge(&empty, "y", true).contains("*PORTS"));
    }
}
