//! `sqlx::migrate!` embeds the migration files at compile time, but a proc macro cannot tell
//! cargo to watch them: without this, editing or adding a migration alone would leave the old
//! set in the binary.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
