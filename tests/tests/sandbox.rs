//! Issue 5's sandbox, end to end through `swasm run`: grants are all a guest gets, and
//! guests that loop, allocate or recurse forever fail with their own reason while the
//! tasks next to them complete.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use swasm_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// A loopback listener the test owns; `connections()` counts what reached it.
struct Listener(TcpListener);

impl Listener {
    fn new() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Listener(l)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Connections waiting in the accept queue (a connect that was closed again still
    /// waits there), so any attempt that got through is counted.
    fn connections(&self) -> usize {
        let mut n = 0;
        loop {
            match self.0.accept() {
                Ok(_) => n += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// `hostile@1` in a host started with AWS_ACCESS_KEY_ID and friends in its env: it sees only
/// its granted variable, cannot read /etc/passwd, cannot open a TCP connection to a loopback
/// listener, and cannot reach a non-allowed HTTP authority (another listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guest_is_refused_everything() {
    let scenario = Scenario::start("hostile", &[("hostile@1", None)]).await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["hostile@1.wasm"])]);
    config.extra = concat!(
        "[activity.\"hostile@1\"]\n",
        "env = { MODE = \"fast\" }\n",
        "allowed_hosts = [\"example.com:80\"]\n",
    )
    .into();
    let host = Host::start(&config.write(), &[]);

    let (tcp, web) = (Listener::new(), Listener::new());
    let input = format!(
        r#"{{"port":{},"http_host":"127.0.0.1:{}"}}"#,
        tcp.port(),
        web.port()
    );
    let closed = swf
        .run_one(
            "w-hostile",
            Activity::new("h", "hostile@1", "main", Some(&input)),
            MINUTE,
        )
        .await;
    let [Closed::Completed(Some(result))] = &closed[..] else {
        panic!("hostile@1 should report, got {closed:?}");
    };
    let report: Value = serde_json::from_str(result).unwrap();

    // The host itself had AWS credentials in its env (the harness sets them).
    let host_env = std::fs::read(format!("/proc/{}/environ", host.pid())).unwrap();
    assert!(
        String::from_utf8_lossy(&host_env).contains("AWS_ACCESS_KEY_ID="),
        "the test should start the host with AWS_ACCESS_KEY_ID set"
    );
    assert_eq!(report["env"], serde_json::json!(["MODE"]), "{report}");
    for what in ["file", "tcp", "http"] {
        assert!(
            report[what]
                .as_str()
                .is_some_and(|s| s.starts_with("denied")),
            "{what} should be denied: {report}"
        );
    }
    assert_eq!(tcp.connections(), 0, "the TCP listener got a connection");
    assert_eq!(
        web.connections(),
        0,
        "the non-allowed HTTP host got a connection"
    );
}

/// An HTTP server on 127.0.0.1 that answers every request with JSON of its method, path
/// and body, and counts the requests.
async fn echo_http_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                axum::Json(serde_json::json!({
                    "method": method.as_str(),
                    "path": uri.to_string(),
                    "body": body,
                }))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, requests)
}

/// What a `fetch` example answers for a body that falls short of its content-length and for
/// a body that is not text: (reason, a part of the details) each.
type BodyChecks = Option<[(&'static str, &'static str); 2]>;

/// A `fetch` example of each language that calls HTTP: (type, activity id prefix, what its
/// details say for a denied authority and for a refused connection, its body checks).
const FETCHES: [(&str, &str, &str, &str, BodyChecks); 3] = [
    (
        "fetch@1",
        "rust",
        "HttpRequestDenied",
        "ConnectionRefused",
        Some([
            ("HttpError", "HttpRequestBodySize"),
            ("BadInput", "invalid type"),
        ]),
    ),
    (
        "fetch-py@1",
        "py",
        "HTTP-request-denied",
        "connection-refused",
        Some([
            ("HttpError", "HTTP-request-body-size"),
            ("BadInput", "body: bytes or str"),
        ]),
    ),
    // componentize-js's fetch says NetworkError for both, and sends a body whatever its
    // content-length or type.
    ("fetch-js@1", "js", "NetworkError", "NetworkError", None),
];

