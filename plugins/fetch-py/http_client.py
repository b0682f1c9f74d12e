"""Blocking HTTP for a Paddock agent in Python, over `wasi:http`: copy this
file next to your app.py and build against `http-agent-world`.

    from http_client import request, HttpError

    weather = request("GET", "https://api.example.com/weather?city=Paris",
                      headers={"accept": "application/json"})
    report = weather.json()
    created = request("POST", "https://api.example.com/notes", json_body={"text": "hi"})

The host sends every request, and only to the hosts the agent's manifest
asks for (`capabilities.http`) and its tenant grants. A request it refuses
(a host not granted, an address that is not public, a body over its cap)
raises `HttpError` whose text says why, starting with "denied: ". Redirects
come back as they are (3xx with a `location`): following one is a new
request, checked as every one is.
"""

import json
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, streams, types

# How much to read or write at a time; wasi:io lets a blocking write send at most 4096 bytes.
READ_SIZE = 64 * 1024
WRITE_SIZE = 4096

METHODS = {
    "GET": types.Method_Get(),
    "HEAD": types.Method_Head(),
    "POST": types.Method_Post(),
    "PUT": types.Method_Put(),
    "DELETE": types.Method_Delete(),
    "PATCH": types.Method_Patch(),
    "OPTIONS": types.Method_Options(),
}


class HttpError(Exception):
    """Why a request got no response: the host's refusal or the error code, in words."""


class Response:
    """A response, read whole."""

    def __init__(self, status: int, headers: list[tuple[str, bytes]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first header called `name` (any case), as text."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value.decode("utf-8", "replace")
        return None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def request(method: str, url: str, headers: dict[str, str] | None = None, body: bytes | str | None = None,
            json_body=None) -> Response:
    """Sends a request and reads the response whole; raises HttpError when there is none."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body)
        headers.setdefault("content-type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"{url!r} is not an http:// or https:// URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fields = types.Fields.from_list([(name, value.encode("utf-8")) for name, value in headers.items()])
    outgoing = types.OutgoingRequest(fields)
    outgoing.set_method(METHODS.get(method.upper()) or types.Method_Other(method))
    outgoing.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    outgoing.set_authority(parts.netloc)
    outgoing.set_path_with_query(path)
    outgoing_body = outgoing.body()
    try:
        pending = outgoing_handler.handle(outgoing, None)
    except Err as e:
        raise HttpError(describe(e.value))
    if body:
        with outgoing_body.write() as stream:
            for at in range(0, len(body), WRITE_SIZE):
                stream.blocking_write_and_flush(body[at : at + WRITE_SIZE])
    types.OutgoingBody.finish(outgoing_body, None)
    # A child resource (a pollable, a header list, a stream) goes before its parent.
    with pending:
        with pending.subscribe() as ready:
            ready.block()
        answer = pending.get()
    if not isinstance(answer, Ok) or not isinstance(answer.value, Ok):
        raise HttpError(describe(answer.value.value if isinstance(answer, Ok) else "no response"))
    with answer.value.value as response:
        with response.headers() as fields:
            header_list = fields.entries()
        return Response(response.status(), header_list, read_all(response.consume()))


def read_all(incoming: types.IncomingBody) -> bytes:
    chunks = []
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(READ_SIZE))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise HttpError(f"reading the body: {e.value.value.to_debug_string()}")
    types.IncomingBody.finish(incoming)
    return b"".join(chunks)


def describe(error) -> str:
    """An error code in words: the host's own text for a refusal, else the code and its detail."""
    if isinstance(error, types.ErrorCode_InternalError) and error.value:
        return error.value
    if isinstance(error, str):
        return error
    name = type(error).__name__.removeprefix("ErrorCode_")
    detail = getattr(error, "value", None)
    return name if detail is None else f"{name}({detail!r})"
