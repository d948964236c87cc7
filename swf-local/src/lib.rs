//! swf-local.
