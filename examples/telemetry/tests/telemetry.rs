//! The example telemetry server over a real socket, driven by a tonic client: every RPC kind,
//! refused commands, reflection, and shutdown with streams open.

use std::net::SocketAddr;
use std::time::Duration;

use octaneweb_example_telemetry::proto::training_service_client::TrainingServiceClient;
use octaneweb_example_telemetry::proto::{
    command, metrics_event, Command, CommandAck, GetJobRequest, JobState, MetricsEvent, Note,
    Pause, RestartJobRequest, Resume, SetLearningRate, WatchMetricsRequest,
};
use octaneweb_example_telemetry::{
    TelemetryConfig, TelemetryServer, MAX_NOTE_CHARS, MAX_OPEN_STREAMS,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// Long enough for anything that should happen; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

struct Running {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), octaneweb_example_telemetry::TelemetryError>>,
}

impl Running {
    async fn client(&self) -> TrainingServiceClient<Channel> {
        TrainingServiceClient::connect(format!("http://{}", self.address))
            .await
            .expect("connect to the telemetry server")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops")
            .expect("the server task does not panic")
            .expect("the server stops cleanly");
    }
}

async fn start(config: TelemetryConfig) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local address");
    let server = TelemetryServer::new(config).expect("valid configuration");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    Running {
        address,
        stop: Some(stop),
        task,
    }
}

fn fast() -> TelemetryConfig {
    TelemetryConfig {
        steps_per_second: 200.0,
        total_steps: 100_000,
        learning_rate: 0.02,
        seed: 5,
    }
}

async fn next_event(stream: &mut Streaming<MetricsEvent>) -> metrics_event::Event {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event in time")
        .expect("the stream is healthy")
        .expect("the stream is open")
        .event
        .expect("the event is set")
}

