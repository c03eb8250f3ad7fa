//! The render loop: one OS thread owns the path tracer and adds samples while the render
//! runs; gRPC handlers steer it through [`Engine`] and read published frames from a
//! `watch` channel (only the newest frame is kept, so slow readers skip frames and never
//! hold the renderer back).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use octaneweb_pathtracer::{
    Camera, Environment, Material, MaterialKind, PixelRect, RenderError, RenderSettings, Renderer,
    Scene, Vec3, MAX_DIMENSION,
};
use tokio::sync::watch;

use crate::image::{build_frame, Frame, FrameStats};
use crate::scene_state::{ClayMode, Kernel, PickHit, Region, SceneState, SubSample};
use crate::{RenderServerConfig, RenderServerError, MAX_MESSAGE_BYTES};

/// Whether the render loop may add samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunMode {
    /// Adding samples until the sample limit.
    Running,
    /// Suspended; accumulation kept, `continueRendering` resumes it.
    Paused,
    /// Ended by `stopRendering` or a failure; `continueRendering` or `restartRendering`
    /// start a fresh render.
    Stopped,
}

/// How much CPU the render loop takes (`setRenderPriority`). The path tracer always uses
/// every rayon worker for a sample; lower priorities rest between samples instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Rest as long as the last sample took (about half the CPU).
    Low,
    /// Rest a quarter of the last sample's time (about 80% of the CPU).
    Medium,
    /// No rest.
    High,
}

impl Priority {
    fn rest_after(self, sample_time: Duration) -> Duration {
        match self {
            Priority::Low => sample_time,
            Priority::Medium => sample_time / 4,
            Priority::High => Duration::ZERO,
        }
    }
}

/// What the render loop is doing, for callback streams and statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EngineStatus {
    /// True while samples are being added.
    pub rendering: bool,
    /// How many times rendering has failed since start.
    pub failures: u64,
    /// Why the last failure happened.
    pub last_failure: Option<String>,
}

/// Requests from gRPC handlers, guarded by one mutex; the render loop reads them between
/// samples.
struct Control {
    /// Everything the node graph controls, including the camera LiveLink clients set
    /// (validated).
    state: SceneState,
    /// The scene `state` describes: the base scene with its materials (after clay mode),
    /// sky and object offsets.
    scene: Arc<Scene>,
    /// `state` or `scene` differs from what the renderer uses.
    dirty: bool,
    /// A fresh render was requested.
    restart: bool,
    mode: RunMode,
    priority: Priority,
    shutdown: bool,
}

