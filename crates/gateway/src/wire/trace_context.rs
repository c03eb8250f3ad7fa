//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` headers a call arrives with, and the gateway's own span that continues them.
//!
//! A valid `traceparent` keeps its trace id; the gateway's span gets a new span id and records
//! the caller's as its parent. A missing or invalid one (as the spec requires of a receiver)
//! starts a new trace, and any `tracestate` is then dropped with it.

use std::cell::Cell;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request header naming the caller's span.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The request header with vendors' trace data, passed on unchanged.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Length of a version-00 `traceparent` value.
const TRACEPARENT_LEN: usize = 55;
/// Longest `tracestate` passed on: the spec lets a receiver drop what is longer than 512
/// characters (32 members), and bounds what one call can add to the upstream's metadata.
const MAX_TRACESTATE_LEN: usize = 512;
/// The `sampled` bit of the trace flags.
const SAMPLED: u8 = 0x01;

/// One span's identity as a `traceparent` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace's id (never all zeros).
    pub trace_id: [u8; 16],
    /// The span's id (never all zeros).
    pub span_id: [u8; 8],
    /// The trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

impl SpanContext {
    /// Parses a `traceparent` value. Version 00 must be exactly that format; a later version
    /// is read by its version-00 prefix, as the spec asks. `None` for anything invalid.
    pub fn parse(value: &[u8]) -> Option<SpanContext> {
        if value.len() < TRACEPARENT_LEN {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        let exact = value.len() == TRACEPARENT_LEN;
        match version {
            0xff => return None,
            0x00 if !exact => return None,
            _ if !exact && value[TRACEPARENT_LEN] != b'-' => return None,
            _ => {}
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, byte) in span_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&value[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// Whether the trace is sampled (the caller may have recorded it).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lower-case hex digits (as logs and trace viewers show it).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The version-00 `traceparent` value naming this span (written on every request: one
    /// buffer on the stack, one copy into the header value).
    pub fn to_header(&self) -> HeaderValue {
        let mut text = [b'-'; TRACEPARENT_LEN];
        text[0] = b'0';
        text[1] = b'0';
        write_hex(&self.trace_id, &mut text[3..35]);
        write_hex(&self.span_id, &mut text[36..52]);
        write_hex(&[self.flags], &mut text[53..55]);
        // Only hex digits and dashes: always a valid header value.
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The gateway's span of one call: its identity, the caller's span it continues (if the
/// call brought a valid `traceparent`), and the caller's `tracestate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTrace {
    /// The gateway's span: the caller's trace id (or a new one), a new span id.
    pub span: SpanContext,
    /// The caller's span id, if the call continues a trace.
    pub parent_span_id: Option<[u8; 8]>,
    /// The caller's `tracestate`, passed on unchanged.
    pub state: Option<HeaderValue>,
}

impl CallTrace {
    /// The span of a call with these request headers. Without a valid `traceparent` a new
    /// trace starts, sampled if `sample_new` (the gateway records its spans).
    pub fn from_headers(headers: &HeaderMap, sample_new: bool) -> CallTrace {
        let mut parents = headers.get_all(&TRACEPARENT).iter();
        // Two `traceparent` headers are invalid, as one that does not parse.
        let parent = match (parents.next(), parents.next()) {
            (Some(value), None) => SpanContext::parse(value.as_bytes()),
            _ => None,
        };
        let state = parent.and_then(|_| {
            let mut values = headers.get_all(&TRACESTATE).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => Some(value.clone()),
                // Several headers are one list, joined by commas.
                (Some(first), Some(_)) => {
                    let joined = headers
                        .get_all(&TRACESTATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect::<Vec<_>>()
                        .join(",");
                    HeaderValue::from_str(&joined).ok().or(Some(first.clone()))
                }
                (None, _) => None,
            }
        });
        Self::continuing(parent, state, sample_new)
    }

    /// The span of a call made within another (a call over a WebSocket, an entry of a
    /// batch): same trace, a new span whose parent is `self`'s.
    pub fn child(&self) -> CallTrace {
        CallTrace {
            span: SpanContext {
                span_id: random_span_id(),
                ..self.span
            },
            parent_span_id: Some(self.span.span_id),
            state: self.state.clone(),
        }
    }

    /// The span continuing `parent`, or a new trace without one.
    pub fn continuing(
        parent: Option<SpanContext>,
        state: Option<HeaderValue>,
        sample_new: bool,
    ) -> CallTrace {
        let state = state.filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE_LEN);
        match parent {
            Some(parent) => CallTrace {
                span: SpanContext {
                    trace_id: parent.trace_id,
                    span_id: random_span_id(),
                    // Only the sampled bit is defined; others are not passed on.
                    flags: parent.flags & SAMPLED,
                },
                parent_span_id: Some(parent.span_id),
                state,
            },
            None => CallTrace {
                span: SpanContext {
                    trace_id: random_trace_id(),
                    span_id: random_span_id(),
                    flags: if sample_new { SAMPLED } else { 0 },
                },
                parent_span_id: None,
                state: None,
            },
        }
    }

    /// Writes the headers that carry this span to the next hop (`traceparent` naming the
    /// gateway's span, and `tracestate` if any), replacing whatever was there.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT.clone(), self.span.to_header());
        headers.remove(&TRACESTATE);
        if let Some(state) = &self.state {
            headers.insert(TRACESTATE.clone(), state.clone());
        }
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    // Lower-case only: the spec makes upper-case digits invalid.
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair {
        [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
        _ => None,
    }
}

/// Lower-case hex digits of `bytes` into `out` (twice as long).
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// 64 random bits from a per-thread generator seeded once from the operating system: ids
/// for correlation must be unique, not secret, and a system call per request costs more
/// than the request's other work on the hot path.
pub fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0 | 1);
    }
    // splitmix64: fast, and every seed gives a full-period sequence.
    STATE.with(|state| {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = random_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

fn random_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&random_u64().to_be_bytes());
    id[8..].copy_from_slice(&random_span_id());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specs_example_and_writes_it_back() {
        let span = SpanContext::parse(VALID.as_bytes()).expect("valid");
        assert_eq!(span.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.span_id_hex(), "00f067aa0ba902b7");
        assert!(span.sampled());
        assert_eq!(span.to_header(), VALID);
    }

    #[test]
    fn refuses_what_the_spec_calls_invalid() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(SpanContext::parse(bad.as_bytes()), None, "{bad:?}");
        }
        // A later version is read by its version-00 prefix.
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert!(SpanContext::parse(later.as_bytes()).is_some());
    }

    #[test]
    fn a_call_continues_a_valid_trace_with_a_span_of_its_own() {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        headers.insert(&TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let trace = CallTrace::from_headers(&headers, false);
        let parent = SpanContext::parse(VALID.as_bytes()).expect("valid");
        assert_eq!(trace.span.trace_id, parent.trace_id);
        assert_ne!(trace.span.span_id, parent.span_id);
        assert_eq!(trace.parent_span_id, Some(parent.span_id));
        assert!(trace.span.sampled());
        let mut out = HeaderMap::new();
        trace.write_headers(&mut out);
        assert_eq!(out[&TRACESTATE], "congo=t61rcWkgMzE");
        let child = trace.child();
        assert_eq!(child.span.trace_id, parent.trace_id);
        assert_eq!(child.parent_span_id, Some(trace.span.span_id));
    }

    #[test]
    fn an_invalid_or_doubled_traceparent_starts_a_new_trace_without_its_state() {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_static("00-xyz"));
        headers.insert(&TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let trace = CallTrace::from_headers(&headers, true);
        assert_eq!(trace.parent_span_id, None);
        assert_eq!(trace.state, None);
        assert!(trace.span.sampled());
        assert_ne!(trace.span.trace_id, [0; 16]);

        headers.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        let trace = CallTrace::from_headers(&headers, false);
        assert_eq!(trace.parent_span_id, None);
        assert!(!trace.span.sampled());
    }
}
