"""Outgoing HTTP for Python activities, on wasi:http (the `plugin-http` world).

swasm never grants sockets, so `urllib`, `http.client` and `requests` cannot connect;
wasi:http is how a guest calls HTTP, and the host lets a request through only to an
authority (`host:port`) in the activity's `allowed_hosts`. This module wraps the
wasi:http bindings componentize-py makes for the `plugin-http` world into one blocking
call:

    import swasm_http
    r = swasm_http.get("https://api.example.com/v1/items", timeout_s=10)
    r.status, r.headers, r.body, r.text(), r.json()

Errors raise `swasm_http.HttpError`, whose `code` is wasi:http's error-code name
(`HTTP-request-denied` for an authority not in `allowed_hosts`, `connection-refused`,
`DNS-error`, `connection-timeout`, ...). Build with `componentize-py -d wit -w plugin-http
componentize app -p <this module's dir> ...`.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, wasi_http_types as http
from wit_world.imports.streams import StreamError_Closed

# The most bytes blocking-write-and-flush takes at once (wasi:io).
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 * 1024

_METHODS = {
    "GET": http.Method_Get,
    "HEAD": http.Method_Head,
    "POST": http.Method_Post,
    "PUT": http.Method_Put,
    "DELETE": http.Method_Delete,
    "OPTIONS": http.Method_Options,
    "PATCH": http.Method_Patch,
}


class HttpError(Exception):
    """A request that got no response: `code` is wasi:http's error-code case, in the
    spelling of the WIT (`HTTP-request-denied`, `connection-refused`, ...)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass
class Response:
    status: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), decoded as Latin-1."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding)

    def json(self):
        return json.loads(self.body)


def get(url: str, **kwargs) -> Response:
    return request("GET", url, **kwargs)


def post(url: str, body: bytes | str, **kwargs) -> Response:
    return request("POST", url, body=body, **kwargs)


def request(
    method: str,
    url: str,
    headers: list[tuple[str, str | bytes]] | dict | None = None,
    body: bytes | str | None = None,
    timeout_s: float | None = None,
) -> Response:
    """Sends one request and reads the whole response. `timeout_s` bounds connecting, the
    first byte of the response and each wait between bytes (not the whole call; the task's
    own `timeout_s` bounds that)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        scheme = http.Scheme_Https()
    elif parts.scheme == "http":
        scheme = http.Scheme_Http()
    else:
        raise ValueError(f"{url!r}: only http:// and https:// URLs")
    if not parts.netloc:
        raise ValueError(f"{url!r}: no host")
    if isinstance(headers, dict):
        headers = list(headers.items())
    if isinstance(body, str):
        body = body.encode("utf-8")
    path = parts.path or "/"
    step = "headers"
    try:
        fields = http.Fields.from_list(
            [(k, v.encode("latin-1") if isinstance(v, str) else v) for k, v in (headers or [])]
        )
        req = http.OutgoingRequest(fields)
        step = "method"
        verb = _METHODS.get(method.upper())
        req.set_method(verb() if verb else http.Method_Other(method))
        step = "scheme"
        req.set_scheme(scheme)
        step = "host"
        req.set_authority(parts.netloc)
        step = "path"
        req.set_path_with_query(f"{path}?{parts.query}" if parts.query else path)
    except Err as e:
        # wasi:http refuses what HTTP cannot carry: a header name with a space, a method
        # with a slash, ...
        why = "" if e.value is None else f": {e.value!r}"
        raise ValueError(f"{url!r}: invalid {step}{why}") from None
    options = None
    if timeout_s is not None:
        ns = int(timeout_s * 1e9)
        options = http.RequestOptions()
        options.set_connect_timeout(ns)
        options.set_first_byte_timeout(ns)
        options.set_between_bytes_timeout(ns)

    outgoing = req.body()
    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        outgoing.__exit__(None, None, None)
        raise _error(e.value) from None
    # A body that could not be sent whole (the connection broke) leaves the response to
    # say why.
    _send_body(outgoing, body)
    with future:
        with future.subscribe() as ready:
            ready.block()
        result = future.get()
    # option<result<result<incoming-response, error-code>>>: ready, taken once, and then
    # the request's own outcome.
    if result is None or isinstance(result, Err):
        raise HttpError("internal-error", "the response was not ready or was taken")
    if isinstance(result.value, Err):
        raise _error(result.value.value)
    with result.value.value as response:
        status = response.status()
        with response.headers() as fields:
            headers = fields.entries()
        data = _read_body(response.consume())
    return Response(status, headers, data)


def _send_body(outgoing: "http.OutgoingBody", body: bytes | None) -> None:
    try:
        if body:
            with outgoing.write() as stream:
                for i in range(0, len(body), _WRITE_CHUNK):
                    stream.blocking_write_and_flush(body[i : i + _WRITE_CHUNK])
        http.OutgoingBody.finish(outgoing, None)
    except Err:
        # Dropped unfinished: the request fails, and its response future names the error.
        outgoing.__exit__(None, None, None)


def _read_body(incoming: "http.IncomingBody") -> bytes:
    chunks = []
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ_CHUNK))
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise HttpError("HTTP-protocol-error", "the response body broke off") from None
    http.IncomingBody.finish(incoming).__exit__(None, None, None)
    return b"".join(chunks)


def _error(code) -> HttpError:
    # ErrorCode_HttpRequestDenied -> HTTP-request-denied, as the WIT spells it.
    name = type(code).__name__.removeprefix("ErrorCode_")
    words, word = [], ""
    for c in name:
        if c.isupper() and word:
            words.append(word)
            word = ""
        word += c
    words.append(word)
    spelled = "-".join(w.upper() if w in ("Http", "Dns", "Tls", "Ip") else w.lower() for w in words)
    detail = getattr(code, "value", None)
    return HttpError(spelled, "" if detail is None else str(detail))
