//! Encodings of the newest frame, each computed at most once and shared.
//!
//! The cache holds encodings of one frame only (the newest it has seen). Each entry is a shared
//! future of a blocking encode task, so the first viewer to ask starts the encode and every
//! other viewer asking for the same key awaits the same result. A newer frame clears the cache.
//! Requests for an older frame, or beyond `max_keys` different keys, are encoded uncached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Semaphore;

use crate::encode::{
    encode, encode_rgba, rgba8, view_pixels, EncodeError, EncodedFrame, EncodingKey, View,
};
use crate::frame::Frame;
use crate::metrics::HubMetrics;

type EncodeResult = Result<Arc<EncodedFrame>, EncodeError>;
type SharedEncode = Shared<BoxFuture<'static, EncodeResult>>;
type SharedPixels = Shared<BoxFuture<'static, Result<Arc<Vec<u8>>, EncodeError>>>;

struct CacheState {
    seq: u64,
    entries: HashMap<EncodingKey, SharedEncode>,
    /// The RGBA8 an encoding starts from, shared by every encoding that uses it: per tonemap
    /// (HDR frames) and view (scaled or cropped). The whole of an LDR frame needs no entry.
    pixels: HashMap<PixelsKey, SharedPixels>,
}

/// Identity of prepared pixels: the tonemap's bits and the view (`None`: the whole frame).
type PixelsKey = ((u32, u32), Option<View>);

impl CacheState {
    fn reset(&mut self, seq: u64) {
        self.seq = seq;
        self.entries.clear();
        self.pixels.clear();
    }

    /// The shared pixels `key` encodes from, started if nobody has yet; `None` when the
    /// encode reads the frame itself (the whole of an LDR frame).
    fn pixels_for(
        &mut self,
        frame: &Arc<Frame>,
        key: EncodingKey,
        permits: &Arc<Semaphore>,
    ) -> Option<SharedPixels> {
        let whole = (key.tonemap_bits(), None);
        let base = frame.is_hdr().then(|| {
            self.pixels
                .entry(whole)
                .or_insert_with(|| spawn_tonemap(frame.clone(), key, permits))
                .clone()
        });
        let Some(view) = key.view() else {
            return base;
        };
        Some(
            self.pixels
                .entry((key.tonemap_bits(), Some(view)))
                .or_insert_with(|| spawn_view(frame.clone(), key, base, permits))
                .clone(),
        )
    }
}

pub(crate) struct EncodeCache {
    state: Mutex<CacheState>,
    max_keys: usize,
    /// Bounds encodes running at once (cached or not), so many viewers asking for many
    /// different encodings queue instead of piling up CPU work and output buffers.
    permits: Arc<Semaphore>,
}

impl EncodeCache {
    pub fn new(max_keys: usize) -> EncodeCache {
        EncodeCache {
            state: Mutex::new(CacheState {
                seq: 0,
                entries: HashMap::new(),
                pixels: HashMap::new(),
            }),
            max_keys: max_keys.max(1),
            permits: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()) + 1,
            )),
        }
    }

    /// Drops every encoding older than `seq` (called when a frame is published).
    pub fn advance(&self, seq: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.seq < seq {
            state.reset(seq);
        }
    }

    /// Number of encodings held now.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// The encoding of `frame` for `key`, encoding it if nobody has yet.
    pub async fn get(
        &self,
        frame: &Arc<Frame>,
        key: EncodingKey,
        metrics: &Arc<HubMetrics>,
    ) -> EncodeResult {
        let shared = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.seq < frame.seq {
                state.reset(frame.seq);
            }
            if state.seq != frame.seq {
                None
            } else if let Some(existing) = state.entries.get(&key) {
                Some(existing.clone())
            } else if state.entries.len() < self.max_keys {
                let pixels = state.pixels_for(frame, key, &self.permits);
                let task = spawn_encode(frame.clone(), key, metrics.clone(), &self.permits, pixels);
                state.entries.insert(key, task.clone());
                Some(task)
            } else {
                None
            }
        };
        match shared {
            Some(task) => task.await,
            None => spawn_encode(frame.clone(), key, metrics.clone(), &self.permits, None).await,
        }
    }
}

