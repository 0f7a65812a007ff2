#![doc = include_str!("../README.md")]

pub mod compare;
pub mod contenders;
pub mod http;
pub mod keys;
pub mod machine;
pub mod measure;
pub mod naive;
pub mod outage;
pub mod redis;
pub mod redis_scale;
pub mod report;
pub mod rss;
pub mod shapes;

pub use crate::compare::{Config, run};
pub use crate::contenders::Implementation;
pub use crate::report::Report;
pub use crate::shapes::Shape;
