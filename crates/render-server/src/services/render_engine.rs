//! `octaneapi.ApiRenderEngineService`.

use std::sync::Arc;

use octaneweb_proto::octaneapi::api_render_engine::{
    ContinueRenderingRequest, GrabRenderResultRequest, GrabRenderResultResponse,
    PauseRenderingRequest, ReleaseRenderResultRequest, RenderPriority, RestartRenderingRequest,
    SetOnNewImageCallbackRequest, SetOnNewImageCallbackResponse, SetRenderPriorityRequest,
    StopRenderingRequest,
};
use octaneweb_proto::octaneapi::api_render_engine_service_server::ApiRenderEngineService;
use tonic::{Request, Response, Status};

use super::Shared;
use crate::engine::Priority;

/// Render control and render results.
pub(crate) struct RenderEngineService {
    shared: Arc<Shared>,
}

impl RenderEngineService {
    pub fn new(shared: Arc<Shared>) -> Self {
        RenderEngineService { shared }
    }
}

#[tonic::async_trait]
impl ApiRenderEngineService for RenderEngineService {
    async fn set_on_new_image_callback(
        &self,
        request: Request<SetOnNewImageCallbackRequest>,
    ) -> Result<Response<SetOnNewImageCallbackResponse>, Status> {
        let request = request.into_inner();
        let callback_id = match request.callback {
            Some(callback) => self
                .shared
                .register(callback.callback_source, request.user_data),
            None => {
                self.shared.unregister();
                0
            }
        };
        Ok(Response::new(SetOnNewImageCallbackResponse { callback_id }))
    }

    async fn grab_render_result(
        &self,
        _request: Request<GrabRenderResultRequest>,
    ) -> Result<Response<GrabRenderResultResponse>, Status> {
        let engine = &self.shared.engine;
        let response = match engine.latest_frame() {
            Some(frame) => GrabRenderResultResponse {
                result: true,
                render_images: Some(frame.images_at(engine.change_level())),
            },
            None => GrabRenderResultResponse {
                result: false,
                render_images: None,
            },
        };
        Ok(Response::new(response))
    }

    async fn release_render_result(
        &self,
        _request: Request<ReleaseRenderResultRequest>,
    ) -> Result<Response<()>, Status> {
        // Grabbed results are copies, so there is nothing to unlock.
        Ok(Response::new(()))
    }

    async fn pause_rendering(
        &self,
        _request: Request<PauseRenderingRequest>,
    ) -> Result<Response<()>, Status> {
        self.shared.engine.pause();
        Ok(Response::new(()))
    }

    async fn continue_rendering(
        &self,
        _request: Request<ContinueRenderingRequest>,
    ) -> Result<Response<()>, Status> {
        self.shared.engine.resume();
        Ok(Response::new(()))
    }

    async fn restart_rendering(
        &self,
        _request: Request<RestartRenderingRequest>,
    ) -> Result<Response<()>, Status> {
        self.shared.engine.restart();
        Ok(Response::new(()))
    }

    async fn stop_rendering(
        &self,
        _request: Request<StopRenderingRequest>,
    ) -> Result<Response<()>, Status> {
        self.shared.engine.stop();
        Ok(Response::new(()))
    }

    async fn set_render_priority(
        &self,
        request: Request<SetRenderPriorityRequest>,
    ) -> Result<Response<()>, Status> {
        let value = request.into_inner().priority;
        let priority = match RenderPriority::try_from(value) {
            Ok(RenderPriority::PriorityLow) => Priority::Low,
            Ok(RenderPriority::PriorityMedium) => Priority::Medium,
            Ok(RenderPriority::PriorityHigh) => Priority::High,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown render priority {value}: expected PRIORITY_LOW (0), PRIORITY_MEDIUM (1) or PRIORITY_HIGH (2)"
                )))
            }
        };
        self.shared.engine.set_priority(priority);
        Ok(Response::new(()))
    }
}