/// Starts the encode now (on the blocking pool, once a permit is free); the returned future
/// only collects the result, so a viewer that goes away does not cancel it for the others.
fn spawn_encode(
    frame: Arc<Frame>,
    key: EncodingKey,
    metrics: Arc<HubMetrics>,
    permits: &Arc<Semaphore>,
    pixels: Option<SharedPixels>,
) -> SharedEncode {
    let permits = permits.clone();
    let task = tokio::spawn(async move {
        // Wait for shared pixels BEFORE taking a permit: their tonemap needs one too.
        let pixels = match pixels {
            Some(shared) => Some(shared.await?),
            None => None,
        };
        let Ok(_permit) = permits.acquire_owned().await else {
            return Err(EncodeError::Cancelled);
        };
        tokio::task::spawn_blocking(move || encode_now(&frame, key, &metrics, pixels.as_deref()))
            .await
            .unwrap_or(Err(EncodeError::Cancelled))
    });
    async move { task.await.unwrap_or(Err(EncodeError::Cancelled)) }
        .boxed()
        .shared()
}

/// Tonemaps an HDR frame for `key`'s settings (once a permit is free).
fn spawn_tonemap(frame: Arc<Frame>, key: EncodingKey, permits: &Arc<Semaphore>) -> SharedPixels {
    let permits = permits.clone();
    let task = tokio::spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return Err(EncodeError::Cancelled);
        };
        tokio::task::spawn_blocking(move || Arc::new(rgba8(&frame, key.tonemap()).into_owned()))
            .await
            .map_err(|_| EncodeError::Cancelled)
    });
    async move { task.await.unwrap_or(Err(EncodeError::Cancelled)) }
        .boxed()
        .shared()
}

/// Cuts and scales `key`'s view of the frame (once a permit is free), from `base` (the
/// tonemapped whole frame, for HDR frames) or the frame's own pixels.
fn spawn_view(
    frame: Arc<Frame>,
    key: EncodingKey,
    base: Option<SharedPixels>,
    permits: &Arc<Semaphore>,
) -> SharedPixels {
    let permits = permits.clone();
    let task = tokio::spawn(async move {
        // As in spawn_encode: the base's tonemap needs a permit of its own.
        let base = match base {
            Some(shared) => Some(shared.await?),
            None => None,
        };
        let Ok(_permit) = permits.acquire_owned().await else {
            return Err(EncodeError::Cancelled);
        };
        tokio::task::spawn_blocking(move || {
            let whole = match &base {
                Some(pixels) => std::borrow::Cow::Borrowed(pixels.as_slice()),
                None => rgba8(&frame, key.tonemap()),
            };
            view_pixels(&frame, &key, &whole).map(|view| Arc::new(view.into_owned()))
        })
        .await
        .unwrap_or(Err(EncodeError::Cancelled))
    });
    async move { task.await.unwrap_or(Err(EncodeError::Cancelled)) }
        .boxed()
        .shared()
}

