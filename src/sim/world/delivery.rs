//! How the world carries events: connection set-up, in-order delivery,
//! closes and resets, cuts. Running a protocol's callbacks and carrying
//! out their actions is `actions.rs`.

use super::*;

impl World {
    pub(super) fn start(&mut self, node: NodeId) {
        let mut make = std::mem::replace(&mut self.nodes[node].make, Box::new(|_| unreachable!()));
        let proto = make(&mut self.rng);
        self.nodes[node].make = make;
        self.nodes[node].proto = Some(proto);
        self.nodes[node].incarnation += 1;
        self.call(node, |p, now, out| p.on_start(now, out));
    }

    /// Stop the node: with `reset`, peers see resets (a crash); without, orderly closes.
    pub(super) fn take_down(&mut self, node: NodeId, reset: bool) {
        let n = &mut self.nodes[node];
        n.proto = None;
        n.paused = false;
        let held = std::mem::take(&mut n.held);
        n.incarnation += 1;
        let conns = std::mem::take(&mut n.conns);
        for (_, state) in conns {
            self.close_side(state.link, state.side, reset);
        }
        // Connection attempts that reached it while paused are refused now
        // (dropping them left their openers waiting for ever).
        for event in held {
            if let Event::Syn { link, .. } = event {
                let delay = self.delay_on(link);
                self.schedule_on_link(
                    link,
                    0,
                    delay,
                    Event::Refused {
                        link,
                        error: "connection refused".into(),
                    },
                );
            }
        }
    }

    pub(super) fn new_link(&mut self, opener: End) -> LinkId {
        let id = self.next_link;
        self.next_link += 1;
        self.links.insert(
            id,
            Link {
                ends: [Some(opener), None],
                open: [true, false],
                last_arrival: [Duration::ZERO; 2],
            },
        );
        self.stats.connections += 1;
        id
    }

    /// Send the SYN of `link` (opened by `from`, a node or None for test code) to `addr`.
    pub(super) fn open_link(
        &mut self,
        link: LinkId,
        from: Option<NodeId>,
        addr: SocketAddr,
        from_addr: SocketAddr,
    ) {
        let target = self.listeners.get(&addr).copied();
        let Some((to, listener)) = target else {
            let delay = self.sample(from, None) * 2;
            self.schedule_at(
                self.now + delay,
                Event::Refused {
                    link,
                    error: "connection refused".into(),
                },
            );
            return;
        };
        if from.is_some_and(|f| self.cut.contains(&pair(f, to))) {
            self.schedule_at(
                self.now + CONNECT_TIMEOUT,
                Event::Refused {
                    link,
                    error: "connection timed out".into(),
                },
            );
            return;
        }
        let delay = self.sample(from, Some(to));
        self.schedule_at(
            self.now + delay,
            Event::Syn {
                link,
                to,
                listener,
                from_addr,
            },
        );
    }

    pub(super) fn deliver(&mut self, event: Event) {
        match event {
            Event::Syn {
                link,
                to,
                listener,
                from_addr,
            } => self.on_syn(link, to, listener, from_addr),
            Event::SynAck { link } => self.on_syn_ack(link),
            Event::Refused { link, error } => self.on_refused(link, error),
            Event::Data {
                link,
                to_side,
                bytes,
            } => self.on_data(link, to_side, bytes),
            Event::Fin {
                link,
                to_side,
                reset,
            } => self.on_fin(link, to_side, reset),
            Event::Timer {
                node,
                incarnation,
                token,
            } => {
                if self.nodes[node].incarnation == incarnation && self.nodes[node].proto.is_some() {
                    self.note(node, || format!("timer {token}"));
                    self.call(node, |p, now, out| p.on_timer(now, token, out));
                }
            }
        }
    }

    pub(super) fn on_syn(
        &mut self,
        link: LinkId,
        to: NodeId,
        listener: ListenerId,
        from_addr: SocketAddr,
    ) {
        let opener_alive = self.links.get(&link).is_some_and(|l| l.open[0]);
        if !opener_alive {
            self.links.remove(&link);
            return;
        }
        if self.nodes[to].proto.is_none() {
            let delay = self.delay_on(link);
            self.schedule_on_link(
                link,
                0,
                delay,
                Event::Refused {
                    link,
                    error: "connection refused".into(),
                },
            );
            return;
        }
        let conn = self.alloc_conn(to, link, 1, None);
        if let Some(l) = self.links.get_mut(&link) {
            l.ends[1] = Some(End::Node { node: to, conn });
            l.open[1] = true;
        }
        self.note(to, || format!("accept conn {conn} from {from_addr}"));
        // The SYN-ACK first: bytes the accepting side writes at once must
        // not reach the opener before its connection is up.
        let delay = self.delay_on(link);
        self.schedule_on_link(link, 0, delay, Event::SynAck { link });
        self.call(to, |p, now, out| {
            p.on_accept(now, listener, conn, from_addr, out)
        });
    }

