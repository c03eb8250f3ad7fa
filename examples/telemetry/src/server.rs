//! The gRPC server: `telemetry.v1.TrainingService`, reflection (v1 and v1alpha), and the
//! ticker that trains the simulated job.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use crate::job::{Job, JobError};
use crate::proto::training_service_server::{TrainingService, TrainingServiceServer};
use crate::proto::{
    command, metrics_event, CommandAck, GetJobRequest, JobStatus, MetricsEvent, Note, NotesSummary,
    RestartJobRequest, WatchMetricsRequest,
};
use crate::FILE_DESCRIPTOR_SET;

/// Fastest training pace the server accepts.
pub const MAX_STEPS_PER_SECOND: f64 = 1000.0;
/// Events buffered for watchers; one that falls further behind skips the events it missed.
const EVENT_BUFFER: usize = 256;
/// Concurrent HTTP/2 streams per connection (the gateway multiplexes browsers onto one).
const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Largest message the server decodes or encodes.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Most `WatchMetrics` and most `Control` streams open at once (each kind on its own).
pub const MAX_OPEN_STREAMS: usize = 256;

/// How the simulated job trains.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Training steps (batches) per second, above 0 and at most [`MAX_STEPS_PER_SECOND`].
    pub steps_per_second: f64,
    /// Steps until the job finishes.
    pub total_steps: u64,
    /// Learning rate at the start.
    pub learning_rate: f64,
    /// Seed of the simulated noise (the same seed gives the same loss curve).
    pub seed: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            steps_per_second: 10.0,
            total_steps: 5000,
            learning_rate: 0.01,
            seed: 1,
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `steps_per_second` is out of range.
    #[error("steps per second must be above 0 and at most {MAX_STEPS_PER_SECOND}, got {0}")]
    StepsPerSecond(f64),
    /// The job settings are out of range.
    #[error("invalid job settings: {0}")]
    Job(#[from] JobError),
    /// The reflection service could not be built from the descriptor set.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// State shared by the service, its streams and the ticker.
struct Shared {
    job: Mutex<Job>,
    events: broadcast::Sender<MetricsEvent>,
    /// Becomes true when the server shuts down; open streams end on it.
    stopping: watch::Receiver<bool>,
    watchers: Arc<AtomicUsize>,
    controllers: Arc<AtomicUsize>,
}

/// One open stream counted against [`MAX_OPEN_STREAMS`]; dropping it (the stream ended or
/// the client went away) frees the place.
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(counter: &Arc<AtomicUsize>, what: &str) -> Result<Self, Status> {
        let taken = counter.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot(Arc::clone(counter));
        if taken >= MAX_OPEN_STREAMS {
            return Err(Status::resource_exhausted(format!(
                "{MAX_OPEN_STREAMS} {what} streams are open already; close one first"
            )));
        }
        Ok(slot)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// The job; a panic while it was held cannot leave it inconsistent (every update is a
    /// plain assignment), so a poisoned lock is taken over.
    fn job(&self) -> MutexGuard<'_, Job> {
        self.job
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells every watcher about a status change (nobody watching is fine).
    fn publish_status(&self, status: JobStatus) {
        let _ = self.events.send(MetricsEvent {
            event: Some(metrics_event::Event::Status(status)),
        });
    }
}

/// The example telemetry server; [`TelemetryServer::serve`] runs it.
pub struct TelemetryServer {
    config: TelemetryConfig,
    job: Job,
}

impl TelemetryServer {
    /// Checks the configuration and creates the job (it starts training once served).
    pub fn new(config: TelemetryConfig) -> Result<Self, TelemetryError> {
        if !(config.steps_per_second > 0.0 && config.steps_per_second <= MAX_STEPS_PER_SECOND) {
            return Err(TelemetryError::StepsPerSecond(config.steps_per_second));
        }
        let job = Job::new(config.total_steps, config.learning_rate, config.seed)?;
        Ok(Self { config, job })
    }

    /// Serves `telemetry.v1.TrainingService` and reflection on `listener` until `shutdown`
    /// completes; open streams then end with status OK and in-flight calls finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), TelemetryError> {
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            job: Mutex::new(self.job),
            events,
            stopping: stop_rx,
            watchers: Arc::new(AtomicUsize::new(0)),
            controllers: Arc::new(AtomicUsize::new(0)),
        });
        let ticker = tokio::spawn(train(
            Arc::clone(&shared),
            Duration::from_secs_f64(1.0 / self.config.steps_per_second),
        ));

        let service = TrainingServiceServer::new(Training {
            shared: Arc::clone(&shared),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let result = tonic::transport::Server::builder()
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                shutdown.await;
                // Streams never end on their own; tell them to, or the graceful shutdown
                // would wait for them forever.
                let _ = stop_tx.send(true);
            })
            .await;
        ticker.abort();
        result.map_err(TelemetryError::from)
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Trains one step per tick and publishes the batches (and the status when the job finishes).
async fn train(shared: Arc<Shared>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stopping = shared.stopping.clone();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        let (batch, finished) = {
            let mut job = shared.job();
            let before = job.state();
            let batch = job.advance(unix_ms());
            let finished = (job.state() != before).then(|| job.status());
            (batch, finished)
        };
        if let Some(batch) = batch {
            let _ = shared.events.send(MetricsEvent {
                event: Some(metrics_event::Event::Batch(batch)),
            });
        }
        if let Some(status) = finished {
            shared.publish_status(status);
        }
    }
}