/// Shared handle to the render loop.
pub(crate) struct Engine {
    control: Mutex<Control>,
    wake: Condvar,
    /// Grows on every change and restart; frames carry the level they show.
    change_level: AtomicU64,
    frames: watch::Sender<Option<Arc<Frame>>>,
    status: watch::Sender<EngineStatus>,
    /// The built-in scene as it starts; every state's scene is derived from it.
    scene: Arc<Scene>,
    config: RenderServerConfig,
    /// Set with a change that drops the accumulation, so the sample in progress stops early
    /// instead of finishing work nobody will see.
    cancel: AtomicBool,
    /// Whether the first pass after a change is a sub-sampled preview published at once
    /// (benchmarks turn it off to compare).
    reduced_first_pass: AtomicBool,
    /// Tests set this to make the next sample panic, like a path tracer bug would.
    #[cfg(test)]
    pub(crate) inject_panic: AtomicBool,
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, Control> {
        // A panic never happens while the lock is held, but stay usable if one did.
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The scene being rendered, as built (without the node graph's changes).
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// The server's settings.
    pub fn config(&self) -> &RenderServerConfig {
        &self.config
    }

    /// The current change level (includes changes not rendered yet).
    pub fn change_level(&self) -> u64 {
        self.change_level.load(Ordering::Acquire)
    }

    /// The camera last set by a client (or the scene's default).
    pub fn camera(&self) -> Camera {
        self.lock().state.camera
    }

    /// Replaces the camera with the result of `update` applied to the current camera, if
    /// `update` accepts it; the change restarts accumulation. Atomic with respect to other
    /// camera updates.
    pub fn update_camera<E>(
        &self,
        update: impl FnOnce(Camera) -> Result<Camera, E>,
    ) -> Result<Camera, E> {
        let mut control = self.lock();
        let camera = update(control.state.camera)?;
        if camera != control.state.camera {
            control.state.camera = camera;
            control.dirty = true;
            self.cancel.store(true, Ordering::Release);
            self.change_level.fetch_add(1, Ordering::AcqRel);
            self.wake.notify_all();
        }
        Ok(camera)
    }

    /// What the render shows now (as last applied).
    pub fn scene_state(&self) -> SceneState {
        self.lock().state.clone()
    }

    /// Renders `state` from now on. Changes of what the image shows (camera, lens,
    /// materials, sky, offsets, path depth, clamp, resolution, clay) restart accumulation;
    /// the sample limit, region and sub-sampling mode apply to the accumulation in progress.
    /// An invalid state is refused with the reason and changes nothing.
    pub fn apply(&self, state: SceneState) -> Result<(), String> {
        self.validate(&state)?;
        let (current, current_scene) = {
            let control = self.lock();
            (control.state.clone(), Arc::clone(&control.scene))
        };
        if state == current {
            return Ok(());
        }
        // Built outside the lock: the render loop keeps sampling meanwhile.
        let scene = if scene_inputs(&state) != scene_inputs(&current) {
            Arc::new(derive_scene(&self.scene, &state)?)
        } else {
            current_scene
        };
        let mut control = self.lock();
        let clears = clears_accumulation(&control.state, &state);
        let only_camera = SceneState {
            camera: control.state.camera,
            ..state.clone()
        } == control.state;
        control.state = state;
        control.scene = scene;
        control.dirty = true;
        if clears {
            self.cancel.store(true, Ordering::Release);
        }
        if clears && !only_camera {
            // Like `restartRendering`: a stopped render starts again with the new scene.
            self.restart_locked(&mut control);
        } else {
            self.change_level.fetch_add(1, Ordering::AcqRel);
        }
        self.wake.notify_all();
        Ok(())
    }

    /// The checks of [`Engine::apply`] that do not need the scene built.
    fn validate(&self, state: &SceneState) -> Result<(), String> {
        if !state.camera.is_valid() {
            return Err("the camera cannot produce rays (position equals target, up parallel to the view, or a field of view outside 0..180)".into());
        }
        render_settings(state).validate()?;
        if state.kernel.max_samples == 0 {
            return Err("the kernel's max samples must be at least 1".into());
        }
        let [width, height] = state.resolution;
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(format!(
                "resolution {width}x{height} is out of range: each side must be between 1 and {MAX_DIMENSION}"
            ));
        }
        let frame_bytes = u64::from(width)
            * u64::from(height)
            * self.config.image_format.bytes_per_pixel() as u64;
        // The same headroom for the message envelope as the configuration check.
        if frame_bytes > (MAX_MESSAGE_BYTES as u64) - 4096 {
            return Err(format!(
                "resolution {width}x{height} makes {frame_bytes}-byte frames, more than the {MAX_MESSAGE_BYTES}-byte message limit"
            ));
        }
        if let Some(region) = state.region {
            if pixel_rect(region).clamped(width, height).is_none() {
                return Err(format!(
                    "render region {:?}..{:?} holds no pixel of the {width}x{height} image",
                    region.min, region.max
                ));
            }
        }
        Ok(())
    }

    /// What is under the centre of pixel (`x`, `y`) of the current image with the current
    /// camera and scene (the pinhole ray, whatever the lens), if anything.
    pub fn pick(&self, x: u32, y: u32) -> Option<PickHit> {
        let (camera, [width, height], scene) = {
            let control = self.lock();
            (
                control.state.camera,
                control.state.resolution,
                Arc::clone(&control.scene),
            )
        };
        if x >= width || y >= height {
            return None;
        }
        let ray = camera.ray_through_pixel(x as f32 + 0.5, y as f32 + 0.5, width, height);
        let hit = scene.intersect(&ray, 1e-4, f32::INFINITY)?;
        Some(PickHit {
            object: hit.object,
            depth: hit.t,
            position: hit.point,
            normal: hit.normal,
        })
    }

    /// Turns the sub-sampled first pass after changes on or off (benchmarks compare both).
    pub fn set_reduced_first_pass(&self, enabled: bool) {
        self.reduced_first_pass.store(enabled, Ordering::Release);
    }

    fn reduced_first_pass(&self) -> bool {
        self.reduced_first_pass.load(Ordering::Acquire)
    }

    pub fn pause(&self) {
        let mut control = self.lock();
        if control.mode == RunMode::Running {
            control.mode = RunMode::Paused;
        }
        self.wake.notify_all();
    }

    pub fn resume(&self) {
        let mut control = self.lock();
        match control.mode {
            RunMode::Running => {}
            RunMode::Paused => control.mode = RunMode::Running,
            RunMode::Stopped => self.restart_locked(&mut control),
        }
        self.wake.notify_all();
    }

    pub fn restart(&self) {
        let mut control = self.lock();
        self.restart_locked(&mut control);
        self.wake.notify_all();
    }

    fn restart_locked(&self, control: &mut Control) {
        control.restart = true;
        control.mode = RunMode::Running;
        self.cancel.store(true, Ordering::Release);
        self.change_level.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether the loop may render, is paused or was stopped (what the user last asked).
    pub fn run_mode(&self) -> RunMode {
        self.lock().mode
    }

    pub fn stop(&self) {
        let mut control = self.lock();
        control.mode = RunMode::Stopped;
        self.wake.notify_all();
    }

    pub fn set_priority(&self, priority: Priority) {
        self.lock().priority = priority;
    }

    /// Asks the render loop to end after its current sample.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.cancel.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    /// The newest published frame, if any.
    pub fn latest_frame(&self) -> Option<Arc<Frame>> {
        self.frames.borrow().clone()
    }

    /// Follows published frames.
    pub fn subscribe_frames(&self) -> watch::Receiver<Option<Arc<Frame>>> {
        self.frames.subscribe()
    }

    /// Follows the render loop's status.
    pub fn subscribe_status(&self) -> watch::Receiver<EngineStatus> {
        self.status.subscribe()
    }

    fn record_failure(&self, why: String) {
        tracing::error!(error = %why, "rendering failed; stopped until restart");
        self.lock().mode = RunMode::Stopped;
        self.status.send_modify(|status| {
            status.rendering = false;
            status.failures = status.failures.saturating_add(1);
            status.last_failure = Some(why);
        });
    }

    fn set_rendering(&self, rendering: bool) {
        self.status.send_if_modified(|status| {
            let changed = status.rendering != rendering;
            status.rendering = rendering;
            changed
        });
    }
}

/// The parts of a state the rendered scene is built from.
fn scene_inputs(state: &SceneState) -> (&[Material], &Environment, &[Vec3], ClayMode) {
    (
        &state.materials,
        &state.environment,
        &state.object_offsets,
        state.clay,
    )
}

/// The base scene with `state`'s materials (replaced by plain diffuse ones in clay mode; lights
/// keep emitting so the scene stays lit), sky and object offsets.
fn derive_scene(base: &Scene, state: &SceneState) -> Result<Scene, String> {
    for material in &state.materials {
        material.validate()?;
    }
    let clay = |material: &Material, albedo: Vec3| Material {
        kind: MaterialKind::Diffuse,
        albedo,
        roughness: 1.0,
        emission: Vec3::ZERO,
        ..material.clone()
    };
    let materials: Vec<Material> = state
        .materials
        .iter()
        .map(|material| match (state.clay, material.kind) {
            (ClayMode::None, _) | (_, MaterialKind::Emissive) => material.clone(),
            (ClayMode::Grey, _) => clay(material, Vec3::splat(0.5)),
            (ClayMode::Color, _) => clay(material, material.albedo),
        })
        .collect();
    base.with_changes(&materials, &state.environment, &state.object_offsets)
}

/// True when going from `old` to `new` changes what the image shows (so samples so far are
/// wrong); sample limit, region and sub-sampling mode do not.
fn clears_accumulation(old: &SceneState, new: &SceneState) -> bool {
    let keep = |state: &SceneState| SceneState {
        kernel: Kernel {
            max_samples: 1,
            ..state.kernel
        },
        region: None,
        subsample: SubSample::None,
        ..state.clone()
    };
    keep(old) != keep(new)
}

/// The path tracer's lens and kernel settings of a state.
fn render_settings(state: &SceneState) -> RenderSettings {
    RenderSettings {
        aperture: state.lens.aperture,
        focal_distance: state.lens.focal_distance,
        max_depth: state.kernel.max_depth,
        clamp: state.kernel.clamp,
    }
}

fn pixel_rect(region: Region) -> PixelRect {
    PixelRect {
        min: region.min,
        max: region.max,
    }
}

/// A renderer showing `state` and `scene` from scratch.
fn create_renderer(state: &SceneState, scene: &Arc<Scene>) -> Result<Renderer, RenderError> {
    let [width, height] = state.resolution;
    let mut renderer = Renderer::new(Arc::clone(scene), state.camera, width, height)?;
    renderer.set_settings(render_settings(state))?;
    Ok(renderer)
}

/// Starts the render loop on its own thread. The thread ends after [`Engine::shutdown`].
pub(crate) fn start(config: RenderServerConfig) -> Result<Arc<Engine>, RenderServerError> {
    config.validate()?;
    let scene = Arc::new(Scene::builtin());
    let state = SceneState::initial(&scene, [config.width, config.height], config.sample_limit());
    let renderer = create_renderer(&state, &scene)?;
    let (frames, _) = watch::channel(None);
    let (status, _) = watch::channel(EngineStatus::default());
    let engine = Arc::new(Engine {
        control: Mutex::new(Control {
            state: state.clone(),
            scene: Arc::clone(&scene),
            dirty: false,
            restart: false,
            mode: RunMode::Running,
            priority: Priority::High,
            shutdown: false,
        }),
        wake: Condvar::new(),
        change_level: AtomicU64::new(1),
        frames,
        status,
        scene,
        config,
        cancel: AtomicBool::new(false),
        reduced_first_pass: AtomicBool::new(true),
        #[cfg(test)]
        inject_panic: AtomicBool::new(false),
    });
    let for_thread = Arc::clone(&engine);
    std::thread::Builder::new()
        .name("octaneweb-render".into())
        .spawn(move || {
            let engine = for_thread;
            let workers = render_workers();
            yield_to_interactive_work();
            let mut state = LoopState::new(&engine, renderer, state);
            let step = |state: &mut LoopState| match &workers {
                Some(pool) => pool.install(|| state.step(&engine)),
                None => state.step(&engine),
            };
            loop {
                // A panic anywhere in an iteration (the path tracer, pixel conversion) is a
                // render failure: report it and keep the loop alive for a restart.
                match catch_unwind(AssertUnwindSafe(|| step(&mut state))) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Exit) => break,
                    Err(panic) => {
                        state.renderer = None;
                        engine.record_failure(format!(
                            "the path tracer panicked: {}",
                            panic_message(&panic)
                        ));
                    }
                }
            }
            engine.set_rendering(false);
            tracing::debug!("render loop ended");
        })
        .map_err(RenderServerError::RenderThread)?;
    Ok(engine)
}

