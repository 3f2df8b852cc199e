//! The server's answer to `state`: what the course's scenarios, the
//! simulator's checks and the benches read. The type is the contract; the
//! fields are declared in alphabetical order because that is the order the
//! JSON always had (it was built as a `serde_json` map, which sorts its
//! keys), and `the_state_json_is_the_checked_contract` pins it byte for byte.

use super::Server;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerState {
    /// Adjacent servers' IDs, sorted.
    pub adjacent_server_ids: Vec<u32>,
    /// Adjacent clients' IDs, sorted.
    pub adjacent_user_ids: Vec<u32>,
    /// Every other machine this server knows of, sorted.
    pub hosts_db: Vec<u32>,
    pub id: u32,
    pub name: String,
    /// Each known machine's name by ID (the ID as text, so in text order).
    pub names: BTreeMap<String, String>,
    /// The texts of the statuses addressed to this server, in arrival order.
    pub status_updates_log: Vec<String>,
}

impl Server {
    /// The state a scenario checks.
    pub fn state(&self) -> ServerState {
        let mut hosts_db: Vec<u32> = self.hosts.keys().copied().collect();
        hosts_db.sort_unstable();
        let mut adjacent_server_ids: Vec<u32> = self.adjacent_servers.iter().map(|a| a.0).collect();
        let mut adjacent_user_ids: Vec<u32> = self.adjacent_clients.iter().map(|a| a.0).collect();
        adjacent_server_ids.sort_unstable();
        adjacent_user_ids.sort_unstable();
        let names = self
            .hosts
            .iter()
            .map(|(id, h)| {
                (
                    id.to_string(),
                    String::from_utf8_lossy(&h.name).into_owned(),
                )
            })
            .collect();
        ServerState {
            adjacent_server_ids,
            adjacent_user_ids,
            hosts_db,
            id: self.config.id,
            name: self.config.name.clone(),
            names,
            status_updates_log: self.status_updates_log.clone(),
        }
    }

    /// The `state` answer as the one line the server prints.
    pub fn state_line(&self) -> String {
        serde_json::to_string(&self.state()).expect("a state of strings and numbers serializes")
    }
}
