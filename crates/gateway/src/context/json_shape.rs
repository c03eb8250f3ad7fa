//! Which JSON shape a call's answer is written in ([`JsonShape`]: field names and defaults).
//!
//! Three levels decide, each part on its own: the request's choice ([`ShapeChoice`] from
//! `X-Json-Names` / `X-Json-Defaults` headers, `json_names` / `json_defaults` query parameters
//! or call fields), else the gateway's (`--json-names`, `--json-defaults`:
//! [`GatewayConfig::json_shape`](super::GatewayConfig::json_shape)), else the route's own
//! default ([`JsonRoute::default_shape`]). docs/json.md has the table for users.

use std::str::FromStr;

use http::{HeaderMap, Uri};
use octaneweb_schema::{Defaults, FieldNames, JsonShape, ShapeValueError};
use serde::Deserialize;

use super::GatewayState;
use crate::error::GatewayError;

/// Header choosing the field names of a request's answer.
pub const NAMES_HEADER: &str = "x-json-names";
/// Header choosing whether a request's answer includes default values.
pub const DEFAULTS_HEADER: &str = "x-json-defaults";
/// Query parameter (and `/ws`, `/batch` call field) choosing the field names.
pub const NAMES_PARAM: &str = "json_names";
/// Query parameter (and `/ws`, `/batch` call field) choosing the defaults.
pub const DEFAULTS_PARAM: &str = "json_defaults";

/// A handler's `ShapeChoice` argument is the request's choice ([`ShapeChoice::of_request`]);
/// a wrong value refuses the request before the handler runs.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ShapeChoice {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        ShapeChoice::of_request(&parts.headers, &parts.uri)
    }
}

/// The gateway's routes that write messages as JSON, each with its default shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonRoute {
    /// `POST /{Service}/{method}` and its NDJSON streams.
    Json,
    /// `GET /sse/{Service}/{method}`.
    Sse,
    /// `POST /batch`.
    Batch,
    /// `GET /ws` (text frames).
    WebSocket,
    /// Connect with JSON (`application/json`, `application/connect+json`, `encoding=json`).
    Connect,
}

impl JsonRoute {
    /// The shape the route writes when neither the request nor the gateway chose one. The
    /// original proxy's routes keep what its clients read; Connect writes what Connect
    /// clients and protobuf-es print (they read both names, so either works for them).
    pub const fn default_shape(self) -> JsonShape {
        match self {
            JsonRoute::Json | JsonRoute::Sse | JsonRoute::Batch | JsonRoute::WebSocket => {
                JsonShape::PROXY
            }
            JsonRoute::Connect => JsonShape::CANONICAL,
        }
    }
}

/// A choice of JSON shape that may leave either part open, for the next level to decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShapeChoice {
    /// The field names, if chosen.
    pub names: Option<FieldNames>,
    /// The defaults, if chosen.
    pub defaults: Option<Defaults>,
}

impl ShapeChoice {
    /// Nothing chosen.
    pub const OPEN: ShapeChoice = ShapeChoice {
        names: None,
        defaults: None,
    };

    /// `self`'s parts where chosen, `fallback`'s otherwise.
    pub fn or(self, fallback: ShapeChoice) -> ShapeChoice {
        ShapeChoice {
            names: self.names.or(fallback.names),
            defaults: self.defaults.or(fallback.defaults),
        }
    }

    /// The shape: `self`'s parts where chosen, `base`'s otherwise.
    pub fn over(self, base: JsonShape) -> JsonShape {
        JsonShape {
            names: self.names.unwrap_or(base.names),
            defaults: self.defaults.unwrap_or(base.defaults),
        }
    }

    /// The choice of an HTTP request: the `X-Json-Names` / `X-Json-Defaults` headers and
    /// the `json_names` / `json_defaults` query parameters (for clients that cannot set
    /// headers, such as `EventSource`). A header and a parameter that disagree are an error.
    pub fn of_request(headers: &HeaderMap, uri: &Uri) -> Result<ShapeChoice, GatewayError> {
        let params = ShapeParams::of_query(uri)?;
        Ok(ShapeChoice {
            names: part(
                headers,
                NAMES_HEADER,
                "X-Json-Names",
                params.json_names.as_deref(),
                NAMES_PARAM,
            )?,
            defaults: part(
                headers,
                DEFAULTS_HEADER,
                "X-Json-Defaults",
                params.json_defaults.as_deref(),
                DEFAULTS_PARAM,
            )?,
        })
    }

    /// The choice made by the `json_names` / `json_defaults` fields of a `/ws` open frame or
    /// a `/batch` call.
    pub fn of_fields(names: Option<&str>, defaults: Option<&str>) -> Result<Self, GatewayError> {
        Ok(ShapeChoice {
            names: names
                .map(|value| parse(value, || format!("\"{NAMES_PARAM}\"")))
                .transpose()?,
            defaults: defaults
                .map(|value| parse(value, || format!("\"{DEFAULTS_PARAM}\"")))
                .transpose()?,
        })
    }
}

