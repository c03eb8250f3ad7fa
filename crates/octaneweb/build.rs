//! include_dir! cannot tell Cargo that files under web/ were added or changed; this does.
fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