struct Training {
    shared: Arc<Shared>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn invalid(error: JobError) -> Status {
    Status::invalid_argument(error.to_string())
}

#[tonic::async_trait]
impl TrainingService for Training {
    async fn get_job(&self, _: Request<GetJobRequest>) -> Result<Response<JobStatus>, Status> {
        Ok(Response::new(self.shared.job().status()))
    }

    async fn restart_job(
        &self,
        request: Request<RestartJobRequest>,
    ) -> Result<Response<JobStatus>, Status> {
        let request = request.into_inner();
        let status = {
            let mut job = self.shared.job();
            job.restart(request.seed, request.total_steps, request.learning_rate)
                .map_err(invalid)?;
            job.status()
        };
        self.shared.publish_status(status.clone());
        Ok(Response::new(status))
    }

    type WatchMetricsStream = EventStream<MetricsEvent>;

    async fn watch_metrics(
        &self,
        request: Request<WatchMetricsRequest>,
    ) -> Result<Response<Self::WatchMetricsStream>, Status> {
        let request = request.into_inner();
        let limit = request.max_events;
        let every = u64::from(request.every_steps.max(1));
        // Subscribe before reading the status, so no event between the two is lost.
        let slot = StreamSlot::take(&self.shared.watchers, "WatchMetrics")?;
        let mut events = self.shared.events.subscribe();
        let first = self.shared.job().status();
        let mut stopping = self.shared.stopping.clone();
        let stream = async_stream::stream! {
            let _slot = slot;
            let mut sent = 0u32;
            let mut next = Some(MetricsEvent { event: Some(metrics_event::Event::Status(first)) });
            loop {
                if let Some(event) = next.take() {
                    yield Ok(event);
                    sent = sent.saturating_add(1);
                    if limit != 0 && sent >= limit {
                        break;
                    }
                }
                let received = tokio::select! {
                    received = events.recv() => received,
                    _ = stopping.wait_for(|stop| *stop) => break,
                };
                match received {
                    Ok(event) => {
                        let wanted = match &event.event {
                            Some(metrics_event::Event::Batch(batch)) => batch.step % every == 0,
                            _ => true,
                        };
                        if wanted {
                            next = Some(event);
                        }
                    }
                    // A slow watcher skips what it missed rather than holding memory.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a metrics watcher fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn record_notes(
        &self,
        request: Request<Streaming<Note>>,
    ) -> Result<Response<NotesSummary>, Status> {
        let mut notes = request.into_inner();
        let mut accepted = 0u32;
        let mut kept = self.shared.job().status().notes;
        while let Some(note) = notes.next().await {
            let note = note?;
            let index = accepted.saturating_add(1);
            Job::check_note(index, &note.text).map_err(invalid)?;
            let count = self.shared.job().add_note(note.step, note.text);
            kept = u32::try_from(count).unwrap_or(u32::MAX);
            accepted = index;
        }
        Ok(Response::new(NotesSummary { accepted, kept }))
    }

    type ControlStream = EventStream<CommandAck>;

    async fn control(
        &self,
        request: Request<Streaming<crate::proto::Command>>,
    ) -> Result<Response<Self::ControlStream>, Status> {
        let slot = StreamSlot::take(&self.shared.controllers, "Control")?;
        let mut commands = request.into_inner();
        let shared = Arc::clone(&self.shared);
        let mut stopping = self.shared.stopping.clone();
        // One command is read only after the previous answer was taken: the client's own
        // pace bounds what is held here.
        let stream = async_stream::stream! {
            let _slot = slot;
            loop {
                let command = tokio::select! {
                    command = commands.next() => command,
                    _ = stopping.wait_for(|stop| *stop) => break,
                };
                let command = match command {
                    None => break,
                    Some(Err(status)) => {
                        yield Err(status);
                        break;
                    }
                    Some(Ok(command)) => command,
                };
                yield Ok(apply(&shared, command));
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Applies one command and answers it; a refused command changes nothing.
fn apply(shared: &Shared, command: crate::proto::Command) -> CommandAck {
    let (outcome, status, changed) = {
        let mut job = shared.job();
        let before = job.status();
        let outcome = match command.action {
            None => Err("the command has no action (pause, resume or setLearningRate)".to_owned()),
            Some(command::Action::Pause(_)) => {
                job.pause().map(str::to_owned).map_err(|e| e.to_string())
            }
            Some(command::Action::Resume(_)) => {
                job.resume().map(str::to_owned).map_err(|e| e.to_string())
            }
            Some(command::Action::SetLearningRate(set)) => job
                .set_learning_rate(set.learning_rate)
                .map(|()| format!("learning rate set to {}", set.learning_rate))
                .map_err(|e| e.to_string()),
        };
        let status = job.status();
        let changed = status.state != before.state || status.learning_rate != before.learning_rate;
        (outcome, status, changed)
    };
    if changed {
        shared.publish_status(status.clone());
    }
    let (accepted, detail) = match outcome {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    CommandAck {
        command_id: command.command_id,
        accepted,
        detail,
        status: Some(status),
    }
}
