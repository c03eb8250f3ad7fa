//! The gRPC services, all sharing one [`Shared`] state.

pub(crate) mod callbacks;
pub(crate) mod livelink;
pub(crate) mod nodes;
pub(crate) mod render_engine;
mod values;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use tonic::Status;

use crate::engine::Engine;
use crate::files::{FileRoot, WritableRoot};
use crate::nodes::{Document, NodeError};

/// The new-image callback a client registered with `setOnNewImageCallback`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Registration {
    /// The id the server returned (0: nothing registered).
    pub callback_id: u32,
    /// `callbackSource` the client sent, echoed in generation-1 callbacks.
    pub callback_source: String,
    /// `userData` the client sent, echoed in every callback.
    pub user_data: u64,
}

/// State shared by every service of one server.
pub(crate) struct Shared {
    pub engine: Arc<Engine>,
    /// The scene's node graph; edits go through [`Shared::edit_document`].
    document: Mutex<Document>,
    pub files: Option<FileRoot>,
    /// Where projects are loaded from and saved to (`None`: no project files).
    pub projects: Option<WritableRoot>,
    /// Where `saveImage1` writes (the file root; `None`: disabled).
    pub images: Option<WritableRoot>,
    /// The render region's feather width as last set (kept for `getRenderRegion`; the
    /// renderer's region has hard edges).
    feather_width: std::sync::atomic::AtomicU32,
    /// Counts project loads and resets; callback streams report each as
    /// `projectManagerChanged`.
    pub project_changes: watch::Sender<u64>,
    registration: Mutex<Registration>,
    next_callback_id: AtomicU32,
    /// Becomes true when the server shuts down; ends callback streams.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(
        engine: Arc<Engine>,
        files: Option<FileRoot>,
        projects: Option<WritableRoot>,
        shutdown: watch::Receiver<bool>,
    ) -> Shared {
        let images = files
            .as_ref()
            .and_then(|f| WritableRoot::new(f.root()).ok());
        let document = Document::builtin(engine.scene(), &engine.scene_state());
        Shared {
            engine,
            document: Mutex::new(document),
            files,
            projects,
            images,
            feather_width: AtomicU32::new(0),
            project_changes: watch::Sender::new(0),
            registration: Mutex::new(Registration::default()),
            next_callback_id: AtomicU32::new(1),
            shutdown,
        }
    }

    /// The node graph, locked for reading (hold it briefly).
    pub fn document(&self) -> MutexGuard<'_, Document> {
        self.document
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Edits the node graph: `edit` works on a copy, the renderer must accept the result,
    /// and only then does the copy replace the graph. A refused edit changes nothing.
    pub fn edit_document<T>(
        &self,
        method: &str,
        edit: impl FnOnce(&mut Document) -> Result<T, NodeError>,
    ) -> Result<T, Status> {
        let mut document = self.document();
        let mut draft = document.clone();
        let out = edit(&mut draft).map_err(|error| error.to_status(method))?;
        self.render(method, &draft)?;
        *document = draft;
        Ok(out)
    }

    /// Hands the graph's render to the engine.
    fn render(&self, method: &str, document: &Document) -> Result<(), Status> {
        let state = document.scene_state(self.engine.scene(), &self.engine.scene_state());
        self.engine.apply(state).map_err(|why| {
            Status::failed_precondition(format!(
                "{method}: the renderer cannot use this scene: {why}"
            ))
        })
    }

    /// Applies render settings the graph does not hold (region, clay, sub-sampling).
    pub fn apply_settings(
        &self,
        method: &str,
        state: crate::scene_state::SceneState,
    ) -> Result<(), Status> {
        // The document's lock orders this against pin edits, which start from the engine's
        // state.
        let _document = self.document();
        self.engine.apply(state).map_err(|why| {
            Status::invalid_argument(format!("{method}: the renderer cannot use this: {why}"))
        })
    }

    pub fn set_feather_width(&self, width: u32) {
        self.feather_width.store(width, Ordering::Relaxed);
    }

    pub fn feather_width(&self) -> u32 {
        self.feather_width.load(Ordering::Relaxed)
    }

    /// A fresh callback id (never 0) that replaces no registration.
    pub fn next_callback_id(&self) -> u32 {
        match self.next_callback_id.fetch_add(1, Ordering::Relaxed) {
            0 => self.next_callback_id.fetch_add(1, Ordering::Relaxed),
            id => id,
        }
    }

    /// Replaces the graph with the built-in scene as it started.
    pub fn reset_project(&self) -> Result<(), Status> {
        let initial = crate::scene_state::SceneState::initial(
            self.engine.scene(),
            [self.engine.config().width, self.engine.config().height],
            self.engine.config().sample_limit(),
        );
        let fresh = Document::builtin(self.engine.scene(), &initial);
        let mut document = self.document();
        self.render("ApiProjectManager.resetProject", &fresh)?;
        *document = fresh;
        drop(document);
        self.project_changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Loads a project file from below the project root.
    pub async fn load_project(&self, path: &str) -> Result<(), Status> {
        const METHOD: &str = "ApiProjectManager.loadProject";
        let root = self.project_root(METHOD)?;
        let bytes = root.read(path).await.map_err(|s| prefixed(METHOD, s))?;
        let mut loaded = Document::from_project_json(&bytes, self.engine.scene().objects().len())
            .map_err(|error| {
            Status::invalid_argument(format!("{METHOD}: {path:?}: {error}"))
        })?;
        loaded.project = path.to_owned();
        let mut document = self.document();
        self.render(METHOD, &loaded)?;
        *document = loaded;
        drop(document);
        self.project_changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Saves the graph as a project file below the project root; it becomes the project.
    /// `method` names the call in errors (`saveProject` or `saveProjectAs`).
    pub async fn save_project(&self, method: &str, path: &str) -> Result<(), Status> {
        let root = self.project_root(method)?;
        let bytes = self.document().to_project_json();
        root.write(path, &bytes)
            .await
            .map_err(|s| prefixed(method, s))?;
        self.document().project = path.to_owned();
        Ok(())
    }

    fn project_root(&self, method: &str) -> Result<&WritableRoot, Status> {
        self.projects.as_ref().ok_or_else(|| {
            Status::failed_precondition(format!(
                "{method}: project files are disabled: the render server was started without a project root (--project-root)"
            ))
        })
    }

    fn lock_registration(&self) -> MutexGuard<'_, Registration> {
        self.registration
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current registration (default if none).
    pub fn registration(&self) -> Registration {
        self.lock_registration().clone()
    }

    /// Registers a callback and returns its fresh id (never 0).
    pub fn register(&self, callback_source: String, user_data: u64) -> u32 {
        let mut id = self.next_callback_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            // Wrapped around after 4 billion registrations; 0 means "none".
            id = self.next_callback_id.fetch_add(1, Ordering::Relaxed);
        }
        *self.lock_registration() = Registration {
            callback_id: id,
            callback_source,
            user_data,
        };
        id
    }

    /// Forgets the registered callback.
    pub fn unregister(&self) {
        *self.lock_registration() = Registration::default();
    }
}

fn prefixed(method: &str, status: Status) -> Status {
    Status::new(status.code(), format!("{method}: {}", status.message()))
}
