//! Addresses typed by a user: `HOST:PORT` (`[v6]:PORT` too), port 0 where a
//! listener may pick one, host names resolved, every error in words.

use crate::cli_words::{connect_port, listen_port};
use std::net::{SocketAddr, ToSocketAddrs};

/// What a port is for: a listener may ask for any free one (0), a
/// connection needs a real one (1–65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortUse {
    Listen,
    Connect,
}

/// `text` as its host (brackets of `[v6]` taken off) and port text, split
/// at the last ':'; `None` when there is no ':'.
pub fn split_host_port(text: &str) -> Option<(&str, &str)> {
    let (host, port) = text.rsplit_once(':')?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// A port number for `use_`, its error naming `what` ("--join port 0 is
/// out of range (1–65535)").
pub fn port(what: &str, text: &str, use_: PortUse) -> Result<u16, String> {
    match use_ {
        PortUse::Listen => listen_port(what, text),
        PortUse::Connect => connect_port(what, text),
    }
}

/// Every address `host` has (a name is looked up), with `port`.
pub fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// The first IPv4 address of `addrs`, else the first: the course's
/// networks are IPv4.
pub fn prefer_ipv4(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

/// `host` and `port` given apart (`--serverhost`, `--serverport`) as one
/// address, IPv4 preferred.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs = lookup(host, port).map_err(|e| format!("cannot resolve '{host}': {e}"))?;
    prefer_ipv4(&addrs).ok_or_else(|| format!("'{host}' has no address"))
}

/// The `HOST:PORT` value of option `what` (`--listen`, `--api`, `--join`)
/// as one address, the first the host has; errors name the option and say
/// what is wrong: "--join port 99999 is out of range (1–65535)", "--listen
/// ':1' has no host", "--api 'x:1': cannot resolve x: ...".
pub fn option_address(what: &str, text: &str, use_: PortUse) -> Result<SocketAddr, String> {
    let Some((host, port_text)) = split_host_port(text) else {
        return Err(format!("{what} '{text}' is not HOST:PORT"));
    };
    let port = port(&format!("{what} port"), port_text, use_)?;
    if host.is_empty() {
        return Err(format!("{what} '{text}' has no host"));
    }
    lookup(host, port)
        .map_err(|e| format!("{what} '{text}': cannot resolve {host}: {e}"))?
        .first()
        .copied()
        .ok_or_else(|| format!("{what} '{text}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split_at_the_last_colon() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", "80")));
        assert_eq!(split_host_port("[::1]:7"), Some(("::1", "7")));
        assert_eq!(split_host_port(":7"), Some(("", "7")));
        assert_eq!(split_host_port("localhost"), None);
    }

    #[test]
    fn listening_may_ask_for_port_0_connecting_may_not() {
        assert_eq!(port("port", "0", PortUse::Listen), Ok(0));
        assert_eq!(
            port("port", "0", PortUse::Connect).unwrap_err(),
            "port 0 is out of range (1–65535)"
        );
        assert_eq!(
            port("--listen port", "99999", PortUse::Listen).unwrap_err(),
            "--listen port 99999 is out of range (0–65535)"
        );
    }

    #[test]
    fn option_addresses_are_checked_in_words() {
        let listen = |t| option_address("--listen", t, PortUse::Listen);
        assert_eq!(listen("127.0.0.1:0"), Ok("127.0.0.1:0".parse().unwrap()));
        assert_eq!(listen("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(
            listen("127.0.0.1").unwrap_err(),
            "--listen '127.0.0.1' is not HOST:PORT"
        );
        assert_eq!(listen(":1").unwrap_err(), "--listen ':1' has no host");
        assert_eq!(
            option_address("--join", "127.0.0.1:0", PortUse::Connect).unwrap_err(),
            "--join port 0 is out of range (1–65535)"
        );
        let unknown = listen("no-such-host.invalid:1").unwrap_err();
        assert!(
            unknown.starts_with(
                "--listen 'no-such-host.invalid:1': cannot resolve no-such-host.invalid: "
            ),
            "{unknown}"
        );
    }

    #[test]
    fn separate_host_and_port_prefer_ipv4() {
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        let v4: SocketAddr = "10.0.0.1:5".parse().unwrap();
        assert_eq!(prefer_ipv4(&[v6, v4]), Some(v4));
        assert_eq!(prefer_ipv4(&[v6]), Some(v6));
        assert_eq!(prefer_ipv4(&[]), None);
        assert_eq!(
            resolve("127.0.0.1", 80),
            Ok("127.0.0.1:80".parse().unwrap())
        );
        let unknown = resolve("no-such-host.invalid", 1).unwrap_err();
        assert!(
            unknown.starts_with("cannot resolve 'no-such-host.invalid': "),
            "{unknown}"
        );
    }
}
