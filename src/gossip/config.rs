//! The course's INI file (`hostkey`, then `[gossip]` with `cache_size`,
//! `degree`, `bootstrapper`, `p2p_address`, `api_address`). Every error
//! names the file, the line and the key.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub line: usize,
}

/// An INI file: section name ("" before the first header) → key → entry.
#[derive(Debug, Default)]
pub struct Ini {
    pub path: String,
    pub sections: HashMap<String, (usize, HashMap<String, Entry>)>,
}

impl Ini {
    pub fn parse(path: &str, text: &str) -> Result<Ini, String> {
        let mut ini = Ini {
            path: path.to_string(),
            ..Ini::default()
        };
        let mut section = String::new();
        ini.sections.insert(section.clone(), (0, HashMap::new()));
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(format!(
                        "{path}:{line_no}: section header '{line}' has no closing ']'"
                    ));
                };
                section = name.trim().to_string();
                ini.sections
                    .entry(section.clone())
                    .or_insert((line_no, HashMap::new()));
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "{path}:{line_no}: '{line}' is neither 'key = value' nor a [section]"
                ));
            };
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(format!("{path}:{line_no}: a value without a key"));
            }
            let entry = Entry {
                value: value.trim().to_string(),
                line: line_no,
            };
            let keys = &mut ini.sections.get_mut(&section).expect("inserted above").1;
            if let Some(old) = keys.insert(key.clone(), entry) {
                return Err(format!(
                    "{path}:{line_no}: key '{key}' already set on line {}",
                    old.line
                ));
            }
        }
        Ok(ini)
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.sections.get(section)?.1.get(key)
    }
}

/// The `[gossip]` settings as found in a file, each with where it was.
#[derive(Debug, Default, Clone)]
pub struct FileSettings {
    pub hostkey: Option<String>,
    pub cache_size: Option<usize>,
    pub degree: Option<usize>,
    pub bootstrapper: Option<SocketAddrV4>,
    pub p2p_address: Option<SocketAddrV4>,
    pub api_address: Option<SocketAddr>,
}

const KNOWN_KEYS: [&str; 5] = [
    "cache_size",
    "degree",
    "bootstrapper",
    "p2p_address",
    "api_address",
];

/// Read and check the `[gossip]` section of the INI file at `path`.
pub fn load(path: &str) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read config file {path}: {}",
            crate::cli_words::io_error(&e)
        )
    })?;
    from_ini(&Ini::parse(path, &text)?)
}

pub fn from_ini(ini: &Ini) -> Result<FileSettings, String> {
    let path = &ini.path;
    let Some((_, keys)) = ini.sections.get("gossip") else {
        return Err(format!("{path}: no [gossip] section"));
    };
    for (key, entry) in keys {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            log::warn!(
                "{path}:{}: unknown key '{key}' in [gossip] ignored",
                entry.line
            );
        }
    }
    let at = |key: &str, entry: &Entry, why: String| {
        format!(
            "{path}:{}: key '{key}' = '{}': {why}",
            entry.line, entry.value
        )
    };
    let number = |key: &str, max: usize| -> Result<Option<usize>, String> {
        let Some(entry) = ini.get("gossip", key) else {
            return Ok(None);
        };
        parse_count(&entry.value, max)
            .map(Some)
            .map_err(|why| at(key, entry, why))
    };
    let v4 = |key: &str| -> Result<Option<SocketAddrV4>, String> {
        let Some(entry) = ini.get("gossip", key) else {
            return Ok(None);
        };
        parse_v4(&entry.value)
            .map(Some)
            .map_err(|why| at(key, entry, why))
    };
    let api_address = match ini.get("gossip", "api_address") {
        None => None,
        Some(entry) => Some(parse_addr(&entry.value).map_err(|why| at("api_address", entry, why))?),
    };
    Ok(FileSettings {
        hostkey: ini.get("", "hostkey").map(|e| e.value.clone()),
        cache_size: number("cache_size", u16::MAX as usize)?,
        degree: number("degree", 1000)?,
        bootstrapper: v4("bootstrapper")?,
        p2p_address: v4("p2p_address")?,
        api_address,
    })
}

/// A whole number from 1 to `max`.
pub fn parse_count(text: &str, max: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be from 1 to {max}")),
        Err(_) => Err("not a whole number".into()),
    }
}

