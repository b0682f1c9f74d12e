"""A Paddock agent in Python: greets by name, counts visits on the blackboard,
and asks the "fast" route for a fun fact.

Input (JSON object): "name" (default "world"); "spin": true loops until a limit
stops it; "allocate_mib": N holds N MiB while it works (to see the memory cap);
"tool": "server/tool" calls that tool of the operator's MCP servers with
"tool_args" (an object, default {}), once the manifest's `capabilities.tools`
asks for it. Output: {"greeting", "visits", "fun_fact": {"text", "provider",
"model"} or {"error"}, "language"}, and "tool": {"text"} or {"error"} when one
was called. `compensate` takes back the visit.

It is written with paddock_sdk.py, the Python SDK, kept beside this file
(componentize-py takes modules from the app's folder): typed errors, a chat
builder, JSON on the blackboard. An SDK error that `run` does not catch ends
the run as the agent's own error, with its message.
"""

import paddock_sdk
from paddock_sdk import AgentError, PaddockError, board, chat, input_object, log, tools

ROUTE = "fast"


class Agent(paddock_sdk.Agent):
    def run(self, input: str) -> dict:
        args = parse_input(input)
        name = args["name"]
        hog = None
        if args["allocate_mib"] is not None:
            hog = bytearray(args["allocate_mib"] << 20)  # zero-filled: every page is touched
        if args["spin"]:
            log.warn("spinning until a limit stops me")
            while True:
                pass
        log.info(f"greeting {name}")
        output = {
            "greeting": f"Hello, {name}!",
            "visits": add_visits(name, 1),
            "fun_fact": fun_fact(name),
            "language": "python",
        }
        if args["tool"] is not None:
            output["tool"] = call_tool(args["tool"], args["tool_args"])
        if hog is not None:
            output["allocated_mib"] = len(hog) >> 20
        return output

    def compensate(self, input: str) -> None:
        name = parse_input(input)["name"]
        visits = add_visits(name, -1)
        log.info(f"took back a visit of {name}: {visits} left")


def parse_input(text: str) -> dict:
    args = input_object(text)
    name = args.get("name", "world")
    if not isinstance(name, str) or not name:
        raise AgentError("input.name must be a non-empty string")
    mib = args.get("allocate_mib")
    if mib is not None:
        whole = isinstance(mib, (int, float)) and not isinstance(mib, bool) and 0 <= mib <= 4096 and mib == int(mib)
        if not whole:
            raise AgentError("input.allocate_mib must be a whole number from 0 to 4096")
        mib = int(mib)
    tool = args.get("tool")
    if tool is not None and (not isinstance(tool, str) or not tool):
        raise AgentError('input.tool must be a tool name like "server/tool"')
    tool_args = args.get("tool_args")
    if tool_args is None:
        tool_args = {}
    elif not isinstance(tool_args, dict):
        raise AgentError("input.tool_args must be a JSON object")
    return {"name": name, "spin": args.get("spin") is True, "allocate_mib": mib, "tool": tool, "tool_args": tool_args}


def add_visits(name: str, delta: int) -> int:
    """Adds `delta` to visits/<name> (never below 0) and returns the new count.
    `update_json` compares and swaps, reading again when another run wrote
    first, so no visit is lost."""
    key = f"visits/{name}"

    def count(current):
        if current is None:
            current = 0
        if not isinstance(current, int) or isinstance(current, bool) or current < 0:
            raise AgentError(f"blackboard: {key} does not hold a count")
        return max(current + delta, 0)

    visits, _revision = board.update_json(key, count)
    return visits


def fun_fact(name: str) -> dict:
    """Asks the route; a failure becomes {"error": ...} so the greeting still works."""
    try:
        answer = chat(ROUTE).user(f"One fun fact about the name {name}, in one sentence.").max_tokens(60).complete()
    except PaddockError as e:
        log.warn(f"no fun fact: {e.description}")
        return {"error": e.description}
    return {"text": answer.text, "provider": answer.provider, "model": answer.model}


def call_tool(name: str, tool_args: dict) -> dict:
    """Calls a tool; a failure becomes {"error": ...} so the greeting still works."""
    try:
        return {"text": tools.call(name, tool_args).text}
    except PaddockError as e:
        return {"error": e.description}
