// An MCP server written with the official TypeScript SDK (npm @modelcontextprotocol/sdk),
// for the Trio client to talk to: driven by tests/test_client_ts.py.
//
// Usage: node ts_server.cjs
// Resolves the SDK through NODE_PATH (conformance/node_modules).  Listens on 127.0.0.1
// port 0 and prints the port on one line once it listens.  Speaks the SDK's own
// revisions (2025 sessions); every session gets a Server and a resumable transport (an
// in-memory event store, a retry hint of RETRY_MS).
'use strict';

const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { Server } = require('@modelcontextprotocol/sdk/server/index.js');
const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js');
const {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ErrorCode
} = require('@modelcontextprotocol/sdk/types.js');

const RETRY_MS = 200;

// Every event of every stream, in order; replayed per stream after a Last-Event-ID.
class MemoryEventStore {
  constructor() {
    this.events = [];
  }
  async storeEvent(streamId, message) {
    const eventId = String(this.events.length + 1);
    this.events.push({ eventId, streamId, message });
    return eventId;
  }
  async getStreamIdForEventId(eventId) {
    const event = this.events.find((e) => e.eventId === eventId);
    return event && event.streamId;
  }
  async replayEventsAfter(lastEventId, { send }) {
    const index = this.events.findIndex((e) => e.eventId === lastEventId);
    if (index < 0) throw new Error(`unknown event id ${lastEventId}`);
    const streamId = this.events[index].streamId;
    for (const event of this.events.slice(index + 1)) {
      if (event.streamId === streamId) await send(event.eventId, event.message);
    }
    return streamId;
  }
}

// What became of each `hold` call, by key, shared by sessions: `wait_started` answers
// once it runs, `wait_cancelled` once it has seen its abort signal (the client's
// notifications/cancelled).
const moments = new Map();
function moment(name) {
  if (!moments.has(name)) {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    moments.set(name, { promise, resolve });
  }
  return moments.get(name);
}

const TOOLS = [
  {
    name: 'echo',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }
  },
  {
    name: 'add',
    inputSchema: {
      type: 'object',
      properties: { a: { type: 'integer' }, b: { type: 'integer' } },
      required: ['a', 'b']
    },
    outputSchema: { type: 'object', properties: { sum: { type: 'integer' } }, required: ['sum'] }
  },
  { name: 'ask', inputSchema: { type: 'object', properties: {} } },
  { name: 'poll', inputSchema: { type: 'object', properties: {} } },
  { name: 'hold', inputSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] } },
  {
    name: 'wait_started',
    inputSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] }
  },
  {
    name: 'wait_cancelled',
    inputSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] }
  }
];

function text(value) {
  return { content: [{ type: 'text', text: value }] };
}

function progress(extra, step, total, message) {
  const token = extra._meta && extra._meta.progressToken;
  if (token === undefined) return Promise.resolve();
  return extra.sendNotification({
    method: 'notifications/progress',
    params: { progressToken: token, progress: step, total, message }
  });
}

function newServer() {
  const server = new Server({ name: 'ts-peer', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const args = request.params.arguments || {};
    switch (request.params.name) {
      case 'echo':
        return text(args.text);
      case 'add': {
        const sum = args.a + args.b;
        return { ...text(String(sum)), structuredContent: { sum } };
      }
      case 'ask': {
        const answer = await server.elicitInput({
          message: 'Name?',
          requestedSchema: {
            type: 'object',
            properties: { name: { type: 'string' }, title: { type: 'string', default: 'Dr' } },
            required: ['name']
          }
        });
        if (answer.action !== 'accept') return text(answer.action);
        return text(`Hello ${answer.content.title} ${answer.content.name}`);
      }
      case 'poll': {
        // SSE polling: end this response's stream; the rest goes to the event store
        // and reaches the client when it resumes with Last-Event-ID.
        await progress(extra, 1, 2, 'before');
        extra.closeSSEStream();
        await new Promise((r) => setTimeout(r, 50));
        await progress(extra, 2, 2, 'after');
        return text('polled');
      }
      case 'hold':
        await new Promise((resolve) => {
          extra.signal.addEventListener('abort', () => {
            moment(`cancelled ${args.key}`).resolve();
            resolve();
          });
          moment(`started ${args.key}`).resolve();
        });
        return text('cancelled');
      case 'wait_started':
        await moment(`started ${args.key}`).promise;
        return text(`${args.key} started`);
      case 'wait_cancelled':
        await moment(`cancelled ${args.key}`).promise;
        return text(`${args.key} was cancelled`);
      default:
        throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
    }
  });
  return server;
}

const transports = new Map();

async function handle(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
  const sessionId = req.headers['mcp-session-id'];
  let transport = sessionId && transports.get(sessionId);
  if (!transport) {
    if (sessionId || !body || body.method !== 'initialize') {
      res.writeHead(sessionId ? 404 : 400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'No session' } }));
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new MemoryEventStore(),
      retryInterval: RETRY_MS,
      onsessioninitialized: (id) => transports.set(id, transport)
    });
    transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
    await newServer().connect(transport);
  }
  await transport.handleRequest(req, res, body);
}

const httpServer = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error(error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
httpServer.listen(0, '127.0.0.1', () => {
  console.log(httpServer.address().port);
});
process.on('SIGTERM', () => {
  for (const transport of transports.values()) transport.close();
  httpServer.close(() => process.exit(0));
  httpServer.closeAllConnections();
});
