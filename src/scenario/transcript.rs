//! `--logs DIR`: one transcript per scenario, every machine's lines
//! interleaved by time, in the reference's form (`[theshire] \tReceived ...`).

use super::context::Context;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

pub fn merge(ctx: &Context, scenario: &str, verdict: bool) -> String {
    let mut lines: Vec<(u128, usize, String)> = Vec::new();
    for (at, text) in &ctx.notes {
        lines.push((*at, lines.len(), format!("*CMD.........\t{text}")));
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
