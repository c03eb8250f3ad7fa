//! Counters of the frame hub, readable as JSON (for `/render/callback-status`) and as
//! Prometheus metrics (a collector in the gateway's registry, served at `/metrics`).

use octaneweb_gateway::metrics::{Collector, DescriptorEncoder, Scrape};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::encode::Format;

/// Output formats counted separately, in label order.
const FORMATS: [&str; 5] = ["raw", "png", "jpeg", "sse", "octanewebr"];

fn format_index(format: Format) -> usize {
    match format.label() {
        "raw" => 0,
        "png" => 1,
        "jpeg" => 2,
        "sse" => 3,
        _ => 4,
    }
}

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One counter per bound, plus +Inf (not cumulative; summed when rendered).
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let index = LATENCY_BOUNDS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// An upper bound of the given quantile (0..=1), in seconds, from the buckets; `None`
    /// without observations or when it falls in the +Inf bucket.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let target = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BOUNDS) {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= target {
                return Some(bound);
            }
        }
        None
    }
}

/// Everything the hub counts. All counters only grow, except `viewers`.
#[derive(Debug, Default)]
pub struct HubMetrics {
    /// Images received from the upstream (before duplicates are dropped).
    pub frames_received: AtomicU64,
    /// Duplicate deliveries dropped.
    pub frames_duplicate: AtomicU64,
    /// Distinct frames published to viewers.
    pub frames_published: AtomicU64,
    /// Images that could not be decoded (unsupported type, bad size or buffer).
    pub frames_rejected: AtomicU64,
    /// Frames a viewer never received because a newer one replaced them first.
    pub frames_skipped: AtomicU64,
    /// Viewers connected now (WebSocket and SSE).
    pub viewers: AtomicU64,
    /// Times the callback subscription was (re)established.
    pub subscriptions: AtomicU64,
    /// Times the callback subscription failed or the stream broke.
    pub subscription_failures: AtomicU64,
    frames_out: [AtomicU64; 5],
    bytes_out: [AtomicU64; 5],
    encodes: [AtomicU64; 5],
    encode_micros: [AtomicU64; 5],
    /// Time from a frame's arrival at the gateway to its hand-over to a viewer's socket.
    pub latency: Histogram,
}

/// A JSON snapshot of [`HubMetrics`].
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// See [`HubMetrics::frames_received`].
    pub frames_received: u64,
    /// See [`HubMetrics::frames_duplicate`].
    pub frames_duplicate: u64,
    /// See [`HubMetrics::frames_published`].
    pub frames_published: u64,
    /// See [`HubMetrics::frames_rejected`].
    pub frames_rejected: u64,
    /// See [`HubMetrics::frames_skipped`].
    pub frames_skipped: u64,
    /// Frames sent, by encoding ("raw", "png", "jpeg", "sse").
    pub frames_out: std::collections::BTreeMap<&'static str, u64>,
    /// Encodes performed, by encoding.
    pub encodes: std::collections::BTreeMap<&'static str, u64>,
    /// Mean encode time in milliseconds, by encoding.
    pub encode_ms_mean: std::collections::BTreeMap<&'static str, f64>,
    /// See [`HubMetrics::viewers`].
    pub viewers: u64,
    /// See [`HubMetrics::subscriptions`].
    pub subscriptions: u64,
    /// See [`HubMetrics::subscription_failures`].
    pub subscription_failures: u64,
    /// Upper bound of the 50th percentile of arrival-to-send latency, ms.
    pub latency_p50_ms: Option<f64>,
    /// Upper bound of the 99th percentile of arrival-to-send latency, ms.
    pub latency_p99_ms: Option<f64>,
}

