//! Slow consumers against the real binary: for every kind of stream the gateway serves, a
//! viewer that stops reading is disconnected by the send-stall timeout (and counted in
//! `/metrics`), while another viewer of the same kind that keeps reading keeps streaming.
//!
//! Every test starts its own `octaneweb demo` (reference render server and gateway in one
//! process) with `--send-stall-timeout 1s` and callback generation 1, so the upstream's
//! server stream `octaneapi.StreamCallbackService/callbackChannel` carries every render image
//! inline (256x128 RGBA, 128 KiB per message): enough data to fill any socket buffer within
//! a second or two. The render routes stream the frame hub's frames on their own.
//!
//! The stalled viewer is a raw socket with a small receive buffer (set before connecting)
//! that writes its request and never reads. The reading viewer is drained by a thread that
//! parses the stream's messages and counts the ones that carry an image.
//!
//! The tests run one at a time (each renders with the whole machine) and each takes a few
//! seconds.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

const BIN: &str = env!("CARGO_BIN_EXE_octaneweb");

const WIDTH: usize = 256;
const HEIGHT: usize = 128;
/// Bytes of one inline RGBA8 render image.
const IMAGE_BYTES: usize = WIDTH * HEIGHT * 4;
/// The send-stall timeout given to the binary.
const STALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the stall may take to be detected (filling the buffers included).
const STALL_DEADLINE: Duration = Duration::from_secs(30);
/// Image messages the reading viewer must receive after the stall was detected.
const MORE_MESSAGES: usize = 5;
/// A reading viewer that receives nothing for this long has lost its stream.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer of the stalled viewer's socket (the kernel doubles it).
const STALLED_RCVBUF: usize = 4096;

/// One test at a time: each runs a path tracer that takes every core it gets.
static SERIAL: Mutex<()> = Mutex::new(());

/// The kinds of streams the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `GET /render/ws`: the frame hub's WebSocket.
    RenderWs,
    /// `GET /render/stream`: the original proxy's SSE stream of frames.
    RenderSse,
    /// `GET /sse/{Service}/{method}` on a server-streaming method.
    Sse,
    /// `POST /{Service}/{method}` on a server-streaming method: NDJSON.
    Ndjson,
    /// Connect server streaming, `application/connect+json`.
    Connect,
    /// gRPC-Web server streaming, `application/grpc-web+proto`.
    GrpcWeb,
    /// `GET /ws`: the multiplexed WebSocket, one server-streaming call.
    MuxWs,
}

/// The upstream's server-streaming method (the only one of the reference server's schema).
const CALLBACK_PATH: &str = "/octaneapi.StreamCallbackService/callbackChannel";

// ---------------------------------------------------------------------------------------
// The binary

/// A running `octaneweb demo`, killed on drop.
struct Demo {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let width = WIDTH.to_string();
    let height = HEIGHT.to_string();
    let stall = format!("{}s", STALL_TIMEOUT.as_secs());
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--no-open",
            "--width",
            &width,
            "--height",
            &height,
            "--callback-generation",
            "1",
            "--send-stall-timeout",
            &stall,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start octaneweb demo");
    let stdout = child.stdout.take().expect("the demo's stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the demo printed its URL before exiting")
            .expect("read the demo's stdout");
        if let Some(rest) = line.split("open http://").nth(1) {
            break rest
                .split('/')
                .next()
                .expect("an address in the URL")
                .parse()
                .expect("a socket address in the URL");
        }
    };
    // Keep reading stdout, so the demo never writes into a closed or full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Demo { child, addr }
}

/// `GET path` on a fresh connection; returns the body of a 200 answer.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect for a GET");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set the GET's read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write the GET");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the GET's answer");
    let answer = String::from_utf8_lossy(&raw);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .expect("an HTTP head in the GET's answer");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// `octaneweb_connections_closed_total{reason="send_stall"}` from `/metrics`.
fn send_stalls(addr: SocketAddr) -> u64 {
    const NAME: &str = "octaneweb_connections_closed_total{reason=\"send_stall\"} ";
    let metrics = get(addr, "/metrics");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(NAME))
        .unwrap_or_else(|| panic!("no send_stall counter in /metrics:\n{metrics}"))
        .trim()
        .parse()
        .expect("the send_stall counter is a number")
}

// ---------------------------------------------------------------------------------------
// Requests

/// A client → server WebSocket text frame (masked, as RFC 6455 requires of clients).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x13, 0xc7, 0x2e];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn websocket_upgrade(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: c2xvdy1jb25zdW1lcnMhIQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

