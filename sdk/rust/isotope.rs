//! Isotope's helper for Rust functions: the request a function gets and
//! the response it gives, in both ways Isotope runs Rust
//! (docs/functions-wagi.md, "Rust"):
//!
//! - **A handler** (recommended): a library crate (`crate-type =
//!   ["cdylib"]`) whose function `fn(&Request) -> Response` is exported
//!   with `isotope::export_handler!`. The module speaks Isotope's reactor
//!   ABI (docs/reactor-abi.md): an instance is started once and serves
//!   request after request, so a request costs microseconds.
//! - **A WAGI program**: a binary whose `main` serves one request, read
//!   with `Request::from_env()` from CGI variables and stdin, answered
//!   with `Response::send()` on stdout. A fresh instance runs `main` for
//!   every request: the CGI model, at several times the cost.
//!
//! One file, the standard library only, Rust 1.63 or newer: copy it into
//! your crate's `src/` as `isotope.rs` and declare it with `mod isotope;`
//! (the macro names the module `isotope`).
//!
//! ```ignore
//! // src/lib.rs; Cargo.toml has [lib] crate-type = ["cdylib"]
//! mod isotope;
//! use isotope::{Request, Response};
//!
//! fn hello(req: &Request) -> Response {
//!     let name = req.query("name").unwrap_or_else(|| "world".to_string());
//!     Response::new(200)
//!         .header("Content-Type", "text/plain; charset=utf-8")
//!         .body(format!("Hello, {}!\n", name))
//! }
//!
//! isotope::export_handler!(hello);
//! ```
//!
//! Anything written to stderr (`eprintln!`) or stdout (`println!`, in a
//! handler) goes to the function's log. A handler that panics ends its
//! request with 502 and its instance is replaced.

#![allow(dead_code)]

use std::cell::RefCell;
use std::env;
use std::io::{self, Read, Write};

