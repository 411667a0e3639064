//! The bodies of the RAG operations as typed requests (`docs/spec/rag-api.md`), read with
//! [`crate::api::body::read`]: each field with the spec's message for a wrong value, naming the
//! field as `param`. Fields are read in the order they are declared, whatever order the body
//! names them in, so a body with several wrong fields always gets the error of the first; `null`
//! is the same as absent. What depends on more than one field (a search needs `vector` or
//! `query`, an upsert something to store, a delete a criterion) or on the caller's scope is
//! checked by the service.
//!
//! Unknown fields are ignored.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::store::{Filter, Point, PointId, WithPayload, valid_collection_name};
use crate::api::body::{RequestBody, declared_fields, field_error, in_order, read};
use crate::error::{ApiError, ErrorKind};

/// The most results a search (or points a page of `/v1/rag/points`) may ask for.
pub const MAX_LIMIT: u64 = 1000;

/// `POST /v1/rag/search`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchRequest {
    /// The collection; absent for the default one.
    #[serde(default, deserialize_with = "collection")]
    pub collection: Option<String>,
    #[serde(default, deserialize_with = "namespace")]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "filter")]
    pub filter: Option<Filter>,
    /// 1 to [`MAX_LIMIT`]; absent for the default (5).
    #[serde(default, deserialize_with = "limit")]
    pub limit: Option<u64>,
    /// Not negative; a threshold applies when above 0.
    #[serde(default, deserialize_with = "score_threshold")]
    pub score_threshold: Option<f64>,
    /// Absent: the whole payload.
    #[serde(default, deserialize_with = "with_payload")]
    pub with_payload: Option<WithPayload>,
    #[serde(default, deserialize_with = "with_vector")]
    pub with_vector: bool,
    #[serde(default, deserialize_with = "vector")]
    pub vector: Option<Vec<f32>>,
    /// A blank query counts as none.
    #[serde(default, deserialize_with = "query")]
    pub query: Option<String>,
}

/// `POST /v1/rag/upsert`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpsertRequest {
    #[serde(default, deserialize_with = "collection")]
    pub collection: Option<String>,
    #[serde(default, deserialize_with = "namespace")]
    pub namespace: Option<String>,
    /// Texts to embed and store.
    #[serde(default, deserialize_with = "documents")]
    pub documents: Vec<Document>,
    /// Points with their vectors, stored as given.
    #[serde(default, deserialize_with = "points")]
    pub points: Vec<Point>,
}

/// A document of an upsert request.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    /// Absent: derived from the namespace and the text ([`super::service::document_id`]).
    #[serde(default, deserialize_with = "optional_id")]
    pub id: Option<PointId>,
    #[serde(deserialize_with = "text")]
    pub text: String,
    #[serde(default, deserialize_with = "object")]
    pub metadata: Map<String, Value>,
}

/// A point of an upsert request, as read (then a [`Point`]).
#[derive(Deserialize)]
struct PointFields {
    #[serde(deserialize_with = "point_id")]
    id: PointId,
    #[serde(deserialize_with = "required_vector")]
    vector: Vec<f32>,
    #[serde(default, deserialize_with = "object")]
    payload: Map<String, Value>,
}

/// `POST /v1/rag/delete`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeleteRequest {
    #[serde(default, deserialize_with = "collection")]
    pub collection: Option<String>,
    #[serde(default, deserialize_with = "namespace")]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "filter")]
    pub filter: Option<Filter>,
    #[serde(default, deserialize_with = "ids")]
    pub ids: Vec<PointId>,
}

/// `POST /v1/rag/points` (not in the public contract): stored points by filter, a page at a
/// time.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PointsRequest {
    #[serde(default, deserialize_with = "collection")]
    pub collection: Option<String>,
    #[serde(default, deserialize_with = "namespace")]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "filter")]
    pub filter: Option<Filter>,
    /// 1 to [`MAX_LIMIT`]; absent for the default (100).
    #[serde(default, deserialize_with = "limit")]
    pub limit: Option<u64>,
    /// The previous page's `next_page_offset`.
    #[serde(default, deserialize_with = "optional_id")]
    pub offset: Option<PointId>,
    /// Absent: the whole payload.
    #[serde(default, deserialize_with = "with_payload")]
    pub with_payload: Option<WithPayload>,
}

/// One RAG operation's request.
#[derive(Debug, Clone)]
pub enum RagRequest {
    Search(SearchRequest),
    Upsert(UpsertRequest),
    Delete(DeleteRequest),
    Points(PointsRequest),
}

impl RequestBody for SearchRequest {
    fn prepare(body: &mut Map<String, Value>) {
        in_order(body, declared_fields::<Self>());
    }
}

impl RequestBody for UpsertRequest {
    fn prepare(body: &mut Map<String, Value>) {
        in_order(body, declared_fields::<Self>());
        for (list, fields) in [
            ("documents", declared_fields::<Document>()),
            ("points", declared_fields::<PointFields>()),
        ] {
            if let Some(Value::Array(items)) = body.get_mut(list) {
                for item in items {
                    if let Value::Object(element) = item {
                        in_order(element, fields);
                    }
                }
            }
        }
    }
}

impl RequestBody for DeleteRequest {
    fn prepare(body: &mut Map<String, Value>) {
        in_order(body, declared_fields::<Self>());
    }
}

impl RequestBody for PointsRequest {
    fn prepare(body: &mut Map<String, Value>) {
        in_order(body, declared_fields::<Self>());
    }
}

impl From<SearchRequest> for RagRequest {
    fn from(request: SearchRequest) -> Self {
        RagRequest::Search(request)
    }
}

impl From<UpsertRequest> for RagRequest {
    fn from(request: UpsertRequest) -> Self {
        RagRequest::Upsert(request)
    }
}

