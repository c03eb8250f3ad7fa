//! `livelinkapi.LiveLinkService`: camera, meshes and files.

use std::sync::Arc;

use octaneweb_pathtracer::{Camera, Vec3};
use octaneweb_proto::livelinkapi::camera_state::{FovSet, PosSet, TargetSet, UpSet};
use octaneweb_proto::livelinkapi::live_link_service_server::LiveLinkService;
use octaneweb_proto::livelinkapi::{
    self as ll, CameraState, Empty, FileRequest, FileResponse, MatrixD, Mesh, MeshData, MeshList,
    MeshRequest, StreamStatus, Vec4D,
};
use tonic::{Request, Response, Status, Streaming};

use super::Shared;

/// `windingOrder` value for counter-clockwise front faces.
const WINDING_CCW: i32 = 2;

/// Camera synchronisation, mesh export and file access.
pub(crate) struct LiveLinkServiceImpl {
    shared: Arc<Shared>,
}

impl LiveLinkServiceImpl {
    pub fn new(shared: Arc<Shared>) -> Self {
        LiveLinkServiceImpl { shared }
    }

    /// Applies a partial camera update; an invalid result leaves the camera unchanged.
    /// Applies a camera update to the render and to the camera node's pins, under the
    /// document's lock so a concurrent pin edit cannot undo it.
    fn apply_camera(&self, state: &CameraState) -> Result<Camera, String> {
        let mut document = self.shared.document();
        let camera = self.shared.engine.update_camera(|current| {
            let camera = merge_camera(current, state);
            check_camera(&camera)?;
            Ok::<_, String>(camera)
        })?;
        document.write_camera(&camera);
        Ok(camera)
    }
}

fn from_wire(v: &ll::Vec3) -> Vec3 {
    Vec3::new(v.x, v.y, v.z)
}

fn to_wire(v: Vec3) -> ll::Vec3 {
    ll::Vec3 {
        x: v.x,
        y: v.y,
        z: v.z,
    }
}

/// `current` with the fields `state` sets replaced.
fn merge_camera(current: Camera, state: &CameraState) -> Camera {
    let mut camera = current;
    if let Some(PosSet::Position(position)) = &state.pos_set {
        camera.position = from_wire(position);
    }
    if let Some(TargetSet::Target(target)) = &state.target_set {
        camera.target = from_wire(target);
    }
    if let Some(UpSet::Up(up)) = &state.up_set {
        camera.up = from_wire(up);
    }
    if let Some(FovSet::Fov(fov)) = state.fov_set {
        camera.fov_degrees = fov;
    }
    camera
}

/// Says why a camera cannot render, if it cannot.
fn check_camera(camera: &Camera) -> Result<(), String> {
    let finite = |v: Vec3| v.x.is_finite() && v.y.is_finite() && v.z.is_finite();
    if !finite(camera.position) {
        return Err("camera position must be finite".into());
    }
    if !finite(camera.target) {
        return Err("camera target must be finite".into());
    }
    if !finite(camera.up) {
        return Err("camera up vector must be finite".into());
    }
    if !(camera.fov_degrees.is_finite() && camera.fov_degrees > 0.0 && camera.fov_degrees < 180.0) {
        return Err(format!(
            "fov must be between 0 and 180 degrees (exclusive), got {}",
            camera.fov_degrees
        ));
    }
    // Inputs are finite here, so lengths are never NaN (but may overflow to infinity).
    let view = (camera.target - camera.position).length();
    if view <= 1e-6 {
        return Err("camera position and target must differ".into());
    }
    if !view.is_finite() {
        return Err("camera position and target are too far apart".into());
    }
    let up = camera.up.length();
    if up <= 1e-6 {
        return Err("camera up vector must not be zero".into());
    }
    if !up.is_finite() {
        return Err("camera up vector is too long".into());
    }
    if !camera.is_valid() {
        // The remaining rule of the path tracer: up must not be parallel to the view.
        return Err("camera up vector must not be parallel to the view direction".into());
    }
    Ok(())
}

