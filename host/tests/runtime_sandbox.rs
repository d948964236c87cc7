//! The sandbox: nothing is reachable unless granted, grants work, and misbehaving guests
//! (many at once) do not stop other tasks.

mod runtime_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use runtime_common::*;
use serde_json::Value;
use swasm::activity::{Heartbeat, HeartbeatHandle, Outcome, reason};
use swasm::config::{ActivitySettings, DirGrant};
use swasm::runtime::{MAX_BODY_CHUNK, Runtime, RuntimeOptions};

/// A one-response HTTP server on 127.0.0.1; counts connections.
async fn http_server() -> (u16, Arc<AtomicUsize>) {
    let (port, hits, open) = gated_http_server().await;
    open.send_replace(true);
    (port, hits)
}

/// Set in the run of this test binary that [`hostile_guest_is_refused_everything`] starts.
const WITH_CREDENTIALS: &str = "SWASM_TEST_SANDBOX_WITH_CREDENTIALS";

/// The host holds credentials; the guest must not see them, nor anything else. The
/// credentials are put in the environment of a second run of this test binary, which runs
/// this test alone: no test changes the environment of a process whose other tests read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guest_is_refused_everything() {
    if std::env::var_os(WITH_CREDENTIALS).is_none() {
        let run = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "hostile_guest_is_refused_everything",
                "--test-threads",
                "1",
                "--nocapture",
            ])
            .env(WITH_CREDENTIALS, "1")
            .env("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("the run with credentials should end within 2 minutes")
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the run with credentials:\n{stdout}\n{stderr}"
        );
        return;
    }
    assert_eq!(
        std::env::var("AWS_ACCESS_KEY_ID").as_deref(),
        Ok("AKIATESTTESTTEST")
    );
    let rt = Runtime::for_invoke().unwrap();
    let p = load(&rt, &guest("hostile@1.wasm"), "hostile@1");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let (http_port, hits) = http_server().await;
    let input = format!(
        r#"{{"port":{},"http_host":"127.0.0.1:{http_port}"}}"#,
        tcp.local_addr().unwrap().port()
    );
    let o = p
        .run(task("hostile@1", Some(&input)), &settings(), no_heartbeat())
        .await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(v["env"], serde_json::json!([]), "{v}");
    assert!(v["file"].as_str().unwrap().starts_with("denied"), "{v}");
    assert!(v["tcp"].as_str().unwrap().starts_with("denied"), "{v}");
    assert!(v["http"].as_str().unwrap().starts_with("denied"), "{v}");
    assert!(
        v["http"].as_str().unwrap().contains("HttpRequestDenied"),
        "{v}"
    );
    assert!(
        tcp.accept().is_err(),
        "the guest reached the loopback listener"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the guest reached the HTTP server"
    );
}

