#!/usr/bin/env node
// Test-only Standard Webhooks receiver for taskq's TAP tests.
//
// Verifies every POST with the official `standardwebhooks` package (an
// implementation independent of taskq's C code) and appends one JSON line
// per request to a log file that the tests read.  Never use in production.
//
// Usage:
//   node receiver.js --port PORT [--host 127.0.0.1] --secret SECRET --log FILE
//                    [--status CODE] [--fail-first N] [--delay-ms MS]
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const USAGE =
  "usage: node receiver.js --port PORT [--host 127.0.0.1] --secret SECRET " +
  "--log FILE [--status CODE] [--fail-first N] [--delay-ms MS]";

function die(msg) {
  process.stderr.write(`webhook-receiver: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    port: null,
    host: "127.0.0.1",
    secret: null,
    log: null,
    status: 204,
    failFirst: 0,
    delayMs: 0,
  };
  const names = {
    "--port": "port",
    "--host": "host",
    "--secret": "secret",
    "--log": "log",
    "--status": "status",
    "--fail-first": "failFirst",
    "--delay-ms": "delayMs",
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    const key = names[arg];
    if (!key) die(`unknown argument: ${arg}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) die(`missing value for ${arg}`);
      value = argv[++i];
    }
    opts[key] = value;
  }
  if (opts.port === null) die("--port is required");
  if (opts.secret === null || opts.secret === "") die("--secret is required");
  if (opts.log === null || opts.log === "") die("--log is required");

  const int = (name, v, min, max) => {
    if (typeof v === "number") return v;
    if (!/^\d+$/.test(v)) die(`${name} must be a non-negative integer: ${v}`);
    const n = Number(v);
    if (n < min || n > max) die(`${name} out of range [${min}, ${max}]: ${v}`);
    return n;
  };
  opts.port = int("--port", opts.port, 0, 65535);
  opts.status = int("--status", opts.status, 100, 599);
  opts.failFirst = int("--fail-first", opts.failFirst, 0, Number.MAX_SAFE_INTEGER);
  opts.delayMs = int("--delay-ms", opts.delayMs, 0, 2147483647);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// A "whsec_..." secret is base64-decoded by the package (standard alphabet,
// padding required).  Anything else is taken as the raw key bytes: pass a
// Buffer of its UTF-8 bytes, because with a *string* the package's raw mode
// keeps only the low byte of each UTF-16 code unit.
let wh;
try {
  wh = opts.secret.startsWith("whsec_")
    ? new Webhook(opts.secret)
    : new Webhook(Buffer.from(opts.secret, "utf8"), { format: "raw" });
} catch (e) {
  die(`bad --secret: ${e.message}`);
}

// Fail early if the log file cannot be written.
try {
  fs.appendFileSync(opts.log, "");
} catch (e) {
  die(`cannot open --log ${opts.log}: ${e.message}`);
}

const header = (req, name) => {
  const v = req.headers[name];
  return v === undefined ? null : v;
};

let postCount = 0;
const timers = new Set();

const server = http.createServer((req, res) => {
  const path = (req.url || "/").split("?")[0];
  if (req.method !== "POST") {
    // Not logged, not counted: lets a harness probe that the port is up.
    req.resume();
    res.writeHead(req.method === "GET" ? 200 : 405, { "content-type": "text/plain" });
    res.end(req.method === "GET" ? "webhook-receiver\n" : "POST only\n");
    return;
  }

  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("error", () => {});
  req.on("end", () => {
    postCount += 1;
    const raw = Buffer.concat(chunks);
    const text = raw.toString("utf8");

    let verified = false;
    let verifyError = null;
    try {
      // jsonParse:false -- by default verify() JSON.parse()s the payload
      // *after* the signature matched and would throw on a non-JSON body.
      wh.verify(raw, req.headers, { jsonParse: false });
      verified = true;
    } catch (e) {
      verifyError = e && e.message ? e.message : String(e);
    }

    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }

    const status = postCount <= opts.failFirst ? 500 : opts.status;
    const entry = {
      id: header(req, "webhook-id"),
      timestamp: header(req, "webhook-timestamp"),
      signature: header(req, "webhook-signature"),
      verified,
      verify_error: verifyError,
      body,
      received_at_ms: Date.now(),
      status,
      path,
    };
    // Written synchronously, before the (possibly delayed) answer, so a test
    // sees the delivery attempt even if the sender times out and hangs up.
    fs.appendFileSync(opts.log, `${JSON.stringify(entry)}\n`);

    const answer = () => {
      timers.delete(t);
      if (res.destroyed || res.writableEnded) return;
      const hasBody = status !== 204 && status !== 304 && status >= 200;
      res.writeHead(status, hasBody ? { "content-type": "text/plain" } : {});
      res.end(hasBody ? `${status}\n` : undefined);
    };
    const t = opts.delayMs > 0 ? setTimeout(answer, opts.delayMs) : null;
    if (t) timers.add(t);
    else answer();
  });
});

server.on("error", (e) => {
  process.stderr.write(`webhook-receiver: ${e.message}\n`);
  process.exit(1);
});

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  for (const t of timers) clearTimeout(t);
  timers.clear();
  server.close(() => process.exit(0));
  if (typeof server.closeAllConnections === "function") server.closeAllConnections();
  // Belt and braces: never hang around after SIGTERM.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
