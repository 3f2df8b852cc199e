//! The course's CRC scenario commands: LAUNCHSERVER, LAUNCHCLIENT and
//! CLIENTCOMMAND. Hosts become 127.0.0.1 and ports are remapped to free ones.

use super::context::{Context, Extension};
use super::parse::{flag, Scenario};
use crate::cli_words::{connect_port, number_in_range};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a launched machine gets to say it is up before the runner moves on.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct LaunchedServer {
    name: String,
    id: u32,
    port: u16,
    joins: Option<u16>,
    refused: bool,
    alive: bool,
}

#[derive(Debug, Clone)]
struct LaunchedClient {
    id: u32,
    server_port: u16,
    refused: bool,
    alive: bool,
}

pub struct CrcExtension {
    record_only: bool,
    servers: Vec<LaunchedServer>,
    clients: Vec<(String, LaunchedClient)>,
}

impl CrcExtension {
    pub fn new(scenario_type: &str) -> Self {
        CrcExtension {
            record_only: scenario_type == "network_connectivity",
            servers: Vec::new(),
            clients: Vec::new(),
        }
    }

    fn id_taken(&self, id: u32) -> bool {
        self.servers
            .iter()
            .any(|s| s.alive && !s.refused && s.id == id)
            || self
                .clients
                .iter()
                .any(|(_, c)| c.alive && !c.refused && c.id == id)
    }

    fn launch_server(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let need =
            |name: &str| flag(args, name).ok_or_else(|| format!("LAUNCHSERVER needs {name}"));
        let id = number_in_range("LAUNCHSERVER --id", need("--id")?, 0u32, u32::MAX)?;
        let name = need("--servername")?.to_string();
        let port = connect_port("LAUNCHSERVER --port", need("--port")?)?;
        let mut argv: Vec<String> = vec!["server".into(), "--id".into(), id.to_string()];
        argv.extend([
            "--servername".into(),
            name.clone(),
            "--bind".into(),
            "127.0.0.1".into(),
        ]);
        argv.extend(["--port".into(), ctx.port(port).to_string()]);
        argv.extend([
            "--info".into(),
            flag(args, "--info").unwrap_or("").to_string(),
        ]);
        let joins = match flag(args, "--connect_to_port") {
            Some(p) => {
                let p = connect_port("LAUNCHSERVER --connect_to_port", p)?;
                argv.extend(["--connect_to_host".into(), "127.0.0.1".into()]);
                argv.extend(["--connect_to_port".into(), ctx.port(p).to_string()]);
                Some(p)
            }
            None => None,
        };
        if self.record_only {
            argv.push("--record-only".into());
        }
        let refused = !self.record_only && self.id_taken(id);
        ctx.launch(&name, argv)?;
        self.servers.push(LaunchedServer {
            name: name.clone(),
            id,
            port,
            joins,
            refused,
            alive: true,
        });
        ctx.wait_line(&name, SETTLE, |l| l.starts_with("listening on"));
        if joins.is_some() {
            ctx.wait_line(&name, SETTLE, |l| {
                l.starts_with("joined") || l.starts_with("could not join") || l.starts_with("left")
            });
        }
        Ok(())
    }

    fn launch_client(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let need =
            |name: &str| flag(args, name).ok_or_else(|| format!("LAUNCHCLIENT needs {name}"));
        let id = number_in_range("LAUNCHCLIENT --id", need("--id")?, 0u32, u32::MAX)?;
        let username = need("--username")?.to_string();
        let port = connect_port("LAUNCHCLIENT --serverport", need("--serverport")?)?;
        let argv: Vec<String> = vec![
            "client".into(),
            "--id".into(),
            id.to_string(),
            "--serverhost".into(),
            "127.0.0.1".into(),
            "--serverport".into(),
            ctx.port(port).to_string(),
            "--username".into(),
            username.clone(),
            "--info".into(),
            flag(args, "--info").unwrap_or("").to_string(),
        ];
        let refused = self.id_taken(id);
        ctx.launch(&username, argv)?;
        self.clients.push((
            username.clone(),
            LaunchedClient {
                id,
                server_port: port,
                refused,
                alive: true,
            },
        ));
        // Up means: a status came back (welcome or refusal), or it could not connect.
        ctx.wait_line(&username, SETTLE, |l| l.starts_with("* ["));
        Ok(())
    }

    fn client_command(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let user = flag(args, "--username")
            .ok_or("CLIENTCOMMAND needs --username")?
            .to_string();
        let at = args
            .iter()
            .position(|a| a == "--command")
            .ok_or("CLIENTCOMMAND needs --command")?;
        let rest = &args[at + 1..];
        match rest.first().map(String::as_str) {
            Some("MESSAGE") => {
                let dest = rest.get(1).ok_or("MESSAGE needs a destination ID")?;
                let text = rest[2..].join(" ");
                ctx.send_line(&user, &format!("/msg {dest} {text}"))
            }
            Some("QUIT") => {
                if let Some((_, client)) = self.clients.iter_mut().find(|(n, _)| *n == user) {
                    client.alive = false;
                }
                ctx.send_line(&user, &format!("/quit {}", rest[1..].join(" ")))
            }
            Some(other) => Err(format!(
                "unknown client command '{other}' (MESSAGE or QUIT)"
            )),
            None => Err("CLIENTCOMMAND --command needs MESSAGE or QUIT".into()),
        }
    }