/// Host memory held through handles is bounded without any grant: wasi:http header sets,
/// linked for every guest, held up to 128 KiB each and without limit in number, so one task
/// could pin gigabytes outside `memory_mb`. The handles a task holds and the size of a header
/// set are capped; past either the task fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_cannot_hold_host_memory_without_bound() {
    let rt = Runtime::for_invoke().unwrap();
    let p = load(&rt, &guest("hostile@1.wasm"), "hostile@1");
    for (input, expect) in [
        (
            r#"{"hoard":100000,"size":1000}"#,
            "resource table has no free keys",
        ),
        (
            r#"{"hoard":1,"size":20000}"#,
            "total size of fields exceeds limit",
        ),
    ] {
        let o = p
            .run(task("hostile@1", Some(input)), &settings(), no_heartbeat())
            .await;
        let (r, details) = failed(&o);
        assert_eq!(r, reason::TRAP, "{input}");
        assert!(details.contains(expect), "{input}: {details}");
    }
    // Within both caps, a guest holds what it asks for.
    let o = p
        .run(
            task("hostile@1", Some(r#"{"hoard":500,"size":1000}"#)),
            &settings(),
            no_heartbeat(),
        )
        .await;
    assert_eq!(completed(&o), r#"{"error":null,"held":500}"#);
}

/// The same through wasi:http request bodies, which need no grant to be made and written:
/// what a body's stream takes before its request is sent stays on the host, so each body
/// may buffer at most 2 x [`MAX_BODY_CHUNK`] (wasmtime-wasi-http's default let it take
/// 2 MiB, so one task could hold about 2 GiB through 1,024 handles).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_cannot_hold_host_memory_without_bound() {
    let rt = Runtime::for_invoke().unwrap();
    let p = load(&rt, &guest("hostile@1.wasm"), "hostile@1");
    let o = p
        .run(
            task("hostile@1", Some(r#"{"bodies":200}"#)),
            &settings(),
            no_heartbeat(),
        )
        .await;
    let result: serde_json::Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(result["held"], 200, "{result}");
    let buffered = result["buffered"].as_u64().unwrap();
    assert!(buffered > 0, "{result}");
    assert!(
        buffered <= 200 * 2 * MAX_BODY_CHUNK as u64,
        "the host buffered {buffered} bytes for 200 unsent bodies"
    );
}

/// An allowed host is reached over `http://` and `https://`; `user@` before it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_host_is_reachable_over_wasi_http() {
    let rt = Runtime::for_invoke().unwrap();
    let p = load(&rt, &guest("hostile@1.wasm"), "hostile@1");
    let (http_port, hits) = http_server().await;
    let s = ActivitySettings {
        allowed_hosts: vec![format!("127.0.0.1:{http_port}")],
        ..settings()
    };
    let input = format!(r#"{{"http_host":"127.0.0.1:{http_port}"}}"#);
    let o = p
        .run(task("hostile@1", Some(&input)), &s, no_heartbeat())
        .await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(v["http"], "ok", "{v}");
    assert_eq!(v["tcp"], "skipped");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // `user@` before the allowed host: the connector would look up the whole string, a name
    // the guest chose. Refused before any lookup or connection.
    let input = format!(r#"{{"http_host":"user@127.0.0.1:{http_port}"}}"#);
    let o = p
        .run(task("hostile@1", Some(&input)), &s, no_heartbeat())
        .await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(v["http"], "denied: ErrorCode::HttpRequestDenied", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // `https://` reaches TLS: a server that speaks no TLS is an error the guest sees, not a
    // panic of the host (two TLS crypto providers are linked; rustls would not pick one).
    let input = format!(r#"{{"http_host":"127.0.0.1:{http_port}","https":true}}"#);
    let o = p
        .run(task("hostile@1", Some(&input)), &s, no_heartbeat())
        .await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    let http = v["http"].as_str().unwrap();
    assert!(
        http.starts_with("denied: ") && !http.contains("panic"),
        "{v}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "it connected to the allowed host"
    );
}

/// A one-response HTTP server on 127.0.0.1 that holds every request until `open` is sent
/// `true` (or dropped); counts the connections it accepted.
async fn gated_http_server() -> (u16, Arc<AtomicUsize>, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (open, gate) = tokio::sync::watch::channel(false);
    let a = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let mut gate = gate.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = gate.wait_for(|open| *open).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, accepted, open)
}

/// Opens the gate of a [`gated_http_server`] at the guest's first heartbeat.
struct OpenAtBeat(tokio::sync::watch::Sender<bool>);

impl Heartbeat for OpenAtBeat {
    fn beat(&self, _details: Option<String>) -> bool {
        self.0.send_replace(true);
        false
    }
}

/// A guest with a grant cannot use up the host's sockets: of 40 requests started at once,
/// 32 reach the server and the rest fail in the guest with `ConnectionLimitReached`.
/// The server answers none until all 40 are started, so no slot comes back before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_has_at_most_32_requests_in_flight() {
    assert_eq!(swasm::runtime::MAX_HTTP_IN_FLIGHT, 32);
    let rt = Runtime::for_invoke().unwrap();
    let p = load(&rt, &guest("hostile@1.wasm"), "hostile@1");
    let (http_port, accepted, open) = gated_http_server().await;
    let s = ActivitySettings {
        allowed_hosts: vec![format!("127.0.0.1:{http_port}")],
        ..settings()
    };
    let input = format!(r#"{{"flood":40,"http_host":"127.0.0.1:{http_port}"}}"#);
    let o = p
        .run(
            task("hostile@1", Some(&input)),
            &s,
            Arc::new(OpenAtBeat(open)),
        )
        .await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(v["ok"], 32, "{v}");
    assert_eq!(
        v["errors"],
        serde_json::json!({"ErrorCode::ConnectionLimitReached": 8}),
        "{v}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_dir_grants_reach_the_guest() {
    let rt = Runtime::for_invoke().unwrap();
    let p = load(&rt, &guest("envread@1.wasm"), "envread@1");
    let o = p
        .run(task("envread@1", None), &settings(), no_heartbeat())
        .await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(v["env"], serde_json::json!({}));
    assert!(v["data"].as_str().unwrap().starts_with("denied"), "{v}");

    let dir = std::env::temp_dir().join(format!("swasm-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    std::fs::write(dir.join("b.txt"), "b").unwrap();
    let s = ActivitySettings {
        env: [("MODE".to_string(), "fast".to_string())].into(),
        dirs: vec![DirGrant {
            host: dir.clone(),
            guest: "/data".into(),
            read_only: true,
        }],
        ..settings()
    };
    let o = p.run(task("envread@1", None), &s, no_heartbeat()).await;
    let v: Value = serde_json::from_str(completed(&o)).unwrap();
    assert_eq!(v["env"], serde_json::json!({"MODE": "fast"}));
    assert_eq!(v["data"], serde_json::json!(["a.txt", "b.txt"]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_misbehaving_guests_do_not_stop_echo() {
    let rt = Runtime::with_options(RuntimeOptions {
        max_instances: 64,
        max_memory_mb: 64,
        ..Default::default()
    })
    .unwrap();
    let spin = load(&rt, &guest("spin@1.wasm"), "spin@1");
    let hog = load(&rt, &guest("hog@1.wasm"), "hog@1");
    let recurse = load(&rt, &guest("recurse@1.wasm"), "recurse@1");
    let echo = load(&rt, &example("echo@1.wasm"), "echo@1");
    let mut bad = Vec::new();
    for i in 0..30 {
        let (p, ty) = match i % 3 {
            0 => (spin.clone(), "spin@1"),
            1 => (hog.clone(), "hog@1"),
            _ => (recurse.clone(), "recurse@1"),
        };
        let s = ActivitySettings {
            timeout_s: 3,
            memory_mb: 32,
            ..settings()
        };
        bad.push(tokio::spawn(async move {
            (ty, p.run(task(ty, None), &s, no_heartbeat()).await)
        }));
    }
    let mut good = Vec::new();
    for i in 0..20 {
        let echo = echo.clone();
        good.push(tokio::spawn(async move {
            let input = format!("task {i}");
            (
                input.clone(),
                echo.run(task("echo@1", Some(&input)), &settings(), no_heartbeat())
                    .await,
            )
        }));
    }
    for g in good {
        let (input, o) = g.await.unwrap();
        assert_eq!(o, Outcome::Completed(Some(input)));
    }
    for b in bad {
        let (ty, o) = b.await.unwrap();
        let expected = match ty {
            "spin@1" => reason::TIMEOUT,
            "hog@1" => reason::MEMORY_LIMIT,
            _ => reason::TRAP,
        };
        assert_eq!(failed(&o).0, expected, "{ty}: {o:?}");
    }
}

/// Runs `remember@1` tasks back to back in one plugin and returns each answer as
/// `(zeroed_dirty, imaged_dirty)`: the bytes a task found changed from the initial contents
/// of its two statics, which only a previous task in the same pool slot could have written.
async fn remember_rounds(hb: HeartbeatHandle, rounds: u8) -> Vec<(u64, u64)> {
    let rt = runtime_with_slots(4);
    let remember = load(&rt, &guest("remember@1.wasm"), "remember@1");
    let mut found = Vec::new();
    for round in 1..=rounds {
        let input = format!("fill:{round}");
        let o = remember
            .run(task("remember@1", Some(&input)), &settings(), hb.clone())
            .await;
        let v: Value = serde_json::from_str(completed(&o)).unwrap();
        found.push((
            v["zeroed_dirty"].as_u64().unwrap(),
            v["imaged_dirty"].as_u64().unwrap(),
        ));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_never_sees_the_memory_of_the_task_before() {
    // Each task fills 512 KiB of statics; the next one, in the slot the pool keeps warm for
    // this component, must find all of them at their initial contents again.
    let found = remember_rounds(no_heartbeat(), 6).await;
    assert_eq!(found, vec![(0, 0); 6]);
}

/// Pages every private writable mapping of the pooling allocator's reservation (address
/// runs of at least 16 GiB) out to swap: what memory pressure does to a live guest's pages.
struct PageOut(AtomicUsize);

impl Heartbeat for PageOut {
    fn beat(&self, _details: Option<String>) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut vmas = Vec::new();
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
            let (start, end) = range.split_once('-').unwrap();
            let start = usize::from_str_radix(start, 16).unwrap();
            let end = usize::from_str_radix(end, 16).unwrap();
            vmas.push((start, end, perms.starts_with("rw") && perms.ends_with('p')));
        }
        // Runs of adjacent mappings; the pool's is one big reservation split by mprotect.
        let mut runs: Vec<Vec<(usize, usize, bool)>> = Vec::new();
        for vma in vmas {
            match runs.last_mut() {
                Some(run) if run.last().unwrap().1 == vma.0 => run.push(vma),
                _ => runs.push(vec![vma]),
            }
        }
        for run in runs {
            if run.last().unwrap().1 - run[0].0 < 16 << 30 {
                continue;
            }
            for (start, end, _) in run.into_iter().filter(|v| v.2) {
                // SAFETY: MADV_PAGEOUT only moves pages to swap; their contents stay.
                let r = unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT)
                };
                assert_eq!(r, 0, "madvise: {}", std::io::Error::last_os_error());
                self.0.fetch_add(end - start, Ordering::SeqCst);
            }
        }
        false
    }
}

/// Pages of this process that are in swap now (`VmSwap`, kB).
fn swapped_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSwap:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_never_sees_the_memory_of_the_task_before_even_from_swap() {
    // A page the kernel swapped out while its task ran is not resident when the slot is
    // reset after the task. The reset must still restore it, or the next task swaps the
    // previous task's data back in (wasmtime 48's pagemap-scan reset skipped such pages).
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() < 2 {
        eprintln!("no swap on this machine: a guest's pages cannot be paged out, nothing to test");
        return;
    }
    let pager = Arc::new(PageOut(AtomicUsize::new(0)));
    let found = remember_rounds(pager.clone(), 6).await;
    assert!(
        pager.0.load(Ordering::SeqCst) > 0,
        "no guest memory found to page out"
    );
    eprintln!("this process has {} kB in swap", swapped_kb());
    assert_eq!(found, vec![(0, 0); 6]);
}

/// A guest cannot hold its guest thread inside one host call, where neither the epoch nor
/// the task's backstop can stop it. One `write` of 64 MiB of newlines to stderr, more than
/// `check-write` permits, took 17 s of host CPU in one call, and the other runs on the
/// thread waited as long: it traps at once now, as WASI says. A guest that writes as much
/// as it may, newlines in a loop, is interrupted at its `timeout_s`; meanwhile another run on
/// its thread goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_flooding_stderr_does_not_hold_its_thread() {
    let rt = runtime_with_slots(4);
    let guests = swasm::guests::GuestThreads::new(1).unwrap();
    let s = ActivitySettings {
        timeout_s: 2,
        memory_mb: 80,
        ..settings()
    };
    for (write_len, expected) in [(64usize << 20, reason::TRAP), (64 << 10, reason::TIMEOUT)] {
        let pages = ((1 << 20) + write_len) / (64 << 10) + 1;
        let bytes = wat_component(
            "stderr-flood.wat",
            &[
                ("WRITE_LEN", &write_len.to_string()),
                ("MEMORY_PAGES", &pages.to_string()),
            ],
        );
        let flood = load_bytes(&rt, &bytes, "flood@1");
        let settings = s.clone();
        let flooding = tokio::spawn(guests.run(Box::pin(async move {
            flood
                .run(task("flood@1", None), &settings, no_heartbeat())
                .await
        })));
        let timers = timers_beside(&guests);
        let timers = tokio::time::timeout(Duration::from_secs(s.timeout_s), timers).await;
        assert_eq!(
            timers.expect("the other run on the thread waited past the flood's timeout_s"),
            Outcome::Completed(None)
        );
        let o = flooding.await.unwrap();
        let (r, details) = failed(&o);
        assert_eq!(r, expected, "writes of {write_len} bytes: {details}");
        if expected == reason::TRAP {
            assert!(details.contains("check-write permits at most"), "{details}");
        }
    }
}

/// `get-random-bytes` takes at most 1 MiB a call: the host allocates what the guest asks
/// for before the guest's `memory_mb` sees it, up to 64 MiB a call by wasmtime-wasi's
/// default, whatever `memory_mb` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_are_capped_per_call() {
    let rt = runtime_with_slots(4);
    for (len, completes) in [(1usize << 20, true), ((1 << 20) + 1, false)] {
        let bytes = wat_component("random-bytes.wat", &[("RANDOM_LEN", &len.to_string())]);
        let p = load_bytes(&rt, &bytes, "random@1");
        let o = p
            .run(task("random@1", None), &settings(), no_heartbeat())
            .await;
        if completes {
            assert_eq!(o, Outcome::Completed(None), "{len} bytes");
        } else {
            let (r, details) = failed(&o);
            assert_eq!(r, reason::TRAP, "{len} bytes: {details}");
            assert!(details.contains("exceeds limit 1048576"), "{details}");
        }
    }
}
