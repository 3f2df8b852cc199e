//! `peerloop server` and `peerloop client`: flags spelled as in the course's
//! scenario files.

use super::client::{Client, ClientConfig, HELP};
use super::recorder::Recorder;
use super::server::{Server, ServerConfig};
use crate::cli::address::resolve;
use crate::cli::node::{run_node, Listen, Made};
use crate::cli::{required, runtime_error, start_logging, usage_error, Command, Failure};
use crate::cli_words::{connect_port, listen_port, number_in_range};
use getopts::{Matches, Options};
use log::info;
use std::io::IsTerminal;
use std::net::SocketAddr;

/// Why `--id 0` is refused.
const RESERVED_ID: &str = "it means \"the other end of this link\"";

/// `--id`: a 32-bit ID, where 0 is reserved. The errors say the range in
/// words (`--id 4294967296 is out of range (1–4294967295)`).
fn machine_id(m: &Matches, reserved: &str) -> Result<u32, String> {
    let text = required(m, "id")?;
    if text.trim() == "0" {
        return Err(format!("--id 0 is reserved ({reserved})"));
    }
    number_in_range("--id", &text, 1u32, u32::MAX)
}

/// A CRC command: its errors start `peerloop: `, and a parse mistake or a
/// stray word is said bare, with the usage (as the course's scripts saw it).
fn crc_command(opts: Options, usage: String) -> Command {
    Command::bare("peerloop", opts, usage)
}

fn server_options() -> Options {
    let mut opts = Options::new();
    opts.optopt("", "id", "this server's 32-bit ID (not 0)", "N");
    opts.optopt("", "servername", "this server's name", "NAME");
    opts.optopt("", "port", "port to listen on (0 picks a free one)", "PORT");
    opts.optopt("", "info", "a line about this server", "TEXT");
    opts.optopt(
        "",
        "connect_to_host",
        "join the network through this server",
        "HOST",
    );
    opts.optopt("", "connect_to_port", "its port", "PORT");
    opts.optopt(
        "",
        "bind",
        "address to listen on (default 0.0.0.0: every interface)",
        "HOST",
    );
    opts.optopt(
        "",
        "log-file",
        "write this server's transcript here",
        "FILE",
    );
    opts.optflag(
        "",
        "record-only",
        "course phase 1: join and record what is read, answer nothing",
    );
    opts.optflag("h", "help", "print this help");
    opts
}

pub fn server_main(args: &[String]) -> u8 {
    let usage = "usage: peerloop server --id N --servername NAME --port PORT [--info TEXT] \
                 [--connect_to_host HOST --connect_to_port PORT] [--bind HOST] [--log-file FILE]\n\n\
                 A CRC relay chat server. It listens on every interface (0.0.0.0) unless --bind says otherwise.\n\
                 Standard input takes `state` (print the state as JSON) and `quit`.";
    crc_command(server_options(), usage.into()).run(args, |m| {
        run_server(m, server_launch_from(m)?)?;
        Ok(0)
    })
}

/// What `peerloop server ARGS` runs, from its arguments: the real `main` and
/// the simulator (`peerloop test --sim`) both build the server from this.
#[derive(Debug, Clone)]
pub struct ServerLaunch {
    pub config: ServerConfig,
    /// `--bind` (default every interface) and `--port`.
    pub bind: String,
    pub port: u16,
    /// `--record-only`: run a [`Recorder`], not a [`Server`].
    pub record_only: bool,
}

/// `peerloop server ARGS` (without the command word) as a [`ServerLaunch`];
/// errors in the words `peerloop server` would print.
pub fn server_launch(args: &[String]) -> Result<ServerLaunch, String> {
    let m = server_options().parse(args).map_err(|e| e.to_string())?;
    server_launch_from(&m).map_err(|f| f.message().to_string())
}

fn server_launch_from(m: &Matches) -> Result<ServerLaunch, Failure> {
    let id = usage_error(machine_id(m, RESERVED_ID))?;
    let name = usage_error(required(m, "servername"))?;
    let port = usage_error(required(m, "port").and_then(|p| listen_port("--port", &p)))?;
    let info = m.opt_str("info").unwrap_or_default();
    if name.len() > 255 {
        return Err(Failure::Usage(
            "--servername is longer than 255 bytes".into(),
        ));
    }
    let connect_to = match (m.opt_str("connect_to_host"), m.opt_str("connect_to_port")) {
        (Some(host), Some(port)) => {
            let port = usage_error(connect_port("--connect_to_port", &port))?;
            Some(runtime_error(resolve(&host, port))?)
        }
        (None, None) => None,
        _ => {
            return Err(Failure::Usage(
                "--connect_to_host and --connect_to_port go together".into(),
            ))
        }
    };
    Ok(ServerLaunch {
        config: ServerConfig {
            id,
            name,
            info,
            connect_to,
        },
        bind: m.opt_str("bind").unwrap_or_else(|| "0.0.0.0".into()),
        port,
        record_only: m.opt_present("record-only"),
    })
}

