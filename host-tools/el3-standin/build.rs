//! Links the stand-in at its address with `standin.ld` (aarch64-unknown-none builds only; host
//! builds of the stub link normally).

use std::{env, path::PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=standin.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        println!("cargo::error=cargo did not set CARGO_MANIFEST_DIR");
        return;
    };
    let script = PathBuf::from(dir).join("standin.ld");
    println!("cargo::rustc-link-arg-bins=-T{}", script.display());
}
