//! What the hub needs from the loaded schema: the callback methods and which callback
//! generation the upstream speaks.

use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MethodDescriptor, Value};
use serde::Serialize;

/// The generation of `octaneapi.StreamCallbackService.callbackChannel` in the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CallbackGeneration {
    /// Images travel inline in `newImage` (`OnNewImageRequest.render_images`).
    Gen1,
    /// `newImage` is a notification; images are fetched with `grabRenderResult`.
    Gen2,
}

impl CallbackGeneration {
    /// 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            CallbackGeneration::Gen1 => 1,
            CallbackGeneration::Gen2 => 2,
        }
    }
}

/// The schema lacks something the hub needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A service or method is missing.
    #[error("the loaded schema has no {0}; the render stream needs it (load Octane's apirender and callback protos)")]
    Missing(String),
    /// A method or message has an unexpected shape.
    #[error("the loaded schema's {what} does not match the Octane interface: {why}")]
    Shape {
        /// The name of the element.
        what: String,
        /// What is wrong.
        why: String,
    },
}

/// Oneof field numbers of `StreamCallbackRequest.payload` (the same in both generations).
pub(crate) mod payload {
    pub const NEW_IMAGE: u32 = 10;
    pub const RENDER_FAILURE: u32 = 11;
    pub const NEW_STATISTICS: u32 = 12;
    pub const PROJECT_MANAGER_CHANGED: u32 = 13;
}

const RENDER_ENGINE: &str = "octaneapi.ApiRenderEngineService";
const CALLBACK_SERVICE: &str = "octaneapi.StreamCallbackService";
const STREAM_MESSAGE: &str = "octaneapi.StreamCallbackRequest";

/// The resolved methods and generation.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub generation: CallbackGeneration,
    pub set_callback: MethodDescriptor,
    pub callback_channel: MethodDescriptor,
    /// Present in both generations' schemas; required for generation 2.
    pub grab: Option<MethodDescriptor>,
    pub release: Option<MethodDescriptor>,
}

fn method(pool: &DescriptorPool, service: &str, name: &str) -> Result<MethodDescriptor, PlanError> {
    pool.get_service_by_name(service)
        .ok_or_else(|| PlanError::Missing(format!("service {service}")))?
        .methods()
        .find(|m| m.name() == name)
        .ok_or_else(|| PlanError::Missing(format!("method {service}/{name}")))
}

/// Detects the callback generation: generation 1 when the `newImage` payload message has a
/// `render_images` field, else generation 2.
pub fn detect_generation(pool: &DescriptorPool) -> Result<CallbackGeneration, PlanError> {
    let stream = pool
        .get_message_by_name(STREAM_MESSAGE)
        .ok_or_else(|| PlanError::Missing(format!("message {STREAM_MESSAGE}")))?;
    let new_image = stream
        .get_field(payload::NEW_IMAGE)
        .ok_or_else(|| PlanError::Shape {
            what: STREAM_MESSAGE.into(),
            why: "no newImage field (number 10)".into(),
        })?;
    let Kind::Message(payload) = new_image.kind() else {
        return Err(PlanError::Shape {
            what: format!("{STREAM_MESSAGE}.newImage"),
            why: "is not a message".into(),
        });
    };
    let inline = payload.get_field_by_name("render_images").is_some()
        || payload.get_field_by_name("renderImages").is_some();
    Ok(if inline {
        CallbackGeneration::Gen1
    } else {
        CallbackGeneration::Gen2
    })
}

impl Plan {
    pub fn from_pool(pool: &DescriptorPool) -> Result<Plan, PlanError> {
        let generation = detect_generation(pool)?;
        let set_callback = method(pool, RENDER_ENGINE, "setOnNewImageCallback")?;
        let callback_channel = method(pool, CALLBACK_SERVICE, "callbackChannel")?;
        if !callback_channel.is_server_streaming() {
            return Err(PlanError::Shape {
                what: callback_channel.full_name().into(),
                why: "is not server-streaming".into(),
            });
        }
        let grab = method(pool, RENDER_ENGINE, "grabRenderResult").ok();
        let release = method(pool, RENDER_ENGINE, "releaseRenderResult").ok();
        if generation == CallbackGeneration::Gen2 {
            if grab.is_none() {
                return Err(PlanError::Missing(format!(
                    "method {RENDER_ENGINE}/grabRenderResult (callback generation 2 needs it)"
                )));
            }
            if release.is_none() {
                return Err(PlanError::Missing(format!(
                    "method {RENDER_ENGINE}/releaseRenderResult (callback generation 2 needs it)"
                )));
            }
        }
        Ok(Plan {
            generation,
            set_callback,
            callback_channel,
            grab,
            release,
        })
    }

