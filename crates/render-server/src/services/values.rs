//! Values between the wire's `oneof value` fields (one per message that carries a value) and
//! the node graph's [`Value`], honouring the `expected_type` a client asks for.

use octaneweb_proto::octaneapi::api_item::{get_value_response, set_value_by_id_request};
use octaneweb_proto::octaneapi::api_node::{
    get_pin_value_by_x_response, set_pin_value_by_id_request, set_pin_value_by_ix_request,
};
use octaneweb_proto::octaneapi::{AttributeTypeId, Float2, Float3, Int322, Int323, PinTypeId};

use crate::nodes::catalog::PinKind;
use crate::nodes::Value;

/// A value as it goes out, in the shape a client asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Out {
    Float(f32),
    Float2([f32; 2]),
    Float3([f32; 3]),
    Int(i32),
    Int2([i32; 2]),
    Int3([i32; 3]),
}

/// The shapes a client may ask for, from either expected-type enum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Shape {
    /// The value's own shape.
    Natural,
    Float,
    Float2,
    Float3,
    Int,
    Int2,
    Int3,
    /// A type the server's values never have (bool, string, matrix ...).
    Other(&'static str),
}

impl Shape {
    pub fn of_pin_type(expected: i32) -> Shape {
        match PinTypeId::try_from(expected) {
            Ok(PinTypeId::PinIdUndefined) | Err(_) => Shape::Natural,
            Ok(PinTypeId::PinIdFloat) => Shape::Float,
            Ok(PinTypeId::PinIdFloat2) => Shape::Float2,
            Ok(PinTypeId::PinIdFloat3) => Shape::Float3,
            Ok(PinTypeId::PinIdInt) => Shape::Int,
            Ok(PinTypeId::PinIdInt2) => Shape::Int2,
            Ok(PinTypeId::PinIdInt3) => Shape::Int3,
            Ok(other) => Shape::Other(other.as_str_name()),
        }
    }

    pub fn of_attribute_type(expected: i32) -> Shape {
        match AttributeTypeId::try_from(expected) {
            Ok(AttributeTypeId::AttrIdUndefined) | Err(_) => Shape::Natural,
            Ok(AttributeTypeId::AttrIdFloat) => Shape::Float,
            Ok(AttributeTypeId::AttrIdFloat2) => Shape::Float2,
            Ok(AttributeTypeId::AttrIdFloat3) => Shape::Float3,
            Ok(AttributeTypeId::AttrIdInt) => Shape::Int,
            Ok(AttributeTypeId::AttrIdInt2) => Shape::Int2,
            Ok(AttributeTypeId::AttrIdInt3) => Shape::Int3,
            Ok(other) => Shape::Other(other.as_str_name()),
        }
    }
}

/// The natural outgoing shape of a pin's value.
pub(crate) fn pin_shape(kind: PinKind) -> Shape {
    match kind {
        PinKind::Float { dims: 1, .. } | PinKind::Grey { .. } => Shape::Float,
        PinKind::Float { dims: 2, .. } => Shape::Float2,
        PinKind::Float { .. } | PinKind::Rgb { .. } => Shape::Float3,
        PinKind::Int { dims: 1, .. } => Shape::Int,
        PinKind::Int { .. } | PinKind::Resolution { .. } => Shape::Int2,
        PinKind::Link(_) => Shape::Natural,
    }
}

