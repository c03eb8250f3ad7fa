//! Fetch a schema from a server's reflection service (`grpc.reflection.v1`, falling back to
//! `v1alpha` for servers that only speak the older version).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use crate::error::SchemaError;
use prost::Message as _;
use prost_types::FileDescriptorProto;

/// Most files fetched from one server; guards against a server that never stops answering.
const MAX_FILES: usize = 10_000;
/// How long one reflection answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Ask a server's reflection service (v1, then v1alpha) for every file of every service it
/// lists, following imports. Files come back in no particular order; pass them to
/// [`SchemaBuilder::add_file_descriptors`](crate::SchemaBuilder::add_file_descriptors).
///
/// The reflection services themselves are not included. A symbol the server cannot resolve
/// is skipped with a logged warning; failing to list services at all is an error.
pub async fn fetch<T>(channel: T) -> Result<Vec<FileDescriptorProto>, SchemaError>
where
    T: Transport,
{
    match v1::fetch(channel.clone()).await {
        Err(SchemaError::Reflection {
            code: tonic::Code::Unimplemented,
            ..
        }) => {
            tracing::debug!("reflection v1 unimplemented; trying v1alpha");
            v1alpha::fetch(channel).await
        }
        other => other,
    }
}

/// The services a server's reflection service (v1, then v1alpha) lists, reflection's own
/// included. Bound it with a timeout: each answer may take up to 15 s.
pub async fn list_services<T>(channel: T) -> Result<Vec<String>, SchemaError>
where
    T: Transport,
{
    match v1::list_services(channel.clone()).await {
        Err(SchemaError::Reflection {
            code: tonic::Code::Unimplemented,
            ..
        }) => v1alpha::list_services(channel).await,
        other => other,
    }
}

/// What reflection is fetched over: a tonic `Channel`, or any other tonic transport (such as
/// the gateway's upstream connection pool).
pub trait Transport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<tonic::codegen::StdError>,
        ResponseBody: tonic::codegen::Body<
            Data = tonic::codegen::Bytes,
            Error: Into<tonic::codegen::StdError> + Send,
        > + Send
                          + 'static,
    > + Clone
    + Send
{
}

impl<T> Transport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<tonic::codegen::StdError>,
            ResponseBody: tonic::codegen::Body<
                Data = tonic::codegen::Bytes,
                Error: Into<tonic::codegen::StdError> + Send,
            > + Send
                              + 'static,
        > + Clone
        + Send
{
}

fn status_error(status: tonic::Status) -> SchemaError {
    SchemaError::Reflection {
        code: status.code(),
        message: status.message().to_owned(),
    }
}

fn protocol_error(message: impl Into<String>) -> SchemaError {
    SchemaError::Reflection {
        code: tonic::Code::Internal,
        message: message.into(),
    }
}

/// Collects decoded files, remembering which imports still need fetching.
#[derive(Default)]
struct Collected {
    files: Vec<FileDescriptorProto>,
    names: HashSet<String>,
    wanted: VecDeque<String>,
}

impl Collected {
    fn add_encoded(&mut self, encoded: &[Vec<u8>]) -> Result<(), SchemaError> {
        for bytes in encoded {
            let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|error| {
                protocol_error(format!(
                    "undecodable file descriptor from reflection: {error}"
                ))
            })?;
            if !self.names.insert(file.name().to_owned()) {
                continue;
            }
            if self.files.len() >= MAX_FILES {
                return Err(protocol_error(format!(
                    "server reflection offered more than {MAX_FILES} files"
                )));
            }
            for import in &file.dependency {
                if !self.names.contains(import) {
                    self.wanted.push_back(import.clone());
                }
            }
            self.files.push(file);
        }
        Ok(())
    }

    fn next_wanted(&mut self) -> Option<String> {
        while let Some(name) = self.wanted.pop_front() {
            if !self.names.contains(&name) {
                return Some(name);
            }
        }
        None
    }
}

