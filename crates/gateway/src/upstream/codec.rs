//! A tonic codec for messages whose types are only known at run time.

use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// Encodes request messages and decodes response messages of one method, using the
/// response's [`MessageDescriptor`] from a run-time schema.
#[derive(Clone, Debug)]
pub struct DynamicCodec {
    response: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec that decodes responses as `response` messages. Requests need no descriptor:
    /// a [`DynamicMessage`] carries its own.
    pub fn new(response: MessageDescriptor) -> Self {
        Self { response }
    }

    /// A codec for a method of a schema (its output type).
    pub fn for_method(method: &prost_reflect::MethodDescriptor) -> Self {
        Self::new(method.output())
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder {
            response: self.response.clone(),
        }
    }
}

/// Writes a [`DynamicMessage`] in protobuf binary form.
#[derive(Clone, Debug, Default)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request message: {e}")))
    }
}

/// Reads protobuf binary into a [`DynamicMessage`] of a fixed type.
#[derive(Clone, Debug)]
pub struct DynamicDecoder {
    response: MessageDescriptor,
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.response.clone(), src)
            .map(Some)
            .map_err(|e| {
                Status::internal(format!(
                    "the upstream's response is not a valid {}: {e}",
                    self.response.full_name()
                ))
            })
    }
}
