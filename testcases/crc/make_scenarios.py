#!/usr/bin/env python3
"""Writes the CRC scenarios of this folder.

Each scenario is described as a list of events; the expected final state is
derived here from the topology alone (who is linked to whom, who quit, who
was killed), independently of peerloop's code, so a scenario can catch a
server that routes or forgets wrongly. Run it from anywhere:
    python3 testcases/crc/make_scenarios.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
WELCOME = "Welcome to the Clemson Relay Chat network "


class Net:
    def __init__(self, base_port, kind="CRC_functionality"):
        self.kind = kind
        self.base = base_port
        self.cmds = []
        self.servers = {}   # name -> dict(id, port, parent, alive)
        self.clients = {}   # name -> dict(id, server, alive, quit, refused, chats, statuses, frozen)
        self.raw_checks = {}

    def wait(self, s=0.2):
        self.cmds.append(f"WAIT {s}")

    def server(self, name, sid, parent=None):
        port = self.base + len(self.servers) + 1
        cmd = f'LAUNCHSERVER --id {sid} --servername {name} --port {port} --info "{name} info"'
        if parent:
            cmd += f" --connect_to_host {parent} --connect_to_port {self.servers[parent]['port']}"
        self.cmds.append(cmd)
        taken = self.taken(sid)
        self.servers[name] = dict(id=sid, port=port, parent=parent, alive=not taken, refused=taken)
        self.wait()

    def taken(self, mid):
        return any(s["id"] == mid and s["alive"] for s in self.servers.values()) or any(
            c["id"] == mid and c["alive"] and not c["refused"] for c in self.clients.values())

    def client(self, name, cid, server):
        self.cmds.append(
            f'LAUNCHCLIENT --id {cid} --serverhost {server} --serverport {self.servers[server]["port"]}'
            f' --username {name} --info "Test info"')
        refused = self.taken(cid)
        c = dict(id=cid, server=server, alive=not refused, quit=False, refused=refused, chats=[], statuses=[],
                 frozen=None)
        if refused:
            c["statuses"].append(f"Someone has already registered with ID {cid}")
            c["frozen"] = []
        else:
            c["statuses"].append(WELCOME + name)
        self.clients[name] = c
        self.wait()

    def component(self, server):
        """Live servers reachable from `server` over live links."""
        seen, todo = {server}, [server]
        while todo:
            s = todo.pop()
            for n, d in self.servers.items():
                if not d["alive"] or n in seen:
                    continue
                if d["parent"] == s or self.servers[s]["parent"] == n:
                    seen.add(n)
                    todo.append(n)
        return seen

    def reachable_clients(self, server):
        comp = self.component(server)
        return {n: c for n, c in self.clients.items() if c["alive"] and c["server"] in comp}

    def msg(self, sender, dest_id, text):
        self.cmds.append(f'CLIENTCOMMAND --username {sender} --command MESSAGE {dest_id} "{text}"')
        s = self.clients[sender]
        targets = [c for c in self.reachable_clients(s["server"]).values() if c["id"] == dest_id]
        if targets:
            targets[0]["chats"].append(f'"{text}"')
        else:
            s["statuses"].append(f"Unknown ID {dest_id}")
        self.wait()

    def quit(self, name, text):
        self.cmds.append(f'CLIENTCOMMAND --username {name} --command QUIT "{text}"')
        c = self.clients[name]
        c["frozen"] = sorted(o["id"] for n, o in self.reachable_clients(c["server"]).items() if n != name)
        c["alive"] = False
        c["quit"] = True
        self.wait()

    def kill(self, name):
        self.cmds.append(f"KILL {name}")
        if name in self.servers:
            self.servers[name]["alive"] = False
        else:
            self.clients[name]["alive"] = False
            self.clients[name]["killed"] = True
        self.wait()

    def polite_quit(self, server):
        self.cmds.append(f"SEND {server} quit")
        self.servers[server]["alive"] = False
        self.wait()

    def raw(self, name, server, hexbytes):
        self.cmds.append(f'RAWSEND --name {name} --port {self.servers[server]["port"]} --hex {hexbytes}')

    def rawclose(self, name):
        self.cmds.append(f"RAWCLOSE --name {name}")

    def final(self):
        out = {}
        for n, s in self.servers.items():
            if not s["alive"]:
                continue
            comp = self.component(n)
            hosts = [self.servers[o]["id"] for o in comp if o != n]
            hosts += [c["id"] for c in self.reachable_clients(n).values()]
            adj = [d["id"] for o, d in self.servers.items() if d["alive"] and o != n
                   and (d["parent"] == n or s["parent"] == o)]
            users = [c["id"] for c in self.clients.values() if c["alive"] and c["server"] == n]
            out[n] = dict(hosts_db=sorted(hosts), adjacent_server_ids=sorted(adj), adjacent_user_ids=sorted(users),
                          status_updates_log=[])
        for n, c in self.clients.items():
            if c.get("killed"):
                continue
            if not self.servers[c["server"]]["alive"] and not c["quit"]:
                continue  # its server is gone: what it last knew is not specified
            if c["frozen"] is not None:
                known = c["frozen"]
            else:
                known = sorted(o["id"] for o2, o in self.reachable_clients(c["server"]).items() if o2 != n)
            out[n] = dict(connected_user_ids=known, status_updates_log=c["statuses"], chat_messages_log=c["chats"])
        return out

    def write(self, filename, final=None):
        self.cmds.append("KILL ALL")
        doc = {"type": self.kind, "commands": self.cmds, "final_state": final if final is not None else self.final()}
        with open(os.path.join(HERE, filename), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")


def reg_hex(sid, name, info):
    name_b, info_b = name.encode(), info.encode()
    return (bytes([0]) + sid.to_bytes(4, "big") + (0).to_bytes(4, "big") + bytes([len(name_b)])
            + len(info_b).to_bytes(2, "big") + name_b + info_b).hex()


def tree(net, shape):
    """shape: list of (name, id, parent_name or None)."""
    for name, sid, parent in shape:
        net.server(name, sid, parent)


# 01: phase-1 connectivity: servers only record what they read.
net = Net(42100, kind="network_connectivity")
tree(net, [("hub", 1, None), ("left", 2, "hub"), ("right", 3, "hub"), ("leaf", 4, "left")])
fs = {"hub": {"recvd_messages_asdqw": [reg_hex(2, "left", '"left info"'), reg_hex(3, "right", '"right info"')],
              "sent_messages_asdqw": []},
      "left": {"recvd_messages_asdqw": [reg_hex(4, "leaf", '"leaf info"')], "sent_messages_asdqw": []},
      "right": {"recvd_messages_asdqw": [], "sent_messages_asdqw": []},
      "leaf": {"recvd_messages_asdqw": [], "sent_messages_asdqw": []}}
net.write("01_connectivity_records_registrations.cfg", fs)

# 02: two servers know each other.
net = Net(42200)
tree(net, [("alpha", 10, None), ("beta", 20, "alpha")])
net.write("02_two_servers.cfg")

# 03: four servers in a tree, a chain below the root.
net = Net(42300)
tree(net, [("a", 1, None), ("b", 2, "a"), ("c", 3, "b"), ("d", 4, "a")])
net.write("03_four_server_tree.cfg")

# 04: twelve servers, clients scattered, everyone knows everyone.
net = Net(42400)
shape = [("s1", 1, None), ("s2", 2, "s1"), ("s3", 3, "s1"), ("s4", 4, "s2"), ("s5", 5, "s2"), ("s6", 6, "s4"),
         ("s7", 7, "s4"), ("s8", 8, "s3"), ("s9", 9, "s8"), ("s10", 10, "s9"), ("s11", 11, "s7"), ("s12", 12, "s11")]
tree(net, shape)
for i, srv in enumerate(["s1", "s6", "s10", "s12", "s5"]):
    net.client(f"u{i + 1}", 100 + i + 1, srv)
net.write("04_twelve_servers_five_clients.cfg")

# 05: three clients on one server: welcome, and each learns the others.
net = Net(42500)
net.server("solo", 1)
for i in range(3):
    net.client(f"c{i + 1}", 201 + i, "solo")
net.write("05_clients_on_one_server.cfg")

# 06: chat at 0 hops (same server), 1 hop, and 4 hops down a chain.
net = Net(42600)
tree(net, [("h1", 1, None), ("h2", 2, "h1"), ("h3", 3, "h2"), ("h4", 4, "h3"), ("h5", 5, "h4")])
net.client("ann", 101, "h1")
net.client("bob", 102, "h1")
net.client("cat", 103, "h2")
net.client("dan", 104, "h5")
net.msg("ann", 102, "zero hops")
net.msg("ann", 103, "one hop")
net.msg("ann", 104, "four hops away")
net.msg("dan", 101, "and back again")
net.msg("cat", 104, "three hops")
net.write("06_chat_zero_one_and_many_hops.cfg")

# 07: a second server with a taken ID is refused; the network is unchanged.
net = Net(42700)
tree(net, [("first", 1, None), ("second", 2, "first")])
net.client("kim", 301, "second")
net.server("impostor", 2, "first")
fs = net.final()
fs["impostor"] = {"status_updates_log": ["A machine has already registered with ID 2"], "hosts_db": []}
net.write("07_duplicate_server_refused.cfg", fs)

# 08: a client with a taken ID (a client's or a server's) is refused.
net = Net(42800)
tree(net, [("x", 1, None), ("y", 2, "x")])
net.client("orig", 401, "y")
net.client("copy", 401, "x")
net.client("servid", 2, "x")
net.client("late", 402, "x")
net.write("08_duplicate_client_refused.cfg")

# 09: unknown destination, near and far.
net = Net(42900)
tree(net, [("p", 1, None), ("q", 2, "p"), ("r", 3, "q")])
net.client("lee", 501, "r")
net.client("max", 502, "p")
net.msg("lee", 999, "nobody")
net.msg("max", 2, "a server is not a chat target")
net.msg("max", 501, "real one")
net.write("09_unknown_id.cfg")

# 10: a quit spreads through the whole tree; later chats to the quitter fail.
net = Net(43000)
tree(net, [("t1", 1, None), ("t2", 2, "t1"), ("t3", 3, "t2"), ("t4", 4, "t1")])
net.client("amy", 601, "t3")
net.client("ben", 602, "t4")
net.client("cal", 603, "t1")
net.msg("ben", 601, "before")
net.quit("amy", "gone fishing")
net.msg("ben", 601, "after")
net.msg("cal", 602, "still here")
net.write("10_client_quit_spreads.cfg")

def middle_server_leaves(port, leave):
    """root - mid - far, and side on root; mid leaves; chats to both sides."""
    net = Net(port)
    tree(net, [("root", 1, None), ("mid", 2, "root"), ("far", 3, "mid"), ("side", 4, "root")])
    net.client("near", 701, "root")
    net.client("behind", 702, "far")
    net.client("aside", 703, "side")
    leave(net, "mid")
    net.msg("near", 702, "are you there")
    net.msg("near", 703, "you are")
    return net


# 11: a server link dropped without a quit: everything behind it is forgotten.
middle_server_leaves(43100, Net.kill).write("11_server_link_dropped.cfg")

# 11b: a server that quits politely: the same outcome, through server-quit frames.
net = middle_server_leaves(43150, Net.polite_quit)
net.write("11b_server_quits_politely.cfg", {k: v for k, v in net.final().items() if k != "mid"})

# 12: a client that disconnects without a quit is forgotten everywhere.
net = Net(43200)
tree(net, [("k1", 1, None), ("k2", 2, "k1")])
net.client("stay", 801, "k1")
net.client("vanish", 802, "k2")
net.kill("vanish")
net.msg("stay", 802, "hello?")
net.write("12_client_dropped_without_quit.cfg")

# 13: bad input: an unknown type, a 4 GiB length, half a frame then close;
# each offender is dropped and the network keeps working.
net = Net(43300)
tree(net, [("g1", 1, None), ("g2", 2, "g1")])
net.client("good", 901, "g1")
net.raw("junk", "g1", "7f000000")
net.raw("huge", "g1", "810000000100000002ffffffff")
net.raw("half", "g1", "80000003e70000000005")
net.rawclose("half")
net.wait()
net.client("after", 902, "g2")
net.msg("after", 901, "still works")
net.write("13_bad_input_is_dropped.cfg")

print("wrote", len([f for f in os.listdir(HERE) if f.endswith(".cfg")]), "scenarios")
