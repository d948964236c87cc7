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
    entries = _header_entries(headers)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and not isinstance(body, (bytes, bytearray)):
        raise ValueError(f"body: bytes or str, not {type(body).__name__}")
    if not isinstance(method, str):
        raise ValueError(f"method: a str, not {type(method).__name__}")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"timeout_s: more than 0, not {timeout_s!r}")
    path = parts.path or "/"
    step = "headers"
    try:
        fields = http.Fields.from_list(entries)
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
    with future:
        # A body that could not be written whole (the connection broke) leaves the
        # response to say why; one refused at its end (shorter or longer than its
        # content-length) says so itself.
        _send_body(outgoing, body)
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


def _header_entries(headers) -> list[tuple[str, bytes]]:
    """`headers` (a dict, or (name, value) pairs, values str or bytes) as wasi:http takes
    them, or ValueError."""
    if headers is None:
        return []
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    entries = []
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"headers: a dict or (name, value) pairs, not {pair!r}")
        name, value = pair
        if isinstance(value, str):
            value = value.encode("latin-1", errors="strict")
        elif not isinstance(value, (bytes, bytearray)):
            raise ValueError(f"header {name}: a str or bytes value, not {type(value).__name__}")
        entries.append((name, bytes(value)))
    return entries


def _send_body(outgoing: "http.OutgoingBody", body: bytes | None) -> None:
    if body:
        try:
            with outgoing.write() as stream:
                for i in range(0, len(body), _WRITE_CHUNK):
                    stream.blocking_write_and_flush(body[i : i + _WRITE_CHUNK])
        except Err as e:
            _drop_stream_error(e.value)
            # Dropped unfinished: the request fails, and its response names the error.
            outgoing.__exit__(None, None, None)
            return
    try:
        # Takes `outgoing` whether it succeeds or not.
        http.OutgoingBody.finish(outgoing, None)
    except Err as e:
        raise _error(e.value) from None


def _read_body(incoming: "http.IncomingBody") -> bytes:
    chunks = []
    failed = None
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ_CHUNK))
            except Err as e:
                if not isinstance(e.value, StreamError_Closed):
                    failed = _stream_failure(e.value)
                break
    if failed is not None:
        incoming.__exit__(None, None, None)
        raise failed
    http.IncomingBody.finish(incoming).__exit__(None, None, None)
    return b"".join(chunks)


def _stream_failure(stream_error) -> HttpError:
    """The HttpError of a body stream that failed: wasi:http's error code when the stream's
    error carries one (a timeout between bytes, a reset connection)."""
    code = http.http_error_code(stream_error.value)
    _drop_stream_error(stream_error)
    if code is None:
        return HttpError("HTTP-protocol-error", "the response body broke off")
    return _error(code)


def _drop_stream_error(stream_error) -> None:
    # last-operation-failed holds a wasi:io error resource; closed holds nothing.
    error = getattr(stream_error, "value", None)
    if error is not None:
        error.__exit__(None, None, None)


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
    spelled = "-".join(w.upper() if w in ("Http", "Dns", "Tls", "Ip", "Uri") else w.lower() for w in words)
    detail = getattr(code, "value", None)
    return HttpError(spelled, "" if detail is None else str(detail))
