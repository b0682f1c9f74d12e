// Write Paddock agents in JavaScript: a small layer over the imports
// componentize-js makes of `wit/`, in one ES module kept beside app.js
// (componentize-js bundles what app.js imports from its folder).
//
//   import { board, chat, defineAgent, inputObject, log } from './paddock_sdk.js';
//
//   export const agent = defineAgent({
//     run(input) {
//       const name = inputObject(input).name ?? 'world';
//       log.info(`greeting ${name}`);
//       const { value: visits } = board.updateJson(`visits/${name}`, (n) => (n ?? 0) + 1);
//       const fact = chat('fast').user(`A fun fact about ${name}?`).maxTokens(60).complete();
//       return { greeting: `Hello, ${name}!`, visits, fact: fact.text };
//     },
//   });
//
// Every host call throws a `PaddockError` subclass naming the case (`Denied`,
// `RateLimited` with `retryAfterMs`, `Conflict` with `revision`...) where the
// imports throw an error whose `payload` is the WIT variant. One that `run`
// does not catch ends the invocation as the agent's own error, with its
// message as the text. Revisions are BigInts, as the imports give them.
//
// Unlike the Rust and Python SDKs, there is no `context` (run id, flow step,
// attempt): componentize-js gives a program no environment variables.

import * as rawAgents from 'paddock:agent/agents@0.1.0';
import * as rawApproval from 'paddock:agent/approval@0.1.0';
import * as rawBoard from 'paddock:agent/blackboard@0.1.0';
import * as rawLlm from 'paddock:agent/llm@0.1.0';
import * as rawLog from 'paddock:agent/log@0.1.0';
import * as rawSettings from 'paddock:agent/settings@0.1.0';
import * as rawTools from 'paddock:agent/tools@0.1.0';

/**
 * A host call's refusal, or the agent's own failure. `description` says what
 * happened ("denied: no route named ..."); `message` puts the interface first
 * ("llm: denied: ..."); `value` is the WIT case's payload.
 */
export class PaddockError extends Error {
  constructor(description, iface = '', value = undefined) {
    super(iface ? `${iface}: ${description}` : description);
    this.name = new.target.name;
    this.description = description;
    this.interface = iface;
    this.value = value;
    // componentize-js answers a thrown error's `payload` as the export's `err`.
    this.payload = this.message;
  }
}

/** The agent's own failure: throw it from `run` and its message is the error. */
export class AgentError extends PaddockError {}
/** Not granted, unknown, or invalid; the description says which. */
export class Denied extends PaddockError {}
/** A budget would be exceeded; retrying will not help before its window turns. */
export class BudgetExceeded extends PaddockError {}
/** Rate limited: retry after `retryAfterMs` milliseconds. */
export class RateLimited extends PaddockError {
  get retryAfterMs() { return Number(this.value); }
}
/** The LLM request itself is wrong; do not retry. */
export class InvalidRequest extends PaddockError {}
/** The provider refused the content. */
export class ContentFiltered extends PaddockError {}
/** No answer in time. */
export class Timeout extends PaddockError {}
/** The provider, store or server failed; retrying later may succeed. */
export class Unavailable extends PaddockError {}
/** A compare-and-swap found another revision: `revision` (a BigInt) is the current one. */
export class Conflict extends PaddockError {
  get revision() { return this.value; }
}
/** A value over the board's size limit, `limit` bytes. */
export class TooLarge extends PaddockError {
  get limit() { return Number(this.value); }
}
/** The tenant's key count or bytes on the board would be exceeded. */
export class QuotaExceeded extends PaddockError {}
/** `watch` fell behind: resynchronise, then watch after `revision`. */
export class Lagged extends PaddockError {
  get revision() { return this.value; }
}
/** A tool refused its arguments. */
export class InvalidArguments extends PaddockError {}
/** A tool or a called agent ran and failed. */
export class Failed extends PaddockError {}
/** A called agent hit one of its limits. */
export class LimitExceeded extends PaddockError {}
/** A called agent trapped. */
export class Crashed extends PaddockError {}

