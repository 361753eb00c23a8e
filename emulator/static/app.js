// Live trace page of the SignalR emulator. No dependencies; every value from the server
// is inserted as text (textContent), never as HTML.
"use strict";

(function () {
  const MAX_EVENTS = 5000;   // kept in memory (and exported)
  const MAX_ROWS = 1000;     // rendered
  const TYPES = ["connection.opened", "connection.closed", "message.in", "message.out", "upstream", "rest"];
  const STATE_TYPES = new Set(["connection.opened", "connection.closed", "rest"]);

  const events = [];
  let pending = [];          // arrived while paused
  let paused = false;
  let filterText = "";
  const shown = new Set(TYPES);
  let stateTimer = null;

  const $ = (id) => document.getElementById(id);
  const tbody = document.querySelector("#events tbody");

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function time(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function detail(e) {
    switch (e.type) {
      case "connection.opened":
        return [e.transport, e.protocol].filter(Boolean).join(" · ");
      case "connection.closed":
        return (e.reason || "Normal") + (e.error ? " — " + e.error : "");
      case "message.in":
        return (e.target ? e.target + " · " : "") + (e.size ?? 0) + " B";
      case "message.out":
        return (e.target ? e.target + " · " : "") + (e.size ?? 0) + " B" +
          (e.receivers !== undefined ? " → " + e.receivers + " receiver" + (e.receivers === 1 ? "" : "s") : "") +
          (e.scope ? " (" + e.scope + ")" : "");
      case "upstream":
        return [e.category, e.event].filter(Boolean).join("/") + " → " + (e.status ?? "no answer") +
          (e.latencyMs !== undefined ? " in " + e.latencyMs + " ms" : "");
      case "rest":
        return (e.operation || "?") + " → " + (e.status ?? "?") +
          (e.latencyMs !== undefined ? " in " + e.latencyMs + " ms" : "");
      default:
        return JSON.stringify(e);
    }
  }

  function isBad(e) {
    if (e.type === "connection.closed") return e.reason && e.reason !== "Normal";
    if (e.type === "upstream" || e.type === "rest") return !(e.status >= 200 && e.status < 400);
    return false;
  }

  function columns(e) {
    return [time(e.time), e.type, e.hub || "", e.connectionId || "", e.userId || "", detail(e)];
  }

  function matches(e) {
    if (!shown.has(e.type) && TYPES.includes(e.type)) return false;
    if (!filterText) return true;
    return columns(e).join(" ").toLowerCase().includes(filterText);
  }

  function row(e) {
    const tr = document.createElement("tr");
    tr.dataset.type = e.type;
    if (isBad(e)) tr.classList.add("bad");
    const cols = columns(e);
    const classes = ["mono", "type", "", "mono", "", "detail"];
    cols.forEach((text, i) => tr.appendChild(el("td", text, classes[i])));
    return tr;
  }

  function render() {
    const frag = document.createDocumentFragment();
    let count = 0;
    for (let i = events.length - 1; i >= 0 && count < MAX_ROWS; i--) {
      if (matches(events[i])) { frag.appendChild(row(events[i])); count++; }
    }
    tbody.replaceChildren(frag);
  }

  function add(list) {
    for (const e of list) events.push(e);
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    const rows = list.filter(matches).reverse().map(row);
    if (rows.length) {
      const frag = document.createDocumentFragment();
      rows.forEach((r) => frag.appendChild(r));
      tbody.insertBefore(frag, tbody.firstChild);
      while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
    }
    if (list.some((e) => STATE_TYPES.has(e.type))) refreshStateSoon();
  }

  function receive(list) {
    if (paused) {
      pending.push(...list);
      $("paused-note").textContent = "Paused: " + pending.length + " new event(s) waiting.";
      return;
    }
    add(list);
  }

  // -- hubs ---------------------------------------------------------------------------
  function chips(parent, values) {
    if (!values || !values.length) { parent.appendChild(el("span", "—", "empty")); return; }
    values.forEach((v) => parent.appendChild(el("span", v, "chip mono")));
  }

  function renderState(state) {
    const root = $("hubs");
    const hubs = state.hubs || [];
    let total = 0;
    const frag = document.createDocumentFragment();
    for (const hub of hubs) {
      total += hub.connections.length;
      const box = el("div", null, "hub");
      const h3 = el("h3", hub.name);
      h3.appendChild(el("span", " · " + hub.connections.length + " connection" + (hub.connections.length === 1 ? "" : "s"), "count"));
      box.appendChild(h3);
      box.appendChild(el("h4", "Connections"));
      const table = el("table");
      const head = el("tr");
      ["id", "user", "transport", "protocol", "groups"].forEach((t) => head.appendChild(el("th", t)));
      table.appendChild(head);
      for (const c of hub.connections) {
        const tr = el("tr");
        tr.dataset.connectionId = c.id;
        tr.appendChild(el("td", c.id, "mono"));
        tr.appendChild(el("td", c.user ?? "—"));
        tr.appendChild(el("td", c.transport ?? "—"));
        tr.appendChild(el("td", c.protocol ?? "—"));
        const groups = el("td", null, "detail");
        chips(groups, c.groups);
        tr.appendChild(groups);
        table.appendChild(tr);
      }
      box.appendChild(table);
      box.appendChild(el("h4", "Users"));
      const users = el("div");
      chips(users, hub.users.map((u) => u.id + " (" + u.connections.length + ")"));
      box.appendChild(users);
      box.appendChild(el("h4", "Groups"));
      const groups = el("div");
      chips(groups, hub.groups.map((g) => g.name + " (" + g.connections.length + ")"));
      box.appendChild(groups);
      frag.appendChild(box);
    }
    if (!hubs.length) frag.appendChild(el("p", "No live connections.", "empty"));
    root.replaceChildren(frag);
    $("summary").textContent = total + " live connection" + (total === 1 ? "" : "s") + " in " +
      hubs.length + " hub" + (hubs.length === 1 ? "" : "s");
  }

  async function refreshState() {
    stateTimer = null;
    try {
      const response = await fetch("/trace/state", { cache: "no-store" });
      if (response.ok) renderState(await response.json());
    } catch (err) { /* the stream's status shows the outage */ }
  }

  function refreshStateSoon() {
    if (stateTimer === null) stateTimer = setTimeout(refreshState, 150);
  }

  // -- CSV ----------------------------------------------------------------------------
  const CSV_FIELDS = ["seq", "time", "type", "hub", "connectionId", "userId", "transport", "protocol",
    "reason", "error", "target", "size", "receivers", "scope", "category", "event", "operation", "status", "latencyMs"];

  function csvCell(value) {
    if (value === undefined || value === null) return "";
    let text = String(value);
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;  // no formulas when opened in a spreadsheet
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function toCsv(list) {
    const lines = [CSV_FIELDS.join(",")];
    for (const e of list) {
      lines.push(CSV_FIELDS.map((f) => csvCell(f === "time" ? new Date(e.time).toISOString() : e[f])).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }

  function exportCsv() {
    const blob = new Blob([toCsv(events.filter(matches))], { type: "text/csv;charset=utf-8" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "signalr-trace-" + new Date().toISOString().replace(/[:.]/g, "-") + ".csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // -- controls -----------------------------------------------------------------------
  function setup() {
    const types = $("types");
    for (const t of TYPES) {
      const label = el("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.value = t;
      box.addEventListener("change", () => { box.checked ? shown.add(t) : shown.delete(t); render(); });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + t));
      types.appendChild(label);
    }
    $("filter").addEventListener("input", (ev) => { filterText = ev.target.value.trim().toLowerCase(); render(); });
    $("pause").addEventListener("click", () => {
      paused = !paused;
      $("pause").setAttribute("aria-pressed", String(paused));
      $("pause").textContent = paused ? "Resume" : "Pause";
      $("paused-note").hidden = !paused;
      $("paused-note").textContent = "Paused.";
      if (!paused && pending.length) { const list = pending; pending = []; add(list); }
    });
    $("clear").addEventListener("click", () => { events.length = 0; pending = []; tbody.replaceChildren(); });
    $("export").addEventListener("click", exportCsv);
  }

  function connect() {
    const source = new EventSource("/trace/events");
    const status = $("status");
    source.onopen = () => { status.dataset.state = "live"; status.textContent = "live"; refreshState(); };
    source.onerror = () => { status.dataset.state = "down"; status.textContent = "reconnecting…"; };
    source.addEventListener("history", (msg) => {
      // A reconnect resends the history: keep only what is newer than what we have.
      // A lower sequence number means the emulator restarted: take everything.
      const history = JSON.parse(msg.data);
      const last = events.length ? events[events.length - 1].seq : 0;
      const newest = history.length ? history[history.length - 1].seq : 0;
      receive(newest < last ? history : history.filter((e) => e.seq > last));
    });
    source.addEventListener("dropped", (msg) => {
      receive([{ seq: 0, time: Date.now(), type: "dropped", detail: msg.data + " event(s) missed" }]);
    });
    source.onmessage = (msg) => receive([JSON.parse(msg.data)]);
  }

  // For tests and the console: the CSV the Export button would download.
  window.signalrTrace = { csv: () => toCsv(events.filter(matches)), events: () => events.slice() };

  setup();
  refreshState();
  connect();
})();
