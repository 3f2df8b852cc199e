#!/usr/bin/env python3
"""Writes 06_twenty_nodes_lose_four.cfg: 20 gossip nodes joining through the
first, one module each; an announcement reaches every module; a fifth of the
nodes are killed; a later announcement still reaches every live module, and
no node forwards an item more than once. Expectations follow from the
scenario alone: every live module sees both items, killed nodes' modules go
with their node."""
import json

N, DEGREE, TYPE = 20, 3, 77
killed = [5, 10, 15, 20]
name = lambda i: f"n{i:02}"
module = lambda i: f"m{i:02}"

commands = []
for i in range(1, N + 1):
    boot = "" if i == 1 else " --bootstrapper 6501"
    commands.append(f"LAUNCHGOSSIP --name {name(i)} --p2p {6500 + i} --api {7500 + i} --degree {DEGREE}{boot}")
commands.append("AWAITPEERS --min 2")
for i in range(1, N + 1):
    commands.append(f"LAUNCHMODULE --name {module(i)} --node {name(i)} --type {TYPE}")
commands.append(f'ANNOUNCE --node n01 --type {TYPE} --data "before"')
commands.append('AWAITNOTIFIED --data "before"')
for i in killed:
    commands.append(f"KILL {name(i)}")
commands.append("AWAITPEERS --min 2")
commands.append(f'ANNOUNCE --node n01 --type {TYPE} --data "after"')
commands.append('AWAITNOTIFIED --data "after"')
commands.append("KILL ALL")

final = {}
for i in range(1, N + 1):
    if i in killed:
        final[name(i)] = {"max_forwards": 1, "seen": ["before"]}
    else:
        final[name(i)] = {"max_forwards": 1, "forwarded": ["before", "after"]}
        final[module(i)] = {"notifications": ["before", "after"]}

with open("06_twenty_nodes_lose_four.cfg", "w") as f:
    json.dump({"type": "gossip", "commands": commands, "final_state": final}, f, indent=4)
    f.write("\n")