/// The `fetch` examples of Rust (`fetch@1`: the `wasi` crate), Python (`fetch-py@1`: the
/// plugin-http world and `swasm_http`) and JavaScript (`fetch-js@1`: componentize-js's
/// `fetch`) send GET and POST requests to an authority in their `allowed_hosts` and get the
/// responses; a request to another authority fails the task `HttpError` and never reaches
/// it, as does one to an allowed authority where nothing listens, each saying why in its
/// language's words; a method that is not an HTTP token fails `BadInput` and is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_call_http_only_where_allowed() {
    let (port, requests) = echo_http_server().await;
    let other = Listener::new();
    // Bound and never listening, for the whole test: connecting is refused, and no other
    // process can take the port meanwhile.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed_port = refusing.local_addr().unwrap().port();
    let types = FETCHES.map(|(ty, ..)| ty);
    let scenario = Scenario::start("http", &types.map(|t| (t, None))).await;
    let swf = &scenario.swf;
    let files = types.map(|t| format!("{t}.wasm"));
    let mut config = scenario.host_config(vec![TaskListSpec::new(
        "main",
        &files.each_ref().map(String::as_str),
    )]);
    // Python and JavaScript take seconds to compile: keep their code across runs, as the
    // language tests do.
    config.cache_dir = Some(
        std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(".cache/swasm/test-cache"),
    );
    config.extra = types
        .map(|t| {
            format!(
                "[activity.\"{t}\"]\nallowed_hosts = [\"127.0.0.1:{port}\", \"127.0.0.1:{closed_port}\"]\n\n"
            )
        })
        .concat();
    let _host = Host::start(&config.write(), &[]);

    let request = |url: String, more: Value| {
        let mut spec = serde_json::json!({ "url": url });
        spec.as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        spec.to_string()
    };
    let inputs = [
        (
            "get",
            request(
                format!("http://127.0.0.1:{port}/items?page=2"),
                serde_json::json!({}),
            ),
        ),
        (
            "post",
            request(
                format!("http://127.0.0.1:{port}/items"),
                // Over one 4 KiB write; the three languages' inputs together stay under
                // SWF's 32,768 characters of workflow input.
                serde_json::json!({"method": "POST", "body": "x".repeat(6_000)}),
            ),
        ),
        (
            "denied",
            request(
                format!("http://127.0.0.1:{}/", other.port()),
                serde_json::json!({}),
            ),
        ),
        (
            "refused",
            request(
                format!("http://127.0.0.1:{closed_port}/"),
                serde_json::json!({}),
            ),
        ),
        (
            "bad-method",
            request(
                format!("http://127.0.0.1:{port}/"),
                serde_json::json!({"method": "NOT A METHOD"}),
            ),
        ),
        ("bad", "not json".to_string()),
        // Not for JavaScript (see FETCHES): a content-length the body falls short of, and
        // a body that is not text.
        (
            "short-body",
            request(
                format!("http://127.0.0.1:{port}/items"),
                serde_json::json!({"method": "POST", "body": "hello", "headers": {"content-length": "10"}}),
            ),
        ),
        (
            "bad-body",
            request(
                format!("http://127.0.0.1:{port}/items"),
                serde_json::json!({"method": "POST", "body": 5}),
            ),
        ),
    ];
    let body_checks = ["short-body", "bad-body"];
    // SWF's ids take no `/`, `:` or `|`: "fetch-py@1" and "get" make "py-get".
    let act_id = |ty: &str, id: &str| {
        let (_, prefix, ..) = FETCHES.iter().find(|f| f.0 == ty).unwrap();
        format!("{prefix}-{id}")
    };
    let acts: Vec<Activity> = FETCHES
        .iter()
        .flat_map(|&(ty, _, _, _, checks_bodies)| {
            inputs
                .iter()
                .filter(move |(id, _)| checks_bodies.is_some() || !body_checks.contains(id))
                .map(move |(id, input)| Activity::new(&act_id(ty, id), ty, "main", Some(input)))
        })
        .collect();
    swf.start("w-http", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-http", acts.len(), MINUTE).await;
    let one = |id: &str| match &closed[id][..] {
        [c] => c.clone(),
        other => panic!("{id}: {other:?}"),
    };
    let failure = |id: &str| match one(id) {
        Closed::Failed { reason, details } => (reason, details),
        other => panic!("{id}: {other:?}"),
    };

    for (ty, _, denied, refused, body_checks) in FETCHES {
        let response = |id: &str| -> Value {
            let id = act_id(ty, id);
            let Closed::Completed(Some(result)) = one(&id) else {
                panic!("{id}: {:?}", one(&id));
            };
            let result: Value = serde_json::from_str(&result).unwrap();
            assert_eq!(result["status"], 200, "{id}: {result}");
            assert_eq!(result["content_type"], "application/json", "{id}: {result}");
            serde_json::from_str(result["body"].as_str().unwrap()).unwrap()
        };
        let get = response("get");
        assert_eq!(
            (
                get["method"].as_str(),
                get["path"].as_str(),
                get["body"].as_str()
            ),
            (Some("GET"), Some("/items?page=2"), Some("")),
            "{ty}: {get}"
        );
        let post = response("post");
        assert_eq!(post["method"], "POST", "{ty}: {post}");
        assert_eq!(
            post["body"],
            "x".repeat(6_000),
            "{ty}: the body arrived whole"
        );

        let mut expected = vec![
            ("denied", "HttpError", denied),
            ("refused", "HttpError", refused),
            ("bad-method", "BadInput", "invalid method"),
            ("bad", "BadInput", "input:"),
        ];
        if let Some([(short_reason, short), (bad_reason, bad)]) = body_checks {
            expected.extend([
                ("short-body", short_reason, short),
                ("bad-body", bad_reason, bad),
            ]);
        }
        for (id, reason, why) in expected {
            let (got, details) = failure(&act_id(ty, id));
            assert_eq!(got, reason, "{ty}/{id}: {details}");
            assert!(details.contains(why), "{ty}/{id}: {details}");
        }
    }
    // GET and POST of each language, and nothing else: not the bad method, nor a body
    // refused before its end.
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        2 * FETCHES.len()
    );
    assert_eq!(
        other.connections(),
        0,
        "the authority not allowed got a connection"
    );
}