    /// `RAWSEND --name N --port P --hex BYTES`: send bytes that may not be CRC
    /// at all from a connection the runner holds; `RAWCLOSE --name N` closes it.
    fn raw_send(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let name = flag(args, "--name")
            .ok_or("RAWSEND needs --name")?
            .to_string();
        let hex = flag(args, "--hex").ok_or("RAWSEND needs --hex")?;
        let hex = hex.trim_matches('"');
        if hex.len() % 2 != 0 {
            return Err(format!("--hex '{hex}' has an odd number of digits"));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("--hex '{hex}' is not hexadecimal"))?;
        let port = match flag(args, "--port") {
            Some(port) => Some(connect_port("RAWSEND --port", port)?),
            None => None,
        };
        ctx.raw_send(&name, port, &bytes)
    }

    /// The adjacency the scenario's commands build, to judge expectations by.
    fn built_adjacency(&self, server: &LaunchedServer) -> (BTreeSet<u32>, BTreeSet<u32>) {
        let live = |s: &&LaunchedServer| s.alive && !s.refused;
        let mut servers = BTreeSet::new();
        for other in self.servers.iter().filter(live) {
            let linked = other.joins == Some(server.port) || server.joins == Some(other.port);
            if linked && other.name != server.name {
                servers.insert(other.id);
            }
        }
        let users = self
            .clients
            .iter()
            .filter(|(_, c)| c.alive && !c.refused && c.server_port == server.port)
            .map(|(_, c)| c.id)
            .collect();
        (servers, users)
    }
}

fn id_set(value: &Value) -> Option<BTreeSet<u32>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_u64().map(|n| n as u32))
        .collect()
}

impl Extension for CrcExtension {
    fn handles(&self, word: &str) -> bool {
        matches!(
            word,
            "LAUNCHSERVER" | "LAUNCHCLIENT" | "CLIENTCOMMAND" | "RAWSEND" | "RAWCLOSE"
        )
    }

    fn run(&mut self, word: &str, args: &[String], ctx: &mut Context) -> Result<(), String> {
        match word {
            "LAUNCHSERVER" => self.launch_server(args, ctx),
            "LAUNCHCLIENT" => self.launch_client(args, ctx),
            "RAWSEND" => self.raw_send(args, ctx),
            "RAWCLOSE" => {
                let name = flag(args, "--name").ok_or("RAWCLOSE needs --name")?;
                ctx.raw_close(name);
                Ok(())
            }
            _ => self.client_command(args, ctx),
        }
    }

    fn on_kill(&mut self, name: &str) {
        for server in self.servers.iter_mut().filter(|s| s.name == name) {
            server.alive = false;
        }
        for (_, client) in self.clients.iter_mut().filter(|(n, _)| n == name) {
            client.alive = false;
        }
    }

    fn on_restart(&mut self, name: &str) {
        for server in self.servers.iter_mut().filter(|s| s.name == name) {
            server.alive = true;
        }
        for (_, client) in self.clients.iter_mut().filter(|(n, _)| n == name) {
            client.alive = true;
        }
    }

    fn strict_check(&self, _ctx: &Context, scenario: &Scenario) -> Vec<String> {
        let mut notes = Vec::new();
        for server in self.servers.iter().filter(|s| s.alive && !s.refused) {
            let Some(expected) = scenario.final_state.get(&server.name) else {
                continue;
            };
            let (servers, users) = self.built_adjacency(server);
            for (field, built) in [
                ("adjacent_server_ids", servers),
                ("adjacent_user_ids", users),
            ] {
                let Some(want) = expected.get(field).and_then(id_set) else {
                    continue;
                };
                if want != built {
                    notes.push(format!(
                        "{}: wrong expectation? {field} expects {:?}, but the scenario's commands link {} to {:?}",
                        server.name, want, server.name, built
                    ));
                }
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn words(line: &str) -> Vec<String> {
        super::super::parse::split_args(line)
    }

    #[test]
    fn a_wrong_client_command_is_named_in_words() {
        let mut ctx = Context::new(PathBuf::from("peerloop"), 1.0, false, std::env::temp_dir());
        let mut crc = CrcExtension::new("CRC_functionality");
        let err = crc
            .run(
                "CLIENTCOMMAND",
                &words("--username frodo --command SHOUT hi"),
                &mut ctx,
            )
            .unwrap_err();
        assert_eq!(err, "unknown client command 'SHOUT' (MESSAGE or QUIT)");
        let err = crc
            .run(
                "CLIENTCOMMAND",
                &words("--username frodo --command"),
                &mut ctx,
            )
            .unwrap_err();
        assert_eq!(err, "CLIENTCOMMAND --command needs MESSAGE or QUIT");
    }

    #[test]
    fn launch_numbers_out_of_range_are_said_in_words() {
        let mut ctx = Context::new(PathBuf::from("peerloop"), 1.0, false, std::env::temp_dir());
        let mut crc = CrcExtension::new("CRC_functionality");
        let err = crc
            .run(
                "LAUNCHSERVER",
                &words("--id 1 --servername a --port 99999"),
                &mut ctx,
            )
            .unwrap_err();
        assert_eq!(err, "LAUNCHSERVER --port 99999 is out of range (1–65535)");
        let err = crc
            .run(
                "LAUNCHCLIENT",
                &words("--id 4294967296 --username u --serverport 5"),
                &mut ctx,
            )
            .unwrap_err();
        assert_eq!(
            err,
            "LAUNCHCLIENT --id 4294967296 is out of range (0–4294967295)"
        );
        assert!(ctx.machines.is_empty(), "nothing was launched");
    }
}
