//! The Chord fuzzer's invariants: answers matched to GETs and checked,
//! every GET to a node that never crashed answered, every key not lost
//! answering its last value.

use super::*;

impl Run {
    /// Match answers to the GETs sent, and check each value.
    pub(super) fn collect_answers(&mut self) -> Check {
        let now = self.ring.world.now();
        for c in 0..self.clients.len() {
            if self.clients[c].gets.is_empty() {
                continue;
            }
            let ext = self.clients[c].ext;
            for answer in self.ring.client_answers(ext) {
                let (key, value) = match answer {
                    ApiMsg::Success { key, value } => (key, Some(value)),
                    ApiMsg::Failure { key } => (key, None),
                    other => {
                        return broken("a GET is answered SUCCESS or FAILURE", format!("{other:?}"))
                    }
                };
                let gets = &mut self.clients[c].gets;
                let Some(pos) = gets.iter().position(|g| key_of(g.key) == key) else {
                    return broken(
                        "every answer is for a GET the client sent",
                        format!("client {c} got an answer for a key it did not ask"),
                    );
                };
                let get = gets.remove(pos);
                if let Some(value) = value {
                    self.check_value(get.key, get.at, now, &value, "a GET")?;
                }
            }
        }
        Ok(())
    }

    /// The values a GET of `k` sent at `asked` and answered by `answered`
    /// may return: the last PUT that had time to complete before it was
    /// sent, and any PUT sent since (any PUT at all once the key was lost).
    pub(super) fn check_value(
        &self,
        k: usize,
        asked: Duration,
        answered: Duration,
        value: &[u8],
        what: &str,
    ) -> Check {
        let puts = &self.puts[k];
        let ok = if self.lost.contains(&k) {
            puts.iter().any(|p| p.value == value)
        } else {
            let floor = asked.saturating_sub(REPUT_GAP);
            let settled = puts.iter().rposition(|p| p.at <= floor);
            puts.iter().enumerate().any(|(i, p)| {
                p.value == value && p.at <= answered && settled.is_none_or(|s| i >= s)
            })
        };
        if ok {
            return Ok(());
        }
        let history: Vec<String> = puts
            .iter()
            .map(|p| {
                format!(
                    "{} at {:.3}s via n{}",
                    String::from_utf8_lossy(&p.value),
                    p.at.as_secs_f64(),
                    p.entry
                )
            })
            .collect();
        broken(
            "a GET never returns a wrong value",
            format!(
                "{what} of k{k} sent at {:.3}s answered {:?}; PUTs of k{k}: [{}]",
                asked.as_secs_f64(),
                String::from_utf8_lossy(value),
                history.join(", ")
            ),
        )
    }

    /// What each live node holds for key `k`: "n3:k3-v7@stamp".
    pub(super) fn stores_holding(&mut self, k: usize) -> Vec<String> {
        let now = self.ring.now();
        self.ring
            .live()
            .iter()
            .filter_map(|i| {
                let item = self.ring.node(*i).store().get(&key_of(k), now)?;
                let value = String::from_utf8_lossy(&item.value);
                Some(format!("n{i}:{value}@{}", item.stamp))
            })
            .collect()
    }

    pub(super) fn check_unanswered(&mut self) -> Check {
        for (c, client) in self.clients.iter().enumerate() {
            if let Some(get) = client.gets.first() {
                if !self.ever_crashed.contains(&get.entry) {
                    return broken(
                        "every GET sent to a node that never crashed is answered",
                        format!(
                            "client {c} on n{}: GET of k{} sent at {:.3}s, no answer",
                            get.entry,
                            get.key,
                            get.at.as_secs_f64()
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Quiescent: every key answers its last value unless it was lost.
    pub(super) fn check_every_key(&mut self) -> Check {
        let live = self.ring.live();
        for k in 0..self.puts.len() {
            let Some(last) = self.puts[k].last() else {
                continue;
            };
            let put_at = format!("{:.3}s via n{}", last.at.as_secs_f64(), last.entry);
            let last = String::from_utf8_lossy(&last.value).into_owned();
            let via = *live.choose(&mut self.rng).expect("a live node");
            let asked = self.ring.world.now();
            let got = self.ring.get(via, key_of(k));
            match got {
                Some(value) => {
                    let answered = self.ring.world.now();
                    let checked = self.check_value(k, asked, answered, &value, "the final GET");
                    if let Err((invariant, detail)) = checked {
                        let stores = self.stores_holding(k);
                        return Err((invariant, format!("{detail}; stores now: {stores:?}")));
                    }
                    if !self.lost.contains(&k) && value != last.as_bytes() {
                        return broken(
                            "a GET never returns a wrong value",
                            format!(
                                "final GET of k{k} via n{via} answered {:?}, last PUT {last:?}",
                                String::from_utf8_lossy(&value)
                            ),
                        );
                    }
                }
                None if self.lost.contains(&k) => {}
                None => {
                    let holding = self.stores_holding(k);
                    return broken(
                        "no key lost unless all of its holders died",
                        format!(
                            "final GET of k{k} via n{via}: not found; last PUT {last:?} at {put_at}, and no crash took all its holders; stores now: {holding:?}"
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}
