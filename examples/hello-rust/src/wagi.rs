//! WAGI for Rust functions on Isotope: the request a WAGI module gets in
//! CGI environment variables and on stdin, and the CGI response it writes
//! to stdout (docs/functions-wagi.md).
//!
//! One file, the standard library only, Rust 1.63 or newer: copy it next
//! to your `main.rs` (or into `src/`) and declare it with `mod wagi;`.
//!
//! ```ignore
//! mod wagi;
//!
//! fn main() {
//!     let req = wagi::Request::from_env();
//!     let name = req.query("name").unwrap_or_else(|| "world".to_string());
//!     wagi::Response::new(200)
//!         .header("Content-Type", "text/plain; charset=utf-8")
//!         .body(format!("Hello, {}!\n", name))
//!         .send();
//! }
//! ```
//!
//! Anything written to stderr (`eprintln!`) goes to the function's log.

#![allow(dead_code)]

use std::env;
use std::io::{self, Read, Write};

/// An HTTP request as WAGI passes it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `REQUEST_METHOD`: GET, POST, ...
    pub method: String,
    /// `PATH_INFO`, decoded; "/" when empty.
    pub path: String,
    /// `QUERY_STRING`, as sent (without `?`).
    pub query_string: String,
    /// The request headers (from the `HTTP_*` variables), lower-case
    /// with `-`: ("user-agent", "curl/8.0"). `Authorization` is never
    /// passed to a function.
    pub headers: Vec<(String, String)>,
    /// The body, read from stdin.
    pub body: Vec<u8>,
}

impl Request {
    /// Reads the request from the process: the environment and stdin.
    pub fn from_env() -> Request {
        let mut body = Vec::new();
        // A body that cannot be read is an empty one: stdin is the
        // host's in-memory buffer, so this does not happen in practice.
        let _ = io::stdin().read_to_end(&mut body);
        Request::from_vars(env::vars(), body)
    }

    /// Builds a request from CGI variables and a body (for tests).
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(vars: I, body: Vec<u8>) -> Request {
        let mut req = Request { body, ..Request::default() };
        for (k, v) in vars {
            match k.as_str() {
                "REQUEST_METHOD" => req.method = v,
                "PATH_INFO" => req.path = v,
                "QUERY_STRING" => req.query_string = v,
                _ => {
                    if let Some(name) = k.strip_prefix("HTTP_") {
                        req.headers.push((name.to_ascii_lowercase().replace('_', "-"), v));
                    }
                }
            }
        }
        if req.method.is_empty() {
            req.method = "GET".to_string();
        }
        if req.path.is_empty() {
            req.path = "/".to_string();
        }
        req.headers.sort();
        req
    }

    /// The value of header `name` (any case), if sent; repeated headers
    /// arrive joined with ", ".
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
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

/// Any CGI variable the host set: `X_FULL_URL`, `X_MATCHED_ROUTE`,
/// `REMOTE_ADDR`, `ISOTOPE_ENTRYPOINT`, ...
pub fn var(name: &str) -> Option<String> {
    env::var(name).ok()
}

/// A CGI response: a status, header lines and a body.
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
    pub fn header(&mut self, name: &str, value: &str) -> &mut Response {
        let clean = |s: &str| s.chars().filter(|c| *c != '\r' && *c != '\n').collect::<String>();
        self.headers.push((clean(name), clean(value)));
        self
    }

    /// Sets the body.
    pub fn body<B: Into<Vec<u8>>>(&mut self, body: B) -> &mut Response {
        self.body = body.into();
        self
    }

    /// Writes the response in CGI form: `Status`, then the headers (with
    /// a text/plain `Content-Type` when none was given, since WAGI needs
    /// one of Content-Type, Location or Status), an empty line, the body.
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let mut head = format!("Status: {}\n", self.status);
        if !self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
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

    /// Writes the response to stdout. A write that fails is reported on
    /// stderr (the function log); the host then answers 502.
    pub fn send(&self) {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        if let Err(e) = self.write_to(&mut out) {
            eprintln!("wagi: writing the response: {}", e);
        }
    }
}

/// Decodes `%XX` escapes and `+` (a space, in a query string). Invalid
/// escapes are kept as written; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
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
    }
}