/// An HTTP request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// GET, POST, ...
    pub method: String,
    /// The path below the route's prefix (CGI `PATH_INFO`), decoded; "/"
    /// when empty. A route `/hello` asked for `/hello` gives "/"; a route
    /// `/files/...` asked for `/files/a/b` gives "/a/b".
    pub path: String,
    /// The query string, as sent (without `?`).
    pub query_string: String,
    /// The request headers, lower-case with `-`: ("user-agent", "curl/8.0").
    /// A handler gets every header; a WAGI program gets no
    /// `Authorization`, as CGI passes none.
    pub headers: Vec<(String, String)>,
    /// Routing context: "matched_route" (the trigger's route, e.g.
    /// `/files/...`), "full_url" (the URL the client asked for) and
    /// "script_name" (the path prefix that selected the function), when
    /// known.
    pub meta: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Request {
    /// Reads a WAGI program's request from the process: the CGI
    /// environment and stdin.
    pub fn from_env() -> Request {
        let mut body = Vec::new();
        // A body that cannot be read is an empty one: stdin is the
        // host's in-memory buffer, so this does not happen in practice.
        let _ = io::stdin().read_to_end(&mut body);
        Request::from_vars(env::vars(), body)
    }

    /// Builds a request from CGI variables and a body (WAGI; tests).
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(vars: I, body: Vec<u8>) -> Request {
        let mut req = Request { body, ..Request::default() };
        for (k, v) in vars {
            match k.as_str() {
                "REQUEST_METHOD" => req.method = v,
                "PATH_INFO" => req.path = v,
                "QUERY_STRING" => req.query_string = v,
                "X_MATCHED_ROUTE" => req.meta.push(("matched_route".to_string(), v)),
                "X_FULL_URL" => req.meta.push(("full_url".to_string(), v)),
                "SCRIPT_NAME" if !v.is_empty() => req.meta.push(("script_name".to_string(), v)),
                _ => {
                    if let Some(name) = k.strip_prefix("HTTP_") {
                        req.headers.push((name.to_ascii_lowercase().replace('_', "-"), v));
                    }
                }
            }
        }
        req.finish()
    }

    /// Decodes a reactor request frame (docs/reactor-abi.md). None is the
    /// host's warm-up request, which runs no user code.
    pub fn from_frame(frame: &[u8]) -> Result<Option<Request>, String> {
        let mut r = FrameReader { b: frame };
        let version = r.u32()?;
        if version != ABI_VERSION {
            return Err(format!("request frame version {}, this helper speaks {}", version, ABI_VERSION));
        }
        let mut req = Request { method: r.string()?, ..Request::default() };
        let uri = r.string()?;
        let (_host, _remote, _proto) = (r.bytes()?, r.bytes()?, r.bytes()?);
        for _ in 0..r.u32()? {
            let (k, v) = (r.string()?, r.string()?);
            req.headers.push((k.to_ascii_lowercase(), v));
        }
        let mut warmup = false;
        for _ in 0..r.u32()? {
            let (k, v) = (r.string()?, r.string()?);
            match k.as_str() {
                "isotope_warmup" => warmup = !v.is_empty(),
                "matched_route" | "full_url" | "script_name" => req.meta.push((k, v)),
                _ => {} // keys of later hosts
            }
        }
        req.body = r.bytes()?.to_vec();
        if warmup {
            return Ok(None);
        }
        let (path, query) = match uri.find('?') {
            Some(i) => (&uri[..i], &uri[i + 1..]),
            None => (uri.as_str(), ""),
        };
        req.query_string = query.to_string();
        req.path = path_info(&decode(path, false), req.meta_value("script_name"), req.meta_value("matched_route"));
        Ok(Some(req.finish()))
    }

    fn finish(mut self) -> Request {
        if self.method.is_empty() {
            self.method = "GET".to_string();
        }
        if self.path.is_empty() {
            self.path = "/".to_string();
        }
        self.headers.sort();
        self
    }

    /// The value of header `name` (any case), if sent; repeated headers
    /// arrive joined with ", " (WAGI) or as separate entries (handler;
    /// this returns the first).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The value of a `meta` key, if known.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of `key` in the query string, decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every key and value of the query string, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query_string
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = match p.find('=') {
                    Some(i) => (&p[..i], &p[i + 1..]),
                    None => (p, ""),
                };
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The path below the prefix that selected the function, as WAGI's
/// PATH_INFO: below script_name, else below the route without its
/// "/..." when the path is under it.
fn path_info(path: &str, script: Option<&str>, route: Option<&str>) -> String {
    let base = match (script, route) {
        (Some(s), _) if !s.is_empty() => s,
        (_, Some(r)) => r.strip_suffix("/...").unwrap_or(r),
        _ => "",
    };
    if base.is_empty() || base == "/" {
        return path.to_string();
    }
    match path.strip_prefix(base) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// Any CGI variable the host set for a WAGI program: `X_FULL_URL`,
/// `REMOTE_ADDR`, `ISOTOPE_ENTRYPOINT`, ... (a handler has the function's
/// own variables and `ISOTOPE_ENTRYPOINT`).
pub fn var(name: &str) -> Option<String> {
    env::var(name).ok()
}

/// An HTTP response: a status, header lines and a body.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with this status, no headers and no body.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header line. Line breaks in the name or value are dropped:
    /// they would end the header block.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        let clean = |s: &str| s.chars().filter(|c| *c != '\r' && *c != '\n').collect::<String>();
        self.headers.push((clean(name), clean(value)));
        self
    }

    /// Sets the body.
    pub fn body<B: Into<Vec<u8>>>(mut self, body: B) -> Response {
        self.body = body.into();
        self
    }

    /// Writes the response in CGI form: `Status`, then the headers (with
    /// a text/plain `Content-Type` when none was given, since WAGI needs
    /// one of Content-Type, Location or Status), an empty line, the body.
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let mut head = format!("Status: {}\n", self.status);
        if !self.has_content_type() {
            head.push_str("Content-Type: text/plain; charset=utf-8\n");
        }
        for (k, v) in &self.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push('\n');
        }
        head.push('\n');
        w.write_all(head.as_bytes())?;
        w.write_all(&self.body)?;
        w.flush()
    }

    /// A WAGI program's answer: writes the response to stdout. A write
    /// that fails is reported on stderr (the function log); the host then
    /// answers 502.
    pub fn send(&self) {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        if let Err(e) = self.write_to(&mut out) {
            eprintln!("isotope: writing the response: {}", e);
        }
    }

    /// Appends the response frame of the reactor ABI to `out`, with the
    /// same default Content-Type as write_to.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, ABI_VERSION);
        put_u32(out, self.status as u32);
        let default = !self.has_content_type();
        put_u32(out, self.headers.len() as u32 + default as u32);
        if default {
            put_bytes(out, b"Content-Type");
            put_bytes(out, b"text/plain; charset=utf-8");
        }
        for (k, v) in &self.headers {
            put_bytes(out, k.as_bytes());
            put_bytes(out, v.as_bytes());
        }
        put_bytes(out, &self.body);
    }

    fn has_content_type(&self) -> bool {
        self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    }
}

