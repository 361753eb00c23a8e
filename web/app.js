// The sample chat page: the official @microsoft/signalr browser client against the backend's
// negotiate endpoint (/api), talking to the sample hub `chat` (app/samples/).
//
// Query parameters (handy for demos and tests):
//   ?user=alice              pre-fill the user name (the dev user id)
//   ?hub=chat                hub name; the client is pointed at /api/{hub} instead of /api
//   ?protocol=messagepack    use the MessagePack hub protocol instead of JSON (binary: with
//                           WebSockets or long polling; Server-Sent Events carry text only)
//   ?transport=websockets|serversentevents|longpolling   force one transport
"use strict";

(() => {
  const signalR = window.signalR;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(window.location.search);
  const MAX_MESSAGES = 300;
  const MAX_PEOPLE = 50;

  const ui = {
    state: $("state"),
    stateText: $("state-text"),
    connectionId: $("connection-id"),
    identityForm: $("identity-form"),
    userName: $("user-name"),
    groupForm: $("group-form"),
    groupName: $("group-name"),
    groups: $("groups"),
    groupsEmpty: $("groups-empty"),
    people: $("people"),
    peopleEmpty: $("people-empty"),
    peopleCount: $("people-count"),
    messages: $("messages"),
    sendForm: $("send-form"),
    recipient: $("recipient"),
    recipientLabel: $("recipient-label"),
    text: $("message-text"),
    send: $("send"),
  };

  const app = {
    connection: null,
    userName: "",
    groups: new Set(),
    people: new Map(),
    // Connections announced (newConnection) while a whoIsHere call is on its way, and the
    // latest departures: the list the call returns must not undo what they said.
    announced: null,
    gone: new Set(),
    presenceWarned: false,
    restartTimer: null,
    restartAttempt: 0,
  };

  // Keep trying forever: quick at first, then every few seconds (with jitter so a room full of
  // tabs does not reconnect in lock-step after the emulator or the backend restarts).
  const retryPolicy = {
    nextRetryDelayInMilliseconds(context) {
      return backoff(context.previousRetryCount);
    },
  };

  function backoff(attempt) {
    return Math.min(250 * 2 ** attempt, 5000) + Math.floor(Math.random() * 250);
  }

  function hubUrl() {
    const hub = params.get("hub");
    return hub ? `/api/${encodeURIComponent(hub)}` : "/api";
  }

  function transportOption() {
    const wanted = (params.get("transport") || "").toLowerCase();
    const map = {
      websockets: signalR.HttpTransportType.WebSockets,
      serversentevents: signalR.HttpTransportType.ServerSentEvents,
      sse: signalR.HttpTransportType.ServerSentEvents,
      longpolling: signalR.HttpTransportType.LongPolling,
    };
    return map[wanted];
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(script);
    });
  }

  async function hubProtocol() {
    if ((params.get("protocol") || "").toLowerCase() !== "messagepack") {
      return null;
    }
    if (!signalR.protocols || !signalR.protocols.msgpack) {
      await loadScript("/static/vendor/signalr-protocol-msgpack.min.js");
    }
    return new signalR.protocols.msgpack.MessagePackHubProtocol();
  }

  // ---- rendering -------------------------------------------------------------------------

  function setState(state, detail) {
    ui.state.dataset.state = state;
    const labels = {
      connecting: "Connecting…",
      connected: "Connected",
      reconnecting: "Reconnecting…",
      disconnected: "Disconnected",
    };
    ui.stateText.textContent = detail ? `${labels[state]} — ${detail}` : labels[state];
    const online = state === "connected";
    ui.send.disabled = !online;
    $("join").disabled = !online;
    for (const button of ui.groups.querySelectorAll("button")) {
      button.disabled = !online;
    }
    ui.connectionId.textContent = online && app.connection ? app.connection.connectionId : "–";
    renderPeople(); // "(you)" follows the current connection id
  }

  function timeLabel() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function addEntry(kind, parts) {
    const item = document.createElement("li");
    item.className = `msg msg-${kind}`;
    item.dataset.kind = kind;
    const meta = document.createElement("p");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "sender";
    who.textContent = parts.sender;
    meta.append(who);
    if (parts.tag) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = parts.tag;
      meta.append(tag);
    }
    const time = document.createElement("time");
    time.textContent = timeLabel();
    meta.append(time);
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = parts.text;
    item.append(meta, body);
    const nearBottom =
      ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80;
    ui.messages.append(item);
    while (ui.messages.children.length > MAX_MESSAGES) {
      ui.messages.firstElementChild.remove();
    }
    if (nearBottom) {
      ui.messages.scrollTop = ui.messages.scrollHeight;
    }
    return item;
  }

  function note(text, kind = "system") {
    return addEntry(kind, { sender: kind === "error" ? "Error" : "·", text });
  }

  function shortId(id) {
    return id ? String(id).slice(0, 8) : "?";
  }

  // Any argument as readable text: strings as they are, everything else as JSON, so a message
  // that is not the hub's {sender, connectionId, text} object never shows an empty bubble.
  function describe(value) {
    if (typeof value === "string") return value;
    if (value === undefined) return "";
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }

  // newMessage as the sample hub sends it: {sender, connectionId, text, group?, to?}; `to`
  // marks a direct message (sendToUser). Messages sent by a backend (e.g. through the
  // gateway: arguments [{"text": "hi"}] or ["hi"]) have no connection: they come from the
  // server. Extra arguments are shown too, so nothing a sender passed is silently dropped.
  function onNewMessage(message, ...rest) {
    const isObject = message !== null && typeof message === "object" && !Array.isArray(message);
    const m = isObject ? message : {};
    const text = [
      isObject ? ("text" in m ? describe(m.text) : describe(message)) : describe(message),
      ...rest.map(describe),
    ].join(" ");
    const fromConnection = typeof m.connectionId === "string" && m.connectionId !== "";
    const mine = fromConnection && app.connection && m.connectionId === app.connection.connectionId;
    const named = typeof m.sender === "string" && m.sender !== "" ? m.sender : "";
    const sender = named || (fromConnection ? `anonymous ${shortId(m.connectionId)}` : "server");
    const direct = typeof m.to === "string" && m.to !== "";
    let tag = "";
    if (m.group) {
      tag = `# ${m.group}`;
    } else if (direct) {
      tag = mine ? `→ ${m.to}` : "direct message";
    }
    const item = addEntry(mine ? "mine" : "received", {
      sender: mine ? `${sender} (you)` : sender,
      text,
      tag,
    });
    if (m.group) {
      item.dataset.group = String(m.group);
    }
    if (direct) {
      item.dataset.direct = "true";
      item.classList.add("msg-direct");
    }
    if (!fromConnection) {
      item.dataset.origin = "server";
    }
  }

  // One entry per user name (with all their connections), and one per anonymous connection.
  function personKey(connectionId, userId) {
    return userId ? `user:${userId}` : `connection:${connectionId}`;
  }

  // Add one connection to the list. `arrived` (a newConnection message) puts its person at the
  // top with the time; a connection from the whoIsHere listing was there before: it goes to the
  // bottom, and a connection already listed is left as it is (no duplicates either way).
  function addPresence(info, arrived) {
    const i = info || {};
    if (typeof i.connectionId !== "string" || i.connectionId === "") {
      return;
    }
    const connectionId = i.connectionId;
    const userId = typeof i.userId === "string" && i.userId !== "" ? i.userId : null;
    const key = personKey(connectionId, userId);
    const known = app.people.get(key);
    if (!arrived && (app.gone.has(connectionId) || (known && known.connections.has(connectionId)))) {
      return;
    }
    const person = known || { userId, connections: new Set(), connectionId, at: "" };
    person.connections.add(connectionId);
    if (arrived) {
      person.connectionId = connectionId;
      person.at = timeLabel();
      app.people.delete(key);
      app.people.set(key, person);
    } else if (!known) {
      app.people = new Map([[key, person], ...app.people]);
    }
    while (app.people.size > MAX_PEOPLE) {
      app.people.delete(app.people.keys().next().value);
    }
  }

  function removePresence(connectionId) {
    for (const [key, person] of app.people) {
      if (person.connections.delete(connectionId)) {
        if (person.connections.size === 0) {
          app.people.delete(key);
        } else if (person.connectionId === connectionId) {
          person.connectionId = [...person.connections].pop();
        }
      }
    }
  }

  function onNewConnection(info) {
    if (info && app.announced) {
      app.announced.add(info.connectionId);
    }
    addPresence(info, true);
    renderPeople();
  }

  function onConnectionLeft(info) {
    const connectionId = info && info.connectionId;
    if (typeof connectionId !== "string" || connectionId === "") {
      return;
    }
    app.gone.add(connectionId);
    while (app.gone.size > 4 * MAX_PEOPLE) {
      app.gone.delete(app.gone.values().next().value);
    }
    removePresence(connectionId);
    renderPeople();
  }

  // Ask the hub who is connected now (the service's list), so a page that connects after others
  // lists them too. When the answer is complete (shorter than the hub's bound), people not in
  // it have left while this page was away; connections announced meanwhile stay.
  async function syncPresence(connection) {
    const announced = new Set();
    app.announced = announced;
    let present;
    try {
      present = await connection.invoke("whoIsHere");
    } catch (error) {
      if (connection === app.connection && !app.presenceWarned) {
        app.presenceWarned = true;
        note(`Could not list who is here: ${error.message || error}`, "error");
      }
      return;
    } finally {
      if (app.announced === announced) app.announced = null;
    }
    if (connection !== app.connection || !Array.isArray(present)) {
      return;
    }
    if (present.length < MAX_PEOPLE) {
      const listed = new Set(present.map((entry) => entry && entry.connectionId));
      for (const person of [...app.people.values()]) {
        for (const connectionId of [...person.connections]) {
          if (!listed.has(connectionId) && !announced.has(connectionId)) {
            removePresence(connectionId);
          }
        }
      }
    }
    for (const entry of present) {
      addPresence(entry, false);
    }
    renderPeople();
  }

  function renderPeople() {
    ui.people.replaceChildren();
    const entries = [...app.people.entries()].reverse();
    for (const [, person] of entries) {
      const connectionId = person.connectionId;
      const li = document.createElement("li");
      const you = Boolean(app.connection && person.connections.has(app.connection.connectionId));
      li.className = you ? "person you" : "person";
      li.dataset.connectionId = connectionId;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = (person.userId || "anonymous") + (you ? " (you)" : "");
      const id = document.createElement("code");
      id.textContent = shortId(connectionId);
      id.title = connectionId;
      const at = document.createElement("time");
      at.textContent = person.at || "before you";
      li.append(name, id, at);
      if (person.userId && !you) {
        const dm = document.createElement("button");
        dm.type = "button";
        dm.className = "link";
        dm.textContent = "Message";
        dm.setAttribute("aria-label", `Send a direct message to ${person.userId}`);
        dm.addEventListener("click", () => {
          setMode("user");
          ui.recipient.value = person.userId;
          ui.text.focus();
        });
        li.append(dm);
      }
      ui.people.append(li);
    }
    ui.peopleCount.textContent = String(app.people.size);
    ui.peopleEmpty.hidden = app.people.size > 0;
  }

  function renderGroups() {
    ui.groups.replaceChildren();
    const online = ui.state.dataset.state === "connected";
    for (const group of app.groups) {
      const li = document.createElement("li");
      li.className = "chip";
      const name = document.createElement("span");
      name.textContent = group;
      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "chip-leave";
      leave.textContent = "×";
      leave.disabled = !online;
      leave.setAttribute("aria-label", `Leave group ${group}`);
      leave.addEventListener("click", () => leaveGroup(group));
      const use = document.createElement("button");
      use.type = "button";
      use.className = "link";
      use.textContent = "Write";
      use.setAttribute("aria-label", `Write to group ${group}`);
      use.addEventListener("click", () => {
        setMode("group");
        ui.recipient.value = group;
        ui.text.focus();
      });
      li.append(name, use, leave);
      ui.groups.append(li);
    }
    ui.groupsEmpty.hidden = app.groups.size > 0;
  }

  function currentMode() {
    return ui.sendForm.elements.mode.value;
  }

  function setMode(mode) {
    for (const radio of ui.sendForm.elements.mode) {
      radio.checked = radio.value === mode;
    }
    updateRecipient();
  }

  function updateRecipient() {
    const mode = currentMode();
    const needs = mode === "user" || mode === "group";
    ui.recipient.hidden = !needs;
    ui.recipient.required = needs;
    const label = mode === "user" ? "User name" : "Group name";
    ui.recipient.placeholder = label;
    ui.recipientLabel.textContent = label;
    ui.text.placeholder = mode === "echo" ? "Something to echo back…" : "Write a message…";
    ui.send.textContent = mode === "echo" ? "Echo" : "Send";
  }

  // ---- connection --------------------------------------------------------------------------

  // The dev user id goes, as the x-ms-signalr-user-id header, to requests to this page's own
  // origin only (the backend's negotiate). The SignalR Service, on another origin, has no use
  // for it, and its CORS answer need not allow a header it never reads.
  function devUserHttpClient(userName) {
    class DevUserHttpClient extends signalR.HttpClient {
      constructor() {
        super();
        this.inner = new signalR.DefaultHttpClient(signalR.NullLogger.instance);
      }

      send(request) {
        if (new URL(request.url, window.location.href).origin === window.location.origin) {
          request.headers = { ...(request.headers || {}), "x-ms-signalr-user-id": userName };
        }
        return this.inner.send(request);
      }

      getCookieString(url) {
        return this.inner.getCookieString(url);
      }
    }
    return new DevUserHttpClient();
  }

  async function buildConnection(userName) {
    const options = {};
    if (userName) {
      options.httpClient = devUserHttpClient(userName);
    }
    const transport = transportOption();
    if (transport !== undefined) {
      options.transport = transport;
    }
    let builder = new signalR.HubConnectionBuilder()
      .withUrl(hubUrl(), options)
      .withAutomaticReconnect(retryPolicy)
      .configureLogging(signalR.LogLevel.Warning);
    const protocol = await hubProtocol();
    if (protocol) {
      builder = builder.withHubProtocol(protocol);
    }
    const connection = builder.build();
    connection.on("newMessage", onNewMessage);
    connection.on("newConnection", onNewConnection);
    connection.on("connectionLeft", onConnectionLeft);
    connection.onreconnecting((error) => {
      if (connection !== app.connection) return;
      setState("reconnecting", error ? "connection lost" : "");
    });
    connection.onreconnected(() => {
      if (connection !== app.connection) return;
      setState("connected");
      note("Reconnected.");
      rejoinGroups();
      syncPresence(connection);
    });
    connection.onclose(() => {
      if (connection !== app.connection) return;
      // Automatic reconnect gave up, or the service closed us without allowing a reconnect:
      // keep trying anyway, so the page survives restarts of the backend or the emulator.
      setState("disconnected", "retrying");
      scheduleStart(connection);
    });
    return connection;
  }

  async function startConnection(connection) {
    if (connection !== app.connection) return;
    clearTimeout(app.restartTimer);
    setState(app.restartAttempt ? "reconnecting" : "connecting");
    try {
      await connection.start();
    } catch (error) {
      if (connection !== app.connection) return;
      setState("disconnected", "retrying");
      if (app.restartAttempt === 0) {
        note(`Could not connect (${error.message || error}); retrying…`, "error");
      }
      scheduleStart(connection);
      return;
    }
    if (connection !== app.connection) {
      await connection.stop();
      return;
    }
    const again = app.restartAttempt > 0;
    app.restartAttempt = 0;
    setState("connected");
    syncPresence(connection);
    if (again) {
      note("Reconnected.");
      await rejoinGroups();
    }
  }

  function scheduleStart(connection) {
    clearTimeout(app.restartTimer);
    const delay = backoff(app.restartAttempt);
    app.restartAttempt += 1;
    app.restartTimer = setTimeout(() => startConnection(connection), delay);
  }

  async function connect(userName) {
    const previous = app.connection;
    app.userName = userName;
    app.restartAttempt = 0;
    clearTimeout(app.restartTimer);
    app.connection = null;
    if (previous) {
      await previous.stop();
    }
    const connection = await buildConnection(userName);
    app.connection = connection;
    app.groups.clear();
    renderGroups();
    await startConnection(connection);
  }

  // A new connection (after the service restarted, or a fresh negotiate) belongs to no group:
  // join the groups this page was in again.
  async function rejoinGroups() {
    for (const group of [...app.groups]) {
      try {
        await app.connection.invoke("joinGroup", group);
      } catch (error) {
        note(`Could not rejoin ${group}: ${error.message || error}`, "error");
      }
    }
  }

  async function joinGroup(group) {
    try {
      await app.connection.invoke("joinGroup", group);
      app.groups.add(group);
      renderGroups();
      note(`Joined group ${group}.`);
    } catch (error) {
      note(`Join failed: ${error.message || error}`, "error");
    }
  }

  async function leaveGroup(group) {
    try {
      await app.connection.invoke("leaveGroup", group);
      app.groups.delete(group);
      renderGroups();
      note(`Left group ${group}.`);
    } catch (error) {
      note(`Leave failed: ${error.message || error}`, "error");
    }
  }

  async function sendMessage(mode, recipient, text) {
    const c = app.connection;
    if (mode === "all") {
      await c.invoke("broadcast", text);
    } else if (mode === "user") {
      await c.invoke("sendToUser", recipient, text);
      addEntry("outgoing", { sender: "You", tag: `→ ${recipient}`, text });
    } else if (mode === "group") {
      await c.invoke("sendToGroup", recipient, text);
    } else if (mode === "echo") {
      const result = await c.invoke("echo", text);
      addEntry("echo", { sender: "Echo", tag: "invoke result", text: String(result) });
    }
  }

  // ---- wiring -------------------------------------------------------------------------------

  ui.identityForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.userName.value.trim();
    try {
      window.localStorage.setItem("chat.user", name);
    } catch {
      // storage may be disabled; the name still applies to this page
    }
    note(name ? `Connecting as ${name}…` : "Connecting anonymously…");
    connect(name);
  });

  ui.groupForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const group = ui.groupName.value.trim();
    if (!group) return;
    ui.groupName.value = "";
    joinGroup(group);
  });

  ui.sendForm.addEventListener("change", (event) => {
    if (event.target.name === "mode") updateRecipient();
  });

  ui.sendForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const mode = currentMode();
    const text = ui.text.value;
    const recipient = ui.recipient.value.trim();
    if (!text.trim() || ((mode === "user" || mode === "group") && !recipient)) return;
    ui.send.disabled = true;
    try {
      await sendMessage(mode, recipient, text);
      ui.text.value = "";
    } catch (error) {
      note(`Send failed: ${error.message || error}`, "error");
    } finally {
      ui.send.disabled = ui.state.dataset.state !== "connected";
      ui.text.focus();
    }
  });

  window.addEventListener("pagehide", () => {
    const c = app.connection;
    app.connection = null;
    if (c) c.stop();
  });

  if (!signalR) {
    setState("disconnected", "the SignalR client script did not load");
    note("The SignalR browser client is missing: run `make run` (it installs node_modules).", "error");
    return;
  }

  let initial = params.get("user");
  if (initial === null) {
    try {
      initial = window.localStorage.getItem("chat.user") || "";
    } catch {
      initial = "";
    }
  }
  ui.userName.value = initial;
  updateRecipient();
  renderGroups();
  renderPeople();
  connect(initial.trim());
})();
