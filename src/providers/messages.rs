//! `/v1/messages` on any deployment: natively where the provider speaks Anthropic's wire
//! format (a capability of the provider, [`Provider::messages_native`]), else translated into
//! a chat completion for the provider and its answer or stream translated back
//! (`api::messages`). An OpenAI-compatible upstream gets the assistant turns' `thinking_blocks`
//! only when it serves Claude (`api::thinking`); every other provider reads no more than their
//! `reasoning_content`.

use super::bridge::{Translator, translate};
use super::native::openai_error_body;
use super::{Provider, ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::messages::{ChunksToEvents, from_chat_answer, to_chat_request};
use crate::api::thinking::{drop_thinking_blocks, takes_thinking_blocks};
use crate::api::{Endpoint, StreamChunk};

/// One Messages call to one deployment.
pub async fn call(
    provider: &Provider,
    request: UpstreamRequest<'_>,
) -> Result<ProviderResponse, ProviderError> {
    if let Some(native) = provider.messages_native() {
        return native.messages(request).await;
    }
    let mut body = to_chat_request(request.body).map_err(ProviderError::Rejected)?;
    let upstream_model = request.deployment.upstream_model(request.requested_model);
    if !(provider.speaks_openai() && takes_thinking_blocks(&upstream_model)) {
        drop_thinking_blocks(&mut body);
    }
    let model = request.requested_model.to_string();
    let chat = UpstreamRequest {
        endpoint: Endpoint::Chat,
        body: &body,
        ..request
    };
    match provider.call_openai(chat).await? {
        ProviderResponse::Complete { body, .. } => match from_chat_answer(&body, &model) {
            Ok((body, usage)) => Ok(ProviderResponse::Complete { body, usage }),
            Err(message) => Err(ProviderError::Status {
                status: 502,
                body: openai_error_body("gateway", 502, None, &message),
                retry_after: None,
            }),
        },
        ProviderResponse::Stream(chunks) => Ok(ProviderResponse::Stream(translate(
            chunks,
            ChunksToEvents::new(model),
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

    /// The pipeline frames the error as Anthropic's `event: error`.
    fn fail(&mut self, error: ProviderError) -> Result<Vec<StreamChunk>, ProviderError> {
        Err(error)
    }
}
