// One official-client connection with stateful reconnect (withStatefulReconnect), for tests.
//
//   node stateful_reconnect.mjs <url> <accessToken> [bufferSize]
//
// Connects over WebSockets (negotiating, so the server can grant stateful reconnect) and
// writes JSON lines on stdout:
//   {"event":"started","connectionId":...}    once started
//   {"event":"seq","n":N}                      for every "seq" message, in arrival order
//   {"event":"closed","error":...}             when the connection closes (onclose)
//   {"event":"reply","req":R,"ok":...,...}     for each stdin command
// Stdin commands, one JSON object a line: {"cmd":"invoke","req":R,"target":T,"args":[...]},
// {"cmd":"stop","req":R}. Stdin closing stops the connection and exits.
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const signalR = require("@microsoft/signalr");

const [url, token, bufferText] = process.argv.slice(2);
const write = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const connection = new signalR.HubConnectionBuilder()
  .withUrl(url, {
    transport: signalR.HttpTransportType.WebSockets,
    accessTokenFactory: () => token,
  })
  .withStatefulReconnect(bufferText ? { bufferSize: Number(bufferText) } : undefined)
  .configureLogging(signalR.LogLevel.None)
  .build();

connection.on("seq", (n) => write({ event: "seq", n }));
connection.onclose((error) => write({ event: "closed", error: error ? String(error.message ?? error) : null }));

try {
  await connection.start();
  write({ event: "started", connectionId: connection.connectionId });
} catch (error) {
  write({ event: "closed", error: String(error.message ?? error) });
  process.exit(0);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const command = JSON.parse(line);
  try {
    if (command.cmd === "invoke") {
      const result = await connection.invoke(command.target, ...command.args);
      write({ event: "reply", req: command.req, ok: true, result });
    } else if (command.cmd === "stop") {
      await connection.stop();
      write({ event: "reply", req: command.req, ok: true, result: null });
    }
  } catch (error) {
    write({ event: "reply", req: command.req, ok: false, error: String(error.message ?? error) });
  }
});
lines.on("close", async () => {
  await connection.stop().catch(() => {});
  process.exit(0);
});