impl HubMetrics {
    /// Counts one frame handed to a viewer.
    pub fn frame_sent(&self, format: Format, bytes: usize, latency: Duration) {
        let i = format_index(format);
        if let (Some(frames), Some(total)) = (self.frames_out.get(i), self.bytes_out.get(i)) {
            frames.fetch_add(1, Ordering::Relaxed);
            total.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        self.latency.observe(latency);
    }

    /// Counts one encode and its time.
    pub fn encoded(&self, format: Format, took: Duration) {
        let i = format_index(format);
        if let (Some(count), Some(micros)) = (self.encodes.get(i), self.encode_micros.get(i)) {
            count.fetch_add(1, Ordering::Relaxed);
            micros.fetch_add(
                u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
    }

    /// Frames sent in `format` so far.
    pub fn frames_out(&self, format: Format) -> u64 {
        self.frames_out
            .get(format_index(format))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Encodes of `format` so far.
    pub fn encodes(&self, format: Format) -> u64 {
        self.encodes
            .get(format_index(format))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// A JSON-friendly snapshot.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let per_format = |counters: &[AtomicU64; 5]| {
            FORMATS
                .iter()
                .zip(counters.iter())
                .map(|(name, c)| (*name, load(c)))
                .collect()
        };
        let encode_ms_mean = FORMATS
            .iter()
            .zip(self.encodes.iter().zip(self.encode_micros.iter()))
            .map(|(name, (n, us))| {
                let n = load(n);
                let mean = if n == 0 {
                    0.0
                } else {
                    load(us) as f64 / n as f64 / 1000.0
                };
                (*name, mean)
            })
            .collect();
        MetricsSnapshot {
            frames_received: load(&self.frames_received),
            frames_duplicate: load(&self.frames_duplicate),
            frames_published: load(&self.frames_published),
            frames_rejected: load(&self.frames_rejected),
            frames_skipped: load(&self.frames_skipped),
            frames_out: per_format(&self.frames_out),
            encodes: per_format(&self.encodes),
            encode_ms_mean,
            viewers: load(&self.viewers),
            subscriptions: load(&self.subscriptions),
            subscription_failures: load(&self.subscription_failures),
            latency_p50_ms: self.latency.quantile_upper_bound(0.5).map(|s| s * 1000.0),
            latency_p99_ms: self.latency.quantile_upper_bound(0.99).map(|s| s * 1000.0),
        }
    }
}

impl Collector for HubMetrics {
    /// Every metric, names prefixed `octaneweb_render_`.
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut scrape = Scrape::new(encoder);
        for (name, help, counter) in [
            (
                "octaneweb_render_frames_received",
                "Render images received from the upstream, duplicates included.",
                &self.frames_received,
            ),
            (
                "octaneweb_render_frames_duplicate",
                "Duplicate image deliveries dropped.",
                &self.frames_duplicate,
            ),
            (
                "octaneweb_render_frames_published",
                "Distinct frames published to viewers.",
                &self.frames_published,
            ),
            (
                "octaneweb_render_frames_rejected",
                "Render images that could not be decoded.",
                &self.frames_rejected,
            ),
            (
                "octaneweb_render_frames_skipped",
                "Frames a viewer skipped because a newer one replaced them first.",
                &self.frames_skipped,
            ),
            (
                "octaneweb_render_subscriptions",
                "Times the callback subscription was established.",
                &self.subscriptions,
            ),
            (
                "octaneweb_render_subscription_failures",
                "Times the callback subscription failed or its stream broke.",
                &self.subscription_failures,
            ),
        ] {
            scrape.counter(name, help, load(counter))?;
        }
        let by_format = |counters: &[AtomicU64; 5]| -> Vec<(&'static str, u64)> {
            FORMATS
                .iter()
                .zip(counters.iter())
                .map(|(format, c)| (*format, load(c)))
                .collect()
        };
        scrape.counters_by(
            "octaneweb_render_frames_out",
            "Frames handed to viewers, by encoding.",
            "encoding",
            &by_format(&self.frames_out),
        )?;
        scrape.counters_by(
            "octaneweb_render_bytes_out",
            "Bytes of frames handed to viewers, by encoding.",
            "encoding",
            &by_format(&self.bytes_out),
        )?;
        scrape.counters_by(
            "octaneweb_render_encodes",
            "Frame encodes performed (each at most once per frame and encoding).",
            "encoding",
            &by_format(&self.encodes),
        )?;
        let encode_seconds: Vec<(&str, f64)> = by_format(&self.encode_micros)
            .into_iter()
            .map(|(format, micros)| (format, micros as f64 / 1e6))
            .collect();
        scrape.counters_by(
            "octaneweb_render_encode_seconds",
            "Time spent encoding, by encoding.",
            "encoding",
            &encode_seconds,
        )?;
        scrape.gauge(
            "octaneweb_render_viewers",
            "Viewers connected (WebSocket and SSE).",
            i64::try_from(load(&self.viewers)).unwrap_or(i64::MAX),
        )?;
        let latency = &self.latency;
        let mut cumulative = 0;
        let buckets: Vec<(f64, u64)> = latency
            .buckets
            .iter()
            .zip(LATENCY_BOUNDS)
            .map(|(bucket, bound)| {
                cumulative += load(bucket);
                (bound, cumulative)
            })
            .collect();
        scrape.histogram(
            "octaneweb_render_frame_latency_seconds",
            "Time from a frame's arrival from the upstream to its hand-over to a viewer.",
            load(&latency.sum_micros) as f64 / 1e6,
            latency.count(),
            &buckets,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::EncodingKind;

    #[test]
    fn histogram_quantiles_and_text() {
        let m = HubMetrics::default();
        for _ in 0..99 {
            m.frame_sent(
                Format::image(EncodingKind::Jpeg, 80),
                100,
                Duration::from_micros(1500),
            );
        }
        m.frame_sent(Format::ProxyJson, 10, Duration::from_millis(300));
        assert_eq!(m.latency.quantile_upper_bound(0.5), Some(0.002));
        assert_eq!(m.latency.quantile_upper_bound(0.99), Some(0.002));
        assert_eq!(m.latency.quantile_upper_bound(1.0), Some(0.5));
        let snap = m.snapshot();
        assert_eq!(snap.frames_out["jpeg"], 99);
        assert_eq!(snap.latency_p99_ms, Some(2.0));
        let registry = octaneweb_gateway::Metrics::new();
        registry.add_collector(std::sync::Arc::new(m));
        let text = registry.render();
        assert!(text.contains("octaneweb_render_frames_out_total{encoding=\"jpeg\"} 99"));
        assert!(text.contains("octaneweb_render_frames_out_total{encoding=\"sse\"} 1"));
        assert!(text.contains("octaneweb_render_frame_latency_seconds_bucket{le=\"+Inf\"} 100"));
        assert!(text.contains("octaneweb_render_frame_latency_seconds_bucket{le=\"0.002\"} 99"));
    }
}
