//! Running a node's protocol callbacks and carrying out the actions they
//! ask for (sends, closes, dials, timers, prints, stop), in the order the
//! protocol wrote them, as the reactor does.

use super::*;

impl World {
    /// Run one protocol callback on `node` and carry out what it asked for.
    pub(super) fn call(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut dyn Hosted, Instant, &mut Actions),
    ) {
        let Some(mut proto) = self.nodes[node].proto.take() else {
            return;
        };
        let mut out = std::mem::take(&mut self.actions);
        let now = self.instant();
        f(proto.as_mut(), now, &mut out);
        // Each callback is a poll round of its own here.
        proto.on_round_end(now, &mut out);
        self.nodes[node].proto = Some(proto);
        self.apply(node, &mut out);
        out.clear();
        self.actions = out;
    }

    /// Carry out a callback's actions in the order the protocol wrote them,
    /// as the reactor does.
    pub(super) fn apply(&mut self, node: NodeId, out: &mut Actions) {
        let incarnation = self.nodes[node].incarnation;
        for step in out.steps() {
            let action = match step {
                Step::Send(conn, bytes) => {
                    let Some(state) = self.nodes[node].conns.get(&conn) else {
                        continue;
                    };
                    if state.connecting.is_some() {
                        continue;
                    }
                    let (link, side) = (state.link, state.side);
                    self.send_on_link(link, side, bytes.to_vec());
                    continue;
                }
                Step::Other(action) => action.clone(),
            };
            match action {
                Action::Close(conn) | Action::CloseAfterFlush(conn) => {
                    if let Some(state) = self.nodes[node].conns.remove(&conn) {
                        self.close_side(state.link, state.side, false);
                    }
                }
                Action::Connect { addr, tag } => {
                    let link = self.new_link(End::Node { node, conn: 0 });
                    let conn = self.alloc_conn(node, link, 0, Some(tag));
                    if let Some(l) = self.links.get_mut(&link) {
                        l.ends[0] = Some(End::Node { node, conn });
                    }
                    let from_addr = self.ephemeral_addr(node);
                    self.note(node, || format!("connect to {addr} (tag {tag})"));
                    self.open_link(link, Some(node), addr, from_addr);
                }
                Action::Timer {
                    after,
                    timer: token,
                } => {
                    self.schedule_at(
                        self.now.saturating_add(after),
                        Event::Timer {
                            node,
                            incarnation,
                            token,
                        },
                    );
                }
                Action::Print(line) => {
                    self.note(node, || format!("print {line}"));
                    self.nodes[node].printed.push(line);
                }
                Action::Stop => {
                    self.note(node, || "stop".into());
                    self.take_down(node, false);
                    return;
                }
            }
        }
    }

    pub(super) fn alloc_conn(
        &mut self,
        node: NodeId,
        link: LinkId,
        side: usize,
        connecting: Option<u64>,
    ) -> ConnId {
        let n = &mut self.nodes[node];
        let conn = n.next_conn;
        n.next_conn += 1;
        n.conns.insert(
            conn,
            ConnState {
                link,
                side,
                read_buf: Vec::new(),
                connecting,
            },
        );
        conn
    }

    /// The address a node's outgoing connection comes from, as its peer sees it.
    pub(super) fn ephemeral_addr(&mut self, node: NodeId) -> SocketAddr {
        let ip = self.nodes[node]
            .listen
            .first()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
        self.next_port = if self.next_port >= 60_999 {
            32_768
        } else {
            self.next_port + 1
        };
        SocketAddr::new(ip, self.next_port)
    }
}