/// `value` in `shape`; `Err` says why it cannot be.
pub(crate) fn shape(value: Value, shape: Shape) -> Result<Out, String> {
    let shape = match (shape, value) {
        (Shape::Natural, Value::Float(_)) => Shape::Float,
        (Shape::Natural, Value::Float3(_)) => Shape::Float3,
        (Shape::Natural, Value::Int3(_)) => Shape::Int3,
        (other, _) => other,
    };
    Ok(match (shape, value) {
        (Shape::Float, Value::Float(x)) => Out::Float(x),
        (Shape::Float, Value::Float3(v)) => Out::Float(v[0]),
        (Shape::Float2, Value::Float3(v)) => Out::Float2([v[0], v[1]]),
        (Shape::Float3, Value::Float3(v)) => Out::Float3(v),
        (Shape::Float3, Value::Float(x)) => Out::Float3([x, x, x]),
        (Shape::Int, Value::Int3(v)) => Out::Int(v[0]),
        (Shape::Int2, Value::Int3(v)) => Out::Int2([v[0], v[1]]),
        (Shape::Int3, Value::Int3(v)) => Out::Int3(v),
        (Shape::Other(name), value) => {
            return Err(format!(
                "holds {}, which cannot be read as {name}",
                held(value)
            ))
        }
        (asked, value) => {
            return Err(format!(
                "holds {}, which cannot be read as {asked:?}",
                held(value)
            ))
        }
    })
}

fn held(value: Value) -> &'static str {
    match value {
        Value::Float(_) => "a float",
        Value::Float3(_) => "floats",
        Value::Int3(_) => "integers",
    }
}

macro_rules! oneof_conversions {
    ($module:ident, $into:ident, $from:ident) => {
        pub(crate) fn $into(out: Out) -> $module::Value {
            match out {
                Out::Float(x) => $module::Value::FloatValue(x),
                Out::Float2([x, y]) => $module::Value::Float2Value(Float2 { x, y }),
                Out::Float3([x, y, z]) => $module::Value::Float3Value(Float3 { x, y, z }),
                Out::Int(x) => $module::Value::IntValue(x),
                Out::Int2([x, y]) => $module::Value::Int2Value(Int322 { x, y }),
                Out::Int3([x, y, z]) => $module::Value::Int3Value(Int323 { x, y, z }),
            }
        }

        /// A value a client sent; `Err` names what cannot be taken.
        #[allow(dead_code)]
        pub(crate) fn $from(value: Option<$module::Value>) -> Result<Value, String> {
            Ok(match value {
                None => return Err("no value was given (set one of the *_value fields)".into()),
                Some($module::Value::FloatValue(x)) => Value::Float(x),
                Some($module::Value::Float2Value(v)) => Value::Float3([v.x, v.y, 0.0]),
                Some($module::Value::Float3Value(v)) => Value::Float3([v.x, v.y, v.z]),
                Some($module::Value::IntValue(x)) => Value::Int3([x, 0, 0]),
                Some($module::Value::Int2Value(v)) => Value::Int3([v.x, v.y, 0]),
                Some($module::Value::Int3Value(v)) => Value::Int3([v.x, v.y, v.z]),
                Some(other) => {
                    let name = format!("{other:?}");
                    let name = name.split('(').next().unwrap_or("that value").to_owned();
                    return Err(format!(
                        "{name} is not a value this server keeps (floats and integers, up to three components)"
                    ));
                }
            })
        }
    };
}

oneof_conversions!(get_value_response, attribute_out, _attribute_in);
oneof_conversions!(set_value_by_id_request, _attribute_set_out, attribute_in);
oneof_conversions!(get_pin_value_by_x_response, pin_out, _pin_in);
oneof_conversions!(set_pin_value_by_id_request, _pin_by_id_out, pin_by_id_in);
oneof_conversions!(set_pin_value_by_ix_request, _pin_by_ix_out, pin_by_ix_in);

/// A value a client sent for a pin, widened to what the pin's value node keeps.
pub(crate) fn for_pin(kind: PinKind, value: Value) -> Value {
    match (kind, value) {
        (PinKind::Grey { .. }, Value::Float3(v)) => Value::Float(v[0]),
        (PinKind::Rgb { .. }, Value::Float(x)) => Value::Float3([x, x, x]),
        (PinKind::Float { .. }, Value::Float(x)) => Value::Float3([x, 0.0, 0.0]),
        _ => value,
    }
}