    /// `setOnNewImageCallbackRequest`: with `Some(id)` registers the callback
    /// `{callbackSource: source, callbackId: id}`; with `None` unsets it.
    pub fn set_callback_request(
        &self,
        registration: Option<(&str, i32)>,
        user_data: u64,
    ) -> Result<DynamicMessage, PlanError> {
        let shape = |why: String| PlanError::Shape {
            what: self.set_callback.input().full_name().into(),
            why,
        };
        let mut request = DynamicMessage::new(self.set_callback.input());
        if let Some((source, id)) = registration {
            let callback_field = self
                .set_callback
                .input()
                .get_field(1)
                .ok_or_else(|| shape("no callback field (number 1)".into()))?;
            let Kind::Message(callback_type) = callback_field.kind() else {
                return Err(shape("callback (number 1) is not a message".into()));
            };
            let mut callback = DynamicMessage::new(callback_type);
            callback
                .try_set_field_by_number(1, Value::String(source.to_owned()))
                .map_err(|e| shape(format!("callbackSource: {e}")))?;
            callback
                .try_set_field_by_number(2, Value::I32(id))
                .map_err(|e| shape(format!("callbackId: {e}")))?;
            request
                .try_set_field_by_number(1, Value::Message(callback))
                .map_err(|e| shape(format!("callback: {e}")))?;
        }
        if user_data != 0 {
            request
                .try_set_field_by_number(2, Value::U64(user_data))
                .map_err(|e| shape(format!("userData: {e}")))?;
        }
        Ok(request)
    }
}

/// `callbackId` of a `setOnNewImageCallbackResponse` (0 if absent).
pub(crate) fn callback_id_of(response: &DynamicMessage) -> i32 {
    response
        .get_field_by_number(1)
        .and_then(|v| match v.as_ref() {
            Value::U32(n) => i32::try_from(*n).ok(),
            Value::I32(n) => Some(*n),
            Value::U64(n) => i32::try_from(*n).ok(),
            Value::I64(n) => i32::try_from(*n).ok(),
            _ => None,
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_told_apart_by_the_schema() {
        let gen2 = DescriptorPool::decode(octaneweb_proto::DESCRIPTOR_SET).unwrap();
        let gen1 = DescriptorPool::decode(octaneweb_proto::DESCRIPTOR_SET_GEN1).unwrap();
        assert_eq!(detect_generation(&gen2).unwrap(), CallbackGeneration::Gen2);
        assert_eq!(detect_generation(&gen1).unwrap(), CallbackGeneration::Gen1);
        let plan = Plan::from_pool(&gen2).unwrap();
        assert!(plan.grab.is_some() && plan.release.is_some());
        assert_eq!(plan.callback_channel.name(), "callbackChannel");
    }

    #[test]
    fn a_schema_without_the_callback_stream_is_a_clear_error() {
        let empty = DescriptorPool::new();
        let err = Plan::from_pool(&empty).unwrap_err();
        assert!(
            err.to_string().contains("octaneapi.StreamCallbackRequest"),
            "{err}"
        );
    }

    #[test]
    fn registration_requests_carry_the_callback() {
        let pool = DescriptorPool::decode(octaneweb_proto::DESCRIPTOR_SET).unwrap();
        let plan = Plan::from_pool(&pool).unwrap();
        let set = plan
            .set_callback_request(Some(("octaneweb", 5)), 9)
            .unwrap();
        let callback = set.get_field_by_number(1).unwrap();
        let callback = callback.as_message().unwrap();
        assert_eq!(
            callback.get_field_by_number(1).unwrap().as_str(),
            Some("octaneweb")
        );
        assert_eq!(callback.get_field_by_number(2).unwrap().as_i32(), Some(5));
        let unset = plan.set_callback_request(None, 0).unwrap();
        assert!(!unset.has_field_by_number(1));
    }
}
