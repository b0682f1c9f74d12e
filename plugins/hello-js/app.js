// A Paddock agent in JavaScript: greets by name, counts visits on the
// blackboard, and asks the "fast" route for a fun fact.
//
// Input (JSON object): "name" (default "world"); "spin": true loops until a
// limit stops it; "allocate_mib": N holds N MiB while it works (to see the
// memory cap); "tool": "server/tool" calls that tool of the operator's MCP
// servers with "tool_args" (an object, default {}), once the manifest's
// `capabilities.tools` asks for it. Output: {"greeting", "visits", "fun_fact":
// {"text", "provider", "model"} or {"error"}, "language"}, and "tool":
// {"text"} or {"error"} when one was called. `compensate` takes back the visit.
//
// componentize-js maps the WIT `result<T, string>` of an export to a return
// value or a thrown error whose `payload` is the error text; an import's error
// is thrown with `payload` set to the WIT variant, `{ tag, val }`. WIT u64
// values are BigInts, list<u8> is a Uint8Array, option<T> is T or undefined.

import { complete } from 'paddock:agent/llm@0.1.0';
import { compareAndSwap, get } from 'paddock:agent/blackboard@0.1.0';
import { log } from 'paddock:agent/log@0.1.0';
import { call as callTool } from 'paddock:agent/tools@0.1.0';

const ROUTE = 'fast';
// A compare-and-swap loses only to another writer of the same key; give up
// after this many losses in a row rather than loop for ever.
const MAX_CONFLICTS = 10;

/** The agent's own failure: its message becomes the WIT `err`. */
class AgentError extends Error {
  constructor(message) {
    super(message);
    this.payload = message;
  }
}

export const agent = {
  run(input) {
    const args = parseInput(input);
    let hog;
    if (args.allocateMib !== undefined) {
      hog = new Uint8Array(args.allocateMib * 1024 * 1024).fill(1); // touch every page
    }
    if (args.spin) {
      log('warn', 'spinning until a limit stops me');
      for (;;) {}
    }
    log('info', `greeting ${args.name}`);
    const output = {
      greeting: `Hello, ${args.name}!`,
      visits: addVisits(args.name, 1),
      fun_fact: funFact(args.name),
      language: 'javascript',
    };
    if (args.tool !== undefined) output.tool = useTool(args.tool, args.toolArgs);
    if (hog !== undefined) output.allocated_mib = hog.length / (1024 * 1024);
    return JSON.stringify(output);
  },

  compensate(input) {
    const { name } = parseInput(input);
    const visits = addVisits(name, -1);
    log('info', `took back a visit of ${name}: ${visits} left`);
  },
};

function parseInput(text) {
  let args;
  try {
    args = JSON.parse(text);
  } catch {
    args = undefined;
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new AgentError('input must be a JSON object');
  }
  const name = args.name ?? 'world';
  if (typeof name !== 'string' || name === '') {
    throw new AgentError('input.name must be a non-empty string');
  }
  const mib = args.allocate_mib ?? undefined;
  if (mib !== undefined && !(Number.isInteger(mib) && mib >= 0 && mib <= 4096)) {
    throw new AgentError('input.allocate_mib must be a whole number from 0 to 4096');
  }
  const tool = args.tool ?? undefined;
  if (tool !== undefined && (typeof tool !== 'string' || tool === '')) {
    throw new AgentError('input.tool must be a tool name like "server/tool"');
  }
  const toolArgs = args.tool_args ?? {};
  if (typeof toolArgs !== 'object' || Array.isArray(toolArgs)) {
    throw new AgentError('input.tool_args must be a JSON object');
  }
  return { name, spin: args.spin === true, allocateMib: mib, tool, toolArgs };
}

/** Adds `delta` to visits/<name> (never below 0) and returns the new count. */
function addVisits(name, delta) {
  const key = `visits/${name}`;
  for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
    let entry;
    try {
      entry = get(key);
    } catch (e) {
      throw new AgentError(`blackboard: ${describeBoardError(e.payload)}`);
    }
    let count = 0;
    if (entry !== undefined) {
      const text = new TextDecoder().decode(entry.value);
      if (!/^[0-9]+$/.test(text)) throw new AgentError(`blackboard: ${key} does not hold a count`);
      count = Number(text);
    }
    count = Math.max(count + delta, 0);
    try {
      compareAndSwap(key, entry?.revision ?? 0n, new TextEncoder().encode(String(count)));
      return count;
    } catch (e) {
      if (e.payload?.tag !== 'conflict') throw new AgentError(`blackboard: ${describeBoardError(e.payload)}`);
    }
  }
  throw new AgentError(`blackboard: ${key} changed ${MAX_CONFLICTS} times in a row; giving up`);
}

/** Asks the route; a failure becomes {error} so the greeting still works. */
function funFact(name) {
  try {
    const answer = complete({
      route: ROUTE,
      messages: [{ role: 'user', content: `One fun fact about the name ${name}, in one sentence.`, toolCalls: [] }],
      tools: [],
      maxTokens: 60,
      stop: [],
    });
    return { text: answer.text, provider: answer.provider, model: answer.model };
  } catch (e) {
    const why = describeLlmError(e.payload);
    log('warn', `no fun fact: ${why}`);
    return { error: why };
  }
}

/** Calls a tool; a failure becomes {error} so the greeting still works. */
function useTool(name, toolArgs) {
  try {
    return { text: callTool(name, JSON.stringify(toolArgs)).text };
  } catch (e) {
    return { error: describeToolError(e.payload) };
  }
}

function describeToolError(error) {
  switch (error?.tag) {
    case 'denied': return `denied: ${error.val}`;
    case 'invalid-arguments': return `invalid arguments: ${error.val}`;
    case 'failed': return `failed: ${error.val}`;
    case 'timeout': return `timed out: ${error.val}`;
    case 'unavailable': return `unavailable: ${error.val}`;
    case 'budget-exceeded': return `budget exceeded: ${error.val}`;
    case 'rate-limited': return `rate limited: retry after ${error.val} ms`;
    default: return `unknown error ${String(error)}`;
  }
}

function describeLlmError(error) {
  switch (error?.tag) {
    case 'denied': return `denied: ${error.val}`;
    case 'budget-exceeded': return `budget exceeded: ${error.val}`;
    case 'rate-limited': return `rate limited: retry after ${error.val} ms`;
    case 'invalid-request': return `invalid request: ${error.val}`;
    case 'content-filtered': return `content filtered: ${error.val}`;
    case 'timeout': return 'timed out';
    case 'unavailable': return `unavailable: ${error.val}`;
    default: return `unknown error ${String(error)}`;
  }
}

function describeBoardError(error) {
  switch (error?.tag) {
    case 'denied': return `denied: ${error.val}`;
    case 'conflict': return `conflict: now at revision ${error.val}`;
    case 'too-large': return `too large: the limit is ${error.val} bytes`;
    case 'quota-exceeded': return `quota exceeded: ${error.val}`;
    case 'lagged': return `lagged: resume after revision ${error.val}`;
    case 'unavailable': return `unavailable: ${error.val}`;
    default: return `unknown error ${String(error)}`;
  }
}
