'use strict';
// Runs one official centrifuge-js client for tests/conformance/test_js_sdk.py.
//
// Usage: node driver.js <ws url> <channel> [<first subscription token>]
// stdout: one JSON object per line, {"event": ..., ...}, for every SDK event, and
//         {"event": "token_request", "id": n, "kind": "connection" | "subscription"} when the SDK
//         needs a token.
// stdin:  one JSON object per line: {"token": n, "value": "<jwt>"} answers token request n;
//         {"cmd": "exit"} disconnects and exits. The process also exits when stdin closes.
// With a first subscription token the SDK sends its subscribe in the same frame as connect.

const readline = require('node:readline');
const WebSocket = require('ws');
const { Centrifuge } = require('centrifuge');

const [url, channel, firstSubscriptionToken] = process.argv.slice(2);
const pendingTokens = new Map();
let lastRequest = 0;

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function requestToken(kind) {
  lastRequest += 1;
  const id = lastRequest;
  emit('token_request', { id, kind });
  return new Promise((resolve) => pendingTokens.set(id, resolve));
}

function errorFields(ctx) {
  return { type: ctx.type, code: ctx.error.code, message: ctx.error.message };
}

const client = new Centrifuge(url, {
  websocket: WebSocket, // Node 20 has no global WebSocket
  getToken: () => requestToken('connection'),
  minReconnectDelay: 500, // long enough for the test to publish while the client is away
  maxReconnectDelay: 1000,
});
client.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
client.on('connected', (ctx) => emit('connected', { client: ctx.client }));
client.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
client.on('error', (ctx) => emit('error', errorFields(ctx)));

const sub = client.newSubscription(channel, {
  token: firstSubscriptionToken || '',
  getToken: () => requestToken('subscription'),
  minResubscribeDelay: 500,
  maxResubscribeDelay: 1000,
});
sub.on('subscribing', (ctx) => emit('subscribing', { code: ctx.code, reason: ctx.reason }));
sub.on('subscribed', (ctx) =>
  emit('subscribed', {
    recoverable: ctx.recoverable,
    positioned: ctx.positioned,
    wasRecovering: ctx.wasRecovering,
    recovered: ctx.recovered,
    streamPosition: ctx.streamPosition,
  }),
);
sub.on('unsubscribed', (ctx) => emit('unsubscribed', { code: ctx.code, reason: ctx.reason }));
sub.on('publication', (ctx) => emit('publication', { data: ctx.data, offset: ctx.offset }));
sub.on('error', (ctx) => emit('sub_error', errorFields(ctx)));

readline
  .createInterface({ input: process.stdin })
  .on('line', (line) => {
    const message = JSON.parse(line);
    if (message.cmd === 'exit') {
      client.disconnect();
      process.exit(0);
    }
    const resolve = pendingTokens.get(message.token);
    pendingTokens.delete(message.token);
    resolve(message.value);
  })
  .on('close', () => process.exit(0));

sub.subscribe();
client.connect();
