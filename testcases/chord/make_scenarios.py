#!/usr/bin/env python3
"""Writes the Chord scenarios of this folder.

Nodes get fixed IDs (--id), so the expected ring is known in advance: the
expected successor, predecessor and stored keys of every node are derived
here from the IDs and the key hashes alone (SHA-1, as the spec says),
independently of peerloop's code. Run it from anywhere:
    python3 testcases/chord/make_scenarios.py
"""
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
STABILIZE_MS = 50


def full_id(digits):
    """--id takes the high hex digits; the state shows all 40."""
    return digits + "0" * (40 - len(digits))


def text_key(text):
    """A key typed as text: SHA-1(text) || SHA-1(SHA-1(text)), cut to 32 bytes."""
    first = hashlib.sha1(text.encode()).digest()
    second = hashlib.sha1(first).digest()
    return first + second[:12]


def ring_pos(key):
    return hashlib.sha1(key).hexdigest()


class Ring:
    def __init__(self, base_port, replicas=3, successors=4):
        self.base = base_port
        self.replicas = replicas
        self.successors = successors
        self.cmds = []
        self.nodes = {}   # name -> dict(id, port, api, alive)
        self.keys = {}    # text -> value (live keys)
        self.unchecked = set()  # machines whose final state is not compared

    def launch(self, name, digits, via=None):
        n = len(self.nodes)
        port, api = self.base + 2 * n, self.base + 2 * n + 1
        cmd = (f"LAUNCHCHORD --name {name} --listen 127.0.0.1:{port} --api 127.0.0.1:{api}"
               f" --id {digits} --replicas {self.replicas} --successors {self.successors}"
               f" --stabilize-ms {STABILIZE_MS}")
        if via:
            cmd += f" --join 127.0.0.1:{self.nodes[via]['port']}"
        self.cmds.append(cmd)
        self.nodes[name] = dict(id=full_id(digits), port=port, api=api, alive=True)

    def stable(self, fingers=False):
        self.cmds.append("WAITSTABLE --timeout 20" + (" --fingers" if fingers else ""))

    def put(self, via, text, value, ttl=None):
        cmd = f'DHTPUT --node {via} --key "{text}" --value "{value}"'
        if ttl:
            cmd += f" --ttl {ttl}"
        self.cmds.append(cmd)
        if ttl is None:
            self.keys[text] = value

    def get(self, via, text, expect=None):
        if expect is None:
            self.cmds.append(f'DHTGET --node {via} --key "{text}" --expect-failure')
        else:
            self.cmds.append(f'DHTGET --node {via} --key "{text}" --expect "{expect}"')

    def kill(self, name):
        self.cmds.append(f"KILL {name}")
        self.nodes[name]["alive"] = False
        self.unchecked.add(name)

    def quit(self, name):
        self.cmds.append(f"SEND {name} quit")
        self.nodes[name]["alive"] = False
        self.unchecked.add(name)

    def wait(self, seconds):
        self.cmds.append(f"WAIT {seconds}")

    def live(self):
        return sorted((n["id"], name) for name, n in self.nodes.items() if n["alive"])

    def expected(self, check_keys=True):
        ring = self.live()
        ids = [i for i, _ in ring]
        holders = {name: [] for _, name in ring}
        for text in self.keys:
            key = text_key(text)
            pos = ring_pos(key)
            owner = next((i for i, node in enumerate(ids) if node >= pos), 0)
            for copy in range(min(self.replicas, len(ids))):
                holders[ring[(owner + copy) % len(ids)][1]].append(key.hex())
        state = {}
        for i, (nid, name) in enumerate(ring):
            entry = {
                "id": nid,
                "successor": ids[(i + 1) % len(ids)],
                "predecessor": ids[(i - 1) % len(ids)],
                "ring_ok": True,
            }
            if check_keys:
                entry["stored"] = sorted(holders[name])
            state[name] = entry
        return state

    def write(self, file_name, check_keys=True):
        self.cmds.append("CHECKRING")
        final = self.expected(check_keys)
        self.cmds.append("KILL ALL")
        scenario = {"type": "chord", "commands": self.cmds, "final_state": final}
        with open(os.path.join(HERE, file_name), "w") as f:
            json.dump(scenario, f, indent=2)
            f.write("\n")


def ring_of_five():
    r = Ring(43100)
    r.launch("n1", "1")
    for name, digits, via in [("n2", "4", "n1"), ("n3", "7", "n2"), ("n4", "a", "n1"), ("n5", "d", "n3")]:
        r.launch(name, digits, via)
    r.stable(fingers=True)
    r.write("01_ring_of_five_converges.cfg")


