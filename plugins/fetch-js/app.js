// A Paddock agent in JavaScript that sends HTTP requests with `fetch`.
//
// componentize-js's `fetch` goes through wasi:http, which the host sends for
// the agent, and only to the hosts its manifest asks for
// (`capabilities.http`) and its tenant grants. The build command leaves the
// `http` feature on (the `hello-js` template turns it off). `run` may be
// async: the component waits for its promise.
//
// Input: {"requests": [{"method": "GET", "url": "http://host:port/path",
// "body": "text"}], "follow": true}. With "follow" it sends a redirect's
// location as a new GET (up to 5 in a row). Output: one answer per request
// sent, {"status", "body", "location"} or {"error": text}. A request the host
// refuses fails as a network error; the agent's log says why, starting with
// "http: ".

const MAX_REDIRECTS = 5;

/** The agent's own failure: its message becomes the WIT `err`. */
class AgentError extends Error {
  constructor(message) {
    super(message);
    this.payload = message;
  }
}

export const agent = {
  async run(input) {
    const { wanted, follow } = parseInput(input);
    const answers = [];
    for (let { method, url, body } of wanted) {
      for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
        let response;
        try {
          // "manual": a redirect comes back as it is; following it is a new request.
          response = await fetch(url, { method, body, redirect: 'manual' });
        } catch (e) {
          answers.push({ error: String(e.message ?? e) });
          break;
        }
        const location = response.headers.get('location');
        if (follow && response.status >= 300 && response.status < 400 && location !== null) {
          answers.push({ status: response.status, location });
          [method, url, body] = ['GET', location, undefined];
          continue;
        }
        answers.push({ status: response.status, body: await response.text(), location });
        break;
      }
    }
    return JSON.stringify(answers);
  },

  compensate(input) {},
};

function parseInput(text) {
  let args;
  try {
    args = JSON.parse(text);
  } catch {
    args = undefined;
  }
  if (typeof args !== 'object' || args === null || !Array.isArray(args.requests)) {
    throw new AgentError('input must be a JSON object with "requests": [{"url": ...}, ...]');
  }
  const wanted = args.requests.map((each, i) => {
    if (typeof each !== 'object' || each === null || typeof each.url !== 'string') {
      throw new AgentError(`input.requests[${i}] must be an object with a "url"`);
    }
    return { method: each.method ?? 'GET', url: each.url, body: each.body ?? undefined };
  });
  return { wanted, follow: args.follow === true };
}