/// The path tracer's own worker threads, at a lower scheduling priority than the rest of the
/// process: in `octaneweb demo` the renderer shares the machine with the gateway, and frame
/// delivery (scaling, encoding, sending) and API calls must not wait behind samples, as they
/// would not behind a GPU renderer. `None` (rayon's global pool) if the pool cannot start.
fn render_workers() -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("octaneweb-render-{i}"))
        .start_handler(|_| yield_to_interactive_work())
        .build()
        .map_err(|error| tracing::warn!(%error, "render workers did not start; using rayon's global pool"))
        .ok()
}

/// Lowers the calling thread's scheduling priority (nice 10; on Linux the nice value is a
/// per-thread attribute). Best effort: a refusal leaves the thread as it was.
fn yield_to_interactive_work() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

enum Flow {
    Continue,
    Exit,
}

enum Step {
    Render(Priority),
    Publish,
}

/// State owned by the render thread.
struct LoopState {
    /// `None` after a failure until the next restart.
    renderer: Option<Renderer>,
    /// The state the renderer shows (or will show when recreated).
    applied: SceneState,
    /// Change level of the current accumulation.
    level: u64,
    /// Time spent rendering the current accumulation.
    render_time: Duration,
    /// Samples per pixel of the last published frame of the current accumulation.
    published_spp: u32,
    last_publish: Option<Instant>,
    publish_interval: Duration,
    /// Sub-sampled previews still to render for a fresh accumulation, as block sizes, the
    /// next one last: coarse first so a change shows at once, then finer.
    previews: Vec<u32>,
    /// A change is not shown yet: publish the next frame without waiting for the rate
    /// limit.
    publish_now: bool,
    /// Whether a frame of the current accumulation was published.
    shown: bool,
}

