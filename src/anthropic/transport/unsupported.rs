//! Stand-ins for the cloud transports a build leaves out (cargo features `bedrock` and
//! `vertex`): the endpoint is refused when the client is built, with the reason; nothing
//! else can be reached (the types have no values).

#[cfg(not(feature = "bedrock"))]
pub mod bedrock {
    use std::convert::Infallible;
    use std::time::SystemTime;

    use reqwest::header::{HeaderName, HeaderValue};

    use crate::anthropic::error::ApiError;
    use crate::anthropic::transport::{BedrockEndpoint, Prepared};
    use crate::anthropic::types::MessagesRequest;

    /// A Bedrock endpoint, which this build cannot have.
    #[derive(Debug, Clone)]
    pub struct Bedrock(Infallible);

    impl Bedrock {
        /// Always refused: the build has no Bedrock support.
        pub fn new(_: &BedrockEndpoint) -> Result<Self, ApiError> {
            Err(ApiError::Config(
                "this buildd-agent was built without Amazon Bedrock support (cargo feature \
                 `bedrock`)"
                    .into(),
            ))
        }

        /// Unreachable: no value exists.
        pub fn prepare(&self, _: &MessagesRequest<'_>) -> Result<Prepared, ApiError> {
            match self.0 {}
        }

        /// Unreachable: no value exists.
        pub fn authorize(
            &self,
            _: &Prepared,
            _: SystemTime,
        ) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
            match self.0 {}
        }
    }
}

#[cfg(not(feature = "vertex"))]
pub mod vertex {
    use std::convert::Infallible;

    use reqwest::header::{HeaderName, HeaderValue};

    use crate::anthropic::error::ApiError;
    use crate::anthropic::transport::{Prepared, VertexEndpoint};
    use crate::anthropic::types::MessagesRequest;

    /// A Vertex endpoint, which this build cannot have.
    #[derive(Debug, Clone)]
    pub struct Vertex(Infallible);

    impl Vertex {
        /// Always refused: the build has no Vertex support.
        pub fn new(_: &VertexEndpoint) -> Result<Self, ApiError> {
            Err(ApiError::Config(
                "this buildd-agent was built without Google Vertex AI support (cargo feature \
                 `vertex`)"
                    .into(),
            ))
        }

        /// Unreachable: no value exists.
        pub fn prepare(&self, _: &MessagesRequest<'_>) -> Result<Prepared, ApiError> {
            match self.0 {}
        }

        /// Unreachable: no value exists.
        pub async fn authorize(&self) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
            match self.0 {}
        }
    }
}