fn encode_now(
    frame: &Arc<Frame>,
    key: EncodingKey,
    metrics: &HubMetrics,
    pixels: Option<&Vec<u8>>,
) -> EncodeResult {
    let outcome = match pixels {
        Some(pixels) => encode_rgba(frame, key, pixels),
        None => encode(frame, key),
    };
    match &outcome {
        Ok(encoded) => metrics.encoded(key.format, encoded.encode_time),
        Err(error) => {
            tracing::warn!(seq = frame.seq, format = key.format.label(), %error, "frame encode failed")
        }
    }
    outcome.map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{EncodingKind, Format, Tonemap};
    use crate::frame::{Pixels, RenderImage};
    use bytes::Bytes;

    fn frame(seq: u64) -> Arc<Frame> {
        Arc::new(Frame::new(
            seq,
            1,
            0,
            RenderImage {
                width: 4,
                height: 4,
                pixels: Pixels::Rgba8(Bytes::from(vec![seq as u8; 64])),
                image_type: 0,
                color_space: 1,
                is_linear: false,
                render_pass_id: 0,
                tonemapped_samples_per_pixel: seq as f32,
                calculated_samples_per_pixel: seq as f32,
                samples_per_second: 0.0,
                render_time: 0.0,
                change_level: 0,
                has_pending_updates: false,
                has_alpha: true,
                fingerprint: seq,
            },
        ))
    }

    #[tokio::test]
    async fn each_encoding_is_computed_once_and_shared() {
        let cache = Arc::new(EncodeCache::new(4));
        let metrics = Arc::new(HubMetrics::default());
        let f = frame(1);
        let format = Format::image(EncodingKind::Png, 0);
        let key = EncodingKey::new(format, Tonemap::default(), false);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, metrics, f) = (cache.clone(), metrics.clone(), f.clone());
            tasks.push(tokio::spawn(
                async move { cache.get(&f, key, &metrics).await },
            ));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap().unwrap());
        }
        assert_eq!(metrics.encodes(format), 1);
        assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
        assert_eq!(cache.len(), 1);

        // A newer frame clears the old encodings.
        cache.advance(2);
        assert_eq!(cache.len(), 0);
        // A request for the stale frame still works, uncached.
        let stale = cache.get(&f, key, &metrics).await.unwrap();
        assert_eq!(stale.frame.seq, 1);
        assert_eq!(cache.len(), 0);
        assert_eq!(metrics.encodes(format), 2);
    }

    #[tokio::test]
    async fn encodings_of_one_view_share_its_scaled_pixels() {
        let cache = EncodeCache::new(8);
        let metrics = Arc::new(HubMetrics::default());
        let f = frame(3);
        let half = crate::encode::ViewRequest {
            fit: None,
            crop: Some(crate::encode::Region {
                x: 1,
                y: 1,
                width: 2,
                height: 2,
            }),
        }
        .resolve(4, 4);
        let key = |kind| {
            EncodingKey::new(Format::image(kind, 80), Tonemap::default(), false).with_view(half)
        };
        let raw = cache
            .get(&f, key(EncodingKind::Raw), &metrics)
            .await
            .unwrap();
        cache
            .get(&f, key(EncodingKind::Jpeg), &metrics)
            .await
            .unwrap();
        assert_eq!(cache.state.lock().unwrap().pixels.len(), 1);
        assert_eq!(&raw.payload()[..], &[3u8; 16][..]);
        let whole = EncodingKey::new(
            Format::image(EncodingKind::Raw, 0),
            Tonemap::default(),
            false,
        );
        cache.get(&f, whole, &metrics).await.unwrap();
        assert_eq!(
            cache.state.lock().unwrap().pixels.len(),
            1,
            "the whole of an LDR frame is read in place"
        );
    }

    #[tokio::test]
    async fn hdr_encodings_share_one_tonemap() {
        let cache = EncodeCache::new(8);
        let metrics = Arc::new(HubMetrics::default());
        let hdr = Arc::new(Frame::new(
            5,
            1,
            0,
            RenderImage {
                pixels: Pixels::RgbaF32(vec![0.5; 64]),
                image_type: 2,
                ..frame(5).image.clone()
            },
        ));
        let tonemap = Tonemap::default();
        let raw = EncodingKey::new(Format::image(EncodingKind::Raw, 0), tonemap, true);
        let sse = EncodingKey::new(Format::ProxyJson, tonemap, true);
        let raw = cache.get(&hdr, raw, &metrics).await.unwrap();
        cache.get(&hdr, sse, &metrics).await.unwrap();
        assert_eq!(cache.state.lock().unwrap().pixels.len(), 1);
        assert_eq!(&raw.payload()[..4], &[188, 188, 188, 128]);
        let brighter = Tonemap {
            exposure: 1.0,
            ..tonemap
        };
        let png = EncodingKey::new(Format::image(EncodingKind::Png, 0), brighter, true);
        cache.get(&hdr, png, &metrics).await.unwrap();
        assert_eq!(cache.state.lock().unwrap().pixels.len(), 2);
        cache.advance(6);
        assert_eq!(cache.state.lock().unwrap().pixels.len(), 0);
    }

    #[tokio::test]
    async fn the_number_of_cached_keys_is_bounded() {
        let cache = EncodeCache::new(2);
        let metrics = Arc::new(HubMetrics::default());
        let f = frame(1);
        for quality in [10, 20, 30, 40] {
            let key = EncodingKey::new(
                Format::image(EncodingKind::Jpeg, quality),
                Tonemap::default(),
                false,
            );
            cache.get(&f, key, &metrics).await.unwrap();
        }
        assert_eq!(cache.len(), 2);
    }
}
