//! Scenario files: the course's TestCases JSON, and its argument splitting.

use serde_json::Value;
use std::path::Path;

/// The scenario types the runner knows (the course's two CRC phases, then ours).
pub const KNOWN_TYPES: [&str; 5] = [
    "network_connectivity",
    "CRC_functionality",
    "gossip",
    "chord",
    "BPCon",
];

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub kind: String,
    pub commands: Vec<String>,
    /// Machine name -> {field: expected value}.
    pub final_state: serde_json::Map<String, Value>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let object = json
            .as_object()
            .ok_or_else(|| format!("{}: not a JSON object", path.display()))?;
        let commands = object
            .get("commands")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{}: no \"commands\" list", path.display()))?
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{}: every command must be a string", path.display()))?;
        let kind = match object.get("type") {
            Some(Value::String(kind)) if KNOWN_TYPES.contains(&kind.as_str()) => kind.clone(),
            Some(Value::String(kind)) => {
                return Err(format!(
                    "{}: unknown \"type\" \"{kind}\" (known types: {})",
                    path.display(),
                    KNOWN_TYPES.join(", ")
                ))
            }
            _ => {
                return Err(format!(
                    "{}: no \"type\" (known types: {})",
                    path.display(),
                    KNOWN_TYPES.join(", ")
                ))
            }
        };
        let final_state = match object.get("final_state") {
            Some(Value::Object(map)) => map.clone(),
            None => serde_json::Map::new(),
            Some(_) => {
                return Err(format!(
                    "{}: \"final_state\" must be an object",
                    path.display()
                ))
            }
        };
        Ok(Scenario {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kind,
            commands,
            final_state,
        })
    }
}

/// Split on white space, keeping double-quoted runs whole. Like the course's
/// tool, the quote characters stay in the value (`"Test info"` keeps its
/// quotes): the reference bytes show them.
pub fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
                started = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// A value without the surrounding double quotes, if it has them.
pub fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The value after `--name` in `args`.
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str) -> Result<Scenario, String> {
        let dir = std::env::temp_dir().join(format!("peerloop-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let result = Scenario::load(&file);
        let _ = std::fs::remove_file(&file);
        result
    }

    #[test]
    fn an_unknown_or_missing_type_is_refused_naming_the_known_ones() {
        let err = load("typo.cfg", r#"{"type": "chrod", "commands": []}"#).unwrap_err();
        assert!(
            err.ends_with(
                "typo.cfg: unknown \"type\" \"chrod\" (known types: network_connectivity, CRC_functionality, gossip, chord, BPCon)"
            ),
            "{err}"
        );
        let err = load("none.cfg", r#"{"commands": []}"#).unwrap_err();
        assert!(
            err.contains("none.cfg: no \"type\" (known types: "),
            "{err}"
        );
        for kind in KNOWN_TYPES {
            let text = format!(r#"{{"type": "{kind}", "commands": []}}"#);
            assert_eq!(load("ok.cfg", &text).unwrap().kind, kind);
        }
    }

    #[test]
    fn quoted_runs_stay_whole_with_their_quotes() {
        assert_eq!(
            split_args(r#"LAUNCHSERVER --id 1 --info "Home of the Hobbits"  --port 5"#),
            vec![
                "LAUNCHSERVER",
                "--id",
                "1",
                "--info",
                "\"Home of the Hobbits\"",
                "--port",
                "5"
            ]
        );
        assert_eq!(unquote("\"a b\""), "a b");
        assert_eq!(unquote("ab"), "ab");
    }
}
