"""Write Paddock agents in Python: a small layer over the bindings
componentize-py generates from `wit/` (`wit_world`), in one module kept
beside app.py.

    import paddock_sdk
    from paddock_sdk import board, chat, input_object, log

    class Agent(paddock_sdk.Agent):
        def run(self, input: str):
            name = input_object(input).get("name", "world")
            log.info(f"greeting {name}")
            visits, _ = board.update_json(f"visits/{name}", lambda n: (n or 0) + 1)
            fact = chat("fast").user(f"A fun fact about {name}?").max_tokens(60).complete()
            return {"greeting": f"Hello, {name}!", "visits": visits, "fact": fact.text}

Every host call raises a `PaddockError` subclass naming the case (`Denied`,
`RateLimited` with `retry_after_ms`, `Conflict` with `revision`...) where the
bindings raise `Err(variant)`. One that `run` or `compensate` does not catch
ends the invocation as the agent's own error, with its message as the text.
"""

import functools
import json
import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import agents as _agents
from wit_world.imports import approval as _approval
from wit_world.imports import blackboard as _blackboard
from wit_world.imports import llm
from wit_world.imports import log as _log
from wit_world.imports import settings as _settings
from wit_world.imports import tools as _tools


class PaddockError(Exception):
    """A host call's refusal, or the agent's own failure.

    `description` says what happened ("denied: no route named ..."); the
    message (`str(e)`) puts the interface first ("llm: denied: ..."). `value`
    is the WIT case's payload.
    """

    def __init__(self, description: str, interface: str = "", value=None):
        self.description = description
        self.interface = interface
        self.value = value
        super().__init__(f"{interface}: {description}" if interface else description)


class AgentError(PaddockError):
    """The agent's own failure: raise it from `run` and its message is the error."""


class Denied(PaddockError):
    """Not granted, unknown, or invalid; the description says which."""


class BudgetExceeded(PaddockError):
    """A budget would be exceeded; retrying will not help before its window turns."""


class RateLimited(PaddockError):
    """Rate limited: retry after `retry_after_ms` milliseconds."""

    @property
    def retry_after_ms(self) -> int:
        return self.value


class InvalidRequest(PaddockError):
    """The LLM request itself is wrong; do not retry."""


class ContentFiltered(PaddockError):
    """The provider refused the content."""


class Timeout(PaddockError):
    """No answer in time."""


class Unavailable(PaddockError):
    """The provider, store or server failed; retrying later may succeed."""


class Conflict(PaddockError):
    """A compare-and-swap found another revision: `revision` is the current one."""

    @property
    def revision(self) -> int:
        return self.value


class TooLarge(PaddockError):
    """A value over the board's size limit, `limit` bytes."""

    @property
    def limit(self) -> int:
        return self.value


class QuotaExceeded(PaddockError):
    """The tenant's key count or bytes on the board would be exceeded."""


class Lagged(PaddockError):
    """`watch` fell behind: resynchronise, then watch after `revision`."""

    @property
    def revision(self) -> int:
        return self.value


class InvalidArguments(PaddockError):
    """A tool refused its arguments."""


class Failed(PaddockError):
    """A tool or a called agent ran and failed."""


class LimitExceeded(PaddockError):
    """A called agent hit one of its limits."""


class Crashed(PaddockError):
    """A called agent trapped."""


