// Drives the official @microsoft/signalr client for the Python tests (tests/support/node.py).
//
// Reads one JSON command per line on stdin, writes one JSON event per line on stdout.
// One process hosts any number of connections, each named by a "cid" chosen by Python.
//
// Commands:
//   {"cmd":"connect","cid","req","url","transport","protocol","accessToken","headers",
//    "targets":[...],"results":[...],"reconnect":false|true|"default","skipNegotiation":false,
//    "logLevel":"None"}   (handlers of "results" targets return their first argument)
//   {"cmd":"invoke"|"send","cid","req","target","args":[...]}
//   {"cmd":"invokeTypeOf",...as invoke}  (replies "null", "undefined", "string", ... of the
//                                          value invoke() resolved to: replies turn undefined
//                                          into null)
//   {"cmd":"stop","cid","req"}
//   {"cmd":"exit"}
// Events:
//   {"event":"reply","req","ok":true,"result"}     {"event":"reply","req","ok":false,"error"}
//   {"event":"message","cid","target","args"}      {"event":"closed","cid","error"}
//   {"event":"reconnecting","cid","error"}         {"event":"reconnected","cid","connectionId"}
// Byte arrays (MessagePack bin) travel as {"$bytes": "<base64>"} both ways; {"$date": "<ISO>"}
// becomes a Date (sent only).
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const signalR = require("@microsoft/signalr");
const msgpack = require("@microsoft/signalr-protocol-msgpack");

const connections = new Map();

function emit(event) {
  process.stdout.write(JSON.stringify(event, toWire) + "\n");
}

function toWire(key, value) {
  if (value instanceof Uint8Array || (typeof Buffer !== "undefined" && Buffer.isBuffer(value))) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (value && value.type === "Buffer" && Array.isArray(value.data)) {
    return { $bytes: Buffer.from(value.data).toString("base64") };
  }
  return value;
}

function fromWire(value) {
  if (Array.isArray(value)) return value.map(fromWire);
  if (value && typeof value === "object") {
    if (typeof value.$bytes === "string" && Object.keys(value).length === 1) {
      return new Uint8Array(Buffer.from(value.$bytes, "base64"));
    }
    if (typeof value.$date === "string" && Object.keys(value).length === 1) {
      return new Date(value.$date);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromWire(v)]));
  }
  return value;
}

function errorText(err) {
  if (!err) return null;
  return err.message ? String(err.message) : String(err);
}

async function connect(cmd) {
  const options = {
    transport: signalR.HttpTransportType[cmd.transport || "WebSockets"],
    skipNegotiation: !!cmd.skipNegotiation,
  };
  if (cmd.accessToken) options.accessTokenFactory = () => cmd.accessToken;
  if (cmd.headers) options.headers = cmd.headers;
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(cmd.url, options)
    .configureLogging(signalR.LogLevel[cmd.logLevel || "None"]);
  if (cmd.protocol === "messagepack") {
    builder = builder.withHubProtocol(new msgpack.MessagePackHubProtocol());
  }
  if (cmd.reconnect === "default") builder = builder.withAutomaticReconnect(); // 0, 2, 10, 30 s
  else if (cmd.reconnect) builder = builder.withAutomaticReconnect([0, 200, 500, 1000, 2000]);
  const connection = builder.build();
  if (cmd.serverTimeoutMs) connection.serverTimeoutInMilliseconds = cmd.serverTimeoutMs;
  if (cmd.keepAliveMs) connection.keepAliveIntervalInMilliseconds = cmd.keepAliveMs;
  const results = new Set(cmd.results || []);
  for (const target of new Set([...(cmd.targets || []), ...results])) {
    connection.on(target, (...args) => {
      emit({ event: "message", cid: cmd.cid, target, args });
      return results.has(target) ? args[0] : undefined; // client results for :invoke
    });
  }
  connection.onclose((err) => emit({ event: "closed", cid: cmd.cid, error: errorText(err) }));
  connection.onreconnecting((err) =>
    emit({ event: "reconnecting", cid: cmd.cid, error: errorText(err) }));
  connection.onreconnected((id) =>
    emit({ event: "reconnected", cid: cmd.cid, connectionId: id ?? null }));
  connections.set(cmd.cid, connection);
  await connection.start();
  return { connectionId: connection.connectionId ?? null };
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case "connect":
      return connect(cmd);
    case "invoke":
      return connections.get(cmd.cid).invoke(cmd.target, ...fromWire(cmd.args || []));
    case "invokeTypeOf": {
      const value = await connections.get(cmd.cid).invoke(cmd.target, ...fromWire(cmd.args || []));
      return value === null ? "null" : typeof value;
    }
    case "send":
      await connections.get(cmd.cid).send(cmd.target, ...fromWire(cmd.args || []));
      return null;
    case "stop": {
      const connection = connections.get(cmd.cid);
      if (connection) await connection.stop();
      connections.delete(cmd.cid);
      return null;
    }
    case "exit":
      await Promise.allSettled([...connections.values()].map((c) => c.stop()));
      process.exit(0);
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  handle(cmd).then(
    (result) => emit({ event: "reply", req: cmd.req, ok: true, result: result ?? null }),
    (err) => emit({ event: "reply", req: cmd.req, ok: false, error: errorText(err) }),
  );
});
lines.on("close", async () => {
  await Promise.allSettled([...connections.values()].map((c) => c.stop()));
  process.exit(0);
});
