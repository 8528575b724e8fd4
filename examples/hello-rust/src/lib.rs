//! A Rust function on Isotope: a handler, exported with the helper's
//! macro, that an instance started once calls for request after request
//! (Isotope's reactor ABI). src/isotope.rs is Isotope's Rust helper
//! (sdk/rust/isotope.rs), copied in.

mod isotope;

use isotope::{Request, Response};

fn hello(req: &Request) -> Response {
    let name = req.query("name").unwrap_or_else(|| "world".to_string());
    eprintln!("greeting {}", name); // the function's log
    Response::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(format!("Hello, {}! (from Rust on WebAssembly, {} {})\n", name, req.method, req.path))
}

isotope::export_handler!(hello);