fn camera_state(camera: Camera) -> CameraState {
    CameraState {
        pos_set: Some(PosSet::Position(to_wire(camera.position))),
        target_set: Some(TargetSet::Target(to_wire(camera.target))),
        up_set: Some(UpSet::Up(to_wire(camera.up))),
        fov_set: Some(FovSet::Fov(camera.fov_degrees)),
    }
}

fn matrix(rows: &[[f64; 4]; 3]) -> MatrixD {
    let row = |r: &[f64; 4]| Vec4D {
        x: r[0],
        y: r[1],
        z: r[2],
        w: r[3],
    };
    MatrixD {
        row0: Some(row(&rows[0])),
        row1: Some(row(&rows[1])),
        row2: Some(row(&rows[2])),
    }
}

#[tonic::async_trait]
impl LiveLinkService for LiveLinkServiceImpl {
    async fn set_camera(&self, request: Request<CameraState>) -> Result<Response<Empty>, Status> {
        self.apply_camera(request.get_ref())
            .map_err(|why| Status::invalid_argument(format!("SetCamera: {why}")))?;
        Ok(Response::new(Empty {}))
    }

    async fn get_camera(&self, _request: Request<Empty>) -> Result<Response<CameraState>, Status> {
        Ok(Response::new(camera_state(self.shared.engine.camera())))
    }

    async fn get_meshes(&self, _request: Request<Empty>) -> Result<Response<MeshList>, Status> {
        let objects = self.shared.engine.scene().objects();
        let meshes = self
            .shared
            .document()
            .meshes()
            .into_iter()
            .filter_map(|(handle, index)| {
                let object = objects.get(index)?;
                Some(Mesh {
                    name: object.name.clone(),
                    id: i32::try_from(index).ok()?,
                    object_handle: i64::try_from(handle).ok()?,
                })
            })
            .collect();
        Ok(Response::new(MeshList { meshes }))
    }

    async fn get_mesh(&self, request: Request<MeshRequest>) -> Result<Response<MeshData>, Status> {
        let handle = request.into_inner().objecthandle;
        let not_found = || Status::not_found(format!("no mesh with objecthandle {handle}"));
        let index = u64::try_from(handle)
            .ok()
            .and_then(|h| {
                let document = self.shared.document();
                document.node(h).ok().and_then(|(_, node)| node.object)
            })
            .ok_or_else(not_found)?;
        let object = self
            .shared
            .engine
            .scene()
            .objects()
            .get(index)
            .ok_or_else(not_found)?;
        Ok(Response::new(MeshData {
            name: object.name.clone(),
            positions: object.positions.iter().copied().map(to_wire).collect(),
            normals: object.normals.iter().copied().map(to_wire).collect(),
            verts_per_poly: object.verts_per_poly.clone(),
            poly_vert_indices: object.poly_vert_indices.clone(),
            poly_normal_indices: object.poly_normal_indices.clone(),
            winding_order: WINDING_CCW,
            world_matrix: Some(matrix(&object.world_matrix)),
        }))
    }

    async fn get_file(
        &self,
        request: Request<FileRequest>,
    ) -> Result<Response<FileResponse>, Status> {
        let Some(files) = &self.shared.files else {
            return Err(Status::permission_denied(
                "GetFile is disabled: the render server was started without a file root",
            ));
        };
        let filedata = files.read(&request.get_ref().filepath).await?;
        Ok(Response::new(FileResponse { filedata }))
    }

    async fn stream_camera(
        &self,
        request: Request<Streaming<CameraState>>,
    ) -> Result<Response<StreamStatus>, Status> {
        let mut updates = request.into_inner();
        let mut applied: u64 = 0;
        while let Some(state) = updates.message().await? {
            self.apply_camera(&state).map_err(|why| {
                Status::invalid_argument(format!(
                    "StreamCamera: camera update {} rejected ({applied} applied before it): {why}",
                    applied + 1
                ))
            })?;
            applied += 1;
        }
        Ok(Response::new(StreamStatus {
            message: format!("applied {applied} camera updates"),
        }))
    }
}
