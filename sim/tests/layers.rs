//! The map in `sim/src/lib.rs` is a contract: every module is in it, and no
//! module uses one of its own layer or above.

use std::path::Path;

#[test]
fn no_module_uses_one_of_its_own_layer_or_above() {
    testkit::layers::assert_layered(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}
