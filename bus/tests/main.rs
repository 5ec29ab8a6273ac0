//! Integration tests of the bus, one binary (see the testing rules in the
//! design document): a real redis-server for every Redis test.

mod auth;
mod bad_input;
mod bounds;
mod cluster;
mod compression;
mod conformance;
mod exposition;
mod frame_props;
mod frame_strategies;
mod glob_props;
mod glob_reference;
mod health;
mod history;
mod layers;
mod protocol_doc;
mod quotas;
mod redis_restart;
mod rest;
mod server;
mod support;
