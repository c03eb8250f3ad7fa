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
