//! CRC frames in words, for the debug log and the run report
//! (`CHAT 101→104 "Bye Bilbo"`), from [`codec::decode`] alone.

use super::codec::{self, Message};
use crate::reactor::Described;

fn text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The frame at the start of `buf`, described.
pub fn describe(buf: &[u8]) -> Described {
    let (message, len) = match codec::decode(buf) {
        Ok(Some(found)) => found,
        Ok(None) => return Described::Incomplete,
        Err(e) => return Described::Bad(e.to_string()),
    };
    let (label, fields) = match message {
        Message::ServerRegistration {
            source,
            last_hop,
            name,
            info,
        } => (
            format!("SERVER_REG {source} {}", String::from_utf8_lossy(name)),
            format!(
                "source={source} last_hop={last_hop} name={} info={}",
                text(name),
                text(info)
            ),
        ),
        Message::ClientRegistration {
            source,
            last_hop,
            name,
            info,
        } => (
            format!("CLIENT_REG {source} {}", String::from_utf8_lossy(name)),
            format!(
                "source={source} last_hop={last_hop} name={} info={}",
                text(name),
                text(info)
            ),
        ),
        Message::Status {
            source,
            destination,
            code,
            text: t,
        } => (
            format!("STATUS {source}→{destination} code {code}"),
            format!(
                "source={source} destination={destination} code={code} text={}",
                text(t)
            ),
        ),
        Message::ServerQuit {
            source,
            replacement,
            text: t,
        } => (
            format!("SERVER_QUIT {source}"),
            format!("source={source} replacement={replacement} text={}", text(t)),
        ),
        Message::ClientChat {
            source,
            destination,
            text: t,
        } => (
            format!("CHAT {source}→{destination} {}", text(t)),
            format!("source={source} destination={destination} text={}", text(t)),
        ),
        Message::ClientQuit { source, text: t } => (
            format!("CLIENT_QUIT {source}"),
            format!("source={source} text={}", text(t)),
        ),
    };
    Described::Frame { len, label, fields }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_reads_as_in_the_issue_and_a_partial_one_waits() {
        let bytes = codec::to_bytes(&Message::ClientChat {
            source: 101,
            destination: 104,
            text: b"Bye Bilbo",
        });
        match describe(&bytes) {
            Described::Frame { len, label, .. } => {
                assert_eq!(len, bytes.len());
                assert_eq!(label, "CHAT 101→104 \"Bye Bilbo\"");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(describe(&bytes[..5]), Described::Incomplete);
        assert!(matches!(describe(&[0x77]), Described::Bad(_)));
    }
}
