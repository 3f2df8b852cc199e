//! `peerloop test --report DIR`: a run made visible. Per scenario one
//! self-contained HTML page (space-time diagram of every frame, topology at
//! the end, expected-versus-found differences), a decoded frame log and a
//! ShiViz log; and an `index.html` listing every scenario. See docs/report.md.

pub mod frames;
pub mod html;
pub mod shiviz;

use crate::reactor::Describer;
use frames::{End, Frame, Traced};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One machine of a finished scenario, as the runner knew it.
pub struct MachineRun {
    pub name: String,
    /// The `peerloop` command it ran (`server`, `chord`, `paxos`, …).
    pub command: String,
    pub trace_file: Option<PathBuf>,
    pub final_state: Value,
}

/// A finished scenario.
pub struct ScenarioRun<'a> {
    pub name: &'a str,
    pub passed: bool,
    pub seconds: f64,
    pub problems: &'a [String],
    pub machines: Vec<MachineRun>,
    /// The runner's own notes (commands, waits): (µs, text).
    pub notes: &'a [(u128, String)],
    /// The scenario file's final_state.
    pub expected: &'a Map<String, Value>,
}

/// The protocol a `peerloop` command speaks, and its frame describer.
pub fn protocol_of(command: &str) -> Option<(&'static str, Describer)> {
    match command {
        "server" | "client" => Some(("crc", crate::crc::describe::describe)),
        "gossip" | "gossip-client" => Some(("gossip", crate::gossip::describe::describe)),
        "chord" | "dht" => Some(("chord", crate::chord::describe::describe)),
        "paxos" | "propose" | "kv" => Some(("bpcon", crate::bpcon::describe::describe)),
        _ => None,
    }
}

/// The page's file name for scenario `name`.
pub fn page_name(name: &str) -> String {
    format!("{}.html", file_safe(name))
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Read every machine's trace and cut it into frames.
pub fn collect_frames(machines: &[MachineRun]) -> Vec<Frame> {
    let traces: Vec<Traced> = machines
        .iter()
        .map(|m| Traced {
            machine: m.name.clone(),
            describer: protocol_of(&m.command).map(|p| p.1),
            chunks: m
                .trace_file
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|text| text.lines().filter_map(frames::parse_chunk).collect())
                .unwrap_or_default(),
        })
        .collect();
    frames::frames(&traces)
}

/// Write `<name>.html`, `<name>.frames.log` and `<name>.shiviz.log` into `dir`.
pub fn write_scenario(dir: &Path, run: &ScenarioRun) -> Result<(), String> {
    let frames = collect_frames(&run.machines);
    let names: Vec<String> = run.machines.iter().map(|m| m.name.clone()).collect();
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create {}: {}",
            dir.display(),
            crate::cli_words::io_error(&e)
        )
    })?;
    let stem = file_safe(run.name);
    let write = |file: String, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| {
            format!(
                "cannot write {}: {}",
                path.display(),
                crate::cli_words::io_error(&e)
            )
        })
    };
    write(format!("{stem}.frames.log"), frame_log(&names, &frames))?;
    write(
        format!("{stem}.shiviz.log"),
        shiviz::export(&names, &frames),
    )?;
    write(page_name(run.name), html::page(&page_data(run, &frames)))?;
    Ok(())
}

/// Every frame sent and received, decoded, in time order (`S` and `R` lines).
pub fn frame_log(names: &[String], frames: &[Frame]) -> String {
    let end = |e: &End| match e {
        End::Machine(m) => names[*m].clone(),
        End::Outside(addr) => format!("outside:{addr}"),
    };
    let mut lines: Vec<(u64, u8, String)> = Vec::new();
    for f in frames {
        let (from, to) = (end(&f.from), end(&f.to));
        if let Some(t) = f.sent {
            lines.push((
                t,
                0,
                format!("{t} S {from} -> {to}: {} ({})", f.label, f.fields),
            ));
        }
        if let Some(t) = f.received {
            lines.push((
                t,
                1,
                format!("{t} R {to} <- {from}: {} ({})", f.label, f.fields),
            ));
        }
    }
    lines.sort();
    let mut out = String::new();
    for (_, _, line) in lines {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Problems about machine `name` (the checker starts them with `name: `).
fn problems_of<'p>(name: &str, problems: &'p [String]) -> Vec<&'p String> {
    let prefix = format!("{name}: ");
    problems.iter().filter(|p| p.starts_with(&prefix)).collect()
}

/// What the page's script draws from.
pub fn page_data(run: &ScenarioRun, frames: &[Frame]) -> Value {
    let start = run
        .notes
        .iter()
        .map(|n| n.0 as u64)
        .chain(frames.iter().filter_map(|f| f.sent.or(f.received)))
        .min()
        .unwrap_or(0);
    let rel = |t: Option<u64>| t.map(|t| t.saturating_sub(start));
    let outside_lane = run.machines.len();
    let lane = |e: &End| match e {
        End::Machine(m) => *m,
        End::Outside(_) => outside_lane,
    };
    let protocol = run
        .machines
        .iter()
        .find_map(|m| protocol_of(&m.command))
        .map_or("", |p| p.0);
    let machines: Vec<Value> = run
        .machines
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "command": m.command,
                "state": m.final_state,
                "expected": run.expected.get(&m.name).cloned().unwrap_or(Value::Null),
                "problems": problems_of(&m.name, run.problems),
            })
        })
        .collect();
    let frame_rows: Vec<Value> = frames
        .iter()
        .map(|f| {
            let hex: String = f.bytes.iter().map(|b| format!("{b:02x}")).collect();
            json!([
                lane(&f.from),
                lane(&f.to),
                rel(f.sent),
                rel(f.received),
                f.label,
                f.fields,
                hex,
                f.matched(),
                f.from_addr,
                f.to_addr
            ])
        })
        .collect();
    let notes: Vec<Value> = run
        .notes
        .iter()
        .map(|(t, text)| json!([(*t as u64).saturating_sub(start), text]))
        .collect();
    let general: Vec<&String> = run
        .problems
        .iter()
        .filter(|p| {
            !run.machines
                .iter()
                .any(|m| p.starts_with(&format!("{}: ", m.name)))
        })
        .collect();
    json!({
        "name": run.name,
        "passed": run.passed,
        "seconds": run.seconds,
        "protocol": protocol,
        "problems": run.problems,
        "general_problems": general,
        "machines": machines,
        "frames": frame_rows,
        "matched": frames.iter().filter(|f| f.matched()).count(),
        "notes": notes,
    })
}

/// One scenario's line in the index.
pub struct IndexEntry {
    pub name: String,
    pub passed: bool,
    pub seconds: f64,
    pub problems: Vec<String>,
}

/// `index.html`: every scenario with its verdict and duration.
pub fn write_index(dir: &Path, entries: &[IndexEntry]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create {}: {}",
            dir.display(),
            crate::cli_words::io_error(&e)
        )
    })?;
    let path = dir.join("index.html");
    std::fs::write(&path, html::index(entries)).map_err(|e| {
        format!(
            "cannot write {}: {}",
            path.display(),
            crate::cli_words::io_error(&e)
        )
    })
}
