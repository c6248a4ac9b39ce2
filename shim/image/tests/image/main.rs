//! husk-image's one integration test binary: crafted layers, hand-built images, real fixtures.

mod common;
mod extract;
mod fixtures;
mod import;
mod registry;
