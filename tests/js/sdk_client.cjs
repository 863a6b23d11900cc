// The official TypeScript SDK client (npm @modelcontextprotocol/sdk) against a
// trio_mcp_http server: driven by tests/test_typescript_client.py.
//
// Usage: node sdk_client.cjs <mcp-url>
// Resolves the SDK through NODE_PATH (conformance/node_modules).  Prints one JSON
// object with what it observed; exits non-zero with a message on any error.
'use strict';

const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { CreateMessageRequestSchema } = require('@modelcontextprotocol/sdk/types.js');

async function main() {
  const url = new URL(process.argv[2]);
  const observed = { samplingRequests: [], progress: [], resumptionTokens: [], transportErrors: [] };

  const client = new Client(
    { name: 'trio-mcp-http-ts-interop', version: '1.0.0' },
    { capabilities: { sampling: {} } }
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    observed.samplingRequests.push(request.params);
    const prompt = request.params.messages[0].content.text;
    return {
      role: 'assistant',
      content: { type: 'text', text: `TS model says: ${prompt.toUpperCase()}` },
      model: 'ts-test-model',
      stopReason: 'endTurn'
    };
  });

  const transport = new StreamableHTTPClientTransport(url, {
    // Reconnect quickly after a dropped stream; the server's retry: hint wins if sent.
    reconnectionOptions: {
      initialReconnectionDelay: 50,
      maxReconnectionDelay: 1000,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 10
    }
  });
  transport.onerror = (error) => observed.transportErrors.push(String(error));
  await client.connect(transport);
  observed.sessionId = transport.sessionId;
  observed.protocolVersion = transport.protocolVersion;
  observed.serverVersion = client.getServerVersion();
  observed.capabilities = client.getServerCapabilities();

  const options = { timeout: 20000 };
  observed.tools = (await client.listTools(undefined, options)).tools.map((t) => t.name);
  observed.echo = await client.callTool({ name: 'echo', arguments: { text: 'hello from node' } }, undefined, options);
  observed.resource = await client.readResource({ uri: 'interop://greeting' }, options);
  observed.sampled = await client.callTool({ name: 'ask_model', arguments: { prompt: 'trio' } }, undefined, options);
  observed.dropped = await client.callTool({ name: 'dropped', arguments: {} }, undefined, {
    ...options,
    onprogress: (progress) => observed.progress.push(progress),
    onresumptiontoken: (token) => observed.resumptionTokens.push(token)
  });

  await transport.terminateSession();
  await client.close();
  process.stdout.write(JSON.stringify(observed));
}

main().catch((error) => {
  process.stderr.write(`sdk_client failed: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
