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
// It is written with paddock_sdk.js, the JavaScript SDK, kept beside this file
// (componentize-js bundles the modules app.js imports): typed errors, a chat
// builder, JSON on the blackboard. An SDK error that `run` does not catch
// ends the run as the agent's own error, with its message.

import {
  AgentError, PaddockError, board, chat, defineAgent, inputObject, log, tools,
} from './paddock_sdk.js';

const ROUTE = 'fast';

export const agent = defineAgent({
  run(input) {
    const args = parseInput(input);
    let hog;
    if (args.allocateMib !== undefined) {
      hog = new Uint8Array(args.allocateMib * 1024 * 1024).fill(1); // touch every page
    }
    if (args.spin) {
      log.warn('spinning until a limit stops me');
      for (;;) {}
    }
    log.info(`greeting ${args.name}`);
    const output = {
      greeting: `Hello, ${args.name}!`,
      visits: addVisits(args.name, 1),
      fun_fact: funFact(args.name),
      language: 'javascript',
    };
    if (args.tool !== undefined) output.tool = useTool(args.tool, args.toolArgs);
    if (hog !== undefined) output.allocated_mib = hog.length / (1024 * 1024);
    return output;
  },

  compensate(input) {
    const { name } = parseInput(input);
    const visits = addVisits(name, -1);
    log.info(`took back a visit of ${name}: ${visits} left`);
  },
});

function parseInput(text) {
  const args = inputObject(text);
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

/**
 * Adds `delta` to visits/<name> (never below 0) and returns the new count.
 * `updateJson` compares and swaps, reading again when another run wrote
 * first, so no visit is lost.
 */
function addVisits(name, delta) {
  const key = `visits/${name}`;
  const { value } = board.updateJson(key, (count = 0) => {
    if (!Number.isInteger(count) || count < 0) throw new AgentError(`blackboard: ${key} does not hold a count`);
    return Math.max(count + delta, 0);
  });
  return value;
}

/** Asks the route; a failure becomes {error} so the greeting still works. */
function funFact(name) {
  try {
    const answer = chat(ROUTE).user(`One fun fact about the name ${name}, in one sentence.`).maxTokens(60).complete();
    return { text: answer.text, provider: answer.provider, model: answer.model };
  } catch (e) {
    if (!(e instanceof PaddockError)) throw e;
    log.warn(`no fun fact: ${e.description}`);
    return { error: e.description };
  }
}

/** Calls a tool; a failure becomes {error} so the greeting still works. */
function useTool(name, toolArgs) {
  try {
    return { text: tools.call(name, toolArgs).text };
  } catch (e) {
    if (!(e instanceof PaddockError)) throw e;
    return { error: e.description };
  }
}