/// The reactor ABI version this helper speaks.
pub const ABI_VERSION: u32 = 1;

thread_local! {
    static REQUEST: RefCell<Vec<u8>> = RefCell::new(Vec::new());
    static RESPONSE: RefCell<Vec<u8>> = RefCell::new(Vec::new());
}

/// `isotope_alloc`: the request buffer, grown to `size` bytes; valid
/// until the next call. 0 when the memory is not there.
pub fn alloc(size: u32) -> *mut u8 {
    REQUEST.with(|b| {
        let mut b = b.borrow_mut();
        let (size, have) = (size as usize, b.len());
        if have < size && b.try_reserve_exact(size - have).is_err() {
            return std::ptr::null_mut();
        }
        b.resize(size, 0);
        b.as_mut_ptr()
    })
}

/// `isotope_handle`: decodes the frame at `[ptr, ptr+len)`, runs the
/// handler and returns where its response frame is, `(ptr << 32) | len`.
/// The frame stays valid until the next call.
pub fn handle(ptr: *const u8, len: u32, handler: fn(&Request) -> Response) -> u64 {
    // The host passes the buffer alloc returned, holding len bytes.
    let frame = unsafe { std::slice::from_raw_parts(ptr, len as usize) };
    let resp = serve(frame, handler);
    RESPONSE.with(|out| {
        let mut out = out.borrow_mut();
        out.clear();
        resp.encode(&mut out);
        // Pointers are 32 bits on wasm32.
        ((out.as_ptr() as usize as u64) << 32) | out.len() as u64
    })
}

/// The response to one request frame: the handler's, 204 to the host's
/// warm-up, 500 to a frame this helper cannot read.
pub fn serve(frame: &[u8], handler: fn(&Request) -> Response) -> Response {
    match Request::from_frame(frame) {
        Ok(Some(req)) => handler(&req),
        Ok(None) => Response::new(204),
        Err(e) => {
            eprintln!("isotope: bad request frame: {}", e);
            Response::new(500).body("isotope: bad request frame\n")
        }
    }
}

