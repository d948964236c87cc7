//! `wrongsig@1`: exports `swasm:activity/activity@0.1.0` with a `run` of another signature
//! (`func(input: string) -> string`, from `wit/world.wit` here): the host must reject it
//! when it loads, not fail each task.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

struct WrongSig;

impl exports::swasm::activity::activity::Guest for WrongSig {
    fn run(input: String) -> String {
        input
    }
}

export!(WrongSig);