impl LoopState {
    fn new(engine: &Engine, renderer: Renderer, applied: SceneState) -> LoopState {
        let subsample = applied.subsample;
        LoopState {
            renderer: Some(renderer),
            applied,
            level: engine.change_level(),
            render_time: Duration::ZERO,
            published_spp: 0,
            last_publish: None,
            publish_interval: Duration::from_secs_f64(1.0 / engine.config.max_callback_rate),
            previews: previews(engine, subsample),
            publish_now: true,
            shown: false,
        }
    }

    fn spp(&self) -> u32 {
        self.renderer
            .as_ref()
            .map_or(0, |r| r.film().samples_per_pixel())
    }

    /// The sample count at which the current render is finished.
    fn sample_limit(&self, engine: &Engine) -> u32 {
        self.applied
            .kernel
            .max_samples
            .min(engine.config.sample_limit())
    }

    /// When the next frame may be published (`None`: right away).
    fn next_publish_at(&self) -> Option<Instant> {
        if self.publish_now {
            return None;
        }
        self.last_publish.map(|at| at + self.publish_interval)
    }

    /// Starts a new accumulation at change level `level`.
    fn reset_accumulation(&mut self, engine: &Engine, level: u64, subsample: SubSample) {
        self.level = level;
        self.render_time = Duration::ZERO;
        self.published_spp = 0;
        self.previews = previews(engine, subsample);
        self.publish_now = true;
        self.shown = false;
    }

    /// Brings the renderer to `state` and `scene`; true when that dropped its samples.
    fn sync_renderer(
        &mut self,
        state: &SceneState,
        scene: &Arc<Scene>,
        restart: bool,
    ) -> Result<bool, RenderError> {
        let Some(renderer) = self.renderer.as_mut() else {
            if restart {
                self.renderer = Some(create_renderer(state, scene)?);
            }
            return Ok(true);
        };
        let old = &self.applied;
        let mut cleared = restart;
        if old.resolution != state.resolution {
            let [width, height] = state.resolution;
            renderer.resize(width, height)?;
            cleared = true;
        }
        if renderer.camera() != state.camera {
            renderer.set_camera(state.camera)?;
            cleared = true;
        }
        let settings = render_settings(state);
        if renderer.settings() != settings {
            renderer.set_settings(settings)?;
            cleared = true;
        }
        if !Arc::ptr_eq(renderer.scene(), scene) {
            renderer.set_scene(Arc::clone(scene));
            cleared = true;
        }
        if restart {
            renderer.reset();
        }
        Ok(cleared)
    }

