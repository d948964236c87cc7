// fetch-js@1: sends the HTTP request its input describes and completes with the response.
//
// Input: {"url": "http://host:port/path", "method": "GET" (default), "body": "..." (optional)}.
// Result: {"status": 200, "body": "...", "content_type": "..."}. An authority not in the
// activity's `allowed_hosts`, or any request that gets no response, fails the task with reason
// HttpError. `fetch` is componentize-js's, built on wasi:http: no build flags, no extra world.

const USAGE = 'input: {"url": "http://host:port/path", "method": "GET", "body": "..."}';
// An HTTP method is a token (RFC 9110). Checked here: componentize-js 0.23's fetch sends any
// other method as GET instead of throwing a TypeError.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function failed(reason, details) {
  return { tag: 'failed', val: { reason, details } };
}

export const activity = {
  async run(task) {
    let spec;
    try {
      spec = JSON.parse(task.input ?? '');
    } catch (e) {
      throw failed('BadInput', USAGE);
    }
    if (spec === null || typeof spec !== 'object' || typeof spec.url !== 'string') {
      throw failed('BadInput', USAGE);
    }
    const method = spec.method ?? 'GET';
    if (typeof method !== 'string' || !TOKEN.test(method)) {
      throw failed('BadInput', `invalid method ${JSON.stringify(method)}; ${USAGE}`);
    }
    let response;
    try {
      response = await fetch(spec.url, { method, body: spec.body });
    } catch (e) {
      // A request the host denies, or one that gets no response: a TypeError from fetch.
      throw failed('HttpError', `${e}`);
    }
    const body = await response.text();
    return JSON.stringify({
      status: response.status,
      body,
      content_type: response.headers.get('content-type'),
    });
  },
};
