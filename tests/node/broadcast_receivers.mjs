// Benchmark receivers: N official-client connections that count "newMessage" messages.
//
//   node broadcast_receivers.mjs <url> <count> <protocol json|messagepack> [accessToken]
//
// Connects over WebSockets with skipNegotiation (so a bare server that only speaks the hub
// protocol over WebSocket can be measured the same way), then prints {"ready": count}.
// Each stdin line "expect <total>" is answered with {"done": total} once that many
// messages arrived in all (counted since start). Stdin closing stops everything.
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const signalR = require("@microsoft/signalr");
const msgpack = require("@microsoft/signalr-protocol-msgpack");

const [url, countText, protocol = "json", token = ""] = process.argv.slice(2);
const count = Number(countText);
let received = 0;
let waiting = null;

function check() {
  if (waiting !== null && received >= waiting) {
    process.stdout.write(JSON.stringify({ done: waiting }) + "\n");
    waiting = null;
  }
}

const connections = [];
for (let i = 0; i < count; i++) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(url, {
      transport: signalR.HttpTransportType.WebSockets,
      skipNegotiation: true,
      ...(token ? { accessTokenFactory: () => token } : {}),
    })
    .configureLogging(signalR.LogLevel.None);
  if (protocol === "messagepack") builder = builder.withHubProtocol(new msgpack.MessagePackHubProtocol());
  const connection = builder.build();
  connection.on("newMessage", () => {
    received++;
    check();
  });
  connections.push(connection);
}
const batch = 50;
for (let i = 0; i < connections.length; i += batch) {
  await Promise.all(connections.slice(i, i + batch).map((c) => c.start()));
}
process.stdout.write(JSON.stringify({ ready: count }) + "\n");

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const [cmd, value] = line.trim().split(/\s+/);
  if (cmd === "expect") {
    waiting = Number(value);
    check();
  }
});
lines.on("close", async () => {
  await Promise.allSettled(connections.map((c) => c.stop()));
  process.exit(0);
});