    /// Applies pending requests and decides what to do next; waits while there is nothing.
    fn next_step(&mut self, engine: &Engine) -> Option<Step> {
        let mut control = engine.lock();
        loop {
            if control.shutdown {
                return None;
            }
            if control.dirty || control.restart {
                let restart = std::mem::take(&mut control.restart);
                control.dirty = false;
                // The change has reached the renderer: later samples are wanted again.
                engine.cancel.store(false, Ordering::Release);
                let state = control.state.clone();
                let scene = Arc::clone(&control.scene);
                let level = engine.change_level();
                match self.sync_renderer(&state, &scene, restart) {
                    Ok(true) => self.reset_accumulation(engine, level, state.subsample),
                    Ok(false) => {
                        // Same accumulation, shown under the new change level at once.
                        self.level = level;
                        self.publish_now = true;
                    }
                    Err(why) => {
                        // `apply` validates first, so this means the checks differ.
                        drop(control);
                        self.renderer = None;
                        engine.record_failure(format!("the renderer rejected the change: {why}"));
                        control = engine.lock();
                    }
                }
                self.applied = state;
            }
            let spp = self.spp();
            let may_render = control.mode == RunMode::Running
                && self.renderer.is_some()
                && (!self.previews.is_empty() || spp < self.sample_limit(engine));
            if may_render {
                return Some(Step::Render(control.priority));
            }
            engine.set_rendering(false);
            let shows_something = self
                .renderer
                .as_ref()
                .is_some_and(|r| r.film().samples_per_pixel() > 0 || r.film().subsampled() > 1);
            if shows_something && (spp != self.published_spp || self.publish_now) {
                // Idle with an image nobody has seen yet: publish it when the rate allows.
                let now = Instant::now();
                let due = match self.next_publish_at() {
                    Some(due) if due > now => due,
                    _ => return Some(Step::Publish),
                };
                control = engine
                    .wake
                    .wait_timeout(control, due - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            } else {
                control = engine
                    .wake
                    .wait(control)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }

    fn step(&mut self, engine: &Engine) -> Flow {
        let Some(step) = self.next_step(engine) else {
            return Flow::Exit;
        };
        match step {
            Step::Render(priority) => {
                let region = self.applied.region.map(pixel_rect);
                let preview = self.previews.pop();
                let Some(renderer) = self.renderer.as_mut() else {
                    return Flow::Continue;
                };
                engine.set_rendering(true);
                let started = Instant::now();
                #[cfg(test)]
                if engine.inject_panic.swap(false, Ordering::AcqRel) {
                    panic!("injected test failure");
                }
                let complete = if let Some(block) = preview {
                    // The first preview after a change runs to the end even if the camera
                    // moves again meanwhile: changes arriving faster than a preview takes (a
                    // drag sends one per mouse event) would otherwise cancel every preview
                    // and nothing would be shown until the drag stops. Finishing it costs
                    // at most one coarse pass, and the next step picks up the newest state.
                    let cancel = self.shown.then_some(&engine.cancel);
                    renderer.render_preview_in(block, cancel)
                } else {
                    renderer.render_sample_in(region, Some(&engine.cancel))
                };
                let took = started.elapsed();
                self.render_time += took;
                if !complete {
                    // Stopped for a change, which the next step applies; the film is empty.
                    self.published_spp = 0;
                    return Flow::Continue;
                }
                if self
                    .next_publish_at()
                    .is_none_or(|due| Instant::now() >= due)
                {
                    self.publish(engine);
                }
                let rest = priority.rest_after(took);
                if !rest.is_zero() {
                    // Rest on the condvar so control requests still get through at once.
                    let control = engine.lock();
                    if !control.shutdown && !control.dirty && !control.restart {
                        let _ = engine.wake.wait_timeout(control, rest);
                    }
                }
            }
            Step::Publish => self.publish(engine),
        }
        Flow::Continue
    }

    fn publish(&mut self, engine: &Engine) {
        let sample_limit = self.sample_limit(engine);
        let Some(renderer) = self.renderer.as_ref() else {
            return;
        };
        let film = renderer.film();
        let spp = film.samples_per_pixel();
        let subsampled = film.subsampled();
        if spp == 0 && subsampled == 1 {
            return;
        }
        let stats = FrameStats {
            change_level: self.level,
            // A preview holds one sample per block.
            samples_per_pixel: spp.max(1),
            max_samples_per_pixel: sample_limit,
            render_time: self.render_time,
            subsampled,
        };
        let frame = build_frame(film, &engine.config, stats);
        self.published_spp = spp;
        self.publish_now = false;
        self.shown = true;
        self.last_publish = Some(Instant::now());
        engine.frames.send_replace(Some(Arc::new(frame)));
    }
}

/// The previews a fresh accumulation starts with, the first to render last: 4x4 blocks
/// (a sixteenth of the paths, so a change shows within a few tens of milliseconds even at
/// 1024x512), then 2x2 unless the sub-sample mode is 4x4.
fn previews(engine: &Engine, subsample: SubSample) -> Vec<u32> {
    if !engine.reduced_first_pass() {
        return Vec::new();
    }
    match subsample {
        SubSample::X4 => vec![4],
        SubSample::None | SubSample::X2 => vec![2, 4],
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene_state::{Lens, Region};

    const W: u32 = 96;
    const H: u32 = 48;
    const WAIT: Duration = Duration::from_secs(60);

    /// An engine that ends its render thread when dropped.
    struct Running(Arc<Engine>);

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.shutdown();
        }
    }

    impl std::ops::Deref for Running {
        type Target = Engine;
        fn deref(&self) -> &Engine {
            &self.0
        }
    }

    fn start_engine(max_samples: u32, max_callback_rate: f64) -> Running {
        Running(
            start(RenderServerConfig {
                width: W,
                height: H,
                max_callback_rate,
                max_samples_per_pixel: Some(max_samples),
                ..RenderServerConfig::default()
            })
            .expect("engine starts"),
        )
    }

    /// The first published frame (current or future) that `wanted` accepts.
    async fn frame_where(engine: &Engine, wanted: impl Fn(&Frame) -> bool) -> Arc<Frame> {
        let mut frames = engine.subscribe_frames();
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(frame) = frames.borrow_and_update().as_ref() {
                    if wanted(frame) {
                        return Arc::clone(frame);
                    }
                }
                frames.changed().await.expect("engine alive");
            }
        })
        .await
        .expect("frame arrived in time")
    }

    /// The finished full-resolution frame of the current change level.
    async fn finished(engine: &Engine, spp: u32) -> Arc<Frame> {
        let level = engine.change_level();
        frame_where(engine, |f| {
            f.stats.change_level >= level
                && f.stats.samples_per_pixel == spp
                && f.stats.subsampled == 1
        })
        .await
    }

    fn rgba(frame: &Frame) -> &[u8] {
        let image = frame.images.data.first().expect("one image");
        &image.buffer.as_ref().expect("buffer").data
    }

    fn object_index(engine: &Engine, name: &str) -> usize {
        engine
            .scene()
            .objects()
            .iter()
            .position(|o| o.name == name)
            .expect("object exists")
    }

    /// The object under each pixel (row-major), as `pick` says.
    fn object_map(engine: &Engine) -> Vec<Option<usize>> {
        let [width, height] = engine.scene_state().resolution;
        (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| engine.pick(x, y).map(|hit| hit.object))
            .collect()
    }

    /// Mean RGB (0..255) of the pixels `select` accepts.
    fn mean_rgb(pixels: &[u8], select: impl Fn(usize) -> bool) -> [f64; 3] {
        let mut sum = [0.0; 3];
        let mut n = 0.0;
        for (i, px) in pixels.chunks_exact(4).enumerate() {
            if select(i) {
                for c in 0..3 {
                    sum[c] += f64::from(px[c]);
                }
                n += 1.0;
            }
        }
        assert!(n > 0.0, "no pixel selected");
        sum.map(|s| s / n)
    }

    #[tokio::test]
    async fn a_material_change_recolours_its_object_and_not_the_sky() {
        let engine = start_engine(2, 100.0);
        let before = finished(&engine, 2).await;
        let red = object_index(&engine, "Red sphere");
        let map = object_map(&engine);
        let mut state = engine.scene_state();
        state.materials[engine.scene().objects()[red].material].albedo = Vec3::new(0.05, 0.8, 0.05);
        engine.apply(state).expect("valid state");
        let after = finished(&engine, 2).await;
        let on_sphere = |i: usize| map[i] == Some(red);
        let old = mean_rgb(rgba(&before), on_sphere);
        let new = mean_rgb(rgba(&after), on_sphere);
        assert!(old[0] > 2.0 * old[1], "red before: {old:?}");
        assert!(new[1] > 1.5 * new[0], "green after: {new:?}");
        for (i, object) in map.iter().enumerate() {
            if object.is_none() {
                let px = i * 4..i * 4 + 4;
                assert_eq!(rgba(&before)[px.clone()], rgba(&after)[px], "sky pixel {i}");
            }
        }
    }

    #[tokio::test]
    async fn an_emission_change_darkens_the_light() {
        let engine = start_engine(2, 100.0);
        let before = finished(&engine, 2).await;
        let glow = object_index(&engine, "Glowing sphere");
        let map = object_map(&engine);
        let mut state = engine.scene_state();
        state.materials[engine.scene().objects()[glow].material].emission = Vec3::ZERO;
        engine.apply(state).expect("valid state");
        let after = finished(&engine, 2).await;
        let on_light = |i: usize| map[i] == Some(glow);
        let lit = mean_rgb(rgba(&before), on_light);
        let dark = mean_rgb(rgba(&after), on_light);
        assert!(dark[0] < 0.3 * lit[0], "{dark:?} vs {lit:?}");
    }

    #[tokio::test]
    async fn an_offset_moves_the_object_away_from_its_pixel() {
        let engine = start_engine(1, 100.0);
        let red = object_index(&engine, "Red sphere");
        let map = object_map(&engine);
        let index = map
            .iter()
            .position(|o| *o == Some(red))
            .expect("the red sphere is in view");
        let (x, y) = (index as u32 % W, index as u32 / W);
        let hit = engine.pick(x, y).expect("a hit");
        assert_eq!(hit.object, red);
        // Position and depth agree with the camera ray; the normal is a unit vector.
        let camera = engine.camera();
        assert!(((hit.position - camera.position).length() - hit.depth).abs() < 1e-3);
        assert!((hit.normal.length() - 1.0).abs() < 1e-3);

        let mut state = engine.scene_state();
        state.object_offsets[red] = Vec3::new(0.0, 10.0, 0.0);
        engine.apply(state).expect("valid state");
        assert_ne!(engine.pick(x, y).map(|h| h.object), Some(red));
        // Sky and pixels outside the image pick nothing.
        assert_eq!(engine.pick(W / 2, 0), None, "the top row is sky");
        assert_eq!(engine.pick(W, 0), None);
        assert_eq!(engine.pick(0, H), None);
    }

    #[tokio::test]
    async fn an_open_aperture_changes_the_image_and_a_closed_one_restores_it() {
        let engine = start_engine(2, 100.0);
        let pinhole = finished(&engine, 2).await;
        let mut state = engine.scene_state();
        state.lens = Lens {
            aperture: 0.3,
            focal_distance: 2.0,
        };
        engine.apply(state.clone()).expect("valid state");
        let blurred = finished(&engine, 2).await;
        assert_ne!(rgba(&pinhole), rgba(&blurred));
        state.lens.aperture = 0.0;
        engine.apply(state).expect("valid state");
        let closed = finished(&engine, 2).await;
        assert_eq!(rgba(&pinhole), rgba(&closed), "aperture 0 is the pinhole");
    }

    #[tokio::test]
    async fn path_depth_and_clamp_change_the_image() {
        let engine = start_engine(2, 100.0);
        let deep = finished(&engine, 2).await;
        let mut state = engine.scene_state();
        state.kernel.max_depth = 1;
        engine.apply(state.clone()).expect("valid state");
        let shallow = finished(&engine, 2).await;
        assert_ne!(rgba(&deep), rgba(&shallow));
        state.kernel.max_depth = 8;
        state.kernel.clamp = 0.05;
        engine.apply(state).expect("valid state");
        let clamped = finished(&engine, 2).await;
        let brightest = |frame: &Frame| {
            rgba(frame)
                .chunks_exact(4)
                .flat_map(|px| px[..3].to_vec())
                .max()
                .unwrap_or(0)
        };
        assert!(brightest(&deep) > 200);
        // 0.05 tone-maps (filmic curve, sRGB) to about 60.
        assert!(brightest(&clamped) < 80, "{}", brightest(&clamped));
    }

    #[tokio::test]
    async fn a_resolution_change_gives_frames_of_the_new_size() {
        let engine = start_engine(1, 100.0);
        finished(&engine, 1).await;
        let mut state = engine.scene_state();
        state.resolution = [40, 20];
        engine.apply(state).expect("valid state");
        let frame = finished(&engine, 1).await;
        let image = frame.images.data.first().expect("image");
        let size = image.size.expect("size");
        assert_eq!((size.x, size.y, image.pitch), (40, 20, 40));
        assert_eq!(rgba(&frame).len(), 40 * 20 * 4);
        assert!(
            engine.pick(20, 19).is_some(),
            "the floor at the bottom of the new size"
        );
        assert_eq!(engine.pick(40, 0), None, "outside the new size");
    }

    #[tokio::test]
    async fn a_region_refines_inside_and_keeps_the_rest() {
        let engine = start_engine(64, 100.0);
        let mut state = engine.scene_state();
        state.kernel.max_samples = 2;
        engine.apply(state.clone()).expect("valid state");
        let whole = finished(&engine, 2).await;
        let region = Region {
            min: [20, 10],
            max: [60, 40],
        };
        state.region = Some(region);
        state.kernel.max_samples = 8;
        engine.apply(state).expect("valid state");
        let refined = finished(&engine, 8).await;
        let mut inside_changed = 0;
        for y in 0..H {
            for x in 0..W {
                let i = (y * W + x) as usize * 4;
                let px = i..i + 4;
                if (20..60).contains(&x) && (10..40).contains(&y) {
                    inside_changed += usize::from(rgba(&whole)[px.clone()] != rgba(&refined)[px]);
                } else {
                    assert_eq!(rgba(&whole)[px.clone()], rgba(&refined)[px], "({x}, {y})");
                }
            }
        }
        assert!(
            inside_changed > 40 * 30 / 2,
            "{inside_changed} pixels refined"
        );
    }

    #[tokio::test]
    async fn clay_grey_makes_the_red_sphere_grey() {
        let engine = start_engine(2, 100.0);
        let before = finished(&engine, 2).await;
        let red = object_index(&engine, "Red sphere");
        let map = object_map(&engine);
        let mut state = engine.scene_state();
        state.clay = ClayMode::Grey;
        engine.apply(state).expect("valid state");
        let clay = finished(&engine, 2).await;
        let on_sphere = |i: usize| map[i] == Some(red);
        let old = mean_rgb(rgba(&before), on_sphere);
        let new = mean_rgb(rgba(&clay), on_sphere);
        assert!(old[0] > 2.0 * old[1], "red before: {old:?}");
        // Grey under a warm sun: channels close, no longer red.
        assert!(
            new[0] < 1.3 * new[1] && new[0] < 1.5 * new[2],
            "grey after: {new:?}"
        );
        // Lights keep emitting in clay mode.
        let glow = object_index(&engine, "Glowing sphere");
        let light = mean_rgb(rgba(&clay), |i| map[i] == Some(glow));
        assert!(light[0] > 200.0, "{light:?}");
    }

    #[tokio::test]
    async fn the_first_frame_after_a_change_is_subsampled_and_not_rate_limited() {
        // One frame a second at most: a frame within half a second bypassed the limit.
        let engine = start_engine(crate::MAX_SAMPLES_PER_PIXEL, 1.0);
        for subsample in [SubSample::None, SubSample::X4] {
            // Right after a new full-resolution publication, the limit would hold the next
            // one back for a second.
            let mut frames = engine.subscribe_frames();
            frames.borrow_and_update();
            tokio::time::timeout(WAIT, async {
                loop {
                    frames.changed().await.expect("engine alive");
                    if frames
                        .borrow_and_update()
                        .as_ref()
                        .is_some_and(|f| f.stats.subsampled == 1)
                    {
                        return;
                    }
                }
            })
            .await
            .expect("a full-resolution frame");
            let mut state = engine.scene_state();
            state.camera.position += Vec3::new(0.3, 0.0, 0.0);
            state.subsample = subsample;
            let changed = Instant::now();
            engine.apply(state).expect("valid state");
            let level = engine.change_level();
            let first = frame_where(&engine, |f| f.stats.change_level >= level).await;
            let latency = changed.elapsed();
            assert!(latency < Duration::from_millis(500), "{latency:?}");
            // The first preview is 4x4 blocks in every mode (then 2x2 unless the mode is 4x4).
            let block = 4;
            assert_eq!(first.stats.subsampled, block);
            let image = first.images.data.first().expect("image");
            let wire = if block == 4 {
                octaneweb_proto::octaneapi::SubSampleMode::Subsamplemode4x4
            } else {
                octaneweb_proto::octaneapi::SubSampleMode::Subsamplemode2x2
            };
            assert_eq!(image.sub_sampling, wire as i32);
            // Full-resolution frames of the same change follow.
            let full = frame_where(&engine, |f| {
                f.stats.change_level == level && f.stats.subsampled == 1
            })
            .await;
            assert!(full.stats.samples_per_pixel >= 1);
        }
    }

    #[test]
    fn changes_faster_than_a_preview_still_show_new_frames() {
        // A drag: the camera moves every 100 µs, far faster than one preview renders (at
        // 512x256 a 4x4 preview traces 8192 paths, over a millisecond). Each change's first
        // preview still finishes and is published, so frames of new changes keep coming
        // while the changes do (given up to 10 s on a loaded machine; without the fix at most
        // two come in that time).
        let engine = Running(
            start(RenderServerConfig {
                width: 512,
                height: 256,
                max_callback_rate: 30.0,
                ..RenderServerConfig::default()
            })
            .expect("engine starts"),
        );
        let frames = engine.subscribe_frames();
        let before = engine.change_level();
        let mut shown = std::collections::BTreeSet::new();
        let started = Instant::now();
        let mut step = 0u32;
        while started.elapsed() < Duration::from_secs(10) && shown.len() < 3 {
            let dx = if step.is_multiple_of(2) { 0.01 } else { -0.01 };
            step += 1;
            engine
                .update_camera(|mut camera| {
                    camera.position += Vec3::new(dx, 0.0, 0.0);
                    Ok::<_, String>(camera)
                })
                .expect("valid camera");
            if let Some(frame) = frames.borrow().as_ref() {
                if frame.stats.change_level > before {
                    shown.insert(frame.stats.change_level);
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        assert!(
            shown.len() >= 3,
            "{} changes, frames of only {} of them shown while they kept coming",
            step,
            shown.len()
        );
    }

    #[tokio::test]
    async fn without_the_reduced_pass_the_first_frame_is_full_resolution() {
        let engine = start_engine(64, 100.0);
        engine.set_reduced_first_pass(false);
        engine
            .update_camera(|camera| {
                Ok::<_, ()>(Camera {
                    position: camera.position + Vec3::new(0.3, 0.0, 0.0),
                    ..camera
                })
            })
            .expect("valid camera");
        let level = engine.change_level();
        let first = frame_where(&engine, |f| f.stats.change_level >= level).await;
        assert_eq!(first.stats.subsampled, 1);
    }

    #[tokio::test]
    async fn invalid_states_are_refused_and_change_nothing() {
        let engine = start_engine(4, 100.0);
        let good = engine.scene_state();
        let level = engine.change_level();
        type Spoil = Box<dyn Fn(&mut SceneState)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("camera", Box::new(|s| s.camera.fov_degrees = 0.0)),
            ("aperture", Box::new(|s| s.lens.aperture = -1.0)),
            ("focal distance", Box::new(|s| s.lens.focal_distance = 0.0)),
            ("depth", Box::new(|s| s.kernel.max_depth = 0)),
            ("clamp", Box::new(|s| s.kernel.clamp = f32::NAN)),
            ("max samples", Box::new(|s| s.kernel.max_samples = 0)),
            ("0x48", Box::new(|s| s.resolution = [0, 48])),
            ("9000x48", Box::new(|s| s.resolution = [9000, 48])),
            (
                "region",
                Box::new(|s| {
                    s.region = Some(Region {
                        min: [W, 0],
                        max: [W + 10, 10],
                    })
                }),
            ),
            ("albedo", Box::new(|s| s.materials[1].albedo.x = 2.0)),
            ("roughness", Box::new(|s| s.materials[2].roughness = 1.5)),
            ("emission", Box::new(|s| s.materials[3].emission.x = -1.0)),
            ("materials", Box::new(|s| s.materials.truncate(2))),
            ("offsets", Box::new(|s| s.object_offsets.push(Vec3::ZERO))),
            (
                "offset",
                Box::new(|s| s.object_offsets[1].x = f32::INFINITY),
            ),
            (
                "sun direction",
                Box::new(|s| s.environment.sun_direction = Vec3::ZERO),
            ),
            ("zenith", Box::new(|s| s.environment.zenith.y = -0.1)),
        ];
        for (word, spoil) in cases {
            let mut state = good.clone();
            spoil(&mut state);
            let why = engine.apply(state).expect_err(word);
            assert!(why.contains(word), "{word:?} not in {why:?}");
            assert_eq!(engine.scene_state(), good, "{word}: nothing changed");
            assert_eq!(engine.change_level(), level, "{word}: no new level");
        }
    }

    #[tokio::test]
    async fn update_camera_and_apply_agree_on_the_camera() {
        let engine = start_engine(1, 100.0);
        let moved = engine
            .update_camera(|camera| {
                Ok::<_, ()>(Camera {
                    fov_degrees: 50.0,
                    ..camera
                })
            })
            .expect("valid camera");
        assert_eq!(engine.scene_state().camera, moved);
        let mut state = engine.scene_state();
        state.camera.fov_degrees = 30.0;
        engine.apply(state.clone()).expect("valid state");
        assert_eq!(engine.camera(), state.camera);
        let frame = finished(&engine, 1).await;
        assert_eq!(frame.stats.change_level, engine.change_level());
    }
}