class DecodeError(PaddockError):
    """A board value that is not the JSON expected."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"blackboard key {json.dumps(key)} does not hold the expected JSON: {reason}")
        self.key = key
        self.reason = reason


# Each WIT error case: its class and its description, given the payload.
_CASES = {
    "Denied": (Denied, "denied: {}"),
    "BudgetExceeded": (BudgetExceeded, "budget exceeded: {}"),
    "RateLimited": (RateLimited, "rate limited: retry after {} ms"),
    "InvalidRequest": (InvalidRequest, "invalid request: {}"),
    "ContentFiltered": (ContentFiltered, "content filtered: {}"),
    "Timeout": (Timeout, "timed out: {}"),
    "Unavailable": (Unavailable, "unavailable: {}"),
    "Conflict": (Conflict, "conflict: the current revision is {}"),
    "TooLarge": (TooLarge, "too large: the limit is {} bytes"),
    "QuotaExceeded": (QuotaExceeded, "quota exceeded: {}"),
    "Lagged": (Lagged, "lagged: resynchronise, then watch after revision {}"),
    "InvalidArguments": (InvalidArguments, "invalid arguments: {}"),
    "Failed": (Failed, "failed: {}"),
}

# The kinds that start the text errors of `agents.call` and `approval.ask`.
_KINDS = {"denied": Denied, "failed": Failed, "limit": LimitExceeded, "crashed": Crashed, "timeout": Timeout}


def _error(interface: str, case) -> PaddockError:
    """The typed error for what a binding raised as `Err(case)`."""
    if isinstance(case, str):
        kind, _, rest = case.partition(":")
        return _KINDS.get(kind, Failed)(case, interface, rest.strip())
    value = getattr(case, "value", None)
    name = type(case).__name__.removeprefix("Error_")
    if name not in _CASES:
        return PaddockError(f"unknown error {case!r}", interface, value)
    cls, template = _CASES[name]
    # A case without a payload (the LLM's `timeout`) is described by its kind alone.
    description = template.format(value) if value is not None else template.partition(":")[0]
    return cls(description, interface, value)


def _call(interface: str, function, *args):
    try:
        return function(*args)
    except Err as e:
        raise _error(interface, e.value) from None


class Agent(exports.Agent):
    """What an agent subclasses, as `Agent` in app.py.

    `run` returns its output: a `str` as it is, anything else as JSON. A
    `PaddockError` it does not catch ends the run as the agent's own error
    with the error's message. `compensate` does nothing unless overridden.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("run", "compensate"):
            if name in cls.__dict__:
                setattr(cls, name, _reporting(cls.__dict__[name]))

    def compensate(self, input: str) -> None:
        pass


def _reporting(method):
    """`method` with its PaddockErrors raised as componentize-py's `Err(text)`."""

    @functools.wraps(method)
    def wrapper(self, input: str):
        try:
            result = method(self, input)
        except PaddockError as e:
            raise Err(str(e)) from None
        return result if result is None or isinstance(result, str) else output(result)

    return wrapper


def parse_input(text: str):
    """The input as a JSON value; `AgentError` saying why when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise AgentError(f"invalid input: {e}") from None


def input_object(text: str) -> dict:
    """The input as a JSON object; `AgentError` when it is anything else."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise AgentError("input must be a JSON object")
    return value


def output(value) -> str:
    """`value` as compact JSON text, to return from `run`."""
    return json.dumps(value, separators=(",", ":"))


class Chat:
    """A chat request for a route, built step by step, then sent or streamed.

        answer = chat("fast").system("Answer in one word.").user("Capital of France?").max_tokens(5).complete()
    """

    def __init__(self, route: str):
        self.request = llm.Request(
            route=route, messages=[], tools=[], response_schema=None,
            max_tokens=None, temperature=None, stop=[], conversation=None,
        )

    def _message(self, role: llm.Role, content: str, call_id: str | None = None) -> "Chat":
        self.request.messages.append(llm.Message(role=role, content=content, tool_calls=[], tool_call_id=call_id))
        return self

    def system(self, content: str) -> "Chat":
        """Adds a system message."""
        return self._message(llm.Role.SYSTEM, content)

    def user(self, content: str) -> "Chat":
        """Adds a user message."""
        return self._message(llm.Role.USER, content)

    def assistant(self, content: str) -> "Chat":
        """Adds an assistant message."""
        return self._message(llm.Role.ASSISTANT, content)

    def tool_result(self, call_id: str, content: str) -> "Chat":
        """Adds the result of the tool call `call_id`."""
        return self._message(llm.Role.TOOL, content, call_id)

    def tool(self, name: str, description: str, parameters: dict | str) -> "Chat":
        """Offers a function; `parameters` is a JSON Schema (a dict or text)."""
        schema = parameters if isinstance(parameters, str) else json.dumps(parameters)
        self.request.tools.append(llm.Tool(name=name, description=description, parameters=schema))
        return self

    def tools(self, offered: list) -> "Chat":
        """Offers `llm.Tool`s, such as `tools.for_llm(tools.available())`."""
        self.request.tools.extend(offered)
        return self

    def schema(self, schema: dict | str) -> "Chat":
        """Asks for a reply matching this JSON Schema (a dict or text)."""
        self.request.response_schema = schema if isinstance(schema, str) else json.dumps(schema)
        return self

    def max_tokens(self, n: int) -> "Chat":
        """Caps the reply's length."""
        self.request.max_tokens = n
        return self

    def temperature(self, t: float) -> "Chat":
        """Sets the sampling temperature."""
        self.request.temperature = t
        return self

    def stop(self, sequence: str) -> "Chat":
        """Adds a stop sequence."""
        self.request.stop.append(sequence)
        return self

    def conversation(self, id: str) -> "Chat":
        """Keeps this conversation on the provider that served it."""
        self.request.conversation = id
        return self

    def complete(self) -> llm.Response:
        """Sends it and waits for the whole answer: `.text`, `.tool_calls`, `.provider`, `.usage`..."""
        return _call("llm", llm.complete, self.request)

    def stream(self) -> "Stream":
        """Sends it; the answer comes as text pieces (see `Stream`)."""
        return Stream(_call("llm", llm.stream, self.request))


