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

use octaneweb_pathtracer::{MaterialKind, ShapeKind};
use octaneweb_proto::octaneapi as api;
use octaneweb_proto::octaneapi::api_render_engine as re;

use super::Shared;
use crate::engine::{Priority, RunMode};
use crate::image::Frame;
use crate::scene_state::{ClayMode, Region, SubSample};

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

    async fn set_on_new_statistics_callback(
        &self,
        request: Request<re::SetOnNewStatisticsCallbackRequest>,
    ) -> Result<Response<re::SetOnNewStatisticsCallbackResponse>, Status> {
        // Statistics go out on the callback stream to every consumer (newStatistics);
        // registering only hands out an id.
        let _ = request;
        Ok(Response::new(re::SetOnNewStatisticsCallbackResponse {
            callback_id: self.shared.next_callback_id(),
        }))
    }

    async fn get_render_target_node(
        &self,
        _request: Request<re::GetRenderTargetNodeRequest>,
    ) -> Result<Response<re::GetRenderTargetNodeResponse>, Status> {
        let document = self.shared.document();
        let result = document
            .render_target()
            .map_or_else(crate::nodes::Document::none_ref, |h| document.item_ref(h));
        Ok(Response::new(re::GetRenderTargetNodeResponse {
            result: Some(result),
        }))
    }

    async fn get_render_statistics(
        &self,
        _request: Request<re::GetRenderStatisticsRequest>,
    ) -> Result<Response<re::GetRenderStatisticsResponse>, Status> {
        Ok(Response::new(re::GetRenderStatisticsResponse {
            statistics: Some(statistics(&self.shared)),
        }))
    }

    async fn get_device_count(
        &self,
        _request: Request<re::GetDeviceCountRequest>,
    ) -> Result<Response<re::GetDeviceCountResponse>, Status> {
        Ok(Response::new(re::GetDeviceCountResponse { result: 1 }))
    }

    async fn get_device_name(
        &self,
        request: Request<re::GetDeviceNameRequest>,
    ) -> Result<Response<re::GetDeviceNameResponse>, Status> {
        device("ApiRenderEngine.getDeviceName", request.get_ref().index)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Response::new(re::GetDeviceNameResponse {
            result: format!("CPU path tracer ({threads} threads)"),
        }))
    }

    async fn device_uses_hardware_ray_tracing(
        &self,
        request: Request<re::DeviceUsesHardwareRayTracingRequest>,
    ) -> Result<Response<re::DeviceUsesHardwareRayTracingResponse>, Status> {
        device(
            "ApiRenderEngine.deviceUsesHardwareRayTracing",
            request.get_ref().index,
        )?;
        // The path tracer runs on the CPU: no ray-tracing hardware.
        Ok(Response::new(re::DeviceUsesHardwareRayTracingResponse {
            result: false,
        }))
    }

    async fn get_memory_usage(
        &self,
        request: Request<re::GetMemoryUsageRequest>,
    ) -> Result<Response<re::GetMemoryUsageResponse>, Status> {
        device(
            "ApiRenderEngine.getMemoryUsage",
            request.get_ref().device_ix,
        )?;
        Ok(Response::new(re::GetMemoryUsageResponse {
            mem_usage: Some(memory_usage()),
        }))
    }

    async fn get_geometry_statistics(
        &self,
        _request: Request<re::GetGeometryStatisticsRequest>,
    ) -> Result<Response<re::GetGeometryStatisticsResponse>, Status> {
        let scene = self.shared.engine.scene();
        let state = self.shared.engine.scene_state();
        let placed: Vec<usize> = state.placed_objects().collect();
        let mut stats = api::ApiGeometryStatistics::default();
        for index in &placed {
            let Some(object) = scene.objects().get(*index) else {
                continue;
            };
            match object.kind {
                ShapeKind::Sphere => stats.sphere_count += 1,
                ShapeKind::Mesh => {
                    let triangles: u32 = object
                        .verts_per_poly
                        .iter()
                        .map(|n| n.saturating_sub(2))
                        .sum();
                    stats.tri_count += triangles;
                }
            }
            stats.instance_count += 1;
            let emissive = state
                .materials
                .get(object.material)
                .is_some_and(|m| m.kind == MaterialKind::Emissive);
            if emissive {
                stats.emit_instance_count += 1;
            }
        }
        Ok(Response::new(re::GetGeometryStatisticsResponse {
            stats: Some(stats),
        }))
    }

    async fn set_render_region(
        &self,
        request: Request<re::SetRenderRegionRequest>,
    ) -> Result<Response<()>, Status> {
        const METHOD: &str = "ApiRenderEngine.setRenderRegion";
        let request = request.into_inner();
        let mut state = self.shared.engine.scene_state();
        state.region = if request.active {
            let corner = |c: Option<api::Uint322>, name: &str| {
                c.map(|c| [c.x, c.y]).ok_or_else(|| {
                    Status::invalid_argument(format!("{METHOD}: {name} is required when active"))
                })
            };
            let min = corner(request.region_min, "regionMin")?;
            let max = corner(request.region_max, "regionMax")?;
            let [width, height] = state.resolution;
            if min[0] >= max[0] || min[1] >= max[1] || max[0] > width || max[1] > height {
                return Err(Status::out_of_range(format!(
                    "{METHOD}: the region from {min:?} to {max:?} is empty or leaves the {width} x {height} image (regionMin inclusive, regionMax exclusive)"
                )));
            }
            Some(Region { min, max })
        } else {
            None
        };
        self.shared.apply_settings(METHOD, state)?;
        self.shared.set_feather_width(request.feather_width);
        Ok(Response::new(()))
    }

    async fn get_render_region(
        &self,
        _request: Request<re::GetRenderRegionRequest>,
    ) -> Result<Response<re::GetRenderRegionResponse>, Status> {
        let state = self.shared.engine.scene_state();
        let corner = |c: [u32; 2]| Some(api::Uint322 { x: c[0], y: c[1] });
        Ok(Response::new(match state.region {
            Some(region) => re::GetRenderRegionResponse {
                active: true,
                region_min: corner(region.min),
                region_max: corner(region.max),
                feather_width: self.shared.feather_width(),
            },
            None => re::GetRenderRegionResponse {
                active: false,
                region_min: corner([0, 0]),
                region_max: corner(state.resolution),
                feather_width: self.shared.feather_width(),
            },
        }))
    }

    async fn set_sub_sample_mode(
        &self,
        request: Request<re::SetSubSampleModeRequest>,
    ) -> Result<Response<()>, Status> {
        const METHOD: &str = "ApiRenderEngine.setSubSampleMode";
        let mode = request.into_inner().mode;
        let subsample = match api::SubSampleMode::try_from(mode) {
            Ok(api::SubSampleMode::SubsamplemodeNone) => SubSample::None,
            Ok(api::SubSampleMode::Subsamplemode2x2) => SubSample::X2,
            Ok(api::SubSampleMode::Subsamplemode4x4) => SubSample::X4,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "{METHOD}: unknown sub-sample mode {mode}: expected SUBSAMPLEMODE_NONE (1), SUBSAMPLEMODE_2X2 (2) or SUBSAMPLEMODE_4X4 (4)"
                )))
            }
        };
        let mut state = self.shared.engine.scene_state();
        state.subsample = subsample;
        self.shared.apply_settings(METHOD, state)?;
        Ok(Response::new(()))
    }

    async fn get_sub_sample_mode(
        &self,
        _request: Request<re::GetSubSampleModeRequest>,
    ) -> Result<Response<re::GetSubSampleModeResponse>, Status> {
        let mode = match self.shared.engine.scene_state().subsample {
            SubSample::None => api::SubSampleMode::SubsamplemodeNone,
            SubSample::X2 => api::SubSampleMode::Subsamplemode2x2,
            SubSample::X4 => api::SubSampleMode::Subsamplemode4x4,
        };
        Ok(Response::new(re::GetSubSampleModeResponse {
            result: mode as i32,
        }))
    }

    async fn set_clay_mode(
        &self,
        request: Request<re::SetClayModeRequest>,
    ) -> Result<Response<()>, Status> {
        const METHOD: &str = "ApiRenderEngine.setClayMode";
        let mode = request.into_inner().mode;
        let clay = match api::ClayMode::try_from(mode) {
            Ok(api::ClayMode::None) => ClayMode::None,
            Ok(api::ClayMode::Grey) => ClayMode::Grey,
            Ok(api::ClayMode::Color) => ClayMode::Color,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "{METHOD}: unknown clay mode {mode}: expected CLAY_MODE_NONE (0), CLAY_MODE_GREY (1) or CLAY_MODE_COLOR (2)"
                )))
            }
        };
        let mut state = self.shared.engine.scene_state();
        state.clay = clay;
        self.shared.apply_settings(METHOD, state)?;
        Ok(Response::new(()))
    }

    async fn clay_mode(
        &self,
        _request: Request<re::ClayModeRequest>,
    ) -> Result<Response<re::ClayModeResponse>, Status> {
        let mode = match self.shared.engine.scene_state().clay {
            ClayMode::None => api::ClayMode::None,
            ClayMode::Grey => api::ClayMode::Grey,
            ClayMode::Color => api::ClayMode::Color,
        };
        Ok(Response::new(re::ClayModeResponse {
            result: mode as i32,
        }))
    }

    async fn pick(
        &self,
        request: Request<re::PickRequest>,
    ) -> Result<Response<re::PickResponse>, Status> {
        let request = request.into_inner();
        let [width, height] = self.shared.engine.scene_state().resolution;
        if request.x >= width || request.y >= height {
            return Err(Status::out_of_range(format!(
                "ApiRenderEngine.pick: pixel ({}, {}) is outside the {width} x {height} image",
                request.x, request.y
            )));
        }
        let Some(hit) = self.shared.engine.pick(request.x, request.y) else {
            return Ok(Response::new(re::PickResponse {
                result: 0,
                intersections: None,
            }));
        };
        let mesh = {
            let document = self.shared.document();
            document
                .meshes()
                .into_iter()
                .find(|(_, object)| *object == hit.object)
                .map_or_else(crate::nodes::Document::none_ref, |(h, _)| {
                    document.item_ref(h)
                })
        };
        let v = |v: octaneweb_pathtracer::Vec3| {
            Some(api::Float3 {
                x: v.x,
                y: v.y,
                z: v.z,
            })
        };
        Ok(Response::new(re::PickResponse {
            result: 1,
            intersections: Some(re::ApiRenderEnginePickIntersection {
                node: Some(mesh),
                material_pin_ix: 0,
                depth: hit.depth,
                position: v(hit.position),
                geometric_normal: v(hit.normal),
                smoothed_normal: v(hit.normal),
                ..Default::default()
            }),
        }))
    }

    async fn save_image1(
        &self,
        request: Request<re::SaveImage1Request>,
    ) -> Result<Response<re::SaveImage1Response>, Status> {
        const METHOD: &str = "ApiRenderEngine.saveImage1";
        let request = request.into_inner();
        if request.image_save_format != api::ImageSaveFormat::Png8 as i32 {
            let name = api::ImageSaveFormat::try_from(request.image_save_format).map_or_else(
                |_| request.image_save_format.to_string(),
                |f| f.as_str_name().to_owned(),
            );
            return Err(Status::unimplemented(format!(
                "{METHOD}: the reference server saves IMAGE_SAVE_FORMAT_PNG_8 only, not {name}"
            )));
        }
        let Some(images) = &self.shared.images else {
            return Err(Status::failed_precondition(format!(
                "{METHOD}: saving images is disabled: the render server was started without a file root"
            )));
        };
        let Some(frame) = self.shared.engine.latest_frame() else {
            return Err(Status::failed_precondition(format!(
                "{METHOD}: there is no rendered image yet"
            )));
        };
        let png = frame_png(&frame).map_err(|why| Status::internal(format!("{METHOD}: {why}")))?;
        images
            .write(&request.full_path, &png)
            .await
            .map_err(|s| Status::new(s.code(), format!("{METHOD}: {}", s.message())))?;
        Ok(Response::new(re::SaveImage1Response { result: true }))
    }
}