/** A board value that is not the JSON expected. */
export class DecodeError extends PaddockError {
  constructor(key, reason) {
    super(`blackboard key ${JSON.stringify(key)} does not hold the expected JSON: ${reason}`);
    this.key = key;
    this.reason = reason;
  }
}

// Each WIT error case: its class and its description, given the payload.
const CASES = {
  'denied': [Denied, (v) => `denied: ${v}`],
  'budget-exceeded': [BudgetExceeded, (v) => `budget exceeded: ${v}`],
  'rate-limited': [RateLimited, (v) => `rate limited: retry after ${v} ms`],
  'invalid-request': [InvalidRequest, (v) => `invalid request: ${v}`],
  'content-filtered': [ContentFiltered, (v) => `content filtered: ${v}`],
  'timeout': [Timeout, (v) => (v === undefined ? 'timed out' : `timed out: ${v}`)],
  'unavailable': [Unavailable, (v) => `unavailable: ${v}`],
  'conflict': [Conflict, (v) => `conflict: the current revision is ${v}`],
  'too-large': [TooLarge, (v) => `too large: the limit is ${v} bytes`],
  'quota-exceeded': [QuotaExceeded, (v) => `quota exceeded: ${v}`],
  'lagged': [Lagged, (v) => `lagged: resynchronise, then watch after revision ${v}`],
  'invalid-arguments': [InvalidArguments, (v) => `invalid arguments: ${v}`],
  'failed': [Failed, (v) => `failed: ${v}`],
};

// The kinds that start the text errors of `agents.call` and `approval.ask`.
const KINDS = { denied: Denied, failed: Failed, limit: LimitExceeded, crashed: Crashed, timeout: Timeout };

/** The typed error for what an import threw with `payload` (a variant, or text). */
function typed(iface, payload) {
  if (typeof payload === 'string') {
    const colon = payload.indexOf(':');
    const kind = colon < 0 ? payload : payload.slice(0, colon);
    return new (KINDS[kind] ?? Failed)(payload, iface, colon < 0 ? '' : payload.slice(colon + 1).trim());
  }
  const known = CASES[payload?.tag];
  if (known === undefined) return new PaddockError(`unknown error ${JSON.stringify(payload)}`, iface, payload);
  const [Case, describe] = known;
  return new Case(describe(payload.val), iface, payload.val);
}

function call(iface, fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e instanceof PaddockError || e?.payload === undefined) throw e;
    throw typed(iface, e.payload);
  }
}

/**
 * The agent to export as `agent`: `run` returns its output, a string as it is
 * and anything else as JSON; `compensate` does nothing unless given.
 */
export function defineAgent({ run, compensate = () => {} }) {
  return {
    run(input) {
      const result = run(input);
      return typeof result === 'string' ? result : output(result);
    },
    compensate(input) {
      compensate(input);
    },
  };
}

/** The input as a JSON value; an `AgentError` saying why when it is not JSON. */
export function parseInput(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AgentError(`invalid input: ${e.message}`);
  }
}

/** The input as a JSON object; an `AgentError` when it is anything else. */
export function inputObject(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AgentError('input must be a JSON object');
  }
  return value;
}

/** `value` as JSON text, to return from `run` (BigInts as numbers). */
export function output(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? Number(v) : v));
}

/**
 * A chat request for a route, built step by step, then sent or streamed:
 * `chat('fast').system('Answer in one word.').user('Capital of France?').maxTokens(5).complete()`.
 */
export class Chat {
  constructor(route) {
    /** The request as built (the `llm.request` record). */
    this.request = { route, messages: [], tools: [], stop: [] };
  }