def chat(route: str) -> Chat:
    """A chat on `route`, a route the operator configured ("fast", "smart")."""
    return Chat(route)


def embed(route: str, inputs: list[str]) -> list[list[float]]:
    """Each input as a vector, through a route that serves embeddings."""
    return _call("llm", llm.embed, route, inputs)


class Stream:
    """An answer arriving in pieces: iterate for the text, then `response()`.

    The host falls back to another target only before the first piece. Use it
    in a `with` block to let the host go of it early.
    """

    def __init__(self, raw: llm.CompletionStream):
        self._raw = raw

    def __iter__(self):
        return self

    def __next__(self) -> str:
        piece = self._raw.next()
        if piece is None:
            raise StopIteration
        if isinstance(piece, Err):
            raise _error("llm", piece.value)
        return piece.value

    def response(self) -> llm.Response | None:
        """The whole answer, once iteration ended."""
        return self._raw.response()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self._raw.__exit__(*exc)


class Board:
    """The tenant's blackboard: bytes, and JSON values. Keys are the tenant's own.

    A write answers its revision; `ttl_ms` makes a key expire. Errors:
    `Denied`, `Conflict`, `TooLarge`, `QuotaExceeded`, `Lagged`, `Unavailable`.
    """

    def get(self, key: str) -> _blackboard.Entry | None:
        """The entry (`.value` bytes, `.revision`, `.writer`, `.run`...), or None."""
        return _call("blackboard", _blackboard.get, key)

    def put(self, key: str, value: bytes | str, ttl_ms: int | None = None) -> int:
        """Writes `key` (text as UTF-8), expiring after `ttl_ms` when given."""
        if ttl_ms is None:
            return _call("blackboard", _blackboard.put, key, _bytes(value))
        return _call("blackboard", _blackboard.put_expiring, key, _bytes(value), ttl_ms)

    def compare_and_swap(self, key: str, expected: int, value: bytes | str, ttl_ms: int | None = None) -> int:
        """Writes `key` only if its revision is `expected` (0: absent); else `Conflict`."""
        if ttl_ms is None:
            return _call("blackboard", _blackboard.compare_and_swap, key, expected, _bytes(value))
        return _call("blackboard", _blackboard.compare_and_swap_expiring, key, expected, _bytes(value), ttl_ms)

    def delete(self, key: str) -> bool:
        """Removes `key`; False when it was absent."""
        return _call("blackboard", _blackboard.delete, key)

    def watch(self, prefix: str, after: int, timeout_ms: int) -> list:
        """Changes under `prefix` after revision `after`, waiting up to `timeout_ms` for one."""
        return _call("blackboard", _blackboard.watch, prefix, after, timeout_ms)

    def get_json(self, key: str):
        """`(value, revision)` of `key` read as JSON, or None when absent."""
        entry = self.get(key)
        if entry is None:
            return None
        try:
            return json.loads(entry.value), entry.revision
        except ValueError as e:
            raise DecodeError(key, str(e)) from None

    def put_json(self, key: str, value, ttl_ms: int | None = None) -> int:
        """Writes `value` as JSON; returns the new revision."""
        return self.put(key, output(value), ttl_ms)

    def update_json(self, key: str, update, attempts: int = 10):
        """Replaces `key`'s value with `update(current or None)` by compare-and-swap,
        reading again when another writer got there first, so no update is lost.
        Returns `(value, revision)`; `Conflict` after `attempts` losses in a row.
        """
        for _ in range(attempts):
            current = self.get_json(key)
            value, revision = current if current is not None else (None, 0)
            new = update(value)
            try:
                return new, self.compare_and_swap(key, revision, output(new))
            except Conflict as e:
                lost = e
        why = f"conflict: {key} changed {attempts} times in a row, now at revision {lost.revision}; giving up"
        raise Conflict(why, "blackboard", lost.revision)

    # Last: inside the class, `list` names this method from here on.
    def list(self, prefix: str) -> list[str]:
        """The keys starting with `prefix`, in byte order (at most 1000)."""
        return _call("blackboard", _blackboard.list, prefix)


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


