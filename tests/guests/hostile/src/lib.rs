//! `hostile@1`: tries everything a sandbox must refuse and reports each outcome instead of
//! failing, so a test can assert on all of them from one result:
//!
//! ```json
//! {"env":["NAME",...], "file":"...", "tcp":"...", "http":"..."}
//! ```
//!
//! `env` lists every environment variable name the guest sees. `file` (read `/etc/passwd`),
//! `tcp` (connect to 127.0.0.1:`port`) and `http` (GET `http://{http_host}/` via wasi:http)
//! are each `"ok"` when the attempt succeeded, `"denied: <error>"` when it failed, and
//! `tcp` is `"skipped"` when the input has no port.
//!
//! Input (optional JSON): `{"port":P, "http_host":"host:port", "https":false}`; `http_host`
//! defaults to `example.com:80`, and `"https": true` asks for `https://` instead.
//!
//! With `{"hoard": N, "size": S}` instead, it only tries to hold host memory without any
//! grant: N wasi:http header sets of one S-byte value each, kept alive. It answers
//! `{"held": n, "error": "..."}` with how many it holds when the first one failed; a host
//! that refuses by trapping fails the task instead.
//!
//! With `{"bodies": N}`, it tries the same through request bodies: N wasi:http requests,
//! never sent, each body written until its stream takes no more, all kept alive. It answers
//! `{"held": n, "buffered": bytes}`: the bytes the host took into the bodies' buffers.
//!
//! With `{"flood": N, "http_host": "host:port"}`, it starts N GETs at once through wasi:http,
//! heartbeats `"sent"` once all are started, then waits for each. It answers
//! `{"ok": n, "errors": {"<error>": count, ...}}`.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use serde_json::{Value, json};

struct Hostile;

fn outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("denied: {e}"),
    }
}

fn try_tcp(port: Option<u16>) -> String {
    match port {
        None => "skipped".to_string(),
        Some(port) => outcome(std::net::TcpStream::connect(("127.0.0.1", port))),
    }
}

/// One GET through wasi:http's outgoing-handler; any error on the way is the outcome.
fn try_http(authority: &str, https: bool) -> Result<u16, String> {
    let future = start_get(authority, https)?;
    wait(&future)
}

/// Starts a GET of `/` and returns its response future.
fn start_get(
    authority: &str,
    https: bool,
) -> Result<wasi::http::types::FutureIncomingResponse, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "set-method refused".to_string())?;
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|()| "set-scheme refused".to_string())?;
    request.set_authority(Some(authority)).map_err(|()| "set-authority refused".to_string())?;
    request.set_path_with_query(Some("/")).map_err(|()| "set-path refused".to_string())?;
    let body = request.body().map_err(|()| "body already taken".to_string())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    Ok(future)
}

/// Waits for a response; its status, or the error.
fn wait(future: &wasi::http::types::FutureIncomingResponse) -> Result<u16, String> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response.status()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        Some(Err(())) => Err("response already taken".to_string()),
        None => Err("response not ready after block".to_string()),
    }
}

impl Guest for Hostile {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let input: Value = task
            .input
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        if let Some(n) = input.get("hoard").and_then(Value::as_u64) {
            let size = input.get("size").and_then(Value::as_u64).unwrap_or(1024) as usize;
            return Ok(Some(hoard(n, size)));
        }
        if let Some(n) = input.get("bodies").and_then(Value::as_u64) {
            return Ok(Some(bodies(n)));
        }
        let http_host = input.get("http_host").and_then(Value::as_str).unwrap_or("example.com:80");
        if let Some(n) = input.get("flood").and_then(Value::as_u64) {
            return Ok(Some(flood(n, http_host)));
        }
        let port = input.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());

        let env: Vec<String> = std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        let file = outcome(std::fs::read_to_string("/etc/passwd"));
        let tcp = try_tcp(port);
        let https = input.get("https").and_then(Value::as_bool).unwrap_or(false);
        let http = outcome(try_http(http_host, https));
        eprintln!("hostile: env={env:?} file={file} tcp={tcp} http={http}");
        Ok(Some(json!({ "env": env, "file": file, "tcp": tcp, "http": http }).to_string()))
    }
}

/// Holds `n` header sets of one `size`-byte value each; see the module docs.
fn hoard(n: u64, size: usize) -> String {
    use wasi::http::types::Fields;
    let value = vec![b'a'; size];
    let mut held = Vec::new();
    let mut error = None;
    for i in 0..n {
        let fields = Fields::new();
        if let Err(e) = fields.append("x", &value) {
            error = Some(format!("at {i}: {e:?}"));
            break;
        }
        held.push(fields);
    }
    json!({ "held": held.len(), "error": error }).to_string()
}

/// Fills the bodies of `n` unsent requests as far as the host lets it; see the module docs.
fn bodies(n: u64) -> String {
    use wasi::http::types::{Fields, OutgoingRequest};
    let chunk = vec![b'a'; 4 << 20];
    let mut held = Vec::new();
    let mut buffered = 0u64;
    for _ in 0..n {
        let request = OutgoingRequest::new(Fields::new());
        let Ok(body) = request.body() else { break };
        let Ok(stream) = body.write() else { break };
        // Each write takes what check-write allows, until it allows nothing more.
        while let Ok(allowed) = stream.check_write() {
            let len = (allowed as usize).min(chunk.len());
            if len == 0 || stream.write(&chunk[..len]).is_err() {
                break;
            }
            buffered += len as u64;
        }
        // Dropped in this order at the end: a stream goes before its body.
        held.push((stream, body, request));
    }
    json!({ "held": held.len(), "buffered": buffered }).to_string()
}

/// Starts `n` GETs at once, heartbeats, then waits for each; see the module docs.
fn flood(n: u64, authority: &str) -> String {
    let started: Vec<_> = (0..n).map(|_| start_get(authority, false)).collect();
    swasm::activity::host::heartbeat(Some("sent"));
    let mut ok = 0;
    let mut errors = serde_json::Map::new();
    for future in started {
        match future.and_then(|f| wait(&f)) {
            Ok(_) => ok += 1,
            Err(e) => {
                let count = errors.entry(e).or_insert(json!(0));
                *count = json!(count.as_u64().unwrap_or(0) + 1);
            }
        }
    }
    json!({ "ok": ok, "errors": errors }).to_string()
}

export!(Hostile);
