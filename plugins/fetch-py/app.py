"""A Paddock agent in Python that sends HTTP requests, through http_client.py.

Input: {"requests": [{"method": "GET", "url": "http://host:port/path",
"body": "text"}], "follow": true}. With "follow" it sends a redirect's
location as a new GET (up to 5 in a row). Output: one answer per request
sent, {"status", "body", "location"} or {"error": text}.
"""

import json

from componentize_py_types import Err
from http_client import HttpError, request
from wit_world import exports

MAX_REDIRECTS = 5


class Agent(exports.Agent):
    def run(self, input: str) -> str:
        wanted, follow = parse_input(input)
        answers = []
        for method, url, body in wanted:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    response = request(method, url, body=body)
                except HttpError as e:
                    answers.append({"error": str(e)})
                    break
                location = response.header("location")
                if follow and 300 <= response.status < 400 and location is not None:
                    answers.append({"status": response.status, "location": location})
                    method, url, body = "GET", location, None
                    continue
                answers.append({"status": response.status, "body": response.text(), "location": location})
                break
        return json.dumps(answers, separators=(",", ":"))

    def compensate(self, input: str) -> None:
        pass


def parse_input(text: str) -> tuple[list[tuple[str, str, str | None]], bool]:
    try:
        args = json.loads(text)
    except ValueError:
        args = None
    if not isinstance(args, dict) or not isinstance(args.get("requests"), list):
        raise Err('input must be a JSON object with "requests": [{"url": ...}, ...]')
    wanted = []
    for i, each in enumerate(args["requests"]):
        if not isinstance(each, dict) or not isinstance(each.get("url"), str):
            raise Err(f"input.requests[{i}] must be an object with a \"url\"")
        wanted.append((each.get("method", "GET"), each["url"], each.get("body")))
    return wanted, args.get("follow") is True
