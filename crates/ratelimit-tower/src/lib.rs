//! HTTP rate limiting as a tower `Layer` (work in progress).
#![forbid(unsafe_code)]