impl GatewayState {
    /// The shape of an answer on `route` to a request that chose `requested`: its choice,
    /// else the gateway's, else the route's default, for each part on its own.
    pub fn json_shape(&self, route: JsonRoute, requested: ShapeChoice) -> JsonShape {
        requested
            .or(self.config.json_shape)
            .over(route.default_shape())
    }
}

/// The shape's query parameters (others are left to the route).
#[derive(Default, Deserialize)]
struct ShapeParams {
    json_names: Option<String>,
    json_defaults: Option<String>,
}

impl ShapeParams {
    fn of_query(uri: &Uri) -> Result<ShapeParams, GatewayError> {
        if uri.query().is_none() {
            return Ok(ShapeParams::default());
        }
        axum::extract::Query::<ShapeParams>::try_from_uri(uri)
            .map(|query| query.0)
            .map_err(|rejection| {
                GatewayError::BadRequest(format!("bad query string: {}", rejection.body_text()))
            })
    }
}

/// One part of the choice, from its header or its query parameter.
fn part<T: FromStr<Err = ShapeValueError> + PartialEq + std::fmt::Display>(
    headers: &HeaderMap,
    header: &str,
    header_shown: &str,
    param: Option<&str>,
    param_name: &str,
) -> Result<Option<T>, GatewayError> {
    let mut values = headers.get_all(header).iter();
    let from_header = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(value), None) => {
            let text = String::from_utf8_lossy(value.as_bytes());
            Some(parse::<T>(text.trim(), || {
                format!("header {header_shown}")
            })?)
        }
        (Some(_), Some(_)) => {
            return Err(GatewayError::BadRequest(format!(
                "header {header_shown} is given more than once; give it once"
            )))
        }
    };
    let from_param = param
        .map(|value| parse::<T>(value, || format!("query parameter {param_name}")))
        .transpose()?;
    match (from_header, from_param) {
        (Some(header_value), Some(param_value)) if header_value != param_value => {
            Err(GatewayError::BadRequest(format!(
                "header {header_shown} ({header_value}) and query parameter {param_name} \
                 ({param_value}) disagree; give one"
            )))
        }
        (header_value, param_value) => Ok(header_value.or(param_value)),
    }
}

fn parse<T: FromStr<Err = ShapeValueError>>(
    value: &str,
    place: impl FnOnce() -> String,
) -> Result<T, GatewayError> {
    value.parse().map_err(|error| GatewayError::JsonShape {
        place: place(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request(headers: &[(&str, &str)], uri: &str) -> Result<ShapeChoice, GatewayError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        ShapeChoice::of_request(&map, &uri.parse().expect("uri"))
    }

    #[test]
    fn each_level_decides_each_part_on_its_own() {
        let names_only = ShapeChoice {
            names: Some(FieldNames::Camel),
            defaults: None,
        };
        let defaults_only = ShapeChoice {
            names: Some(FieldNames::Proto),
            defaults: Some(Defaults::Omit),
        };
        assert_eq!(
            names_only.or(defaults_only).over(JsonShape::PROXY),
            JsonShape {
                names: FieldNames::Camel,
                defaults: Defaults::Omit
            }
        );
        assert_eq!(
            ShapeChoice::OPEN.over(JsonShape::CANONICAL),
            JsonShape::CANONICAL
        );
        assert_eq!(
            names_only.over(JsonShape::PROXY),
            JsonShape {
                names: FieldNames::Camel,
                defaults: Defaults::Emit
            }
        );
    }

    #[test]
    fn headers_and_query_parameters_choose() {
        assert_eq!(request(&[], "/a/b").ok(), Some(ShapeChoice::OPEN));
        assert_eq!(
            request(&[("x-json-names", "camel")], "/a/b?json_defaults=omit").ok(),
            Some(ShapeChoice {
                names: Some(FieldNames::Camel),
                defaults: Some(Defaults::Omit)
            })
        );
        // The same choice twice is one choice; other parameters are the route's.
        assert_eq!(
            request(
                &[("x-json-defaults", "emit")],
                "/a?json_defaults=emit&message=%7B%7D"
            )
            .ok(),
            Some(ShapeChoice {
                names: None,
                defaults: Some(Defaults::Emit)
            })
        );
    }

    #[test]
    fn bad_choices_name_the_place_and_the_accepted_values() {
        let message = |result: Result<ShapeChoice, GatewayError>| match result {
            Err(error) => {
                assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
                error.to_string()
            }
            Ok(choice) => panic!("accepted {choice:?}"),
        };
        assert_eq!(
            message(request(&[("x-json-names", "snake")], "/")),
            r#"header X-Json-Names must be proto or camel, got "snake""#
        );
        assert_eq!(
            message(request(&[], "/?json_defaults=yes")),
            r#"query parameter json_defaults must be emit or omit, got "yes""#
        );
        assert_eq!(
            message(request(&[("x-json-names", "camel")], "/?json_names=proto")),
            "header X-Json-Names (camel) and query parameter json_names (proto) disagree; give one"
        );
        assert!(message(request(
            &[("x-json-names", "camel"), ("x-json-names", "camel")],
            "/"
        ))
        .contains("more than once"));
        assert_eq!(
            message(ShapeChoice::of_fields(None, Some("none"))),
            r#""json_defaults" must be emit or omit, got "none""#
        );
    }
}
