"""A Paddock agent in Python: greets by name, counts visits on the blackboard,
and asks the "fast" route for a fun fact.

Input (JSON object): "name" (default "world"); "spin": true loops until a limit
stops it; "allocate_mib": N holds N MiB while it works (to see the memory cap);
"tool": "server/tool" calls that tool of the operator's MCP servers with
"tool_args" (an object, default {}), once the manifest's `capabilities.tools`
asks for it. Output: {"greeting", "visits", "fun_fact": {"text", "provider",
"model"} or {"error"}, "language"}, and "tool": {"text"} or {"error"} when one
was called. `compensate` takes back the visit.

componentize-py maps the WIT `result<T, string>` of an export to a return
value or a raised `Err(text)`; an import's error arrives as a raised `Err`
whose `value` is the WIT variant case (`llm.Error_Denied(...)`).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import blackboard, llm, log, tools
from wit_world.imports.log import Level

ROUTE = "fast"
# A compare-and-swap loses only to another writer of the same key; give up
# after this many losses in a row rather than loop for ever.
MAX_CONFLICTS = 10


class Agent(exports.Agent):
    def run(self, input: str) -> str:
        args = parse_input(input)
        name = args["name"]
        hog = None
        if args["allocate_mib"] is not None:
            hog = bytearray(args["allocate_mib"] << 20)  # zero-filled: every page is touched
        if args["spin"]:
            log.log(Level.WARN, "spinning until a limit stops me")
            while True:
                pass
        log.log(Level.INFO, f"greeting {name}")
        visits = add_visits(name, 1)
        output = {
            "greeting": f"Hello, {name}!",
            "visits": visits,
            "fun_fact": fun_fact(name),
            "language": "python",
        }
        if args["tool"] is not None:
            output["tool"] = call_tool(args["tool"], args["tool_args"])
        if hog is not None:
            output["allocated_mib"] = len(hog) >> 20
        return json.dumps(output, separators=(",", ":"))

    def compensate(self, input: str) -> None:
        name = parse_input(input)["name"]
        visits = add_visits(name, -1)
        log.log(Level.INFO, f"took back a visit of {name}: {visits} left")


def parse_input(text: str) -> dict:
    try:
        args = json.loads(text)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise Err("input must be a JSON object")
    name = args.get("name", "world")
    if not isinstance(name, str) or not name:
        raise Err("input.name must be a non-empty string")
    mib = args.get("allocate_mib")
    if mib is not None:
        whole = isinstance(mib, (int, float)) and not isinstance(mib, bool) and 0 <= mib <= 4096 and mib == int(mib)
        if not whole:
            raise Err("input.allocate_mib must be a whole number from 0 to 4096")
        mib = int(mib)
    tool = args.get("tool")
    if tool is not None and (not isinstance(tool, str) or not tool):
        raise Err('input.tool must be a tool name like "server/tool"')
    tool_args = args.get("tool_args")
    if tool_args is None:
        tool_args = {}
    elif not isinstance(tool_args, dict):
        raise Err("input.tool_args must be a JSON object")
    return {"name": name, "spin": args.get("spin") is True, "allocate_mib": mib, "tool": tool, "tool_args": tool_args}


def add_visits(name: str, delta: int) -> int:
    """Adds `delta` to visits/<name> (never below 0) and returns the new count."""
    key = f"visits/{name}"
    for _ in range(MAX_CONFLICTS):
        try:
            entry = blackboard.get(key)
        except Err as e:
            raise Err(f"blackboard: {describe_board_error(e.value)}")
        count, revision = 0, 0
        if entry is not None:
            revision = entry.revision
            try:
                count = int(entry.value.decode("ascii"))
            except ValueError:
                raise Err(f"blackboard: {key} does not hold a count")
        count = max(count + delta, 0)
        try:
            blackboard.compare_and_swap(key, revision, str(count).encode("ascii"))
            return count
        except Err as e:
            if not isinstance(e.value, blackboard.Error_Conflict):
                raise Err(f"blackboard: {describe_board_error(e.value)}")
    raise Err(f"blackboard: {key} changed {MAX_CONFLICTS} times in a row; giving up")


def fun_fact(name: str) -> dict:
    """Asks the route; a failure becomes {"error": ...} so the greeting still works."""
    request = llm.Request(
        route=ROUTE,
        messages=[
            llm.Message(
                role=llm.Role.USER,
                content=f"One fun fact about the name {name}, in one sentence.",
                tool_calls=[],
                tool_call_id=None,
            )
        ],
        tools=[],
        response_schema=None,
        max_tokens=60,
        temperature=None,
        stop=[],
        conversation=None,
    )
    try:
        answer = llm.complete(request)
    except Err as e:
        why = describe_llm_error(e.value)
        log.log(Level.WARN, f"no fun fact: {why}")
        return {"error": why}
    return {"text": answer.text, "provider": answer.provider, "model": answer.model}


def call_tool(name: str, tool_args: dict) -> dict:
    """Calls a tool; a failure becomes {"error": ...} so the greeting still works."""
    try:
        output = tools.call(name, json.dumps(tool_args))
    except Err as e:
        return {"error": describe_tool_error(e.value)}
    return {"text": output.text}


def describe_tool_error(error: tools.Error) -> str:
    match error:
        case tools.Error_Denied(why):
            return f"denied: {why}"
        case tools.Error_InvalidArguments(why):
            return f"invalid arguments: {why}"
        case tools.Error_Failed(why):
            return f"failed: {why}"
        case tools.Error_Timeout(why):
            return f"timed out: {why}"
        case tools.Error_Unavailable(why):
            return f"unavailable: {why}"
        case tools.Error_BudgetExceeded(why):
            return f"budget exceeded: {why}"
        case tools.Error_RateLimited(ms):
            return f"rate limited: retry after {ms} ms"
    return f"unknown error {error!r}"


def describe_llm_error(error: llm.Error) -> str:
    match error:
        case llm.Error_Denied(why):
            return f"denied: {why}"
        case llm.Error_BudgetExceeded(why):
            return f"budget exceeded: {why}"
        case llm.Error_RateLimited(ms):
            return f"rate limited: retry after {ms} ms"
        case llm.Error_InvalidRequest(why):
            return f"invalid request: {why}"
        case llm.Error_ContentFiltered(why):
            return f"content filtered: {why}"
        case llm.Error_Timeout():
            return "timed out"
        case llm.Error_Unavailable(why):
            return f"unavailable: {why}"
    return f"unknown error {error!r}"


def describe_board_error(error: blackboard.Error) -> str:
    match error:
        case blackboard.Error_Denied(why):
            return f"denied: {why}"
        case blackboard.Error_Conflict(revision):
            return f"conflict: now at revision {revision}"
        case blackboard.Error_TooLarge(limit):
            return f"too large: the limit is {limit} bytes"
        case blackboard.Error_QuotaExceeded(why):
            return f"quota exceeded: {why}"
        case blackboard.Error_Lagged(revision):
            return f"lagged: resume after revision {revision}"
        case blackboard.Error_Unavailable(why):
            return f"unavailable: {why}"
    return f"unknown error {error!r}"