/// `host:port` (`[v6]:port` too), split and resolved by the shared
/// [`crate::cli::address`]; the port is checked in words: listening may
/// use 0 (any free port), connecting may not.
fn resolve(text: &str, listen: bool) -> Result<Vec<SocketAddr>, String> {
    use crate::cli::address::{lookup, port, split_host_port, PortUse};
    let Some((host, port_text)) = split_host_port(text.trim()) else {
        return Err("not a host:port address (no ':port')".into());
    };
    if host.is_empty() {
        return Err("not a host:port address (no host)".into());
    }
    let use_ = if listen {
        PortUse::Listen
    } else {
        PortUse::Connect
    };
    let port = port("port", port_text, use_)?;
    let addrs = lookup(host, port).map_err(|_| format!("host '{host}' not found"))?;
    if addrs.is_empty() {
        return Err(format!("host '{host}' resolves to no address"));
    }
    Ok(addrs)
}

/// `host:port` to listen on (port 0: any free one), resolved.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    Ok(resolve(text, true)?[0])
}

/// `host:port` of a node to connect to (port 1–65535), resolved.
pub fn parse_connect_addr(text: &str) -> Result<SocketAddr, String> {
    Ok(resolve(text, false)?[0])
}

/// `host:port` resolving to IPv4: the P2P messages carry only IPv4.
pub fn parse_v4(text: &str) -> Result<SocketAddrV4, String> {
    for addr in resolve(text, true)? {
        if let SocketAddr::V4(v4) = addr {
            return Ok(v4);
        }
    }
    Err("has no IPv4 address (P2P messages carry IPv4 only)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURSE: &str = "hostkey = /path/to/hostkey.pem

[gossip]
cache_size = 50
degree = 30
bootstrapper = 127.0.0.1:6001
p2p_address = 127.0.0.1:6001
api_address = 127.0.0.1:7001

[dht]
whatever = 1
";

    #[test]
    fn the_course_file_is_read() {
        let s = from_ini(&Ini::parse("g.ini", COURSE).unwrap()).unwrap();
        assert_eq!(s.hostkey.as_deref(), Some("/path/to/hostkey.pem"));
        assert_eq!(s.cache_size, Some(50));
        assert_eq!(s.degree, Some(30));
        assert_eq!(s.bootstrapper, Some("127.0.0.1:6001".parse().unwrap()));
        assert_eq!(s.p2p_address, s.bootstrapper);
        assert_eq!(s.api_address, Some("127.0.0.1:7001".parse().unwrap()));
    }

    #[test]
    fn addresses_are_checked_in_words() {
        assert_eq!(
            parse_v4("127.0.0.1:99999").unwrap_err(),
            "port 99999 is out of range (0–65535)"
        );
        assert_eq!(
            parse_connect_addr("127.0.0.1:0").unwrap_err(),
            "port 0 is out of range (1–65535)"
        );
        assert_eq!(
            parse_addr("127.0.0.1:http").unwrap_err(),
            "port 'http' is not a number"
        );
        assert_eq!(
            parse_addr("127.0.0.1").unwrap_err(),
            "not a host:port address (no ':port')"
        );
        assert_eq!(
            parse_v4("no-such-host.invalid:80").unwrap_err(),
            "host 'no-such-host.invalid' not found"
        );
        assert_eq!(parse_addr("[::1]:7").unwrap(), "[::1]:7".parse().unwrap());
        assert_eq!(
            parse_v4("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let bad = COURSE.replace("degree = 30", "degree = lots");
        let err = from_ini(&Ini::parse("g.ini", &bad).unwrap()).unwrap_err();
        assert_eq!(err, "g.ini:5: key 'degree' = 'lots': not a whole number");
        let bad = COURSE.replace("p2p_address = 127.0.0.1:6001", "p2p_address = nowhere");
        let err = from_ini(&Ini::parse("g.ini", &bad).unwrap()).unwrap_err();
        assert!(
            err.starts_with("g.ini:7: key 'p2p_address' = 'nowhere'"),
            "{err}"
        );
        let err = Ini::parse("g.ini", "[gossip\n").unwrap_err();
        assert!(err.starts_with("g.ini:1:"), "{err}");
        let err = Ini::parse("g.ini", "[gossip]\njunk\n").unwrap_err();
        assert!(err.starts_with("g.ini:2:"), "{err}");
        let err = from_ini(&Ini::parse("g.ini", "hostkey = x\n").unwrap()).unwrap_err();
        assert_eq!(err, "g.ini: no [gossip] section");
        let bad = COURSE.replace(
            "api_address = 127.0.0.1:7001",
            "api_address = 127.0.0.1:99999",
        );
        let err = from_ini(&Ini::parse("g.ini", &bad).unwrap()).unwrap_err();
        assert_eq!(
            err,
            "g.ini:8: key 'api_address' = '127.0.0.1:99999': port 99999 is out of range (0–65535)"
        );
        let bad = COURSE.replace("cache_size = 50", "cache_size = 0");
        assert!(from_ini(&Ini::parse("g.ini", &bad).unwrap()).is_err());
    }
}
