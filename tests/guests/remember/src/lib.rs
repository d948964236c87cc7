//! `remember@1`: looks for what an earlier task left in its memory, then leaves something
//! of its own, so a test can check that each task starts from pristine memory.
//!
//! Two buffers of 256 KiB each: `ZEROED` starts all zero (bss, beyond the component's
//! memory image) and `IMAGED` all `0x5a` (data, inside the image). Each task:
//! 1. counts the bytes of each buffer that differ from its initial contents;
//! 2. fills both with the byte its input names (`"fill:N"`, N in 1..=255), if any;
//! 3. heartbeats `"filled"`, so a test can act on the memory while the task is live (page
//!    it out, for example);
//! 4. answers `{"zeroed_dirty":n,"imaged_dirty":m}` with the counts of step 1.
//!
//! Without a `fill:` input it only counts. A fresh instance per task always answers 0, 0.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use swasm::activity::host::heartbeat;
use swasm::activity::types::Failure;

const LEN: usize = 256 * 1024;
const IMAGE_BYTE: u8 = 0x5a;

static mut ZEROED: [u8; LEN] = [0; LEN];
static mut IMAGED: [u8; LEN] = [IMAGE_BYTE; LEN];

struct Remember;

/// Bytes of `buf` that are not `initial`, read volatile so the optimiser cannot assume the
/// static still holds its initial value.
fn dirty(buf: *const [u8; LEN], initial: u8) -> usize {
    let base = buf.cast::<u8>();
    (0..LEN)
        .filter(|&i| unsafe { base.add(i).read_volatile() } != initial)
        .count()
}

fn fill(buf: *mut [u8; LEN], byte: u8) {
    let base = buf.cast::<u8>();
    for i in 0..LEN {
        unsafe { base.add(i).write_volatile(byte) };
    }
}

impl Guest for Remember {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let zeroed = &raw mut ZEROED;
        let imaged = &raw mut IMAGED;
        let zeroed_dirty = dirty(zeroed, 0);
        let imaged_dirty = dirty(imaged, IMAGE_BYTE);
        let byte = task
            .input
            .as_deref()
            .and_then(|input| input.strip_prefix("fill:"))
            .map(|n| {
                n.parse::<u8>().map_err(|e| {
                    ActivityError::Failed(Failure {
                        reason: "bad input".into(),
                        details: Some(format!("fill:{n}: {e}")),
                    })
                })
            })
            .transpose()?;
        if let Some(byte) = byte {
            fill(zeroed, byte);
            fill(imaged, byte);
            heartbeat(Some("filled"));
        }
        Ok(Some(format!(
            r#"{{"zeroed_dirty":{zeroed_dirty},"imaged_dirty":{imaged_dirty}}}"#
        )))
    }
}

export!(Remember);
