//! `/v1/messages` on any deployment: natively where the provider speaks Anthropic's wire
//! format (a capability of the provider, [`Provider::messages_native`]), else translated into
//! a chat completion for the provider and its answer or stream translated back
//! (`api::messages`). An OpenAI-compatible upstream gets the assistant turns' `thinking_blocks`
//! only when it serves Claude (`api::thinking`); every other provider reads no more than their
//! `reasoning_content`.

use bytes::Bytes;

use super::bridge::{self, Bridged, Translator};
use super::{Provider, ProviderError, ProviderResponse, UpstreamRequest};
use crate::api::messages::{ChunksToEvents, from_chat_answer, to_chat_request};
use crate::api::thinking::{drop_thinking_blocks, takes_thinking_blocks};
use crate::api::{StreamChunk, Usage};

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
    let model = Model(request.requested_model.to_string());
    bridge::call(provider, request, &body, model).await
}

/// The Messages side of the bridge: the model name the client asked for.
struct Model(String);

impl Bridged for Model {
    type Translator = ChunksToEvents;

    fn answer(&self, chat_answer: &[u8]) -> Result<(Bytes, Option<Usage>), String> {
        from_chat_answer(chat_answer, &self.0)
    }

    fn translator(self) -> ChunksToEvents {
        ChunksToEvents::new(self.0)
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
