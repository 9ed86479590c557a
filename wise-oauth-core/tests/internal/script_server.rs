//! A scriptable raw-HTTP server on 127.0.0.1:0 for hostile-response tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// Write these bytes, then close.
    Raw(Vec<u8>),
    /// Write the head, then one byte of body every `interval`, forever.
    Drip { head: Vec<u8>, interval: Duration },
    /// Close the connection with a TCP reset without answering.
    Reset,
}

impl Reply {
    /// A response with a status line, extra headers and a body (Content-Length, close).
    pub(crate) fn http(status: &str, headers: &[(&str, &str)], body: &str) -> Self {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(body);
        Self::Raw(out.into_bytes())
    }

    /// A JSON response.
    pub(crate) fn json(status: &str, body: &str) -> Self {
        Self::http(status, &[("content-type", "application/json")], body)
    }
}

/// One captured request.
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Captured {
    /// A header value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The request line.
    pub(crate) fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// The decoded form fields, in order.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

/// The server handle.
#[derive(Clone)]
pub(crate) struct ScriptServer {
    pub(crate) addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Reply>>>,
    fallback: Arc<Mutex<Reply>>,
    count: Arc<AtomicUsize>,
    captured: Arc<Mutex<Vec<Captured>>>,
}

impl ScriptServer {
    /// Starts a server answering with `script` in order, then `fallback` forever.
    pub(crate) async fn start(script: Vec<Reply>, fallback: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            script: Arc::new(Mutex::new(script.into())),
            fallback: Arc::new(Mutex::new(fallback)),
            count: Arc::new(AtomicUsize::new(0)),
            captured: Arc::new(Mutex::new(Vec::new())),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move { s.serve(stream).await });
            }
        });
        server
    }

    /// The base URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The captured requests.
    pub(crate) fn captured(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }

    async fn serve(&self, mut stream: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        self.captured.lock().unwrap().push(Captured { head, body });
        self.count.fetch_add(1, Ordering::SeqCst);
        let reply = {
            let next = self.script.lock().unwrap().pop_front();
            next.unwrap_or_else(|| self.fallback.lock().unwrap().clone())
        };
        match reply {
            Reply::Raw(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
            Reply::Drip { head, interval } => {
                let _ = stream.write_all(&head).await;
                loop {
                    tokio::time::sleep(interval).await;
                    if stream.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            }
            Reply::Reset => {
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
            }
        }
    }
}