impl From<DeleteRequest> for RagRequest {
    fn from(request: DeleteRequest) -> Self {
        RagRequest::Delete(request)
    }
}

impl From<PointsRequest> for RagRequest {
    fn from(request: PointsRequest) -> Self {
        RagRequest::Points(request)
    }
}

/// A request from a JSON value (for callers without HTTP: the CLI, tests, benchmarks): an
/// object is read like a request body; anything else is a 400.
pub fn from_json<T: RequestBody>(body: Value) -> Result<T, ApiError> {
    match body {
        Value::Object(body) => read(body),
        _ => Err(ApiError::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        )),
    }
}

// ----- the fields ------------------------------------------------------------------------

fn collection<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if valid_collection_name(&s) => Ok(Some(s)),
        Value::String(_) => Err(field_error(
            "must be 1 to 255 letters, digits, '_', '-' or '.', not starting with '.'.",
        )),
        _ => Err(field_error("must be a string.")),
    }
}

fn namespace<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() => Ok(Some(s)),
        _ => Err(field_error("must be a non-empty string.")),
    }
}

/// Qdrant's filter syntax; the message is the store's ("invalid filter: ...").
fn filter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Filter>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => Filter::parse(value).map(Some).map_err(de::Error::custom),
    }
}

fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        // A negative integer is an integer out of range.
        Value::Number(n) if n.is_u64() || n.is_i64() => match n.as_u64() {
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n)),
            _ => Err(field_error("must be between 1 and 1000.")),
        },
        _ => Err(field_error("must be an integer.")),
    }
}

fn score_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(t) if t < 0.0 => Err(field_error("must not be negative.")),
            t => Ok(t),
        },
        _ => Err(field_error("must be a number.")),
    }
}

fn with_payload<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WithPayload>, D::Error> {
    let wrong = || field_error("must be a boolean or an array of field names.");
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(WithPayload::All(b))),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|fields| Some(WithPayload::Fields(fields)))
            .ok_or_else(wrong),
        _ => Err(wrong()),
    }
}

fn with_vector<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(b),
        _ => Err(field_error("must be a boolean.")),
    }
}

fn vector<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f32>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => numbers(value).map(Some),
    }
}

fn required_vector<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Err(field_error("is required.")),
        value => numbers(value),
    }
}

/// A non-empty array of finite numbers (as `f32`).
fn numbers<E: de::Error>(value: Value) -> Result<Vec<f32>, E> {
    let wrong = || field_error("must be a non-empty array of numbers.");
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_f64().map(|f| f as f32).filter(|f| f.is_finite()))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(wrong),
        _ => Err(wrong()),
    }
}

fn query<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(field_error("must be a string.")),
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Err(field_error("is required.")),
        Value::String(s) if s.is_empty() => Err(field_error("must not be empty.")),
        Value::String(s) => Ok(s),
        _ => Err(field_error("must be a string.")),
    }
}

/// An object (metadata, payload); absent is empty.
fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        _ => Err(field_error("must be an object.")),
    }
}

fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PointId>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        value => PointId::from_json(&value)
            .map(Some)
            .ok_or_else(|| field_error("must be an unsigned integer or a UUID.")),
    }
}

fn point_id<'de, D: Deserializer<'de>>(d: D) -> Result<PointId, D::Error> {
    PointId::from_json(&Value::deserialize(d)?)
        .ok_or_else(|| field_error("is required: an unsigned integer or a UUID."))
}

/// An id in the `ids` list of a delete.
struct ListedId(PointId);

impl<'de> Deserialize<'de> for ListedId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PointId::from_json(&Value::deserialize(d)?)
            .map(ListedId)
            .ok_or_else(|| field_error("must be an unsigned integer or a UUID."))
    }
}

fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PointId>, D::Error> {
    let ids: Vec<ListedId> = d.deserialize_any(ListOf(PhantomData))?;
    Ok(ids.into_iter().map(|id| id.0).collect())
}

fn documents<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Document>, D::Error> {
    let documents: Vec<AnObject<Document>> = d.deserialize_any(ListOf(PhantomData))?;
    Ok(documents.into_iter().map(|d| d.0).collect())
}

fn points<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Point>, D::Error> {
    let points: Vec<AnObject<PointFields>> = d.deserialize_any(ListOf(PhantomData))?;
    Ok(points
        .into_iter()
        .map(|AnObject(p)| Point {
            id: p.id,
            vector: p.vector,
            payload: p.payload,
        })
        .collect())
}

/// An array of `T` (each element read where it is, so its errors name it); absent is empty.
struct ListOf<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListOf<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<T>, E> {
        Err(not_an_array())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<T>, E> {
        Err(not_an_array())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<T>, E> {
        Err(not_an_array())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<T>, E> {
        Err(not_an_array())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
        Err(not_an_array())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
        Err(not_an_array())
    }
}

fn not_an_array<E: de::Error>() -> E {
    field_error("must be an array.")
}

/// A JSON object read as `T` (its fields read where they are, so their errors name them).
struct AnObject<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for AnObject<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectOf(PhantomData))
    }
}

struct ObjectOf<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for ObjectOf<T> {
    type Value = AnObject<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnObject<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(AnObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnObject<T>, E> {
        Err(not_an_object())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnObject<T>, E> {
        Err(not_an_object())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnObject<T>, E> {
        Err(not_an_object())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnObject<T>, E> {
        Err(not_an_object())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnObject<T>, E> {
        Err(not_an_object())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnObject<T>, E> {
        Err(not_an_object())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<AnObject<T>, A::Error> {
        Err(not_an_object())
    }
}

fn not_an_object<E: de::Error>() -> E {
    field_error("must be an object.")
}
