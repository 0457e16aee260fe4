//! `layerlab`: see the library crate, which holds the whole program.

fn main() -> std::process::ExitCode {
    layerlab::main()
}