/// 10 spin, 10 hog and 10 recurse guests at once next to 20 echo tasks: every echo
/// completes, each bad guest fails with its own reason, the host stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_guests_fail_alone() {
    let types = ["echo@1", "spin@1", "hog@1", "recurse@1"];
    let scenario = Scenario::start("limits", &types.map(|t| (t, None))).await;
    let swf = &scenario.swf;
    let files = types.map(|t| format!("{t}.wasm"));
    let mut tl = TaskListSpec::new("main", &files.each_ref().map(String::as_str));
    tl.max_concurrent = 50;
    tl.pollers = 4;
    let mut config = scenario.host_config(vec![tl]);
    config.extra = concat!(
        "[activity.\"spin@1\"]\ntimeout_s = 2\n\n",
        "[activity.\"hog@1\"]\nmemory_mb = 32\n\n",
        "[activity.\"recurse@1\"]\ntimeout_s = 30\n",
    )
    .into();
    let mut host = Host::start(&config.write(), &[]);

    let mut acts = Vec::new();
    for i in 0..10 {
        acts.push(Activity::new(&format!("spin{i}"), "spin@1", "main", None));
        acts.push(Activity::new(&format!("hog{i}"), "hog@1", "main", None));
        acts.push(Activity::new(
            &format!("recurse{i}"),
            "recurse@1",
            "main",
            None,
        ));
        acts.push(Activity::new(
            &format!("echo{i}"),
            "echo@1",
            "main",
            Some(&format!("e{i}")),
        ));
        acts.push(Activity::new(
            &format!("echo{}", i + 10),
            "echo@1",
            "main",
            Some(&format!("e{}", i + 10)),
        ));
    }
    swf.start("w-limits", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-limits", acts.len(), 2 * MINUTE).await;

    for a in &acts {
        let c = &closed[&a.id];
        let expected = match a.name.as_str() {
            "echo" => {
                assert_eq!(c, &vec![Closed::Completed(a.input.clone())], "{}", a.id);
                continue;
            }
            "spin" => "swasm.Timeout",
            "hog" => "swasm.MemoryLimit",
            "recurse" => "swasm.Trap",
            other => unreachable!("{other}"),
        };
        match &c[..] {
            [Closed::Failed { reason, .. }] => assert_eq!(reason, expected, "{}: {c:?}", a.id),
            other => panic!("{}: expected one {expected} failure, got {other:?}", a.id),
        }
    }
    let history = swf.history("w-limits").await.unwrap();
    assert!(
        !history
            .iter()
            .any(|e| e.event_type == aws_sdk_swf::types::EventType::ActivityTaskTimedOut),
        "the host answered every task itself"
    );
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host should still be running"
    );
    // And it still serves.
    let after = [Activity::new("after", "echo@1", "main", Some("still here"))];
    swf.start("w-after", &after, false).await.unwrap();
    let closed = swf.wait_closed("w-after", 1, MINUTE).await;
    assert_eq!(
        closed["after"],
        vec![Closed::Completed(Some("still here".into()))]
    );
    host.signal("TERM");
    assert!(host.wait_exit(MINUTE).await.is_some_and(|s| s.success()));
}
