//! Integration tests of the simulator, one binary: real agents against real
//! bus nodes.

mod run_embedded;
