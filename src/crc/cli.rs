//! `peerloop server` and `peerloop client`: flags spelled as in the course's
//! scenario files.

use super::client::{Client, ClientConfig, HELP};
use super::recorder::Recorder;
use super::server::{Server, ServerConfig};
use crate::cli_words::{connect_port, listen_port, number_in_range};
use crate::reactor::Reactor;
use getopts::{Matches, Options};
use log::info;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

/// Parse `args` with `opts`; print help or the error. `Err(code)` means exit now.
pub fn parse(opts: &Options, args: &[String], usage: &str) -> Result<Matches, u8> {
    let matches = match opts.parse(args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}\n\n{}", opts.usage(usage));
            return Err(2);
        }
    };
    if matches.opt_present("h") {
        print!("{}", opts.usage(usage));
        return Err(0);
    }
    if !matches.free.is_empty() {
        eprintln!(
            "unexpected argument '{}'\n\n{}",
            matches.free[0],
            opts.usage(usage)
        );
        return Err(2);
    }
    Ok(matches)
}

/// A required option's text, with an error naming the flag.
pub fn required(m: &Matches, name: &str) -> Result<String, String> {
    m.opt_str(name)
        .ok_or_else(|| format!("--{name} is required"))
}

/// `--id`: a 32-bit ID, where 0 is reserved. The errors say the range in
/// words (`--id 4294967296 is out of range (1–4294967295)`).
fn machine_id(m: &Matches, reserved: &str) -> Result<u32, String> {
    let text = required(m, "id")?;
    if text.trim() == "0" {
        return Err(format!("--id 0 is reserved ({reserved})"));
    }
    number_in_range("--id", &text, 1u32, u32::MAX)
}

/// Resolve host:port, preferring IPv4 (the course's networks are IPv4).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("'{host}' has no address"))
}

/// Why a command stops: its arguments are wrong (exit 2) or running failed (exit 1).
enum Failure {
    Usage(String),
    Runtime(String),
}

fn exit_code(result: Result<(), Failure>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(Failure::Usage(message)) => {
            eprintln!("peerloop: {message}");
            2
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("peerloop: {message}");
            1
        }
    }
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
    let opts = server_options();
    let usage = "usage: peerloop server --id N --servername NAME --port PORT [--info TEXT] \
                 [--connect_to_host HOST --connect_to_port PORT] [--bind HOST] [--log-file FILE]\n\n\
                 A CRC relay chat server. It listens on every interface (0.0.0.0) unless --bind says otherwise.\n\
                 Standard input takes `state` (print the state as JSON) and `quit`.";
    let m = match parse(&opts, args, usage) {
        Ok(m) => m,
        Err(code) => return code,
    };
    exit_code(server_launch_from(&m).and_then(|launch| run_server(&m, launch)))
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
    server_launch_from(&m).map_err(|f| match f {
        Failure::Usage(message) | Failure::Runtime(message) => message,
    })
}

fn server_launch_from(m: &Matches) -> Result<ServerLaunch, Failure> {
    let id = machine_id(m, "it means \"the other end of this link\"").map_err(Failure::Usage)?;
    let name = required(m, "servername").map_err(Failure::Usage)?;
    let port = listen_port("--port", &required(m, "port").map_err(Failure::Usage)?)
        .map_err(Failure::Usage)?;
    let info = m.opt_str("info").unwrap_or_default();
    if name.len() > 255 {
        return Err(Failure::Usage(
            "--servername is longer than 255 bytes".into(),
        ));
    }
    let connect_to = match (m.opt_str("connect_to_host"), m.opt_str("connect_to_port")) {
        (Some(host), Some(port)) => {
            let port = connect_port("--connect_to_port", &port).map_err(Failure::Usage)?;
            Some(resolve(&host, port).map_err(Failure::Runtime)?)
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
    crate::logging::init(m.opt_str("log-file").as_deref()).map_err(Failure::Runtime)?;
    info!("Launching server {}...", config.name);
    let listener = TcpListener::bind((bind.as_str(), port)).map_err(|e| {
        Failure::Runtime(format!(
            "cannot listen on {bind}:{port}: {}",
            crate::cli_words::io_error(&e)
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let mut reactor =
        Reactor::new(vec![listener], true).map_err(|e| Failure::Runtime(e.to_string()))?;
    reactor.describe_frames_with(super::describe::describe);
    info!("Listening for new connections on port {}", local.port());
    println!("listening on {local}");
    let result = if record_only {
        reactor.run(&mut Recorder::new(config))
    } else {
        reactor.run(&mut Server::new(config))
    };
    result.map_err(|e| Failure::Runtime(format!("event loop failed: {e}")))
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
    let opts = client_options();
    let usage = format!(
        "usage: peerloop client --id N --serverhost HOST --serverport PORT --username NAME [--info TEXT] [--log-file FILE]\n\n\
         A CRC chat client. Type {HELP}.\nDriven by a program, it also takes `state` (JSON) and `quit`; \
         at the end of standard input it quits politely.\n\
         Exit status: 0, or 1 if the server cannot be reached, refuses this client's ID\n\
         or (at a terminal) closes the connection."
    );
    let m = match parse(&opts, args, &usage) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let exit_on_quit = std::io::stdin().is_terminal();
    exit_code(client_config_from(&m, exit_on_quit).and_then(|config| run_client(&m, config)))
}

/// `peerloop client ARGS` (without the command word) as the client's
/// configuration: the real `main` and the simulator both build the client
/// from this. `exit_on_quit` is whether a person types at a terminal.
pub fn client_config(args: &[String], exit_on_quit: bool) -> Result<ClientConfig, String> {
    let m = client_options().parse(args).map_err(|e| e.to_string())?;
    client_config_from(&m, exit_on_quit).map_err(|f| match f {
        Failure::Usage(message) | Failure::Runtime(message) => message,
    })
}

fn client_config_from(m: &Matches, exit_on_quit: bool) -> Result<ClientConfig, Failure> {
    let id = machine_id(m, "it means \"the other end of this link\"").map_err(Failure::Usage)?;
    let host = required(m, "serverhost").map_err(Failure::Usage)?;
    let port = connect_port(
        "--serverport",
        &required(m, "serverport").map_err(Failure::Usage)?,
    )
    .map_err(Failure::Usage)?;
    let server = resolve(&host, port).map_err(Failure::Runtime)?;
    let username = required(m, "username").map_err(Failure::Usage)?;
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
    crate::logging::init(m.opt_str("log-file").as_deref()).map_err(Failure::Runtime)?;
    let mut reactor =
        Reactor::new(Vec::new(), true).map_err(|e| Failure::Runtime(e.to_string()))?;
    reactor.describe_frames_with(super::describe::describe);
    let mut client = Client::new(config);
    reactor
        .run(&mut client)
        .map_err(|e| Failure::Runtime(format!("event loop failed: {e}")))?;
    match client.failure() {
        Some(error) => Err(Failure::Runtime(error.to_string())),
        None => Ok(()),
    }
}
