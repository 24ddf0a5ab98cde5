//! Anthropic Messages API client: types, SSE stream, errors, prices.
