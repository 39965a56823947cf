#!/usr/bin/env node
// Test-only client of taskq serve's GET /api/v1/events, as a WebSocket
// (the `ws` package: an implementation independent of taskq's) or as
// Server-Sent Events (--sse, parsed here).  One JSON line per thing that
// happens is appended to --log:
//   {"type":"open"}                      connected (101, or 200 for SSE)
//   {"type":"message","id","event","data"}  an event (id, event: SSE only)
//   {"type":"close","code","reason"}     WebSocket close frame received
//   {"type":"end"}                       SSE stream ended by the server
//   {"type":"error","status","body"}     refused (non-101 / non-200)
// --pause: do not read from the socket until SIGUSR1 (a slow consumer);
// its messages are then only counted ("messages" of the close line).
// Usage: node events-client.js --url URL --token TOKEN --log FILE
//        [--sse] [--last-event-id N] [--pause]
'use strict';

const fs = require('fs');
const http = require('http');
const WebSocket = require('ws');

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--sse' || a === '--pause') args[a.slice(2)] = true;
  else args[a.slice(2)] = process.argv[++i];
}
if (!args.url || !args.log) {
  console.error('usage: events-client.js --url URL --token TOKEN --log FILE [--sse] [--last-event-id N] [--pause]');
  process.exit(2);
}

function log(obj) {
  fs.appendFileSync(args.log, JSON.stringify(obj) + '\n');
}

const headers = {};
if (args.token) headers.Authorization = 'Bearer ' + args.token;
if (args['last-event-id']) headers['Last-Event-ID'] = args['last-event-id'];

let messages = 0;

if (!args.sse) {
  const ws = new WebSocket(args.url, { headers });
  ws.on('open', () => {
    log({ type: 'open' });
    if (args.pause) {
      ws.pause();
      // a paused socket keeps no event loop alive: this does, until SIGUSR1
      const alive = setInterval(() => {}, 1 << 30);
      process.on('SIGUSR1', () => { clearInterval(alive); ws.resume(); });
    }
  });
  ws.on('message', (data) => {
    messages++;
    if (args.pause) return;
    let parsed;
    try { parsed = JSON.parse(data.toString()); } catch (e) { parsed = data.toString(); }
    log({ type: 'message', data: parsed });
  });
  ws.on('close', (code, reason) => {
    log({ type: 'close', code, reason: reason.toString(), messages });
    process.exit(0);
  });
  ws.on('unexpected-response', (req, res) => {
    let body = '';
    res.on('data', (c) => { body += c; });
    res.on('end', () => {
      log({ type: 'error', status: res.statusCode, body });
      process.exit(0);
    });
  });
  ws.on('error', (err) => {
    log({ type: 'error', status: 0, body: String(err) });
  });
} else {
  headers.Accept = 'text/event-stream';
  const req = http.get(args.url, { headers }, (res) => {
    if (res.statusCode !== 200) {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        log({ type: 'error', status: res.statusCode, body });
        process.exit(0);
      });
      return;
    }
    log({ type: 'open', contentType: res.headers['content-type'] });
    if (args.pause) {
      res.pause();
      const alive = setInterval(() => {}, 1 << 30);
      process.on('SIGUSR1', () => { clearInterval(alive); res.resume(); });
    }
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      buf += chunk;
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const msg = { type: 'message' };
        let data = null;
        for (const line of frame.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'id') msg.id = value;
          else if (field === 'event') msg.event = value;
          else if (field === 'data') data = data === null ? value : data + '\n' + value;
        }
        if (data === null) continue;   // a comment or retry: only
        try { msg.data = JSON.parse(data); } catch (e) { msg.data = data; }
        log(msg);
      }
    });
    res.on('end', () => {
      log({ type: 'end' });
      process.exit(0);
    });
  });
  req.on('error', (err) => {
    log({ type: 'error', status: 0, body: String(err) });
    process.exit(0);
  });
}
process.on('SIGTERM', () => process.exit(0));
