// An independent MCP client for weir's e2e tests: the TypeScript SDK from
// npm over streamable HTTP with the weir token as bearer. It runs the calls
// named on the command line and prints one JSON object with what it saw.
//
// env: WEIR_MCP_URL, WEIR_TOKEN, MCP_SDK (the SDK's dist/esm directory).
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const sdk = process.env.MCP_SDK;
const { Client } = await import(pathToFileURL(join(sdk, 'client/index.js')).href);
const { StreamableHTTPClientTransport } = await import(pathToFileURL(join(sdk, 'client/streamableHttp.js')).href);

const transport = new StreamableHTTPClientTransport(new URL(process.env.WEIR_MCP_URL), {
  requestInit: { headers: { Authorization: `Bearer ${process.env.WEIR_TOKEN}` } },
});
const client = new Client({ name: 'e2e-typescript', version: '1.2.3' });
const out = {};
try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  const calls = JSON.parse(process.argv[2] || '[]');
  out.calls = [];
  for (const c of calls) {
    const r = await client.callTool({ name: c.name, arguments: c.arguments });
    out.calls.push({ name: c.name, isError: !!r.isError, text: r.content.map((x) => x.text).join(''), structured: r.structuredContent });
  }
  await transport.terminateSession();
  await client.close();
} catch (e) {
  out.error = String(e && e.message ? e.message : e);
}
console.log(JSON.stringify(out));