/// The v1 and v1alpha protocols are message-for-message identical; one body serves both.
macro_rules! reflection_client {
    ($version:ident) => {
        mod $version {
            use tokio::sync::mpsc;
            use tokio_stream::wrappers::ReceiverStream;
            use tonic_reflection::pb::$version::{
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
                ServerReflectionResponse,
            };

            use super::{protocol_error, status_error, Collected, Transport, ANSWER_TIMEOUT};
            use crate::error::SchemaError;

            struct Session {
                requests: mpsc::Sender<ServerReflectionRequest>,
                responses: tonic::Streaming<ServerReflectionResponse>,
            }

            impl Session {
                async fn ask(
                    &mut self,
                    request: MessageRequest,
                ) -> Result<MessageResponse, SchemaError> {
                    let request = ServerReflectionRequest {
                        host: String::new(),
                        message_request: Some(request),
                    };
                    self.requests
                        .send(request)
                        .await
                        .map_err(|_| protocol_error("reflection stream closed by the server"))?;
                    let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.responses.message())
                        .await
                        .map_err(|_| SchemaError::Reflection {
                            code: tonic::Code::DeadlineExceeded,
                            message: format!(
                                "no reflection answer within {} s",
                                ANSWER_TIMEOUT.as_secs()
                            ),
                        })?
                        .map_err(status_error)?
                        .ok_or_else(|| protocol_error("reflection stream ended early"))?;
                    answer
                        .message_response
                        .ok_or_else(|| protocol_error("empty reflection answer"))
                }
            }

            async fn open<T: Transport>(channel: T) -> Result<Session, SchemaError> {
                let mut client = ServerReflectionClient::new(channel)
                    .max_decoding_message_size(64 * 1024 * 1024);
                // One request in flight at a time, so a tiny queue suffices.
                let (requests, receiver) = mpsc::channel(4);
                let opened = tokio::time::timeout(
                    ANSWER_TIMEOUT,
                    client.server_reflection_info(ReceiverStream::new(receiver)),
                );
                let responses = opened
                    .await
                    .map_err(|_| SchemaError::Reflection {
                        code: tonic::Code::DeadlineExceeded,
                        message: format!(
                            "the reflection stream did not open within {} s",
                            ANSWER_TIMEOUT.as_secs()
                        ),
                    })?
                    .map_err(status_error)?
                    .into_inner();
                Ok(Session {
                    requests,
                    responses,
                })
            }

            async fn services(session: &mut Session) -> Result<Vec<String>, SchemaError> {
                match session
                    .ask(MessageRequest::ListServices(String::new()))
                    .await?
                {
                    MessageResponse::ListServicesResponse(list) => {
                        Ok(list.service.into_iter().map(|s| s.name).collect())
                    }
                    MessageResponse::ErrorResponse(error) => Err(SchemaError::Reflection {
                        code: tonic::Code::from_i32(error.error_code),
                        message: error.error_message,
                    }),
                    _ => Err(protocol_error("unexpected answer to list_services")),
                }
            }

            pub(super) async fn list_services<T: Transport>(
                channel: T,
            ) -> Result<Vec<String>, SchemaError> {
                services(&mut open(channel).await?).await
            }

            pub(super) async fn fetch<T: Transport>(
                channel: T,
            ) -> Result<Vec<prost_types::FileDescriptorProto>, SchemaError> {
                let mut session = open(channel).await?;
                let mut collected = Collected::default();
                for service in services(&mut session).await? {
                    if service.starts_with("grpc.reflection.") {
                        continue;
                    }
                    let answer = session
                        .ask(MessageRequest::FileContainingSymbol(service.clone()))
                        .await?;
                    match answer {
                        MessageResponse::FileDescriptorResponse(files) => {
                            collected.add_encoded(&files.file_descriptor_proto)?
                        }
                        MessageResponse::ErrorResponse(error) => tracing::warn!(
                            "reflection cannot resolve service {}: {}",
                            service,
                            error.error_message
                        ),
                        _ => {
                            return Err(protocol_error(
                                "unexpected answer to file_containing_symbol",
                            ))
                        }
                    }
                }
                while let Some(name) = collected.next_wanted() {
                    // Mark it asked for, so an unanswerable import is asked once.
                    collected.names.insert(name.clone());
                    match session
                        .ask(MessageRequest::FileByFilename(name.clone()))
                        .await?
                    {
                        MessageResponse::FileDescriptorResponse(files) => {
                            collected.names.remove(&name);
                            collected.add_encoded(&files.file_descriptor_proto)?
                        }
                        MessageResponse::ErrorResponse(error) => tracing::warn!(
                            "reflection cannot provide {name}: {}",
                            error.error_message
                        ),
                        _ => return Err(protocol_error("unexpected answer to file_by_filename")),
                    }
                }
                if collected.files.is_empty() {
                    return Err(protocol_error(
                        "server reflection lists no services besides reflection itself",
                    ));
                }
                Ok(collected.files)
            }
        }
    };
}

reflection_client!(v1);
reflection_client!(v1alpha);
