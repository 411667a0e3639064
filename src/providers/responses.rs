//! `/v1/responses` on any deployment: passed through where the provider serves OpenAI's
//! Responses API itself (a capability of the provider, [`Provider::serves_responses`]), else
//! bridged onto a chat completion and its answer or stream turned back into a Response
//! (`api::responses`). A bridged stream that fails ends with the Response's own
//! `response.failed` event.

use super::bridge::{Translator, translate};
use super::native::openai_error_body;
use super::{Provider, ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::responses::{ChunksToEvents, error_code, from_chat_answer, to_chat_request};
use crate::api::{Endpoint, StreamChunk};
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
    let bridge = to_chat_request(request.body).map_err(ProviderError::Rejected)?;
    let mut context = bridge.context;
    context.model = request.requested_model.to_string();
    let chat = UpstreamRequest {
        endpoint: Endpoint::Chat,
        body: &bridge.body,
        ..request
    };
    match provider.call_openai(chat).await? {
        ProviderResponse::Complete { body, .. } => match from_chat_answer(&body, &context) {
            Ok((body, usage)) => Ok(ProviderResponse::Complete { body, usage }),
            Err(message) => Err(ProviderError::Status {
                status: 502,
                body: openai_error_body("gateway", 502, None, &message),
                retry_after: None,
            }),
        },
        ProviderResponse::Stream(chunks) => Ok(ProviderResponse::Stream(translate(
            chunks,
            ChunksToEvents::new(context),
        ))),
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
