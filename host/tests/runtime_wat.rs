//! Components no guest language compiles to, written in the component text format or
//! derived from the bytes of built ones: what a hostile, broken or unusual file can do while
//! it is loaded, or when it traps.

mod runtime_common;

use std::time::Duration;

use runtime_common::*;
use swasm::activity::{ActivityType, reason};
use swasm::runtime::{LoadError, MAX_DETAILS_CHARS, Runtime, RuntimeOptions};

fn component(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wat")
        .join(name);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn runtime(max_memory_mb: u64) -> std::sync::Arc<Runtime> {
    Runtime::with_options(RuntimeOptions {
        max_instances: 4,
        max_memory_mb,
        ..RuntimeOptions::default()
    })
    .unwrap()
}

/// A table's elements count against `memory_mb` as a memory's pages do: a component with
/// no linear memory but a 200,000-element table (1.6 MB) cannot start within 1 MiB, and
/// gets as far as its (wrong) `run` signature with 2 MiB.
#[test]
fn tables_count_against_memory_mb() {
    let bytes = component("big-table.wat");
    match runtime(1).compile(&bytes) {
        Err(LoadError::Instantiate(e)) => assert!(e.contains("table"), "{e}"),
        other => panic!("loaded within memory_mb = 1: {:?}", other.err()),
    }
    match runtime(2).compile(&bytes) {
        Err(LoadError::WrongSignature(_)) => {}
        other => panic!("with memory_mb = 2: {:?}", other.err()),
    }
}

/// Why fixture `name` does not load (`None`: it does), compiled off the runtime; the load
/// check must end within two minutes.
async fn load_check_error(name: &str) -> Option<LoadError> {
    let rt = runtime(16);
    let bytes = component(name);
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || rt.compile(&bytes).err()),
    )
    .await
    .expect("the load check never ended")
    .unwrap()
}