fn device(method: &str, index: u32) -> Result<(), Status> {
    if index == 0 {
        Ok(())
    } else {
        Err(Status::out_of_range(format!(
            "{method}: there is 1 device (index 0); there is no device {index}"
        )))
    }
}

/// The process's memory (what the renderer uses) against the machine's.
fn memory_usage() -> api::ApiDeviceMemoryUsage {
    let page = 4096u64;
    let used = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    api::ApiDeviceMemoryUsage {
        used_device_memory: used,
        free_device_memory: field("MemAvailable:"),
        total_device_memory: field("MemTotal:"),
        ..Default::default()
    }
}

/// What the render is doing, as Octane reports it.
fn statistics(shared: &Shared) -> api::RenderResultStatistics {
    let engine = &shared.engine;
    let state = engine.scene_state();
    let size = Some(api::Uint322 {
        x: state.resolution[0],
        y: state.resolution[1],
    });
    let frame = engine.latest_frame();
    let (spp, level, seconds) = frame.as_ref().map_or((0, 0, 0.0), |f| {
        (
            f.stats.samples_per_pixel,
            f.stats.change_level,
            f.stats.render_time.as_secs_f64(),
        )
    });
    let rendering = engine.subscribe_status().borrow().rendering;
    // What was asked decides first (the loop notices a pause only after its sample); a
    // running loop that is not adding samples has reached the kernel's limit.
    let render_state = match engine.run_mode() {
        RunMode::Stopped => api::RenderState::RstateStopped,
        RunMode::Paused => api::RenderState::RstatePaused,
        RunMode::Running if !rendering && spp >= state.kernel.max_samples => {
            api::RenderState::RstateFinished
        }
        RunMode::Running => api::RenderState::RstateRendering,
    };
    api::RenderResultStatistics {
        set_size: size,
        used_size: size,
        sub_sample_mode: match state.subsample {
            SubSample::None => api::SubSampleMode::SubsamplemodeNone,
            SubSample::X2 => api::SubSampleMode::Subsamplemode2x2,
            SubSample::X4 => api::SubSampleMode::Subsamplemode4x4,
        } as i32,
        up_sampling_ratio: 1.0,
        change_level: Some(api::CLevelT { value: level }),
        has_pending_updates: engine.change_level() > level,
        beauty_samples_per_pixel: spp,
        beauty_max_samples_per_pixel: state.kernel.max_samples,
        beauty_samples_per_second: if seconds > 0.0 {
            f64::from(spp) * f64::from(state.resolution[0]) * f64::from(state.resolution[1])
                / seconds
        } else {
            0.0
        },
        region_samples_per_pixel: if state.region.is_some() { spp } else { 0 },
        state: render_state as i32,
        render_time: seconds,
        ..Default::default()
    }
}

/// The frame's beauty image as an 8-bit PNG.
fn frame_png(frame: &Frame) -> Result<Vec<u8>, String> {
    let image = frame
        .images
        .data
        .first()
        .ok_or_else(|| "the frame has no image".to_owned())?;
    let size = image
        .size
        .ok_or_else(|| "the image has no size".to_owned())?;
    let data = image.buffer.as_ref().map(|b| &b.data[..]).unwrap_or(&[]);
    let pixels = (size.x as usize) * (size.y as usize);
    let rgba8 = if data.len() == pixels * 4 {
        data.to_vec()
    } else if data.len() == pixels * 16 {
        // Linear float RGBA: to sRGB bytes.
        data.chunks_exact(4)
            .enumerate()
            .map(|(i, c)| {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let v = if i % 4 == 3 {
                    v
                } else {
                    v.max(0.0).powf(1.0 / 2.2)
                };
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            })
            .collect()
    } else {
        return Err(format!(
            "the image buffer holds {} bytes for {} x {} pixels",
            data.len(),
            size.x,
            size.y
        ));
    };
    octaneweb_pathtracer::encode_png(size.x, size.y, &rgba8).map_err(|e| e.to_string())
}
