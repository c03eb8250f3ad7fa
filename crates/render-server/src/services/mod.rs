//! The gRPC services, all sharing one [`Shared`] state.

pub(crate) mod callbacks;
pub(crate) mod livelink;
pub(crate) mod render_engine;
pub(crate) mod scene;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::engine::Engine;
use crate::files::FileRoot;
use crate::scene_graph::SceneGraph;

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
    pub scene_graph: SceneGraph,
    pub files: Option<FileRoot>,
    registration: Mutex<Registration>,
    next_callback_id: AtomicU32,
    /// Becomes true when the server shuts down; ends callback streams.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(
        engine: Arc<Engine>,
        files: Option<FileRoot>,
        shutdown: watch::Receiver<bool>,
    ) -> Shared {
        let scene_graph = SceneGraph::new(engine.scene());
        Shared {
            engine,
            scene_graph,
            files,
            registration: Mutex::new(Registration::default()),
            next_callback_id: AtomicU32::new(1),
            shutdown,
        }
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
