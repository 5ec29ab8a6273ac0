//! Integration tests of the bus, one binary (see the testing rules in the
//! design document): a real redis-server for every Redis test.

mod conformance;
mod health;
mod redis_restart;
mod server;
mod support;