fn run_server(m: &Matches, launch: ServerLaunch) -> Result<(), Failure> {
    let ServerLaunch {
        config,
        bind,
        port,
        record_only,
    } = launch;
    start_logging(m)?;
    info!("Launching server {}...", config.name);
    let listen = [Listen {
        failure: format!("cannot listen on {bind}:{port}"),
        host: bind,
        port,
    }];
    let banner = |local: SocketAddr| {
        info!("Listening for new connections on port {}", local.port());
        vec![format!("listening on {local}")]
    };
    let describe = super::describe::describe;
    if record_only {
        run_node(&listen, describe, |bound| {
            Ok(Made {
                protocol: Recorder::new(config),
                banner: banner(bound[0]),
            })
        })?;
    } else {
        run_node(&listen, describe, |bound| {
            Ok(Made {
                protocol: Server::new(config),
                banner: banner(bound[0]),
            })
        })?;
    }
    Ok(())
}

fn client_options() -> Options {
    let mut opts = Options::new();
    opts.optopt("", "id", "this client's 32-bit ID (not 0)", "N");
    opts.optopt("", "serverhost", "the server to attach to", "HOST");
    opts.optopt("", "serverport", "its port", "PORT");
    opts.optopt("", "username", "your name on the network", "NAME");
    opts.optopt("", "info", "a line about you", "TEXT");
    opts.optopt(
        "",
        "log-file",
        "write this client's transcript here",
        "FILE",
    );
    opts.optflag("h", "help", "print this help");
    opts
}

pub fn client_main(args: &[String]) -> u8 {
    let usage = format!(
        "usage: peerloop client --id N --serverhost HOST --serverport PORT --username NAME [--info TEXT] [--log-file FILE]\n\n\
         A CRC chat client. Type {HELP}.\nDriven by a program, it also takes `state` (JSON) and `quit`; \
         at the end of standard input it quits politely.\n\
         Exit status: 0, or 1 if the server cannot be reached, refuses this client's ID\n\
         or (at a terminal) closes the connection."
    );
    crc_command(client_options(), usage).run(args, |m| {
        let exit_on_quit = std::io::stdin().is_terminal();
        run_client(m, client_config_from(m, exit_on_quit)?)?;
        Ok(0)
    })
}

/// `peerloop client ARGS` (without the command word) as the client's
/// configuration: the real `main` and the simulator both build the client
/// from this. `exit_on_quit` is whether a person types at a terminal.
pub fn client_config(args: &[String], exit_on_quit: bool) -> Result<ClientConfig, String> {
    let m = client_options().parse(args).map_err(|e| e.to_string())?;
    client_config_from(&m, exit_on_quit).map_err(|f| f.message().to_string())
}

fn client_config_from(m: &Matches, exit_on_quit: bool) -> Result<ClientConfig, Failure> {
    let id = usage_error(machine_id(m, RESERVED_ID))?;
    let host = usage_error(required(m, "serverhost"))?;
    let port =
        usage_error(required(m, "serverport").and_then(|p| connect_port("--serverport", &p)))?;
    let server = runtime_error(resolve(&host, port))?;
    let username = usage_error(required(m, "username"))?;
    if username.len() > 255 {
        return Err(Failure::Usage("--username is longer than 255 bytes".into()));
    }
    let info = m.opt_str("info").unwrap_or_default();
    Ok(ClientConfig {
        id,
        username,
        info,
        server,
        exit_on_quit,
    })
}

fn run_client(m: &Matches, config: ClientConfig) -> Result<(), Failure> {
    start_logging(m)?;
    let client = run_node(&[], super::describe::describe, |_| {
        Ok(Made::quiet(Client::new(config)))
    })?;
    match client.failure() {
        Some(error) => Err(Failure::Runtime(error.to_string())),
        None => Ok(()),
    }
}
