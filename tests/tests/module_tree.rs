//! Every crate's modules form a tree: no file imports a file that imports it back, directly or
//! through others (`vmsg_tests::module_tree`). Run with `--nocapture` to see each crate's
//! edges.

use std::path::Path;

use vmsg_tests::{module_tree::check_module_tree, qemu};

fn check(krate: &str) {
    let src = qemu::root().join(krate).join("src");
    assert!(
        Path::new(&src).is_dir(),
        "{} is not a directory",
        src.display()
    );
    match check_module_tree(&src) {
        Ok(graph) => println!("{krate}:\n{}", graph.render()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn virtio_msg_modules_form_a_tree() {
    check("virtio-msg");
}

#[test]
fn ffa_modules_form_a_tree() {
    check("ffa");
}

#[test]
fn sp_modules_form_a_tree() {
    check("sp");
}

#[test]
fn sp_qemu_modules_form_a_tree() {
    check("sp/qemu");
}

#[test]
fn host_tools_modules_form_a_tree() {
    check("host-tools");
}

#[test]
fn payload_modules_form_a_tree() {
    check("host-tools/payload");
}

#[test]
fn tests_helpers_form_a_tree() {
    check("tests");
}