fn post_callback(
    addr: SocketAddr,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut request = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         {extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// The bytes a viewer of `kind` sends: the request, and for WebSockets the first frame.
///
/// `stalled` viewers of `/render/ws` ask for raw RGBA frames (128 KiB each instead of a few
/// KiB of JPEG), so their socket fills within a frame or two.
fn request(kind: Kind, addr: SocketAddr, stalled: bool) -> Vec<u8> {
    match kind {
        Kind::RenderWs => {
            let mut bytes = websocket_upgrade(addr, "/render/ws");
            if stalled {
                bytes.extend(masked_frame(0x1, br#"{"type":"config","encoding":"raw"}"#));
            }
            bytes
        }
        Kind::RenderSse => format!(
            "GET /render/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .into_bytes(),
        Kind::Sse => format!(
            "GET /sse/StreamCallback/callbackChannel?message=%7B%7D HTTP/1.1\r\nHost: {addr}\r\n\
             Accept: text/event-stream\r\n\r\n"
        )
        .into_bytes(),
        Kind::Ndjson => post_callback(addr, "application/json", "", b"{}"),
        Kind::Connect => {
            // One envelope: flag 0, length 2 (big-endian), the empty message as JSON.
            let mut envelope = vec![0u8, 0, 0, 0, 2];
            envelope.extend_from_slice(b"{}");
            post_callback(addr, "application/connect+json", "", &envelope)
        }
        Kind::GrpcWeb => {
            // One frame: flag 0, length 0 (the empty message); X-Grpc-Web as browsers send it.
            post_callback(
                addr,
                "application/grpc-web+proto",
                "X-Grpc-Web: 1\r\n",
                &[0; 5],
            )
        }
        Kind::MuxWs => {
            let mut bytes = websocket_upgrade(addr, "/ws");
            bytes.extend(masked_frame(
                0x1,
                br#"{"id":1,"method":"StreamCallback/callbackChannel","message":{}}"#,
            ));
            bytes
        }
    }
}

fn is_websocket(kind: Kind) -> bool {
    matches!(kind, Kind::RenderWs | Kind::MuxWs)
}

// ---------------------------------------------------------------------------------------
// The stalled viewer

/// Connects with a small receive buffer, sends the request and never reads.
fn open_stalled(kind: Kind, addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    // Before connecting: the window offered in the handshake follows from it.
    socket
        .set_recv_buffer_size(STALLED_RCVBUF)
        .expect("set SO_RCVBUF");
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(10))
        .expect("connect the stalled viewer");
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(&request(kind, addr, true))
        .expect("write the stalled viewer's request");
    stream
}

/// Reads what is left on a connection the server should have closed: it must end (EOF or
/// reset) within `within`; returns the bytes that were still on the way.
fn drain_until_closed(kind: Kind, mut stream: TcpStream, within: Duration) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set the drain's read timeout");
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 64 * 1024];
    let mut drained = 0usize;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return drained,
            Ok(n) => drained += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return drained
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "{kind:?}: the stalled connection is still open: nothing (and no EOF) for 2 s \
                     after draining {drained} bytes, although the stall was counted: the server \
                     stopped writing to it but did not close it"
                )
            }
            Err(e) => panic!("{kind:?}: draining the stalled connection failed: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?}: the stalled connection was not closed: still sending after {} s \
             ({drained} bytes drained)",
            within.as_secs()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The reading viewer

/// A chunked HTTP/1.1 response body as a byte stream; EOF at the last chunk.
struct Chunked<R> {
    inner: R,
    remaining: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed inside a chunked body",
                ));
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}: {e}"),
                )
            })?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.remaining = size;
        }
        let want = buf.len().min(self.remaining);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside a chunk",
            ));
        }
        self.remaining -= n;
        if self.remaining == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if crlf != *b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a chunk not followed by CRLF",
                ));
            }
        }
        Ok(n)
    }
}

fn ended(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what)
}

