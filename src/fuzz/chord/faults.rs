//! The Chord fuzzer's faults, within Chord's fault model (crashes of up
//! to K − 1 nodes at once, restarts, resets, short partitions, pauses),
//! and the keys a crash may legitimately lose.

use super::*;

impl Run {
    pub(super) fn fault(&mut self) -> Check {
        let mut kinds: Vec<&str> = FAULTS
            .iter()
            .copied()
            .filter(|f| self.faults.contains(*f))
            .collect();
        let now = self.ring.world.now();
        if self.last_crash.is_some_and(|t| now < t + CRASH_GAP) {
            kinds.retain(|k| *k != "crash");
        }
        if self.down.is_empty() {
            kinds.retain(|k| *k != "restart");
        }
        let Some(&kind) = kinds.choose(&mut self.rng) else {
            return Ok(());
        };
        let live = self.live_up();
        self.counts.faults += 1;
        let at = format!("{:.3}s", now.as_secs_f64());
        match kind {
            "crash" if live.len() > 2 => {
                let most = (REPLICAS - 1).min(live.len() - 2);
                let count = self.rng.gen_range(1..=most);
                let victims: BTreeSet<usize> = live
                    .choose_multiple(&mut self.rng, count)
                    .copied()
                    .collect();
                self.note_losses(&victims);
                for v in &victims {
                    self.ring.crash(*v);
                    self.down.insert(*v);
                    self.ever_crashed.insert(*v);
                }
                self.last_crash = Some(now);
                self.log.push(format!("{at} crash {victims:?}"));
            }
            "restart" => {
                let down: Vec<usize> = self.down.iter().copied().collect();
                let node = *down.choose(&mut self.rng).expect("a node down");
                let via = *live.choose(&mut self.rng).expect("a live node");
                self.ring.set_join(node, Some(via));
                self.ring.world.restart(node);
                self.down.remove(&node);
                self.log.push(format!("{at} restart n{node} via n{via}"));
            }
            "reset" if live.len() >= 2 => {
                let pair: Vec<usize> = live.choose_multiple(&mut self.rng, 2).copied().collect();
                self.ring.world.reset_between(pair[0], pair[1]);
                self.log
                    .push(format!("{at} reset n{}-n{}", pair[0], pair[1]));
            }
            "partition" if live.len() >= 2 => {
                let mut side = live.clone();
                side.shuffle(&mut self.rng);
                let cut = self.rng.gen_range(1..side.len());
                let (a, b) = side.split_at(cut);
                self.ring.world.partition(a, b);
                let span = self.rng.gen_range(50..LONGEST_FAULT_MS);
                self.log
                    .push(format!("{at} partition {a:?}|{b:?} for {span} ms"));
                self.run_for(Duration::from_millis(span))?;
                self.ring.world.heal();
            }
            "pause" => {
                let node = *live.choose(&mut self.rng).expect("a live node");
                self.ring.world.pause(node);
                let span = self.rng.gen_range(50..LONGEST_FAULT_MS);
                self.log.push(format!("{at} pause n{node} for {span} ms"));
                self.run_for(Duration::from_millis(span))?;
                self.ring.world.resume(node);
            }
            _ => self.counts.faults -= 1,
        }
        Ok(())
    }

    /// Before `victims` crash: a key whose last value is held only by
    /// victims (or not yet by anyone, with its PUT on a victim) is lost, and
    /// that is within the fault model.
    pub(super) fn note_losses(&mut self, victims: &BTreeSet<usize>) {
        let now = self.ring.now();
        let live = self.ring.live();
        for k in 0..self.puts.len() {
            let Some(last) = self.puts[k].last() else {
                continue;
            };
            let (value, entry) = (last.value.clone(), last.entry);
            let key = key_of(k);
            let holders: Vec<usize> = live
                .iter()
                .copied()
                .filter(|i| {
                    self.ring
                        .node(*i)
                        .store()
                        .get(&key, now)
                        .is_some_and(|item| item.value == value)
                })
                .collect();
            let gone = if holders.is_empty() {
                victims.contains(&entry)
            } else {
                holders.iter().all(|h| victims.contains(h))
            };
            if gone && self.lost.insert(k) {
                self.log.push(format!("k{k} lost (holders {holders:?})"));
                self.counts.lost += 1;
            }
        }
    }
}