async fn next_ack(acks: &mut Streaming<CommandAck>) -> CommandAck {
    tokio::time::timeout(PATIENCE, acks.message())
        .await
        .expect("an acknowledgement in time")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

fn command(id: &str, action: command::Action) -> Command {
    Command {
        command_id: id.to_owned(),
        action: Some(action),
    }
}

#[tokio::test]
async fn get_job_reports_a_running_job_that_advances() {
    let server = start(fast()).await;
    let mut client = server.client().await;
    let first = client.get_job(GetJobRequest {}).await.unwrap().into_inner();
    assert_eq!(first.state(), JobState::Running);
    assert_eq!(first.total_steps, 100_000);
    assert_eq!(first.learning_rate, 0.02);
    assert_eq!(first.run, 1);
    // Wait on the stream rather than sleeping: the next batch proves the job advanced.
    let mut stream = client
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    loop {
        if let metrics_event::Event::Batch(batch) = next_event(&mut stream).await {
            assert!(batch.step > first.step);
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn watch_metrics_streams_a_falling_loss_curve_and_honours_limits() {
    let server = start(fast()).await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_metrics(WatchMetricsRequest {
            max_events: 61,
            every_steps: 2,
        })
        .await
        .unwrap()
        .into_inner();
    // The first event is the status at subscription time.
    assert!(matches!(
        next_event(&mut stream).await,
        metrics_event::Event::Status(_)
    ));
    let mut batches = Vec::new();
    while let Some(event) = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event in time")
        .expect("the stream is healthy")
    {
        if let Some(metrics_event::Event::Batch(batch)) = event.event {
            batches.push(batch);
        }
    }
    assert_eq!(batches.len(), 60, "max_events counts the first status too");
    assert!(batches.iter().all(|b| b.step % 2 == 0), "every_steps = 2");
    assert!(batches.windows(2).all(|w| w[1].step > w[0].step));
    let early: f64 = batches.iter().take(10).map(|b| b.loss).sum::<f64>() / 10.0;
    let late: f64 = batches.iter().rev().take(10).map(|b| b.loss).sum::<f64>() / 10.0;
    assert!(late < early, "loss falls: early {early}, late {late}");
    assert!(batches.iter().all(|b| (0.0..=1.0).contains(&b.accuracy)));
    server.stop().await;
}

#[tokio::test]
async fn control_pauses_resumes_and_sets_the_learning_rate_and_refuses_bad_commands() {
    let server = start(fast()).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let (commands, rx) = mpsc::channel(4);
    let mut acks = client
        .control(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    commands
        .send(command("p", command::Action::Pause(Pause {})))
        .await
        .unwrap();
    let paused = next_ack(&mut acks).await;
    assert_eq!(paused.command_id, "p");
    assert!(paused.accepted, "{}", paused.detail);
    let paused_status = paused.status.expect("status");
    assert_eq!(paused_status.state(), JobState::Paused);

    // A refused command answers with the reason and leaves the channel open.
    commands
        .send(command(
            "bad",
            command::Action::SetLearningRate(SetLearningRate {
                learning_rate: -3.0,
            }),
        ))
        .await
        .unwrap();
    let refused = next_ack(&mut acks).await;
    assert_eq!(refused.command_id, "bad");
    assert!(!refused.accepted);
    assert!(
        refused.detail.contains("learning rate"),
        "{}",
        refused.detail
    );
    commands
        .send(Command {
            command_id: "empty".to_owned(),
            action: None,
        })
        .await
        .unwrap();
    let empty = next_ack(&mut acks).await;
    assert!(!empty.accepted);
    assert!(empty.detail.contains("no action"), "{}", empty.detail);

    commands
        .send(command(
            "lr",
            command::Action::SetLearningRate(SetLearningRate { learning_rate: 0.2 }),
        ))
        .await
        .unwrap();
    let set = next_ack(&mut acks).await;
    assert!(set.accepted, "{}", set.detail);
    let set_status = set.status.expect("status");
    assert_eq!(set_status.learning_rate, 0.2);
    // Paused: not one step was trained between the two answers.
    assert_eq!(set_status.step, paused_status.step);

    commands
        .send(command("r", command::Action::Resume(Resume {})))
        .await
        .unwrap();
    let resumed = next_ack(&mut acks).await;
    assert!(resumed.accepted);
    assert_eq!(resumed.status.expect("status").state(), JobState::Running);

    // Watchers saw the status changes and then batches at the new rate.
    let mut saw_paused = false;
    loop {
        match next_event(&mut watch).await {
            metrics_event::Event::Status(status) if status.state() == JobState::Paused => {
                saw_paused = true
            }
            metrics_event::Event::Batch(batch) if batch.learning_rate == 0.2 => {
                assert!(batch.step > paused_status.step);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_paused, "watchers were told about the pause");

    // Half-closing the command stream ends the answers with OK.
    drop(commands);
    let end = tokio::time::timeout(PATIENCE, acks.message())
        .await
        .expect("end in time");
    assert!(matches!(end, Ok(None)), "{end:?}");
    server.stop().await;
}

#[tokio::test]
async fn record_notes_counts_notes_and_refuses_a_bad_one_by_number() {
    let server = start(fast()).await;
    let mut client = server.client().await;
    let notes = (0..3).map(|i| Note {
        text: format!("note {i}"),
        step: 0,
    });
    let summary = client
        .record_notes(tokio_stream::iter(notes))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.accepted, 3);
    assert_eq!(summary.kept, 3);
    assert_eq!(
        client
            .get_job(GetJobRequest {})
            .await
            .unwrap()
            .into_inner()
            .notes,
        3
    );

    let bad = vec![
        Note {
            text: "fine".to_owned(),
            step: 1,
        },
        Note {
            text: "x".repeat(MAX_NOTE_CHARS + 1),
            step: 1,
        },
    ];
    let status = client
        .record_notes(tokio_stream::iter(bad))
        .await
        .expect_err("an over-long note is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("note 2:"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn restart_job_starts_over_and_a_short_job_finishes() {
    let server = start(fast()).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let restarted = client
        .restart_job(RestartJobRequest {
            seed: 9,
            total_steps: 5,
            learning_rate: 0.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restarted.run, 2);
    assert_eq!(restarted.total_steps, 5);
    assert_eq!(restarted.learning_rate, 0.02, "0 keeps the learning rate");
    loop {
        if let metrics_event::Event::Status(status) = next_event(&mut watch).await {
            if status.state() == JobState::Finished {
                assert_eq!(status.step, 5);
                assert_eq!(status.run, 2);
                break;
            }
        }
    }
    let status = client
        .restart_job(RestartJobRequest {
            seed: 0,
            total_steps: 0,
            learning_rate: f64::NAN,
        })
        .await
        .expect_err("NaN is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("learning rate"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_training_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = start(fast()).await;
    let channel = Channel::from_shared(format!("http://{}", server.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"telemetry.v1.TrainingService"), "{names:?}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = start(fast()).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let (_commands, rx) = mpsc::channel::<Command>(1);
    let mut acks = client
        .control(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    next_event(&mut watch).await;
    server.stop().await;
    // Both streams end (OK or a transport error), neither hangs.
    tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(_)) = watch.message().await {}
    })
    .await
    .expect("the watch stream ends");
    tokio::time::timeout(PATIENCE, acks.message())
        .await
        .expect("the command stream ends")
        .ok();
}

#[tokio::test]
async fn open_watch_streams_are_limited_and_a_closed_one_frees_its_place() {
    let server = start(TelemetryConfig {
        steps_per_second: 1.0,
        ..fast()
    })
    .await;
    let mut client = server.client().await;
    let mut open = Vec::new();
    for _ in 0..MAX_OPEN_STREAMS {
        let stream = client
            .watch_metrics(WatchMetricsRequest::default())
            .await
            .expect("a stream within the limit opens")
            .into_inner();
        open.push(stream);
    }
    let refused = client
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .expect_err("one past the limit is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("WatchMetrics"),
        "{}",
        refused.message()
    );

    // Closing one frees a place once the server has seen the stream go.
    drop(open.pop());
    tokio::time::timeout(PATIENCE, async {
        loop {
            match client.watch_metrics(WatchMetricsRequest::default()).await {
                Ok(_) => break,
                Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a place frees up");
    drop(open);
    server.stop().await;
}

#[test]
fn bad_configurations_are_refused() {
    for steps_per_second in [0.0, -1.0, f64::NAN, 1e9] {
        let config = TelemetryConfig {
            steps_per_second,
            ..TelemetryConfig::default()
        };
        assert!(TelemetryServer::new(config).is_err(), "{steps_per_second}");
    }
    let config = TelemetryConfig {
        learning_rate: 0.0,
        ..TelemetryConfig::default()
    };
    let error = TelemetryServer::new(config).err().expect("refused");
    assert!(error.to_string().contains("learning rate"), "{error}");
}