    pub(super) fn on_syn_ack(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        if !l.open[0] {
            return;
        }
        match l.ends[0] {
            Some(End::Node { node, conn }) => {
                let tag = self.nodes[node]
                    .conns
                    .get_mut(&conn)
                    .and_then(|c| c.connecting.take());
                if let Some(tag) = tag {
                    self.note(node, || format!("connected conn {conn} (tag {tag})"));
                    self.call(node, |p, now, out| p.on_connected(now, tag, conn, out));
                }
            }
            Some(End::Ext(ext)) if self.exts[ext].state == ExtState::Connecting => {
                self.exts[ext].state = ExtState::Open;
                let pending = std::mem::take(&mut self.exts[ext].pending);
                if !pending.is_empty() {
                    self.send_on_link(link, 0, pending);
                }
                if std::mem::take(&mut self.exts[ext].shutdown_pending) {
                    self.ext_shutdown_write(ext);
                }
            }
            Some(End::Ext(_)) | None => {}
        }
    }

    pub(super) fn on_refused(&mut self, link: LinkId, error: String) {
        let Some(l) = self.links.remove(&link) else {
            return;
        };
        if !l.open[0] {
            return;
        }
        match l.ends[0] {
            Some(End::Node { node, conn }) => {
                let tag = self.nodes[node]
                    .conns
                    .remove(&conn)
                    .and_then(|c| c.connecting);
                if let Some(tag) = tag {
                    self.note(node, || format!("connect failed (tag {tag}): {error}"));
                    self.call(node, |p, now, out| {
                        p.on_connect_failed(now, tag, &error, out)
                    });
                }
            }
            Some(End::Ext(ext)) if self.exts[ext].state == ExtState::Connecting => {
                self.exts[ext].state = ExtState::Failed(error);
            }
            Some(End::Ext(_)) | None => {}
        }
    }