/// A start function that blocks in a host call the epoch cannot interrupt (a clock
/// subscription that never fires) is rejected once the load check's wall-clock bound
/// passes, instead of holding the loader (and its plugin dir) for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_function_blocked_in_the_host_is_rejected() {
    match load_check_error("start-blocks.wat").await {
        Some(LoadError::Instantiate(e)) => assert!(e.contains("start function waits"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A start function that loops in guest code is interrupted at the load check's limit, and
/// the error names that limit, not the `timeout_s` of a task (none runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_start_function_names_the_load_check_limit() {
    match load_check_error("start-loops.wat").await {
        Some(LoadError::Instantiate(e)) => {
            assert!(e.contains("load check's 10s limit"), "{e}");
            assert!(!e.contains("timeout_s"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// A component may take no more of the instance pool than a task slot's share: one of
/// three memories (2 is the share) is refused when it compiles, rather than loaded and
/// left to take the memories of other slots, which would fail other types' tasks while
/// slots were free.
#[test]
fn a_component_over_its_share_of_the_pool_is_refused_at_load() {
    let bytes = component("three-memories.wat");
    match runtime(16).compile(&bytes) {
        Err(LoadError::Invalid(e)) => assert!(
            e.contains("3 Wasm linear memories") && e.contains("maximum of 2"),
            "{e}"
        ),
        other => panic!("{:?}", other.err()),
    }
}

/// A built example with every `swasm:activity/*@0.1.0` name renamed to `@0.1.1`, as a
/// component built against a patch release of the WIT has: same length, so the bytes stay
/// a valid component.
fn built_against_wit_0_1_1(file: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(example(file)).unwrap();
    let mut renamed = 0;
    for iface in ["activity", "host", "types"] {
        let from = format!("swasm:activity/{iface}@0.1.0");
        let to = format!("swasm:activity/{iface}@0.1.1");
        let mut at = 0;
        while let Some(i) = bytes[at..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
        {
            bytes[at + i..at + i + to.len()].copy_from_slice(to.as_bytes());
            at += i + to.len();
            renamed += 1;
        }
    }
    assert!(renamed > 0, "{file} names no swasm:activity interface");
    bytes
}

/// The activity export is found as wasmtime links imports, semver-compatibly: a component
/// that exports `swasm:activity/activity@0.1.1` (and imports `host@0.1.1`) loads and runs
/// like one built against 0.1.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_a_0_1_x_wit_loads_and_runs() {
    let rt = runtime(64);
    let plugin = |file: &str, ty: &str| {
        let bytes = built_against_wit_0_1_1(file);
        let compiled = rt
            .compile(&bytes)
            .unwrap_or_else(|e| panic!("{file} with @0.1.1 names: {e}"));
        assert!(
            compiled
                .info
                .exports
                .contains(&"swasm:activity/activity@0.1.1".to_string()),
            "{:?}",
            compiled.info.exports
        );
        let ty = ActivityType::parse(ty).unwrap();
        rt.plugin(&compiled, ty, file.into(), String::new(), 0)
    };
    let echo = plugin("echo@1.wasm", "echo@1");
    let o = echo
        .run(task("echo@1", Some("hello")), &settings(), no_heartbeat())
        .await;
    assert_eq!(completed(&o), "hello");
    // countdown imports `swasm:activity/host`: heartbeats cross the 0.1.1 import.
    let countdown = plugin("countdown@1.wasm", "countdown@1");
    let rec = std::sync::Arc::new(Recorder::default());
    let o = countdown
        .run(
            task("countdown@1", Some(r#"{"steps":2,"step_ms":1}"#)),
            &settings(),
            rec.clone(),
        )
        .await;
    assert_eq!(completed(&o), r#"{"done":2}"#);
    assert_eq!(rec.beats.lock().unwrap().len(), 2);
}

/// A built component cut short anywhere is truncated (the registry waits for the rest of
/// the file before it rejects it): where a section header ends early, and where the module
/// section runs past the end of the file.
#[test]
fn a_cut_short_component_is_truncated() {
    let bytes = std::fs::read(example("echo@1.wasm")).unwrap();
    let rt = runtime(64);
    for cut in [12, bytes.len() / 2, bytes.len() - 1] {
        match rt.compile(&bytes[..cut]) {
            Err(LoadError::Truncated(_)) => {}
            other => panic!("cut at {cut} of {}: {:?}", bytes.len(), other.err()),
        }
    }
}

/// A complete file the validator refuses is invalid, not truncated, though wasmparser says
/// its index is "out of bounds": the registry rejects it at once, without waiting for more
/// of it to be written.
#[test]
fn an_index_out_of_bounds_is_invalid_not_truncated() {
    match runtime(64).compile(&component("export-missing-instance.wat")) {
        Err(LoadError::Invalid(e)) => assert!(e.contains("unknown instance 7"), "{e}"),
        other => panic!("{:?}", other.err()),
    }
}

/// A component's text with `n` exports or imports made by `item(i)`, and `rest`.
fn many(n: usize, item: impl Fn(usize) -> String, rest: &str) -> Vec<u8> {
    let items: String = (0..n).map(item).collect();
    wat::parse_str(format!("(component {rest} {items})")).unwrap()
}

/// A component with thousands of exports or imports is refused with the first 10 named
/// and a count of the rest, not one log line as long as the list.
#[test]
fn long_export_and_import_lists_are_cut_short() {
    let rt = runtime(64);
    let exports = many(
        5000,
        |i| format!("(export \"m{i}\" (type $t))"),
        "(type $t u32)",
    );
    match rt.compile(&exports) {
        Err(LoadError::WrongWorld(e)) => {
            assert!(e.starts_with("m0, m1, ") && e.contains("m9"), "{e}");
            assert!(e.ends_with("m9 and 4990 more"), "{e}");
        }
        other => panic!("{:?}", other.err()),
    }
    let imports = many(
        5000,
        |i| format!("(import \"f{i}\" (func))"),
        "(instance $a) (export \"swasm:activity/activity@0.1.0\" (instance $a))",
    );
    match rt.compile(&imports) {
        Err(LoadError::UnsupportedImports(e)) => {
            assert!(e.starts_with("f0, f1, "), "{e}");
            assert!(e.ends_with("f9 and 4990 more"), "{e}");
        }
        other => panic!("{:?}", other.err()),
    }
}

/// `deep-recursion.wat` with a function named by 1 MiB of `a`, which recurses until the stack
/// is exhausted in `run` or, with `start`, when it is instantiated.
fn deep_recursion_with_a_huge_name(start: bool) -> Vec<u8> {
    let name = "a".repeat(1 << 20);
    let start = if start { "(start $start)" } else { "" };
    wat_component(
        "deep-recursion.wat",
        &[("FUNC_NAME", name.as_str()), ("START", start)],
    )
}

/// Checks the text of a stack-exhaustion trap in the huge-named function: within
/// [`MAX_DETAILS_CHARS`], the trap first, one backtrace, and its 20 frames each with the
/// name cut.
fn assert_bounded_backtrace(text: &str) {
    let chars = text.chars().count();
    assert!(chars <= MAX_DETAILS_CHARS, "{chars} characters");
    assert!(
        text.starts_with("wasm trap: call stack exhausted"),
        "{}",
        &text[..200]
    );
    assert_eq!(
        text.matches("wasm backtrace").count(),
        1,
        "{}",
        &text[..200]
    );
    let frames: Vec<&str> = text.lines().filter(|l| l.contains("!aaaa")).collect();
    assert_eq!(frames.len(), 20, "{}", &text[..text.len().min(2000)]);
    for frame in frames {
        assert!(
            frame.chars().count() < 250 && frame.ends_with("aaa…"),
            "{}",
            &frame[..frame.len().min(300)]
        );
    }
}

/// A component's function names are its author's. One of 8 MiB in a trap's backtrace made
/// the host format each of its 20 frames in full, twice, for 853 MB, then cut the details to
/// what SWF accepts, which showed part of the first frame. Each frame's name is cut now,
/// every frame shows, and the text is written within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_a_function_with_a_huge_name_has_bounded_details() {
    let rt = runtime(16);
    let p = load_bytes(&rt, &deep_recursion_with_a_huge_name(false), "deep@1");
    let o = p
        .run(task("deep@1", None), &settings(), no_heartbeat())
        .await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::TRAP);
    assert_bounded_backtrace(details);
}

/// A start function that traps in a function with a huge name made a load error as long as
/// 20 names (20 MB for a 1 MiB file), logged and kept for `/status`: it has the same bound
/// as failure details.
#[test]
fn a_start_function_trap_with_a_huge_name_is_a_bounded_load_error() {
    match runtime(16).compile(&deep_recursion_with_a_huge_name(true)) {
        Err(LoadError::Instantiate(e)) => assert_bounded_backtrace(&e),
        other => panic!("{:?}", other.err()),
    }
}

/// A component whose one core module has `items` and an export `run` (of the wrong
/// signature: these components are refused before it matters).
fn core_module_component(items: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (core module $m {items} (func (export "run")))
            (core instance $i (instantiate $m))
            (func $run (canon lift (core func $i "run")))
            (instance $activity (export "run" (func $run)))
            (export "swasm:activity/activity@0.1.0" (instance $activity)))"#
    ))
    .unwrap()
}

/// The instance pool has no GC heap, where wasmtime keeps GC objects, `externref`s and
/// exceptions: a component using them could never start, and was reported busy ("every
/// instance slot is taken") and tried again every 0.5 s for good. It is refused once, when
/// it compiles, with what it uses named.
#[test]
fn a_component_needing_a_gc_heap_is_refused_not_busy() {
    let rt = runtime(16);
    for (uses, items, named) in [
        (
            "exceptions",
            r#"(tag $t (param i32))
               (func (export "f") (result i32)
                 (block $h (result i32)
                   (try_table (catch $t $h) (throw $t (i32.const 5)))
                   (i32.const 0)))"#,
            "exceptions",
        ),
        (
            "a GC struct",
            r#"(type $s (struct (field i32)))
               (func (export "f") (drop (struct.new $s (i32.const 1))))"#,
            "gc",
        ),
        ("an externref table", "(table 1 externref)", "gc"),
    ] {
        match rt.compile(&core_module_component(items)) {
            Err(e @ LoadError::Invalid(_)) => {
                assert!(!e.is_transient(), "{uses}: {e}");
                assert!(e.to_string().contains(named), "{uses}: {e}");
            }
            other => panic!("{uses}: {:?}", other.err()),
        }
    }
    // Typed function references need no GC heap: this one starts, and is refused only for
    // its `run`.
    let typed = r#"(type $t (func)) (func $g) (elem declare func $g)
                   (func (export "f") (call_ref $t (ref.func $g)))"#;
    match rt.compile(&core_module_component(typed)) {
        Err(LoadError::WrongSignature(_)) => {}
        other => panic!("a typed function reference: {:?}", other.err()),
    }
}

/// wasmtime (patched, vendor/README.md) keeps at most 1,024 bytes of a function's name in
/// each frame of a trap's backtrace, whatever the name section says: a guest's 1 MiB name
/// is not copied into every frame of every trap.
#[test]
fn a_backtrace_frame_keeps_a_cut_function_name() {
    let name = "é".repeat(512 * 1024);
    let module = format!(
        r#"(module (func $run (export "run") (call $deep)) (func $deep (@name "{name}") unreachable))"#
    );
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, wat::parse_str(&module).unwrap()).unwrap();
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
    let run = instance
        .get_typed_func::<(), ()>(&mut store, "run")
        .unwrap();
    let err = run.call(&mut store, ()).unwrap_err();
    let backtrace = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .expect("a backtrace");
    let deep = backtrace.frames()[0].func_name().expect("the name");
    assert!(deep.len() <= 1024 && deep.len() >= 1022, "{}", deep.len());
    assert!(name.starts_with(deep), "cut at a char boundary");
}
