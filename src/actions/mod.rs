//! GitHub Actions: job summary, outputs, workflow commands, dispatch event.
