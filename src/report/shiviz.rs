//! The run as a ShiViz log: every frame sent or received is one event of
//! its machine, with a vector clock computed from the matched send and
//! receive pairs. The file begins as ShiViz's upload format asks: the
//! parsing regular expression, then an (empty) execution delimiter line.

use super::frames::{End, Frame};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// ShiViz's documented default parser expression: an event line, then
/// `host {"host": n, ...}`.
pub const REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

/// A host name ShiViz's `\S*` takes whole.
fn host(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// The ShiViz file for `frames` between machines named `names`.
pub fn export(names: &[String], frames: &[Frame]) -> String {
    // (time, receive after send at the same time, frame, is receive)
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if let (Some(t), End::Machine(_)) = (f.sent, &f.from) {
            events.push((t, 0, i));
        }
        if let (Some(t), End::Machine(_)) = (f.received, &f.to) {
            // A clock step backwards must not put a receive before its send.
            events.push((t.max(f.sent.unwrap_or(0)), 1, i));
        }
    }
    events.sort_unstable();
    let mut clocks: HashMap<usize, BTreeMap<String, u64>> = HashMap::new();
    let mut at_send: HashMap<usize, BTreeMap<String, u64>> = HashMap::new();
    let mut out = format!("{REGEX}\n\n");
    for (_, receive, i) in events {
        let f = &frames[i];
        let (me, other) = if receive == 1 {
            (&f.to, &f.from)
        } else {
            (&f.from, &f.to)
        };
        let End::Machine(m) = *me else { continue };
        let name = host(&names[m]);
        let clock = clocks.entry(m).or_default();
        if receive == 1 {
            if let Some(sent) = at_send.get(&i) {
                for (h, &n) in sent {
                    let mine = clock.entry(h.clone()).or_insert(0);
                    *mine = (*mine).max(n);
                }
            }
        }
        *clock.entry(name.clone()).or_insert(0) += 1;
        if receive == 0 {
            at_send.insert(i, clock.clone());
        }
        let peer = match other {
            End::Machine(o) => names[*o].clone(),
            End::Outside(addr) => format!("outside {addr}"),
        };
        let verb = if receive == 1 {
            "received from"
        } else {
            "sent to"
        };
        let event = format!("{verb} {peer}: {} ({})", f.label, f.fields).replace('\n', " ");
        let json = serde_json::to_string(clock).unwrap_or_default();
        let _ = writeln!(out, "{event}\n{name} {json}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(from: usize, to: usize, sent: u64, received: u64) -> Frame {
        Frame {
            from: End::Machine(from),
            to: End::Machine(to),
            from_addr: String::new(),
            to_addr: String::new(),
            sent: Some(sent),
            received: Some(received),
            offset: 0,
            label: format!("F{sent}"),
            fields: String::new(),
            bytes: Vec::new(),
        }
    }

    #[test]
    fn a_receive_takes_in_the_senders_clock() {
        let names = vec!["a".to_string(), "b b".to_string(), "c".to_string()];
        // a → b, then b → c: c's receive knows of a's send.
        let text = export(&names, &[frame(0, 1, 10, 20), frame(1, 2, 30, 40)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], REGEX);
        assert_eq!(lines[1], "");
        assert_eq!(lines[3], r#"a {"a":1}"#);
        assert_eq!(
            lines[5], r#"b_b {"a":1,"b_b":1}"#,
            "host names have no spaces"
        );
        assert_eq!(lines[7], r#"b_b {"a":1,"b_b":2}"#);
        assert_eq!(lines[9], r#"c {"a":1,"b_b":2,"c":1}"#);
        assert_eq!(lines.len(), 10);
    }

    #[test]
    fn a_receive_stamped_before_its_send_still_follows_it() {
        let names = vec!["a".to_string(), "b".to_string()];
        let text = export(&names, &[frame(0, 1, 50, 40)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("sent to b"), "{text}");
        assert_eq!(lines[5], r#"b {"a":1,"b":1}"#);
    }
}
