//! `fetch@1`: sends the HTTP request its input describes and completes with the response.
//!
//! Input: `{"url": "http://host:port/path", "method": "GET" (default), "body": "..."
//! (optional), "headers": {"name": "value"} (optional)}`. Result: `{"status": 200,
//! "body": "...", "content_type": "..."}`. An authority not in the activity's
//! `allowed_hosts`, or any request that gets no response, fails the task with reason
//! `HttpError` and wasi:http's error code (`HttpRequestDenied`, `ConnectionRefused`, ...).
//! Outgoing HTTP is wasi:http's client through the `wasi` crate: the `plugin` world is
//! enough, since the crate brings the wasi:http imports itself.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use std::collections::BTreeMap;

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use serde::{Deserialize, Serialize};
use swasm::activity::types::Failure;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

const USAGE: &str =
    r#"input: {"url": "http://host:port/path", "method": "GET", "body": "...", "headers": {}}"#;
/// The most bytes one `blocking_write_and_flush` takes (wasi:io).
const WRITE_CHUNK: usize = 4096;
/// Connecting, the first byte and each gap between bytes, in nanoseconds.
const TIMEOUT_NS: u64 = 10_000_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    url: String,
    #[serde(default = "get")]
    method: String,
    body: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The result, in this order (the fields a reader looks at first, first).
#[derive(Serialize)]
struct Answer {
    status: u16,
    body: String,
    content_type: Option<String>,
}

fn get() -> String {
    "GET".into()
}

fn failed(reason: &str, details: String) -> ActivityError {
    ActivityError::Failed(Failure {
        reason: reason.into(),
        details: Some(details),
    })
}

fn bad_input(why: &str) -> ActivityError {
    failed("BadInput", format!("{why}; {USAGE}"))
}

fn http_error(code: ErrorCode) -> ActivityError {
    failed("HttpError", format!("{code:?}"))
}

struct Fetch;

impl Guest for Fetch {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let spec: Spec = serde_json::from_str(task.input.as_deref().unwrap_or(""))
            .map_err(|e| bad_input(&e.to_string()))?;
        let (status, content_type, body) = send(&spec)?;
        let answer = Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            content_type,
        };
        Ok(Some(
            serde_json::to_string(&answer).expect("an Answer serialises"),
        ))
    }
}

/// The request `spec` describes, sent: its status, content type and body.
fn send(spec: &Spec) -> Result<(u16, Option<String>, Vec<u8>), ActivityError> {
    let (scheme, rest) = if let Some(rest) = spec.url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = spec.url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(bad_input("only http:// and https:// URLs"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_string()),
    };
    let headers = Fields::new();
    for (name, value) in &spec.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| bad_input(&format!("invalid header {name:?}: {e:?}")))?;
    }
    let method = match spec.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&method)
        .map_err(|()| bad_input("invalid method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad_input("invalid scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad_input("invalid host"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| bad_input("invalid path"))?;
    let options = RequestOptions::new();
    // Each is refused only by a host that does not support the timeout: then it has none.
    let _ = options.set_connect_timeout(Some(TIMEOUT_NS));
    let _ = options.set_first_byte_timeout(Some(TIMEOUT_NS));
    let _ = options.set_between_bytes_timeout(Some(TIMEOUT_NS));

    let outgoing = request.body().map_err(|()| bad_input("no body"))?;
    let future = outgoing_handler::handle(request, Some(options)).map_err(http_error)?;
    write_body(outgoing, spec.body.as_deref().unwrap_or("").as_bytes())?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(http_error(code)),
        _ => return Err(failed("HttpError", "no response".into())),
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response
        .consume()
        .map_err(|()| failed("HttpError", "no body".into()))?;
    let body = read_body(&incoming);
    IncomingBody::finish(incoming);
    Ok((status, content_type, body?))
}

/// Writes `body` and finishes it; a body that could not be written whole (the connection
/// broke) is dropped unfinished, and the response then says why.
fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), ActivityError> {
    if !body.is_empty() {
        let stream = outgoing
            .write()
            .map_err(|()| failed("HttpError", "no body stream".into()))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return Ok(());
            }
        }
    }
    // A body shorter or longer than its content-length is refused here.
    OutgoingBody::finish(outgoing, None).map_err(http_error)
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, ActivityError> {
    let stream = incoming
        .stream()
        .map_err(|()| failed("HttpError", "no body stream".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasi::http::types::http_error_code(&e) {
                    Some(code) => http_error(code),
                    None => failed("HttpError", e.to_debug_string()),
                });
            }
        }
    }
}

export!(Fetch);