def put_get_three_copies():
    r = Ring(43200, replicas=3)
    r.launch("n1", "10")
    for name, digits in [("n2", "38"), ("n3", "60"), ("n4", "98"), ("n5", "c8")]:
        r.launch(name, digits, "n1")
    r.stable(fingers=True)
    names = ["n1", "n2", "n3", "n4", "n5"]
    for k in range(8):
        r.put(names[k % 5], f"key {k}", f"value {k}")
    r.wait(0.5)
    for k in range(8):
        r.get(names[(k + 2) % 5], f"key {k}", f"value {k}")
    r.get("n4", "never stored")
    r.write("02_put_get_three_copies.cfg")


def join_takes_its_keys():
    r = Ring(43300, replicas=1)
    r.launch("n1", "2")
    r.launch("n2", "8", "n1")
    r.launch("n3", "c", "n2")
    r.stable()
    for k in range(16):
        r.put(["n1", "n2", "n3"][k % 3], f"item {k}", f"v{k}")
    # The newcomer sits between 2 and 8: it must take exactly the keys in (2, 5].
    r.launch("newcomer", "5", "n3")
    r.stable()
    r.wait(0.5)
    for k in range(16):
        r.get("newcomer", f"item {k}", f"v{k}")
    r.write("03_join_takes_exactly_its_keys.cfg")


def polite_leave():
    r = Ring(43400, replicas=1)
    r.launch("n1", "2")
    for name, digits in [("n2", "6"), ("n3", "a"), ("n4", "e")]:
        r.launch(name, digits, "n1")
    r.stable()
    for k in range(16):
        r.put(["n1", "n2", "n3", "n4"][k % 4], f"item {k}", f"v{k}")
    r.quit("n2")  # its keys (2, 6] go to n3
    r.stable()
    r.wait(0.5)
    for k in range(16):
        r.get(["n1", "n3", "n4"][k % 3], f"item {k}", f"v{k}")
    r.write("04_polite_leave_hands_keys_over.cfg")


def crash_quarter_with_replicas():
    r = Ring(43500, replicas=3)
    digits = ["08", "28", "48", "68", "88", "a8", "c8", "e8"]
    for i, d in enumerate(digits):
        r.launch(f"n{i + 1}", d, "n1" if i else None)
    r.stable(fingers=True)
    for k in range(20):
        r.put(f"n{k % 8 + 1}", f"record {k}", f"data {k}")
    r.wait(0.5)
    # A quarter of the ring at once, without warning (not neighbours).
    r.kill("n3")
    r.kill("n7")
    r.stable()
    r.wait(1.0)  # the new owners copy their keys to their new successors
    live = ["n1", "n2", "n4", "n5", "n6", "n8"]
    for k in range(20):
        r.get(live[k % 6], f"record {k}", f"data {k}")
    r.write("05_crash_of_a_quarter_loses_nothing.cfg")


def ttl_expiry():
    r = Ring(43600, replicas=2)
    r.launch("n1", "3")
    r.launch("n2", "b", "n1")
    r.stable()
    r.put("n1", "short lived", "gone soon", ttl=1)
    r.put("n2", "long lived", "still here")
    r.get("n2", "short lived", "gone soon")
    r.wait(2.5)
    r.get("n2", "short lived")
    r.get("n1", "long lived", "still here")
    r.write("06_ttl_expiry.cfg")


def bad_input():
    r = Ring(43700, replicas=2)
    r.launch("n1", "3")
    r.launch("n2", "b", "n1")
    r.stable()
    r.put("n1", "k", "v")
    # A size under the header; a GET with a short key; an unknown DHT type;
    # a peer message with a bad address family.
    r.cmds.append("DHTRAW --node n1 --hex 00020000")
    r.cmds.append("DHTRAW --node n1 --hex 0008028b01020304")
    r.cmds.append("DHTRAW --node n2 --hex 000402ff")
    r.cmds.append("DHTRAW --node n2 --peer --hex 001902ac" + "00" * 20 + "09")
    r.get("n1", "k", "v")
    r.get("n2", "k", "v")
    r.write("07_bad_input_closes_only_that_connection.cfg")


if __name__ == "__main__":
    ring_of_five()
    put_get_three_copies()
    join_takes_its_keys()
    polite_leave()
    crash_quarter_with_replicas()
    ttl_expiry()
    bad_input()