/// One Server-Sent Event's `data` (lines joined), or the stream's end as an error.
fn read_sse_event(body: &mut dyn BufRead) -> io::Result<String> {
    let mut event = String::new();
    let mut data = String::new();
    loop {
        let mut line = String::new();
        if body.read_line(&mut line)? == 0 {
            return Err(ended("the SSE stream ended".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if event == "end" {
                return Err(ended(format!("the SSE stream ended: {data}")));
            }
            if !data.is_empty() {
                return Ok(data);
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        } else if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_owned();
        }
    }
}

/// One length-prefixed frame (Connect envelope, gRPC-Web frame): (flags, payload).
fn read_envelope(body: &mut dyn BufRead) -> io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    body.read_exact(&mut header)?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut payload = vec![0u8; len];
    body.read_exact(&mut payload)?;
    Ok((header[0], payload))
}

/// One WebSocket data message (opcode, payload), answering pings on the way.
fn read_ws_message(body: &mut dyn BufRead, socket: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut message: Option<(u8, Vec<u8>)> = None;
    loop {
        let mut head = [0u8; 2];
        body.read_exact(&mut head)?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0f;
        if head[1] & 0x80 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a masked frame from the server",
            ));
        }
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                body.read_exact(&mut ext)?;
                u64::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                body.read_exact(&mut ext)?;
                u64::from_be_bytes(ext)
            }
            len => u64::from(len),
        };
        let len = usize::try_from(len).expect("a frame length that fits in memory");
        let mut payload = vec![0u8; len];
        body.read_exact(&mut payload)?;
        match opcode {
            0x8 => {
                let code = payload
                    .get(..2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .unwrap_or_default();
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                return Err(ended(format!(
                    "the server closed the WebSocket: {code} {reason}"
                )));
            }
            0x9 => socket.write_all(&masked_frame(0xa, &payload))?,
            0xa => {}
            0x0 => match message.as_mut() {
                Some((_, data)) => data.extend_from_slice(&payload),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a continuation frame without a message",
                    ))
                }
            },
            opcode => message = Some((opcode, payload)),
        }
        if fin && matches!(opcode, 0x0..=0x2) {
            if let Some(message) = message.take() {
                return Ok(message);
            }
        }
    }
}

/// Reads the next message of a `kind` stream; `true` if it carried a render image.
fn next_message(kind: Kind, body: &mut dyn BufRead, socket: &mut TcpStream) -> io::Result<bool> {
    match kind {
        Kind::RenderWs => {
            let (opcode, payload) = read_ws_message(body, socket)?;
            Ok(opcode == 0x2 && payload.starts_with(b"OWRF"))
        }
        Kind::MuxWs => {
            let (opcode, payload) = read_ws_message(body, socket)?;
            let text = String::from_utf8_lossy(&payload);
            if text.contains("\"end\":{") || text.starts_with("{\"error\"") {
                return Err(ended(format!("the /ws call ended: {text}")));
            }
            Ok(opcode == 0x1 && text.contains("\"message\"") && text.contains("\"newImage\""))
        }
        Kind::RenderSse => {
            let data = read_sse_event(body)?;
            Ok(data.starts_with('{') && data.contains("\"type\":\"newImage\""))
        }
        Kind::Sse => {
            let data = read_sse_event(body)?;
            Ok(data.starts_with("{\"newImage\""))
        }
        Kind::Ndjson => {
            let mut line = String::new();
            if body.read_line(&mut line)? == 0 {
                return Err(ended("the NDJSON stream ended".into()));
            }
            if line.starts_with("{\"end\"") {
                return Err(ended(format!("the NDJSON stream ended: {line}")));
            }
            Ok(line.starts_with("{\"data\":{\"newImage\""))
        }
        Kind::Connect => {
            let (flags, payload) = read_envelope(body)?;
            if flags & 0x02 != 0 {
                return Err(ended(format!(
                    "the Connect stream ended: {}",
                    String::from_utf8_lossy(&payload)
                )));
            }
            Ok(payload.starts_with(b"{\"newImage\""))
        }
        Kind::GrpcWeb => {
            let (flags, payload) = read_envelope(body)?;
            if flags & 0x80 != 0 {
                return Err(ended(format!(
                    "the gRPC-Web stream ended: {}",
                    String::from_utf8_lossy(&payload)
                )));
            }
            // A newImage message holds the image's bytes; statistics are a few bytes.
            Ok(payload.len() >= IMAGE_BYTES)
        }
    }
}

/// A viewer that reads its stream on a thread and counts the images it receives.
struct Reader {
    kind: Kind,
    images: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<usize, String>>>,
}

