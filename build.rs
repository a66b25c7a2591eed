//! Links the cdylib with `-z nodelete`: when a LuaJIT state closes it
//! dlcloses C modules, and unmapping this library while its rayon workers
//! (or Rust thread-local destructors) are still alive would crash the game
//! server at exit. With nodelete the code stays mapped until the process ends.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
