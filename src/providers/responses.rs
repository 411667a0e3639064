//! `/v1/responses` on any deployment: passed through where the provider serves OpenAI's
//! Responses API itself (a capability of the provider, [`Provider::serves_responses`]), else
//! bridged onto a chat completion and its answer or stream turned back into a Response
//! (`api::responses`). A bridged stream that fails ends with the Response's own
//! `response.failed` event.

use bytes::Bytes;

use super::bridge::{self, Bridged, Translator};
use super::{Provider, ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::responses::{
    ChunksToEvents, ResponseContext, error_code, from_chat_answer, to_chat_request,
};
use crate::api::{StreamChunk, Usage};
use crate::error::ApiError;

/// One Responses call to one deployment.
pub async fn call(
    provider: &Provider,
    request: UpstreamRequest<'_>,
) -> Result<ProviderResponse, ProviderError> {
    if provider.serves_responses() {
        return provider.call_openai(request).await;
    }
    if request.body.contains_key("previous_response_id") {
        // The pipeline replaces a continuation of a response it stored with the conversation
        // itself; one left here names a response only another server could know.
        let id = request.body.get("previous_response_id");
        return Err(ProviderError::Rejected(
            ApiError::not_found(format!(
                "Previous response with id '{}' not found.",
                id.and_then(|v| v.as_str()).unwrap_or_default()
            ))
            .with_param("previous_response_id"),
        ));
    }
    let bridged = to_chat_request(request.body).map_err(ProviderError::Rejected)?;
    let mut context = bridged.context;
    context.model = request.requested_model.to_string();
    bridge::call(provider, request, &bridged.body, context).await
}

impl Bridged for ResponseContext {
    type Translator = ChunksToEvents;

    fn answer(&self, chat_answer: &[u8]) -> Result<(Bytes, Option<Usage>), String> {
        from_chat_answer(chat_answer, self)
    }

    fn translator(self) -> ChunksToEvents {
        ChunksToEvents::new(self)
    }
}

impl Translator for ChunksToEvents {
    fn on_chunk(&mut self, data: &[u8]) -> Result<Vec<StreamChunk>, String> {
        ChunksToEvents::on_chunk(self, data)
    }

    fn finish(&mut self) -> Vec<StreamChunk> {
        ChunksToEvents::finish(self)
    }

    fn fail(&mut self, error: ProviderError) -> Result<Vec<StreamChunk>, ProviderError> {
        let model = self.context().model.clone();
        let error = error.into_api_error(&model);
        Ok(ChunksToEvents::fail(
            self,
            error_code(&error),
            &error.message,
        ))
    }
}
