//! A WAGI function in Rust: a program whose main serves one request. The
//! request arrives in CGI environment variables (the body on stdin); the
//! response goes to stdout. src/wagi.rs is Isotope's WAGI helper
//! (sdk/rust/wagi.rs), copied in.

mod wagi;

fn main() {
    let req = wagi::Request::from_env();
    let name = req.query("name").unwrap_or_else(|| "world".to_string());
    eprintln!("greeting {}", name); // the function's log
    wagi::Response::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(format!("Hello, {}! (from Rust on WebAssembly, {} {})\n", name, req.method, req.path))
        .send();
}
