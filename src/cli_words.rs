//! The user's words: a number out of range says its range, not Rust's
//! "number too large to fit in target type"; a socket error says
//! "address already in use", not "Address already in use (os error 98)".

use std::fmt::Display;
use std::str::FromStr;

/// `text` as a whole number in `min..=max`; `what` names it in the error
/// (`port`, `ID`, `--degree`): "port 99999 is out of range (1–65535)",
/// "port 'x1' is not a number".
pub fn number_in_range<T>(what: &str, text: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy + TryFrom<i128>,
{
    let trimmed = text.trim();
    let wide: i128 = trimmed
        .parse()
        .map_err(|_| format!("{what} '{text}' is not a number"))?;
    let value = T::try_from(wide).ok().filter(|v| *v >= min && *v <= max);
    value.ok_or_else(|| format!("{what} {trimmed} is out of range ({min}–{max})"))
}

/// A TCP port to listen on: 0 (pick a free one) to 65535.
pub fn listen_port(what: &str, text: &str) -> Result<u16, String> {
    number_in_range(what, text, 0u16, u16::MAX)
}

/// A TCP port to connect to: 1 to 65535.
pub fn connect_port(what: &str, text: &str) -> Result<u16, String> {
    number_in_range(what, text, 1u16, u16::MAX)
}

/// An error text without Rust's " (os error N)" tail, starting lower case
/// as the reactor's own words do ("connection refused").
pub fn plain_error(error: &str) -> String {
    let plain = match error.rfind(" (os error ") {
        Some(at) if error.ends_with(')') => &error[..at],
        _ => error,
    };
    let mut chars = plain.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A socket or file error in the user's words.
pub fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionReset => "the peer reset the connection".into(),
        ErrorKind::BrokenPipe => "the peer is gone".into(),
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionAborted => "connection aborted".into(),
        ErrorKind::TimedOut => "timed out".into(),
        _ => plain_error(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_are_said_in_words() {
        assert_eq!(
            plain_error("Connection refused (os error 111)"),
            "connection refused"
        );
        assert_eq!(plain_error("timed out"), "timed out");
        let in_use = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(io_error(&in_use), "address already in use");
    }

    #[test]
    fn out_of_range_and_not_a_number_are_said_in_words() {
        assert_eq!(
            connect_port("port", "99999").unwrap_err(),
            "port 99999 is out of range (1–65535)"
        );
        assert_eq!(
            number_in_range("ID", "4294967296", 1u32, u32::MAX).unwrap_err(),
            "ID 4294967296 is out of range (1–4294967295)"
        );
        assert_eq!(
            number_in_range("ID", "0", 1u32, u32::MAX).unwrap_err(),
            "ID 0 is out of range (1–4294967295)"
        );
        assert_eq!(
            listen_port("--port", "x1").unwrap_err(),
            "--port 'x1' is not a number"
        );
        assert_eq!(
            number_in_range("ID", "99999999999999999999999999999999999999999", 1u32, 9)
                .unwrap_err(),
            "ID '99999999999999999999999999999999999999999' is not a number"
        );
        assert_eq!(listen_port("--port", "0"), Ok(0));
        assert_eq!(connect_port("port", " 80 "), Ok(80));
    }
}