impl Reader {
    fn start(kind: Kind, addr: SocketAddr) -> Reader {
        let mut socket = TcpStream::connect(addr).expect("connect the reading viewer");
        socket
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set the reader's read timeout");
        socket
            .write_all(&request(kind, addr, false))
            .expect("write the reading viewer's request");
        let mut reader = BufReader::new(socket.try_clone().expect("clone the reader's socket"));
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .expect("read the reading viewer's answer head");
            assert!(n > 0, "{kind:?}: the connection closed in the head: {head}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let expected = if is_websocket(kind) {
            "HTTP/1.1 101"
        } else {
            "HTTP/1.1 200"
        };
        assert!(head.starts_with(expected), "{kind:?}: {head}");
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut body: Box<dyn BufRead + Send> = if chunked {
            Box::new(BufReader::new(Chunked {
                inner: reader,
                remaining: 0,
                done: false,
            }))
        } else {
            Box::new(reader)
        };
        let images = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let images = Arc::clone(&images);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut messages = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    match next_message(kind, &mut body, &mut socket) {
                        Ok(image) => {
                            messages += 1;
                            if image {
                                images.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            return Err(format!(
                                "{kind:?}: the reading viewer lost its stream after {messages} \
                                 messages ({} images): {e}",
                                images.load(Ordering::Relaxed)
                            ))
                        }
                    }
                }
                Ok(messages)
            })
        };
        Reader {
            kind,
            images,
            stop,
            thread: Some(thread),
        }
    }

    fn images(&self) -> usize {
        self.images.load(Ordering::Relaxed)
    }

    /// Panics with the reader's error if its thread has ended.
    fn check_alive(&mut self) {
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            let thread = self.thread.take().expect("the reader's thread");
            match thread.join() {
                Ok(Err(e)) => panic!("{e}"),
                Ok(Ok(_)) => panic!("{:?}: the reading viewer stopped", self.kind),
                Err(_) => panic!("{:?}: the reading viewer's thread panicked", self.kind),
            }
        }
    }

    /// Waits until the viewer has received `target` images in all.
    fn wait_for_images(&mut self, target: usize, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            self.check_alive();
            let images = self.images();
            if images >= target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?}: {what}: {images} of {target} images within {} s",
                self.kind,
                within.as_secs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops reading; the viewer must have been streaming until then.
    fn finish(mut self) -> usize {
        self.check_alive();
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("the reader's thread");
        match thread.join() {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("{:?}: the reading viewer's thread panicked", self.kind),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // On a failed assertion: let the thread end at its next message or read timeout.
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// The scenario

/// A stalled viewer of `kind` is cut off and counted; a reading one keeps streaming.
fn stalled_viewer_is_dropped_while_a_reader_keeps_streaming(kind: Kind) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let test_started = Instant::now();
    let demo = start_demo();
    let addr = demo.addr;
    let baseline = send_stalls(addr);

    let mut reader = Reader::start(kind, addr);
    reader.wait_for_images(
        2,
        Duration::from_secs(30),
        "the reading viewer streams before anyone stalls",
    );

    let stalled_at = Instant::now();
    let stalled = open_stalled(kind, addr);
    let stalls = loop {
        reader.check_alive();
        let stalls = send_stalls(addr);
        if stalls > baseline {
            break stalls;
        }
        assert!(
            stalled_at.elapsed() < STALL_DEADLINE,
            "{kind:?}: a viewer that reads nothing was not closed as stalled within {} s \
             (send_stall counter still {stalls})",
            STALL_DEADLINE.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let detected_after = stalled_at.elapsed();
    assert_eq!(stalls, baseline + 1, "{kind:?}: one connection stalled");
    assert!(
        detected_after >= STALL_TIMEOUT,
        "{kind:?}: counted as stalled after {detected_after:?}, before the timeout"
    );

    // The reader is still streaming: new images keep arriving after the stall was detected.
    let seen = reader.images();
    reader.wait_for_images(
        seen + MORE_MESSAGES,
        Duration::from_secs(20),
        "the reading viewer keeps streaming after the stalled one was cut off",
    );

    // The stalled connection was closed by the server: what was in flight, then EOF.
    let drained = drain_until_closed(kind, stalled, Duration::from_secs(15));

    let images = reader.images();
    let messages = reader.finish();
    assert_eq!(
        send_stalls(addr),
        baseline + 1,
        "{kind:?}: only the stalled viewer was cut off"
    );
    eprintln!(
        "{kind:?}: stall detected after {:.2} s; {drained} bytes were still in flight to the \
         stalled viewer; the reader got {images} images ({messages} messages); test took \
         {:.2} s",
        detected_after.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
}

#[test]
fn render_ws_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::RenderWs);
}

#[test]
fn render_stream_sse_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::RenderSse);
}

#[test]
fn sse_route_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::Sse);
}

#[test]
fn ndjson_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::Ndjson);
}

#[test]
fn connect_stream_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::Connect);
}

#[test]
fn grpc_web_stream_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::GrpcWeb);
}

#[test]
fn ws_call_viewer_that_stops_reading_is_dropped() {
    stalled_viewer_is_dropped_while_a_reader_keeps_streaming(Kind::MuxWs);
}