  #message(role, content, toolCallId) {
    this.request.messages.push({ role, content, toolCalls: [], toolCallId });
    return this;
  }

  /** Adds a system message. */
  system(content) { return this.#message('system', content); }
  /** Adds a user message. */
  user(content) { return this.#message('user', content); }
  /** Adds an assistant message. */
  assistant(content) { return this.#message('assistant', content); }
  /** Adds the result of the tool call `callId`. */
  toolResult(callId, content) { return this.#message('tool', content, callId); }

  /** Offers a function; `parameters` is a JSON Schema (an object or text). */
  tool(name, description, parameters) {
    this.request.tools.push({ name, description, parameters: asText(parameters) });
    return this;
  }

  /** Offers tools as `{ name, description, parameters }`, such as `tools.forLlm(tools.available())`. */
  tools(offered) {
    this.request.tools.push(...offered);
    return this;
  }

  /** Asks for a reply matching this JSON Schema (an object or text). */
  schema(schema) { this.request.responseSchema = asText(schema); return this; }
  /** Caps the reply's length. */
  maxTokens(n) { this.request.maxTokens = n; return this; }
  /** Sets the sampling temperature. */
  temperature(t) { this.request.temperature = t; return this; }
  /** Adds a stop sequence. */
  stop(sequence) { this.request.stop.push(sequence); return this; }
  /** Keeps this conversation on the provider that served it. */
  conversation(id) { this.request.conversation = id; return this; }

  /** Sends it and waits for the whole answer: `text`, `toolCalls`, `provider`, `model`, `usage`... */
  complete() {
    return call('llm', rawLlm.complete, this.request);
  }

  /** Sends it; the answer comes as text pieces (see `Stream`). */
  stream() {
    return new Stream(call('llm', rawLlm.stream, this.request));
  }
}

/** A chat on `route`, a route the operator configured ("fast", "smart"). */
export function chat(route) {
  return new Chat(route);
}

/** Each input as a vector (an array of numbers), through a route that serves embeddings. */
export function embed(route, inputs) {
  return call('llm', rawLlm.embed, route, inputs).map((vector) => Array.from(vector));
}

/**
 * An answer arriving in pieces: `for (const piece of stream)` for the text,
 * then `response()`. The host falls back to another target only before the
 * first piece.
 */
export class Stream {
  constructor(raw) { this.raw = raw; }

  *[Symbol.iterator]() {
    for (;;) {
      const piece = this.raw.next();
      if (piece === undefined) return;
      if (piece.tag === 'err') throw typed('llm', piece.val);
      yield piece.val;
    }
  }

  /** The whole answer, once iteration ended. */
  response() { return this.raw.response(); }
}

function asText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function asBytes(value) {
  return typeof value === 'string' ? new TextEncoder().encode(value) : value;
}

/**
 * The tenant's blackboard: bytes (or text, written as UTF-8) and JSON values.
 * A write answers its revision; `ttlMs` makes a key expire. Errors: `Denied`,
 * `Conflict`, `TooLarge`, `QuotaExceeded`, `Lagged`, `Unavailable`.
 */
export const board = {
  /** The entry (`value` bytes, `revision`, `writer`, `run`...), or undefined. */
  get(key) {
    return call('blackboard', rawBoard.get, key);
  },
  /** Writes `key`, expiring after `ttlMs` when given. */
  put(key, value, ttlMs) {
    if (ttlMs === undefined) return call('blackboard', rawBoard.put, key, asBytes(value));
    return call('blackboard', rawBoard.putExpiring, key, asBytes(value), BigInt(ttlMs));
  },
  /** Writes `key` only if its revision is `expected` (0: absent); else `Conflict`. */
  compareAndSwap(key, expected, value, ttlMs) {
    const args = [key, BigInt(expected), asBytes(value)];
    if (ttlMs === undefined) return call('blackboard', rawBoard.compareAndSwap, ...args);
    return call('blackboard', rawBoard.compareAndSwapExpiring, ...args, BigInt(ttlMs));
  },
  /** Removes `key`; false when it was absent. */
  delete(key) {
    return call('blackboard', rawBoard.delete, key);
  },
  /** The keys starting with `prefix`, in byte order (at most 1000). */
  list(prefix) {
    return call('blackboard', rawBoard.list, prefix);
  },
  /** Changes under `prefix` after revision `after`, waiting up to `timeoutMs` for one. */
  watch(prefix, after, timeoutMs) {
    return call('blackboard', rawBoard.watch, prefix, BigInt(after), timeoutMs);
  },
  /** `{ value, revision }` of `key` read as JSON, or undefined when absent. */
  getJson(key) {
    const entry = this.get(key);
    if (entry === undefined) return undefined;
    try {
      return { value: JSON.parse(new TextDecoder().decode(entry.value)), revision: entry.revision };
    } catch (e) {
      throw new DecodeError(key, e.message);
    }
  },
  /** Writes `value` as JSON; returns the new revision. */
  putJson(key, value, ttlMs) {
    return this.put(key, output(value), ttlMs);
  },
  /**
   * Replaces `key`'s value with `update(current)` (undefined when absent) by
   * compare-and-swap, reading again when another writer got there first, so
   * no update is lost. Returns `{ value, revision }`; `Conflict` after
   * `attempts` losses in a row.
   */
  updateJson(key, update, attempts = 10) {
    let lost;
    for (let i = 0; i < attempts; i++) {
      const { value, revision } = this.getJson(key) ?? { revision: 0n };
      const next = update(value);
      try {
        return { value: next, revision: this.compareAndSwap(key, revision, output(next)) };
      } catch (e) {
        if (!(e instanceof Conflict)) throw e;
        lost = e;
      }
    }
    const why = `conflict: ${key} changed ${attempts} times in a row, now at revision ${lost.revision}; giving up`;
    throw new Conflict(why, 'blackboard', lost.revision);
  },
};

/** Messages into the host's log, under the agent's name. */
export const log = {
  trace(message) { rawLog.log('trace', message); },
  debug(message) { rawLog.log('debug', message); },
  info(message) { rawLog.log('info', message); },
  warn(message) { rawLog.log('warn', message); },
  error(message) { rawLog.log('error', message); },
};

/**
 * The tools of the operator's MCP servers (`server/tool`) the manifest asks
 * for. Errors: `Denied`, `InvalidArguments`, `Failed`, `Timeout`,
 * `Unavailable`, `BudgetExceeded`, `RateLimited`.
 */
export const tools = {
  /** The tools this agent may call (`name`, `description`, `inputSchema`). */
  available() {
    return call('tools', rawTools.available);
  },
  /** Calls `name` with `args` (an object); the output's `text`, `structured`, `content`. */
  call(name, args = {}) {
    return call('tools', rawTools.call, name, JSON.stringify(args));
  },
  /** The output's structured content, or its text read as JSON. */
  structured(result) {
    return JSON.parse(result.structured ?? result.text);
  },
  /** `found` as tools a chat offers, named `server__tool` (providers allow no `/`). */
  forLlm(found) {
    return found.map((t) => ({ name: t.name.replace('/', '__'), description: t.description, parameters: t.inputSchema }));
  },
  /** The tool a model named (`server__tool`), as `call` takes it. */
  fromLlmName(name) {
    return name.replace('__', '/');
  },
};

/** Other agents, those the manifest lists under `capabilities.agents`. */
export const agents = {
  /**
   * Runs `agent` on `input` (text, or any other value as JSON) and returns
   * its output. Errors: `Denied`, `Failed`, `LimitExceeded`, `Crashed`.
   */
  call(agent, input) {
    return call('agents', rawAgents.call, agent, typeof input === 'string' ? input : output(input));
  },
};

/** The operator's settings of this agent (`[agents.NAME.settings]`). */
export const settings = {
  /** The value of `key`, or `fallback` when unset. */
  get(key, fallback = undefined) {
    return rawSettings.get(key) ?? fallback;
  },
  /** `convert(value)` of `key` (a number by default), `fallback` when unset; an `AgentError` naming the key when it is not valid. */
  parse(key, convert = Number, fallback = undefined) {
    const text = rawSettings.get(key);
    if (text === undefined) return fallback;
    const value = convert(text);
    if (value === undefined || Number.isNaN(value)) {
      throw new AgentError(`setting ${JSON.stringify(key)} = ${JSON.stringify(text)} is not a valid value`);
    }
    return value;
  },
  /** Every setting of this agent, as an object. */
  all() {
    return Object.fromEntries(rawSettings.getAll());
  },
};

/**
 * Asks a person `question`, offering `options`; the option chosen. Errors:
 * `Denied` (approvals not configured or granted), `Timeout`.
 */
export function ask(question, options, timeoutMs) {
  return call('approval', rawApproval.ask, question, options, timeoutMs);
}
