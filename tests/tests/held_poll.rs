//! The SWF client's long-poll settings: a poll held by the endpoint is not cut short.

use std::time::Duration;

use swasm::swf::SwfClient;
use swasm_tests::*;

/// A long poll held by the endpoint (here 6 s) returns an empty task rather than being cut
/// by the SDK's stalled-stream protection or a short timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_poll_survives() {
    let swf_local = LocalSwf::start_with(&["--listen", "127.0.0.1:0", "--poll-timeout-ms", "6000"]);
    let swf = Swf::new(&swf_local.url, "held").await;
    swf.setup(&[]).await.unwrap();
    let client = {
        // SAFETY: the only test in this binary; nothing else reads the environment now.
        // The standard credential chain inside connect() needs credentials.
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "test");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        }
        swasm::swf::AwsSwf::connect(&swasm::swf::Endpoint {
            domain: "held".into(),
            identity: "held-poll".into(),
            endpoint_url: Some(swf_local.url.clone()),
            region: Some("us-east-1".into()),
        })
        .await
        .unwrap()
    };
    let started = std::time::Instant::now();
    let polled = client.poll("nothing-here").await;
    assert!(matches!(polled, Ok(None)), "{polled:?}");
    // It was really held (not an immediate error turned into an empty result).
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
