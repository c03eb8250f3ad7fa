//! Calls whose messages are protobuf bytes the gateway does not decode (a client that brings
//! its own codec, or a front protocol that converts messages itself), over the connection pool.
//!
//! Every call here is made as a bidirectional stream at the HTTP/2 level: the gRPC wire form
//! of the four RPC kinds is the same (a stream of length-prefixed messages each way), so a
//! unary call is a stream with one request message and one response message. The caller
//! decides how many messages it sends; the server decides how many it answers.

use bytes::{Buf as _, BufMut as _, Bytes};
use futures::Stream;
use prost_reflect::MethodDescriptor;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status, Streaming};

use super::{CallOptions, Upstream};

/// A tonic codec that passes encoded protobuf messages through as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// Writes already-encoded message bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Reads one message's bytes without decoding them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

impl Upstream {
    /// Call `method` with the encoded request messages of `request` and receive the encoded
    /// response messages, whatever the method's RPC kind ([`Upstream::call`] with
    /// [`RawCodec`]).
    pub async fn raw_streaming<S>(
        &self,
        method: &MethodDescriptor,
        request: Request<S>,
        options: CallOptions,
    ) -> Result<Response<Streaming<Bytes>>, Status>
    where
        S: Stream<Item = Bytes> + Send + 'static,
    {
        self.call(method, request, RawCodec, options).await
    }
}