    pub(super) fn on_data(&mut self, link: LinkId, side: usize, bytes: Vec<u8>) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        if !l.open[side] {
            return;
        }
        self.stats.bytes_delivered += bytes.len() as u64;
        match l.ends[side] {
            Some(End::Ext(ext)) => self.exts[ext].received.extend_from_slice(&bytes),
            Some(End::Node { node, conn }) => {
                let Some(state) = self.nodes[node].conns.get_mut(&conn) else {
                    return;
                };
                state.read_buf.extend_from_slice(&bytes);
                let input = std::mem::take(&mut state.read_buf);
                self.note(node, || format!("conn {conn} +{} bytes", bytes.len()));
                let mut result = Ok(0);
                self.call(node, |p, now, out| {
                    result = p.on_data(now, conn, &input, out)
                });
                match result {
                    Ok(used) => {
                        if let Some(state) = self.nodes[node].conns.get_mut(&conn) {
                            let mut rest = input;
                            rest.drain(..used.min(rest.len()));
                            // Bytes that arrived during the callback can't exist: delivery is one event.
                            state.read_buf = rest;
                        }
                    }
                    Err(why) => {
                        self.note(node, || format!("conn {conn} protocol error: {why}"));
                        if let Some(state) = self.nodes[node].conns.remove(&conn) {
                            self.close_side(state.link, state.side, true);
                            let reason = CloseReason::ProtocolError(why);
                            self.call(node, |p, now, out| p.on_closed(now, conn, &reason, out));
                        }
                    }
                }
            }
            None => {}
        }
    }

    /// The other side of `link` closed (or half-closed) toward `side`, or reset it.
    pub(super) fn on_fin(&mut self, link: LinkId, side: usize, reset: bool) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.open[side] {
            return;
        }
        let end = l.ends[side];
        match end {
            Some(End::Ext(ext)) => {
                l.open[side] = false;
                let why = if reset {
                    "reset by the node"
                } else {
                    "closed by the node"
                };
                self.exts[ext].state = ExtState::Closed(why.into());
                self.forget_link_if_done(link);
            }
            Some(End::Node { node, conn }) if self.nodes[node].conns.contains_key(&conn) => {
                if reset {
                    l.open[side] = false;
                    let state = self.nodes[node].conns.remove(&conn);
                    self.forget_link_if_done(link);
                    if let Some(tag) = state.and_then(|c| c.connecting) {
                        // Reset before the opener saw it come up: to the
                        // opener that is a failed connect, not a close of a
                        // connection it never had (it waited for ever).
                        let error = "connection reset by peer".to_string();
                        self.note(node, || format!("connect failed (tag {tag}): {error}"));
                        self.call(node, |p, now, out| {
                            p.on_connect_failed(now, tag, &error, out)
                        });
                        return;
                    }
                    let reason = CloseReason::Io("connection reset by peer".into());
                    self.note(node, || format!("conn {conn} closed: {reason}"));
                    self.call(node, |p, now, out| p.on_closed(now, conn, &reason, out));
                    return;
                }
                // An orderly end of input: as the reactor does, ask the
                // protocol whether it still has answers to write.
                self.note(node, || format!("conn {conn} peer finished sending"));
                let mut verdict = InputEnded::CloseWhenFlushed;
                self.call(node, |p, now, out| {
                    verdict = p.on_peer_finished_sending(now, conn, out)
                });
                if verdict == InputEnded::CloseWhenFlushed {
                    if let Some(state) = self.nodes[node].conns.remove(&conn) {
                        self.close_side(state.link, state.side, false);
                        let reason = CloseReason::PeerClosed;
                        self.note(node, || format!("conn {conn} closed: {reason}"));
                        self.call(node, |p, now, out| p.on_closed(now, conn, &reason, out));
                    }
                }
            }
            _ => {}
        }
    }

    fn forget_link_if_done(&mut self, link: LinkId) {
        if self
            .links
            .get(&link)
            .is_some_and(|l| !l.open[0] && !l.open[1])
        {
            self.links.remove(&link);
        }
    }

    /// Bytes from `side` of a link to the other side.
    pub(super) fn send_on_link(&mut self, link: LinkId, from_side: usize, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let to_side = 1 - from_side;
        let delay = self.delay_on(link);
        self.schedule_on_link(
            link,
            to_side,
            delay,
            Event::Data {
                link,
                to_side,
                bytes,
            },
        );
    }

    /// `side` closes its end: the other side sees an orderly close (after
    /// everything sent before it) or a reset.
    pub(super) fn close_side(&mut self, link: LinkId, side: usize, reset: bool) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.open[side] = false;
        let to_side = 1 - side;
        if l.open[to_side] {
            let delay = self.delay_on(link);
            self.schedule_on_link(
                link,
                to_side,
                delay,
                Event::Fin {
                    link,
                    to_side,
                    reset,
                },
            );
        } else {
            self.links.remove(&link);
        }
    }

    pub(super) fn reset_link(&mut self, link: LinkId) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let ends = l.ends;
        for (side, end) in ends.iter().enumerate() {
            if let Some(End::Node { node, conn }) = *end {
                if self.nodes[node].conns.contains_key(&conn) {
                    self.schedule_at(
                        self.now,
                        Event::Fin {
                            link,
                            to_side: side,
                            reset: true,
                        },
                    );
                }
            } else if let Some(End::Ext(_)) = end {
                self.schedule_at(
                    self.now,
                    Event::Fin {
                        link,
                        to_side: side,
                        reset: true,
                    },
                );
            }
        }
    }

    /// Schedule an arrival toward `side` of `link`, after everything already
    /// scheduled toward that side (a connection delivers in order), unless the
    /// link crosses a cut: then it waits for the heal.
    pub(super) fn schedule_on_link(
        &mut self,
        link: LinkId,
        side: usize,
        delay: Duration,
        event: Event,
    ) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let nodes = [l.ends[0].and_then(End::node), l.ends[1].and_then(End::node)];
        if let [Some(a), Some(b)] = nodes {
            if self.cut.contains(&pair(a, b)) && !matches!(event, Event::Refused { .. }) {
                self.held_at_cut.push(event);
                return;
            }
        }
        let l = self.links.get_mut(&link).expect("checked above");
        let at = (self.now + delay).max(l.last_arrival[side] + Duration::from_nanos(1));
        l.last_arrival[side] = at;
        self.schedule_at(at, event);
    }

    pub(super) fn schedule_at(&mut self, at: Duration, event: Event) {
        let slot = match self.free_bodies.pop() {
            Some(slot) => {
                self.bodies[slot] = Some(event);
                slot
            }
            None => {
                self.bodies.push(Some(event));
                self.bodies.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    pub(super) fn delay_on(&mut self, link: LinkId) -> Duration {
        let nodes = self.links.get(&link).map_or([None, None], |l| {
            [l.ends[0].and_then(End::node), l.ends[1].and_then(End::node)]
        });
        self.sample(nodes[0], nodes[1])
    }

    pub(super) fn sample(&mut self, a: Option<NodeId>, b: Option<NodeId>) -> Duration {
        let latency = match (a, b) {
            (Some(a), Some(b)) => self.link_latency.get(&pair(a, b)).unwrap_or(&self.latency),
            _ => &self.latency,
        };
        latency.clone().sample(&mut self.rng)
    }

    pub(super) fn note(&mut self, node: NodeId, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            let micros = self.now.as_micros();
            trace.push(format!(
                "{micros:>12} {}: {}",
                self.nodes[node].name,
                line()
            ));
        }
    }

    pub(super) fn trace_line(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            let micros = self.now.as_micros();
            trace.push(format!("{micros:>12} {}", line()));
        }
    }
}
