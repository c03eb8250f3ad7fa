//! `grpc-status-details-bin`: the `google.rpc.Status` a server may attach to a failure, read
//! once here for every protocol that shows the details (Connect error JSON, `/ws` end frames).

use prost::Message as _;
use tonic::Status;

/// `google.rpc.Status`, only the fields the gateway reads.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<AnyDetail>,
}

/// `google.protobuf.Any`: one detail.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AnyDetail {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// The details attached to `status`: `Ok(empty)` when there are none, `Err(())` when the
/// bytes are not a `google.rpc.Status`.
pub(crate) fn details(status: &Status) -> Result<Vec<AnyDetail>, ()> {
    if status.details().is_empty() {
        return Ok(Vec::new());
    }
    RpcStatus::decode(status.details())
        .map(|decoded| decoded.details)
        .map_err(|_| ())
}

/// The details attached to `status` as JSON (`/ws` end frames, `octaneweb call -v`): each as
/// proto3 JSON in `shape` with its `@type` when `pool` or the standard `google.rpc` error
/// details (ErrorInfo, BadRequest, RetryInfo, ...) know its type, else its type and bytes in
/// base64. Empty when there are none; one `{"value": <base64>}` entry when the bytes are no
/// `google.rpc.Status`.
pub(crate) fn readable_details(
    status: &Status,
    pool: &prost_reflect::DescriptorPool,
    shape: octaneweb_schema::JsonShape,
) -> Vec<serde_json::Value> {
    let Ok(decoded) = details(status) else {
        return vec![serde_json::json!({ "value": base64(status.details()) })];
    };
    decoded
        .iter()
        .map(|any| match readable(any, pool, shape) {
            Some(fields) => {
                let mut entry = serde_json::Map::new();
                entry.insert("@type".into(), any.type_url.clone().into());
                entry.extend(fields);
                serde_json::Value::Object(entry)
            }
            None => serde_json::json!({ "@type": any.type_url, "value": base64(&any.value) }),
        })
        .collect()
}

/// The details attached to `status` as the Connect protocol writes them: `{"type", "value"}`
/// with the type's full name and the bytes in unpadded base64, plus the specification's
/// optional `"debug"` (the detail as JSON, for people) when `pool` or the standard
/// `google.rpc` error details know the type.
pub(crate) fn connect_details(
    status: &Status,
    pool: Option<&prost_reflect::DescriptorPool>,
    shape: octaneweb_schema::JsonShape,
) -> Vec<serde_json::Value> {
    use base64::Engine as _;
    let Ok(decoded) = details(status) else {
        return Vec::new();
    };
    decoded
        .iter()
        .map(|any| {
            let mut entry = serde_json::json!({
                "type": type_name(any),
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
            });
            if let Some(fields) = pool.and_then(|pool| readable(any, pool, shape)) {
                entry["debug"] = serde_json::Value::Object(fields);
            }
            entry
        })
        .collect()
}

/// A detail's type name: its type URL after the last `/`.
fn type_name(any: &AnyDetail) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

/// A detail as proto3 JSON fields, if `pool` or the `google.rpc` details know its type and
/// its bytes decode as it.
fn readable(
    any: &AnyDetail,
    pool: &prost_reflect::DescriptorPool,
    shape: octaneweb_schema::JsonShape,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let message = [Some(pool), google_rpc_pool()]
        .into_iter()
        .flatten()
        .find_map(|pool| pool.get_message_by_name(type_name(any)))
        .and_then(|desc| prost_reflect::DynamicMessage::decode(desc, any.value.as_slice()).ok())?;
    match octaneweb_schema::message_to_json(&message, shape) {
        serde_json::Value::Object(fields) => Some(fields),
        _ => None,
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `google.rpc` error detail types, from the descriptors tonic-types ships.
fn google_rpc_pool() -> Option<&'static prost_reflect::DescriptorPool> {
    static POOL: std::sync::OnceLock<Option<prost_reflect::DescriptorPool>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(tonic_types::pb::FILE_DESCRIPTOR_SET).ok()
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_rpc_details_are_decoded_and_unknown_ones_kept_as_base64() {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let status = Status::with_error_details(
            tonic::Code::FailedPrecondition,
            "not now",
            ErrorDetails::with_error_info(
                "RENDERING",
                "render.example",
                [("node".into(), "7".into())],
            ),
        );
        let shown = readable_details(
            &status,
            &prost_reflect::DescriptorPool::new(),
            octaneweb_schema::JsonShape::PROXY,
        );
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert_eq!(
            shown[0]["@type"],
            "type.googleapis.com/google.rpc.ErrorInfo"
        );
        assert_eq!(shown[0]["reason"], "RENDERING");
        assert_eq!(shown[0]["metadata"]["node"], "7");

        let unknown = RpcStatus {
            code: 9,
            message: String::new(),
            details: vec![AnyDetail {
                type_url: "type.googleapis.com/example.Nope".into(),
                value: vec![1, 2, 3],
            }],
        };
        let status = Status::with_details(
            tonic::Code::FailedPrecondition,
            "x",
            prost::Message::encode_to_vec(&unknown).into(),
        );
        let shown = readable_details(
            &status,
            &prost_reflect::DescriptorPool::new(),
            octaneweb_schema::JsonShape::PROXY,
        );
        assert_eq!(shown[0]["value"], "AQID");
        assert!(readable_details(
            &Status::internal("none"),
            &prost_reflect::DescriptorPool::new(),
            octaneweb_schema::JsonShape::PROXY,
        )
        .is_empty());
    }
}
