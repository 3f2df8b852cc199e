// Draws one scenario of a peerloop report from the JSON in #data: the
// space-time diagram, the topology at the end and the machines' states.
// No library, nothing loaded from the network.
(function () {
  "use strict";
  var began = performance.now();
  var D = JSON.parse(document.getElementById("data").textContent);
  var M = D.machines;
  // A frame: [from lane, to lane, sent µs, received µs, label, fields, hex, matched, from addr, to addr]
  var F = D.frames;
  var OUT = M.length; // the lane for addresses no trace knows (the runner)
  var hasOutside = F.some(function (f) { return f[0] === OUT || f[1] === OUT; });
  var lanes = M.map(function (m) { return m.name; });
  if (hasOutside) lanes.push("runner");
  var SVGNS = "http://www.w3.org/2000/svg";

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function secs(us) { return us === null ? "—" : (us / 1e6).toFixed(6) + " s"; }
  function kindOf(label) { return label.split(" ")[0]; }
  function $(id) { return document.getElementById(id); }

  var kinds = [];
  var kindIndex = {};
  F.forEach(function (f) {
    var k = kindOf(f[4]);
    if (!(k in kindIndex)) { kindIndex[k] = kinds.length; kinds.push(k); }
  });
  var css = kinds.map(function (k, i) {
    return ".k" + i + "{stroke:hsl(" + ((i * 137) % 360) + ",65%,42%)}";
  }).join("");
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  $("summary").textContent = M.length + " machines, " + F.length + " frames (" + D.matched +
    " matched send→receive), " + D.seconds.toFixed(1) + " s";

  // ---- problems --------------------------------------------------------
  var probs = $("problems");
  if (D.problems.length) {
    probs.innerHTML = "<h2>Problems</h2>" + D.problems.map(function (p) {
      return '<div class="problem">' + esc(p) + "</div>";
    }).join("");
  }

  // ---- space-time diagram ---------------------------------------------
  var events = [];
  F.forEach(function (f, i) {
    if (f[2] !== null) events.push([f[2], 1, i]);
    if (f[3] !== null) events.push([Math.max(f[3], f[2] === null ? 0 : f[2]), 2, i]);
  });
  D.notes.forEach(function (n, j) { events.push([n[0], 0, j]); });
  events.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
  var rowH = events.length > 6000 ? 4 : events.length > 1500 ? 8 : 18;
  var showLabels = F.length <= 1500;
  var top = 10;
  var colW = Math.max(56, Math.min(170, Math.floor(1250 / Math.max(1, lanes.length))));
  var left = 90;
  var width = left + lanes.length * colW + 40;
  var ys = new Array(F.length), yr = new Array(F.length);
  var noteRows = [];
  events.forEach(function (e, row) {
    var y = top + row * rowH + rowH / 2;
    if (e[1] === 1) ys[e[2]] = y;
    else if (e[1] === 2) yr[e[2]] = y;
    else noteRows.push([y, e[2]]);
  });
  var height = top + events.length * rowH + 30;
  function x(lane) { return left + lane * colW + colW / 2; }

  var heads = lanes.map(function (name, lane) {
    var m = M[lane];
    var bad = m && m.problems.length ? " bad" : "";
    var title = m ? (m.problems.join("\n") || m.command) : "connections the scenario runner made itself";
    return '<div class="head' + bad + '" data-machine="' + esc(name) + '" style="left:' + (left + lane * colW) +
      "px;width:" + colW + 'px" title="' + esc(title) + '">' + (bad ? "⚠ " : "") + esc(name) +
      "<small>" + esc(m ? m.command : "runner") + "</small></div>";
  }).join("");
  $("heads").style.width = width + "px";
  $("heads").innerHTML = heads;

  var parts = [];
  parts.push('<svg xmlns="' + SVGNS + '" width="' + width + '" height="' + height + '">' +
    '<defs><marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">' +
    '<path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>');
  lanes.forEach(function (name, lane) {
    parts.push('<g class="lane" data-machine="' + esc(name) + '"><line x1="' + x(lane) + '" x2="' + x(lane) +
      '" y1="0" y2="' + height + '"/></g>');
  });
  // The time axis: a tick every ~60 px, and the scenario's commands.
  var every = Math.max(1, Math.ceil(60 / rowH));
  for (var r = 0; r < events.length; r += every) {
    parts.push('<text class="tick" x="4" y="' + (top + r * rowH + rowH / 2 + 3) + '">' + (events[r][0] / 1e6).toFixed(3) + " s</text>");
  }
  noteRows.forEach(function (n) {
    var text = D.notes[n[1]][1];
    var wait = /^Waiting/.test(text) ? " wait" : "";
    parts.push('<g class="note' + wait + '"><line x1="' + left + '" x2="' + width + '" y1="' + n[0] + '" y2="' + n[0] +
      '"/><text x="' + (left + 4) + '" y="' + (n[0] - 2) + '">' + esc(text.length > 160 ? text.slice(0, 160) + "…" : text) +
      "</text><title>" + esc(text) + "</title></g>");
  });
  F.forEach(function (f, i) {
    var cls, y1, y2;
    if (f[7]) { cls = "arrow"; y1 = ys[i]; y2 = yr[i]; }
    else if (f[2] === null) { cls = "rarrow"; y2 = yr[i]; y1 = y2 - rowH * 0.8; }
    else if (f[3] === null) { cls = "lost"; y1 = ys[i]; y2 = y1 + rowH * 0.8; }
    else { cls = "rarrow"; y1 = ys[i]; y2 = yr[i]; }
    var x1 = x(f[0]), x2 = x(f[1]);
    if (f[3] === null) x2 = x1 + (x2 - x1) * 0.35;
    var k = kindIndex[kindOf(f[4])];
    parts.push('<line class="' + cls + " k" + k + '" data-i="' + i + '" data-from="' + esc(lanes[f[0]]) + '" data-to="' +
      esc(lanes[f[1]]) + '" data-kind="' + esc(kinds[k]) + '" x1="' + x1 + '" y1="' + y1 + '" x2="' + x2 + '" y2="' + y2 +
      '" marker-end="url(#ah)"/>');
    if (showLabels) {
      var lx = x1 + (x2 - x1) * 0.5, ly = y1 + (y2 - y1) * 0.5 - 2;
      var text = f[4].length > 42 ? f[4].slice(0, 42) + "…" : f[4];
      parts.push('<text class="lbl" data-i="' + i + '" x="' + lx + '" y="' + ly + '" text-anchor="middle">' + esc(text) + "</text>");
    }
  });
  parts.push("</svg>");
  var diagram = $("diagram");
  diagram.innerHTML = parts.join("");

  var detail = $("detail");
  var selected = null;
  function show(i) {
    var f = F[i];
    var hex = (f[6].match(/../g) || []).join(" ");
    detail.innerHTML = "<b>" + esc(f[4]) + "</b><br>" + esc(lanes[f[0]]) + " (" + esc(f[8]) + ") → " + esc(lanes[f[1]]) +
      " (" + esc(f[9]) + ")<br>sent " + secs(f[2]) + ", received " + secs(f[3]) +
      (f[7] ? "" : f[3] === null ? " — never fully received" : " — one end not traced") +
      "<br>" + esc(f[5]) + "<br><code>" + hex + (f[6].length >= 1024 ? " …" : "") + "</code>";
  }
  diagram.addEventListener("mouseover", function (e) {
    var i = e.target.getAttribute && e.target.getAttribute("data-i");
    if (i !== null && i !== undefined && selected === null) show(+i);
  });
  diagram.addEventListener("click", function (e) {
    var i = e.target.getAttribute && e.target.getAttribute("data-i");
    if (selected) selected.classList.remove("sel");
    selected = null;
    if (i !== null && i !== undefined && e.target.tagName === "line") {
      selected = e.target;
      selected.classList.add("sel");
      show(+i);
    }
  });

  // ---- filters: by machine, by frame type, repeats ---------------------
  var filters = $("filters");
  function boxes(title, names, attr) {
    return "<fieldset><legend>" + title + "</legend>" + names.map(function (n) {
      return '<label><input type="checkbox" checked ' + attr + '="' + esc(n) + '">' + esc(n) + "</label>";
    }).join("") + "</fieldset>";
  }
  filters.innerHTML = boxes("machines", lanes, "data-lane") + boxes("frame types", kinds, "data-kind") +
    '<fieldset><legend>repeats</legend><label><input type="checkbox" id="collapse">hide repeated frames (same sender, receiver and label)</label></fieldset>';
  var shapes = diagram.querySelectorAll("[data-i]");
  filters.addEventListener("change", function () {
    var offLane = {}, offKind = {};
    filters.querySelectorAll("input[data-lane]").forEach(function (b) {
      if (!b.checked) offLane[lanes.indexOf(b.getAttribute("data-lane"))] = true;
    });
    filters.querySelectorAll("input[data-kind]").forEach(function (b) {
      if (!b.checked) offKind[b.getAttribute("data-kind")] = true;
    });
    var collapse = $("collapse").checked, seen = {};
    var hidden = F.map(function (f) {
      var key = f[0] + " " + f[1] + " " + f[4];
      var repeat = collapse && seen[key];
      seen[key] = true;
      return offLane[f[0]] || offLane[f[1]] || offKind[kindOf(f[4])] || repeat;
    });
    shapes.forEach(function (el) {
      el.style.display = hidden[+el.getAttribute("data-i")] ? "none" : "";
    });
  });

  // ---- topology --------------------------------------------------------
  var byName = {};
  M.forEach(function (m, i) { byName[m.name] = i; });
  var T = { nodes: [], edges: [], notes: [] };
  function node(i, px, py, cls, sub, extra) {
    T.nodes.push({ i: i, x: px, y: py, cls: cls, sub: sub || "", extra: extra || "" });
  }
  function edge(a, b, cls, title) { T.edges.push({ a: a, b: b, cls: cls, title: title || "" }); }
  function pos(i) {
    for (var k = 0; k < T.nodes.length; k++) if (T.nodes[k].i === i) return T.nodes[k];
    return null;
  }
  function ring(list, cx, cy, radius, angleOf) {
    list.forEach(function (i, k) {
      var a = angleOf ? angleOf(i, k) : (2 * Math.PI * k) / list.length;
      node(i, cx + radius * Math.sin(a), cy - radius * Math.cos(a));
    });
  }
  function st(i) { return M[i].state || {}; }
  function cmd(names) { return M.map(function (m, i) { return i; }).filter(function (i) { return names.indexOf(M[i].command) >= 0; }); }
  var W = 900, H = 600, legend = "";

  if (D.protocol === "crc") {
    var servers = cmd(["server"]), clients = cmd(["client"]);
    var byId = {};
    M.forEach(function (m, i) { if (m.state && m.state.id !== undefined) byId[m.state.id] = i; });
    var adj = {};
    servers.forEach(function (s) {
      (st(s).adjacent_server_ids || []).forEach(function (id) {
        var o = byId[id];
        if (o === undefined) return;
        var key = Math.min(s, o) + "-" + Math.max(s, o);
        if (!adj[key]) { adj[key] = true; edge(s, o, "server-link"); }
      });
    });
    // A tree, level by level from the first server.
    var depth = {}, levels = [];
    var queue = servers.length ? [servers[0]] : [];
    if (queue.length) depth[servers[0]] = 0;
    while (queue.length) {
      var s = queue.shift();
      (levels[depth[s]] = levels[depth[s]] || []).push(s);
      (st(s).adjacent_server_ids || []).forEach(function (id) {
        var o = byId[id];
        if (o !== undefined && !(o in depth) && servers.indexOf(o) >= 0) { depth[o] = depth[s] + 1; queue.push(o); }
      });
    }
    var orphans = servers.filter(function (s) { return !(s in depth); });
    if (orphans.length) levels.push(orphans);
    var widest = Math.max(1, Math.max.apply(null, levels.map(function (l) { return l.length; }).concat([1])));
    W = Math.max(700, widest * 150);
    levels.forEach(function (l, d) {
      l.forEach(function (s, k) { node(s, (W * (k + 1)) / (l.length + 1), 50 + d * 130, "server", "id " + st(s).id); });
    });
    servers.forEach(function (s) {
      var mine = (st(s).adjacent_user_ids || []).map(function (id) { return byId[id]; }).filter(function (c) { return c !== undefined; });
      var p = pos(s);
      mine.forEach(function (c, k) {
        node(c, p.x + (k - (mine.length - 1) / 2) * 60, p.y + 62 + (k % 2) * 14, "client", "id " + st(c).id);
        edge(s, c, "client-link");
      });
    });
    var placed = 0;
    clients.forEach(function (c) { if (!pos(c)) node(c, 40 + 70 * placed++, 20, "client", "not attached"); });
    H = 60 + (levels.length + 1) * 130;
    legend = "Servers (blue) linked as their adjacent_server_ids say; clients (orange) under the server whose adjacent_user_ids list them.";
  } else if (D.protocol === "chord") {
    var nodes = cmd(["chord"]);
    var idTo = {};
    nodes.forEach(function (i) { if (st(i).id) idTo[st(i).id] = i; });
    function frac(i) { return parseInt((st(i).id || "0").slice(0, 8), 16) / 4294967296; }
    ring(nodes, 450, 300, 230, function (i) { return 2 * Math.PI * frac(i); });
    nodes.forEach(function (i) {
      var s = st(i);
      var p = pos(i);
      p.cls = "chord";
      p.sub = (s.id || "").slice(0, 6) + "… keys " + (s.keys === undefined ? "?" : s.keys);
      if (s.successor !== undefined && idTo[s.successor] !== undefined) edge(i, idTo[s.successor], "succ", "successor");
      var done = {};
      (s.fingers || []).forEach(function (f) {
        var o = idTo[f.id];
        if (o === undefined || o === i || f.id === s.successor || done[o]) return;
        done[o] = true;
        edge(i, o, "finger", "finger from bit " + f.bit);
      });
    });
    legend = "Nodes placed on the ring by ID; solid arrows: successor; dashed: fingers.";
  } else if (D.protocol === "gossip") {
    var gnodes = cmd(["gossip"]), modules = cmd(["gossip-client"]);
    var p2p = {}, api = {};
    gnodes.forEach(function (i) { p2p[st(i).p2p_address] = i; api[st(i).api_address] = i; });
    ring(gnodes, 450, 330, 170);
    var seenPeer = {};
    gnodes.forEach(function (i) {
      var p = pos(i);
      p.cls = "gossip";
      p.sub = "peers " + (st(i).peer_count === undefined ? "?" : st(i).peer_count);
      (st(i).peers || []).forEach(function (a) {
        var o = p2p[a];
        if (o === undefined) return;
        var key = Math.min(i, o) + "-" + Math.max(i, o);
        if (!seenPeer[key]) { seenPeer[key] = true; edge(i, o, "peer", "peers"); }
      });
    });
    var perNode = {};
    modules.forEach(function (m) {
      var n = api[st(m).api];
      if (n === undefined) {
        // No final state (it ended with its node): the node it talked to.
        F.some(function (f) {
          var other = f[0] === m ? f[1] : f[1] === m ? f[0] : -1;
          if (gnodes.indexOf(other) >= 0) { n = other; return true; }
          return false;
        });
      }
      if (n === undefined) { node(m, 30, 30 + 30 * modules.indexOf(m), "module"); return; }
      var k = (perNode[n] = (perNode[n] || 0) + 1);
      var p = pos(n), dx = p.x - 450, dy = p.y - 330, len = Math.sqrt(dx * dx + dy * dy) || 1;
      node(m, p.x + (dx / len) * (55 + 20 * k) + (k % 2 ? 24 : -24), p.y + (dy / len) * (55 + 20 * k), "module",
        (st(m).notifications || []).length + " notified");
      edge(n, m, "module-link", "module");
    });
    // Who forwarded each item to whom: the CONTENT frames between nodes.
    var fwd = {};
    F.forEach(function (f) {
      if (kindOf(f[4]) !== "CONTENT" || f[0] === OUT || f[1] === OUT) return;
      var key = f[0] + "-" + f[1];
      (fwd[key] = fwd[key] || { a: f[0], b: f[1], items: [] }).items.push(f[4].slice(8));
    });
    Object.keys(fwd).forEach(function (k) {
      edge(fwd[k].a, fwd[k].b, "forward", "forwarded: " + fwd[k].items.join(", "));
    });
    W = 900; H = 620;
    legend = "Blue: P2P links from each node's peers; green arrows: CONTENT frames forwarded (hover for the items); orange: modules.";
  } else if (D.protocol === "bpcon") {
    var reps = cmd(["paxos"]), others = cmd(["propose", "kv"]);
    ring(reps, 450, 300, 190);
    reps.forEach(function (i) {
      var s = st(i), p = pos(i);
      p.cls = "replica";
      p.sub = "committed " + (s.committed === undefined ? "?" : s.committed) + " ops, " + (s.slots === undefined ? "?" : s.slots) +
        " slots" + (s.byzantine ? " (" + s.byzantine + ")" : "");
      var log = s.log || [];
      p.extra = log.slice(0, 6).map(function (op, k) { return k + 1 + ". " + op; })
        .concat(log.length > 6 ? ["… " + (log.length - 6) + " more"] : []);
      (s.links || []).forEach(function (n) { if (byName[n] !== undefined) edge(i, byName[n], "link", "link"); });
    });
    others.forEach(function (c, k) { node(c, 40 + 90 * k, 570, "client"); });
    legend = "Replicas with their committed operations and slots (the first operations of each log listed); lines: the links each replica holds.";
  }
  // Machines no picture placed: along the bottom, edges from their traffic.
  var rest = M.map(function (m, i) { return i; }).filter(function (i) { return !pos(i); });
  rest.forEach(function (i, k) { node(i, 40 + 100 * (k % 8), H + 40 + 50 * Math.floor(k / 8), "other"); });
  if (rest.length) H += 60 + 50 * Math.ceil(rest.length / 8);
  if (!D.protocol || !T.edges.length) {
    var pairs = {};
    F.forEach(function (f) {
      if (f[0] === OUT || f[1] === OUT) return;
      var key = Math.min(f[0], f[1]) + "-" + Math.max(f[0], f[1]);
      if (!pairs[key]) { pairs[key] = true; edge(f[0], f[1], "traffic", "frames"); }
    });
  }

  // Machines the scenario stopped before the end: their state is the one
  // read as they were stopped.
  var gone = {};
  D.notes.forEach(function (n) {
    var k = /^Running: (?:KILL (\S+)|SEND (\S+) quit$)/.exec(n[1]);
    if (k && (k[1] || k[2]) !== "ALL") gone[k[1] || k[2]] = true;
  });
  var svg = ['<svg xmlns="' + SVGNS + '" width="' + (W + 260) + '" height="' + (H + 20) + '" viewBox="0 0 ' + (W + 260) + " " + (H + 20) + '">' +
    '<defs><marker id="th" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#1a73e8"/></marker>' +
    '<marker id="tf" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#188038"/></marker></defs><g class="topology">'];
  T.edges.forEach(function (e) {
    var a = pos(e.a), b = pos(e.b);
    if (!a || !b) return;
    var dx = b.x - a.x, dy = b.y - a.y, len = Math.sqrt(dx * dx + dy * dy) || 1, r = 16;
    var x1 = a.x + (dx / len) * r, y1 = a.y + (dy / len) * r, x2 = b.x - (dx / len) * r, y2 = b.y - (dy / len) * r;
    var marker = e.cls === "succ" ? ' marker-end="url(#th)"' : e.cls === "forward" ? ' marker-end="url(#tf)"' : "";
    var d;
    if (e.cls === "forward" || e.cls === "finger") {
      // Bent, so that both directions and the straight links stay visible.
      var mx = (x1 + x2) / 2 - (dy / len) * 22, my = (y1 + y2) / 2 + (dx / len) * 22;
      d = "M" + x1 + "," + y1 + "Q" + mx + "," + my + " " + x2 + "," + y2;
    } else d = "M" + x1 + "," + y1 + "L" + x2 + "," + y2;
    var stale = gone[M[e.a].name] || gone[M[e.b].name] ? ' data-stale="yes" opacity="0.3"' : "";
    svg.push('<path class="edge ' + e.cls + '" data-from="' + esc(M[e.a].name) + '" data-to="' + esc(M[e.b].name) + '" d="' + d + '"' + marker + stale +
      "><title>" + esc(M[e.a].name + " → " + M[e.b].name + ": " + e.title) + "</title></path>");
  });
  T.nodes.forEach(function (n) {
    var m = M[n.i], bad = (m.problems.length ? " bad" : "") + (gone[m.name] ? " gone" : "");
    if (gone[m.name]) n.sub = (n.sub ? n.sub + " " : "") + "(stopped)";
    var s = m.state || {};
    var attrs = ' data-machine="' + esc(m.name) + '"' + (s.committed !== undefined ? ' data-committed="' + esc(s.committed) + '"' : "");
    svg.push('<g class="node ' + n.cls + bad + '"' + attrs + '><circle cx="' + n.x + '" cy="' + n.y + '" r="15"/>' +
      '<text x="' + n.x + '" y="' + (n.y - 19) + '">' + esc(m.name) + "</text>" +
      (n.sub ? '<text class="sub" x="' + n.x + '" y="' + (n.y + 27) + '">' + esc(n.sub) + "</text>" : ""));
    var lines = (n.extra || []).slice();
    m.problems.forEach(function (p) { lines.push("✗ " + p.slice(m.name.length + 2)); });
    lines.forEach(function (l, k) {
      svg.push('<text class="' + (k >= (n.extra || []).length ? "diff-note" : "sub") + '" x="' + (n.x + 20) + '" y="' + (n.y + 40 + 12 * k) +
        '" style="text-anchor:start">' + esc(l.length > 70 ? l.slice(0, 70) + "…" : l) + "</text>");
    });
    svg.push("<title>" + esc(m.name + " (" + m.command + ")\n" + m.problems.join("\n")) + "</title></g>");
  });
  svg.push("</g></svg>");
  $("topology").innerHTML = '<p class="legend">' + esc(legend) + "</p>" + svg.join("");

  // ---- machines: final state, expected versus found ---------------------
  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  $("machines").innerHTML = M.map(function (m) {
    var bad = m.problems.length > 0;
    var diff = "";
    if (bad) {
      var rows = Object.keys(m.expected || {}).map(function (k) {
        var want = m.expected[k], got = (m.state || {})[k];
        var differs = m.problems.some(function (p) { return p.indexOf(k) >= 0; }) || !same(want, got);
        return "<tr><td>" + esc(k) + '</td><td class="' + (differs ? "differs" : "") + '">' + esc(JSON.stringify(want)) +
          '</td><td class="' + (differs ? "differs" : "") + '">' + esc(JSON.stringify(got === undefined ? null : got)) + "</td></tr>";
      }).join("");
      diff = '<table class="diff" data-machine="' + esc(m.name) + '"><tr><th>field</th><th>expected</th><th>found</th></tr>' + rows + "</table>" +
        m.problems.map(function (p) { return '<div class="problem">' + esc(p) + "</div>"; }).join("");
    }
    return '<details class="machine' + (bad ? " bad" : "") + '" data-machine="' + esc(m.name) + '"' + (bad ? " open" : "") +
      "><summary>" + (bad ? "⚠ " : "") + esc(m.name) + " <small>(" + esc(m.command) + ")</small></summary>" + diff +
      "<pre>" + esc(JSON.stringify(m.state, null, 1)) + "</pre></details>";
  }).join("");
  // Links into a page: #only=topology shows one section, #kind=CHAT
  // scrolls the diagram to the first frame of that type and selects it.
  var only = /only=(\w+)/.exec(location.hash);
  if (only) {
    document.querySelectorAll("body > section").forEach(function (sec) {
      if (!sec.querySelector("#" + only[1])) sec.style.display = "none";
    });
  }
  var want = /kind=([^&]+)/.exec(location.hash);
  if (want) {
    var first = diagram.querySelector('line[data-kind="' + decodeURIComponent(want[1]).replace(/"/g, "") + '"]');
    if (first) {
      first.classList.add("sel");
      selected = first;
      show(+first.getAttribute("data-i"));
      $("diagram-wrap").scrollTop = Math.max(0, +first.getAttribute("y1") - 120);
      var wrap = $("diagram-wrap");
      if (Math.max(+first.getAttribute("x1"), +first.getAttribute("x2")) > wrap.clientWidth - 40) {
        wrap.scrollLeft = Math.max(0, Math.min(+first.getAttribute("x1"), +first.getAttribute("x2")) - 150);
      }
    }
  }
  document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - began)));
  document.body.setAttribute("data-rendered", "yes");
})();
