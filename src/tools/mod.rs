//! What the model may do: shell, files, search — confined to the checkout.

pub mod path;
