//! The render loop: one OS thread owns the path tracer and adds samples while the render
//! runs; gRPC handlers steer it through [`Engine`] and read published frames from a
//! `watch` channel (only the newest frame is kept, so slow readers skip frames and never
//! hold the renderer back).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use octaneweb_pathtracer::{Camera, Renderer, Scene};
use tokio::sync::watch;

use crate::image::{build_frame, Frame, FrameStats};
use crate::scene_state::{PickHit, SceneState};
use crate::{RenderServerConfig, RenderServerError};

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
    /// The camera clients asked for last (validated).
    camera: Camera,
    /// Everything else the node graph controls (its `camera` mirrors `camera`).
    state: SceneState,
    /// `camera` differs from what the renderer uses.
    camera_dirty: bool,
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
    /// Grows on every camera change and restart; frames carry the level they show.
    change_level: AtomicU64,
    frames: watch::Sender<Option<Arc<Frame>>>,
    status: watch::Sender<EngineStatus>,
    scene: Arc<Scene>,
    config: RenderServerConfig,
    /// Tests set this to make the next sample panic, like a path tracer bug would.
    #[cfg(test)]
    pub(crate) inject_panic: std::sync::atomic::AtomicBool,
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, Control> {
        // A panic never happens while the lock is held, but stay usable if one did.
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The scene being rendered.
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
        self.lock().camera
    }

    /// Replaces the camera with the result of `update` applied to the current camera, if
    /// `update` accepts it; the change restarts accumulation. Atomic with respect to other
    /// camera updates.
    pub fn update_camera<E>(
        &self,
        update: impl FnOnce(Camera) -> Result<Camera, E>,
    ) -> Result<Camera, E> {
        let mut control = self.lock();
        let camera = update(control.camera)?;
        if camera != control.camera {
            control.camera = camera;
            control.state.camera = camera;
            control.camera_dirty = true;
            self.change_level.fetch_add(1, Ordering::AcqRel);
            self.wake.notify_all();
        }
        Ok(camera)
    }

    /// What the render shows now (as last applied).
    #[allow(dead_code)]
    pub fn scene_state(&self) -> SceneState {
        self.lock().state.clone()
    }

    #[allow(dead_code)]
    /// Renders `state` from now on; anything that changed restarts accumulation. An invalid
    /// state (a camera that cannot produce rays) is refused and changes nothing.
    pub fn apply(&self, state: SceneState) -> Result<(), String> {
        if !state.camera.is_valid() {
            return Err("the camera cannot produce rays (position equals target, up parallel to the view, or a field of view outside 0..180)".into());
        }
        let mut control = self.lock();
        if state == control.state {
            return Ok(());
        }
        if state.camera != control.camera {
            control.camera = state.camera;
            control.camera_dirty = true;
        }
        let others_changed = SceneState {
            camera: control.state.camera,
            ..state.clone()
        } != control.state;
        control.state = state;
        if others_changed {
            self.restart_locked(&mut control);
        } else {
            self.change_level.fetch_add(1, Ordering::AcqRel);
        }
        self.wake.notify_all();
        Ok(())
    }

    /// What is under pixel (`x`, `y`) of the current image, if anything.
    #[allow(dead_code)]
    pub fn pick(&self, _x: u32, _y: u32) -> Option<PickHit> {
        None
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
        self.change_level.fetch_add(1, Ordering::AcqRel);
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

/// Starts the render loop on its own thread. The thread ends after [`Engine::shutdown`].
pub(crate) fn start(config: RenderServerConfig) -> Result<Arc<Engine>, RenderServerError> {
    config.validate()?;
    let scene = Arc::new(Scene::builtin());
    let camera = scene.default_camera();
    let renderer = Renderer::new(Arc::clone(&scene), camera, config.width, config.height)?;
    let (frames, _) = watch::channel(None);
    let (status, _) = watch::channel(EngineStatus::default());
    let engine = Arc::new(Engine {
        control: Mutex::new(Control {
            camera,
            state: SceneState::initial(
                &scene,
                [config.width, config.height],
                config.sample_limit(),
            ),
            camera_dirty: false,
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
        #[cfg(test)]
        inject_panic: std::sync::atomic::AtomicBool::new(false),
    });
    let for_thread = Arc::clone(&engine);
    std::thread::Builder::new()
        .name("octaneweb-render".into())
        .spawn(move || {
            let engine = for_thread;
            let mut state = LoopState::new(&engine, renderer);
            loop {
                // A panic anywhere in an iteration (the path tracer, pixel conversion) is a
                // render failure: report it and keep the loop alive for a restart.
                match catch_unwind(AssertUnwindSafe(|| state.step(&engine))) {
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
    /// The camera the renderer uses (or will use when recreated).
    camera: Camera,
    /// Change level of the current accumulation.
    level: u64,
    /// Time spent rendering the current accumulation.
    render_time: Duration,
    /// Samples per pixel of the last published frame of the current accumulation.
    published_spp: u32,
    last_publish: Option<Instant>,
    publish_interval: Duration,
    sample_limit: u32,
}

impl LoopState {
    fn new(engine: &Engine, renderer: Renderer) -> LoopState {
        LoopState {
            camera: renderer.camera(),
            renderer: Some(renderer),
            level: engine.change_level(),
            render_time: Duration::ZERO,
            published_spp: 0,
            last_publish: None,
            publish_interval: Duration::from_secs_f64(1.0 / engine.config.max_callback_rate),
            sample_limit: engine.config.sample_limit(),
        }
    }

    fn spp(&self) -> u32 {
        self.renderer
            .as_ref()
            .map_or(0, |r| r.film().samples_per_pixel())
    }

    /// When the next frame may be published (`None`: right away).
    fn next_publish_at(&self) -> Option<Instant> {
        self.last_publish.map(|at| at + self.publish_interval)
    }

    /// Starts a new accumulation at change level `level`.
    fn reset_accumulation(&mut self, level: u64) {
        self.level = level;
        self.render_time = Duration::ZERO;
        self.published_spp = 0;
    }

    /// Applies pending requests and decides what to do next; waits while there is nothing.
    fn next_step(&mut self, engine: &Engine) -> Option<Step> {
        let mut control = engine.lock();
        loop {
            if control.shutdown {
                return None;
            }
            if control.camera_dirty {
                control.camera_dirty = false;
                self.camera = control.camera;
                if let Some(renderer) = self.renderer.as_mut() {
                    if let Err(why) = renderer.set_camera(self.camera) {
                        // Handlers validate cameras first, so this means the checks differ.
                        drop(control);
                        self.renderer = None;
                        engine.record_failure(format!("the renderer rejected the camera: {why}"));
                        control = engine.lock();
                    }
                }
                self.reset_accumulation(engine.change_level());
            }
            if control.restart {
                control.restart = false;
                match self.renderer.as_mut() {
                    Some(renderer) => renderer.reset(),
                    None => {
                        let created = Renderer::new(
                            Arc::clone(&engine.scene),
                            self.camera,
                            engine.config.width,
                            engine.config.height,
                        );
                        match created {
                            Ok(renderer) => self.renderer = Some(renderer),
                            Err(why) => {
                                drop(control);
                                engine.record_failure(format!("cannot restart rendering: {why}"));
                                control = engine.lock();
                            }
                        }
                    }
                }
                self.reset_accumulation(engine.change_level());
            }
            let spp = self.spp();
            let may_render = control.mode == RunMode::Running
                && self.renderer.is_some()
                && spp < self.sample_limit;
            if may_render {
                return Some(Step::Render(control.priority));
            }
            engine.set_rendering(false);
            if spp > 0 && spp != self.published_spp {
                // Idle with samples nobody has seen yet: publish them when the rate allows.
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
                let Some(renderer) = self.renderer.as_mut() else {
                    return Flow::Continue;
                };
                engine.set_rendering(true);
                let started = Instant::now();
                #[cfg(test)]
                if engine.inject_panic.swap(false, Ordering::AcqRel) {
                    panic!("injected test failure");
                }
                renderer.render_sample();
                let took = started.elapsed();
                self.render_time += took;
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
                    if !control.shutdown && !control.camera_dirty && !control.restart {
                        let _ = engine.wake.wait_timeout(control, rest);
                    }
                }
            }
            Step::Publish => self.publish(engine),
        }
        Flow::Continue
    }

    fn publish(&mut self, engine: &Engine) {
        let Some(renderer) = self.renderer.as_ref() else {
            return;
        };
        let film = renderer.film();
        let spp = film.samples_per_pixel();
        if spp == 0 {
            return;
        }
        let stats = FrameStats {
            change_level: self.level,
            samples_per_pixel: spp,
            max_samples_per_pixel: self.sample_limit,
            render_time: self.render_time,
        };
        let frame = build_frame(film, &engine.config, stats);
        self.published_spp = spp;
        self.last_publish = Some(Instant::now());
        engine.frames.send_replace(Some(Arc::new(frame)));
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