class Log:
    """Messages into the host's log, under the agent's name."""

    def trace(self, message: str) -> None:
        _log.log(_log.Level.TRACE, message)

    def debug(self, message: str) -> None:
        _log.log(_log.Level.DEBUG, message)

    def info(self, message: str) -> None:
        _log.log(_log.Level.INFO, message)

    def warn(self, message: str) -> None:
        _log.log(_log.Level.WARN, message)

    def error(self, message: str) -> None:
        _log.log(_log.Level.ERROR, message)


class Tools:
    """The tools of the operator's MCP servers (`server/tool`) the manifest asks for.

    Errors: `Denied`, `InvalidArguments`, `Failed`, `Timeout`, `Unavailable`,
    `BudgetExceeded`, `RateLimited`.
    """

    def available(self) -> list:
        """The tools this agent may call (`.name`, `.description`, `.input_schema`)."""
        return _call("tools", _tools.available)

    def call(self, name: str, arguments: dict | None = None) -> _tools.Output:
        """Calls `name` with `arguments`; the output's `.text`, `.structured`, `.content`."""
        return _call("tools", _tools.call, name, json.dumps(arguments or {}))

    def structured(self, result: _tools.Output):
        """The output's structured content, or its text read as JSON."""
        return json.loads(result.structured if result.structured is not None else result.text)

    def for_llm(self, found: list) -> list:
        """`found` as tools a chat offers, named `server__tool` (providers allow no `/`)."""
        return [llm.Tool(name=t.name.replace("/", "__", 1), description=t.description, parameters=t.input_schema)
                for t in found]

    def from_llm_name(self, name: str) -> str:
        """The tool a model named (`server__tool`), as `call` takes it."""
        return name.replace("__", "/", 1)


class Agents:
    """Other agents, those the manifest lists under `capabilities.agents`."""

    def call(self, agent: str, input) -> str:
        """Runs `agent` on `input` (text, or any other value as JSON) and returns its output.
        Errors: `Denied`, `Failed`, `LimitExceeded`, `Crashed`.
        """
        text = input if isinstance(input, str) else output(input)
        return _call("agents", _agents.call, agent, text)


class Settings:
    """The operator's settings of this agent (`[agents.NAME.settings]`)."""

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of `key`, or `default` when unset."""
        value = _settings.get(key)
        return default if value is None else value

    def parse(self, key: str, convert=int, default=None):
        """`convert(value)` of `key`, `default` when unset; `AgentError` naming the key when it fails."""
        text = _settings.get(key)
        if text is None:
            return default
        try:
            return convert(text)
        except ValueError:
            raise AgentError(f"setting {json.dumps(key)} = {json.dumps(text)} is not a valid value") from None

    def all(self) -> dict[str, str]:
        """Every setting of this agent."""
        return dict(_settings.get_all())


class Context:
    """Where this invocation stands, from the variables the host sets: its run
    and, in a flow, its flow, step and attempt. An empty variable is None.
    """

    @property
    def run(self) -> str | None:
        """The run's id (`PADDOCK_RUN`), shared by every agent it calls."""
        return _env("PADDOCK_RUN")

    @property
    def flow(self) -> str | None:
        """The flow's name (`PADDOCK_FLOW`); None outside a flow."""
        return _env("PADDOCK_FLOW")

    @property
    def step(self) -> str | None:
        """The step's path in its flow (`PADDOCK_STEP`); None outside a flow."""
        return _env("PADDOCK_STEP")

    @property
    def attempt(self) -> int:
        """The step's 1-based attempt (`PADDOCK_ATTEMPT`); 1 outside a flow."""
        text = (_env("PADDOCK_ATTEMPT") or "").strip()
        return int(text) if text.isdigit() and int(text) >= 1 else 1

    @property
    def idempotency_key(self) -> str | None:
        """A key the same across one step's retries (`PADDOCK_IDEMPOTENCY_KEY`)."""
        return _env("PADDOCK_IDEMPOTENCY_KEY")


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def ask(question: str, options: list[str], timeout_ms: int) -> str:
    """Asks a person `question`, offering `options`; the option chosen.
    Errors: `Denied` (approvals not configured or granted), `Timeout`.
    """
    return _call("approval", _approval.ask, question, options, timeout_ms)


board = Board()
log = Log()
tools = Tools()
agents = Agents()
settings = Settings()
context = Context()