/// Exports `handler`, a `fn(&isotope::Request) -> isotope::Response`, as
/// the function's entry: the reactor ABI's `isotope_handle`,
/// `isotope_alloc` and `isotope_abi_version`. Use it once, in a cdylib
/// crate, with this file as `mod isotope;` at the crate root.
#[allow(unused_macros)]
macro_rules! export_handler {
    ($handler:path) => {
        #[no_mangle]
        pub extern "C" fn isotope_abi_version() -> u32 {
            crate::isotope::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn isotope_alloc(size: u32) -> *mut u8 {
            crate::isotope::alloc(size)
        }

        #[no_mangle]
        pub extern "C" fn isotope_handle(ptr: *const u8, len: u32) -> u64 {
            crate::isotope::handle(ptr, len, $handler)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use export_handler;

struct FrameReader<'a> {
    b: &'a [u8],
}

impl<'a> FrameReader<'a> {
    fn u32(&mut self) -> Result<u32, String> {
        if self.b.len() < 4 {
            return Err("truncated".to_string());
        }
        let v = u32::from_le_bytes([self.b[0], self.b[1], self.b[2], self.b[3]]);
        self.b = &self.b[4..];
        Ok(v)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        if self.b.len() < n {
            return Err("truncated".to_string());
        }
        let (v, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

/// Decodes `%XX` escapes and `+` (a space, in a query string). Invalid
/// escapes are kept as written; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() && hex(b[i + 1]).is_some() && hex(b[i + 2]).is_some() => {
                out.push(hex(b[i + 1]).unwrap() * 16 + hex(b[i + 2]).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn request_from_vars() {
        let req = Request::from_vars(
            vars(&[
                ("REQUEST_METHOD", "POST"),
                ("PATH_INFO", "/a b"),
                ("QUERY_STRING", "name=Ada+L%C3%B6w&x&name=second&bad=%zz"),
                ("HTTP_USER_AGENT", "curl/8"),
                ("HTTP_X_FISSION_PARAMS_ID", "42"),
                ("SERVER_SOFTWARE", "WAGI/1"),
                ("X_MATCHED_ROUTE", "/a/..."),
            ]),
            b"hi".to_vec(),
        );
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/a b");
        assert_eq!(req.query("name").as_deref(), Some("Ada Löw"));
        assert_eq!(req.query("x").as_deref(), Some(""));
        assert_eq!(req.query("bad").as_deref(), Some("%zz"));
        assert_eq!(req.query("missing"), None);
        assert_eq!(req.query_pairs().len(), 4);
        assert_eq!(req.header("User-Agent"), Some("curl/8"));
        assert_eq!(req.header("x-fission-params-id"), Some("42"));
        assert_eq!(req.header("server-software"), None);
        assert_eq!(req.meta_value("matched_route"), Some("/a/..."));
        assert_eq!(req.text(), "hi");
    }

    #[test]
    fn request_defaults() {
        let req = Request::from_vars(Vec::new(), Vec::new());
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/"));
        assert!(req.query_pairs().is_empty());
    }

    #[test]
    fn response_cgi_form() {
        let mut out = Vec::new();
        Response::new(404).header("X-A", "1\r\nInjected: yes").body("gone").write_to(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Status: 404\nContent-Type: text/plain; charset=utf-8\nX-A: 1Injected: yes\n\ngone"
        );
        let mut out = Vec::new();
        Response::new(200).header("content-type", "application/json").body("{}").write_to(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "Status: 200\ncontent-type: application/json\n\n{}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(decode("/a+b%20c", false), "/a+b c");
    }

    // A request frame as the host writes it (internal/wasm/codec.go).
    fn frame(method: &str, uri: &str, headers: &[(&str, &str)], meta: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        put_u32(&mut f, ABI_VERSION);
        for s in [method, uri, "example.com", "10.0.0.1:5555", "HTTP/1.1"] {
            put_bytes(&mut f, s.as_bytes());
        }
        put_u32(&mut f, headers.len() as u32);
        for (k, v) in headers {
            put_bytes(&mut f, k.as_bytes());
            put_bytes(&mut f, v.as_bytes());
        }
        put_u32(&mut f, meta.len() as u32);
        for (k, v) in meta {
            put_bytes(&mut f, k.as_bytes());
            put_bytes(&mut f, v.as_bytes());
        }
        put_bytes(&mut f, body);
        f
    }

    #[test]
    fn request_from_frame() {
        let f = frame(
            "POST",
            "/files/a%20b/c?name=Ada+L%C3%B6w&x",
            &[("User-Agent", "curl/8"), ("X-Twice", "1"), ("X-Twice", "2")],
            &[("matched_route", "/files/..."), ("full_url", "http://example.com/files/a%20b/c"), ("later_key", "ignored")],
            b"body",
        );
        let req = Request::from_frame(&f).unwrap().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/a b/c");
        assert_eq!(req.query("name").as_deref(), Some("Ada Löw"));
        assert_eq!(req.header("user-agent"), Some("curl/8"));
        assert_eq!(req.headers.iter().filter(|(k, _)| k == "x-twice").count(), 2);
        assert_eq!(req.meta_value("full_url"), Some("http://example.com/files/a%20b/c"));
        assert_eq!(req.meta_value("later_key"), None);
        assert_eq!(req.text(), "body");

        // An exact route gives "/", as WAGI's empty PATH_INFO does; a
        // script_name wins over the route; a path outside both is whole.
        let exact = Request::from_frame(&frame("GET", "/rs/hello?x=1", &[], &[("matched_route", "/rs/hello")], b"")).unwrap().unwrap();
        assert_eq!(exact.path, "/");
        let script = Request::from_frame(&frame("GET", "/p/q/r", &[], &[("matched_route", "/p/..."), ("script_name", "/p/q")], b"")).unwrap().unwrap();
        assert_eq!(script.path, "/r");
        let outside = Request::from_frame(&frame("GET", "/prefix-not", &[], &[("matched_route", "/prefix/...")], b"")).unwrap().unwrap();
        assert_eq!(outside.path, "/prefix-not");
    }

    #[test]
    fn hostile_frames() {
        assert!(Request::from_frame(&frame("GET", "/", &[], &[("isotope_warmup", "1")], b"")).unwrap().is_none());
        let good = frame("GET", "/x", &[("A", "b")], &[], b"body");
        for n in 0..good.len() {
            assert!(Request::from_frame(&good[..n]).is_err(), "a frame cut at {} bytes was accepted", n);
        }
        let mut v2 = good.clone();
        v2[0] = 2;
        assert!(Request::from_frame(&v2).unwrap_err().contains("version 2"));
        // A length past the end must not be trusted.
        let mut huge = Vec::new();
        put_u32(&mut huge, ABI_VERSION);
        put_u32(&mut huge, u32::MAX);
        assert!(Request::from_frame(&huge).is_err());
        // Invalid UTF-8 is replaced, not a panic.
        let bad = frame("G\u{fffd}T", "/\u{fffd}", &[], &[], &[0xff]);
        assert!(Request::from_frame(&bad).unwrap().is_some());
    }

    fn decode_response(f: &[u8]) -> (u32, Vec<(String, String)>, Vec<u8>) {
        let mut r = FrameReader { b: f };
        assert_eq!(r.u32().unwrap(), ABI_VERSION);
        let status = r.u32().unwrap();
        let mut headers = Vec::new();
        for _ in 0..r.u32().unwrap() {
            headers.push((r.string().unwrap(), r.string().unwrap()));
        }
        let body = r.bytes().unwrap().to_vec();
        assert!(r.b.is_empty());
        (status, headers, body)
    }

    fn hello(req: &Request) -> Response {
        Response::new(201).header("X-Path", &req.path).body(format!("hi {}", req.query("n").unwrap_or_default()))
    }

    #[test]
    fn serve_round_trip() {
        let f = frame("GET", "/h/sub?n=5", &[], &[("matched_route", "/h/...")], b"");
        let p = alloc(f.len() as u32);
        assert!(!p.is_null());
        unsafe { std::ptr::copy_nonoverlapping(f.as_ptr(), p, f.len()) };
        let mut out = Vec::new();
        serve(unsafe { std::slice::from_raw_parts(p, f.len()) }, hello).encode(&mut out);
        let (status, headers, body) = decode_response(&out);
        assert_eq!(status, 201);
        assert_eq!(headers, vec![
            ("Content-Type".to_string(), "text/plain; charset=utf-8".to_string()),
            ("X-Path".to_string(), "/sub".to_string()),
        ]);
        assert_eq!(body, b"hi 5");

        let mut out = Vec::new();
        serve(&frame("GET", "/", &[], &[("isotope_warmup", "1")], b""), |_| panic!("the warm-up ran the handler")).encode(&mut out);
        assert_eq!(decode_response(&out).0, 204);
        let mut out = Vec::new();
        serve(b"\x01", hello).encode(&mut out);
        assert_eq!(decode_response(&out).0, 500);
    }
}
