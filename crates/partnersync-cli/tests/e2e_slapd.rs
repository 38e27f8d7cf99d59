//! End to end against OpenLDAP slapd (scripts/ldap/slapd.sh): the real `partnersync` binary
//! syncs a test OU into a Graph emulator process; see `e2e/directory.rs` for the scenarios.
//! Needs PARTNERSYNC_SLAPD_ENV (skipped without it, failed under
//! PARTNERSYNC_REQUIRE_SERVERS=1).

#[path = "../../partnersync-ldap/tests/common/mod.rs"]
mod ldap;

mod e2e;

#[path = "e2e/directory.rs"]
mod directory;

use directory::Flavor::Slapd;

#[tokio::test]
async fn slapd_initial_sync_no_change_modify_rename_member_to_guest_delete() {
    directory::lifecycle(Slapd).await;
}

#[tokio::test]
async fn slapd_deletion_guard_trips_and_nothing_is_written() {
    directory::deletion_guard(Slapd).await;
}

#[tokio::test]
async fn slapd_empty_source_never_removes_anyone() {
    directory::empty_source(Slapd).await;
}

#[tokio::test]
async fn slapd_staging_writes_nothing() {
    directory::staging(Slapd).await;
}

#[tokio::test]
async fn slapd_stale_plan_is_refused_and_a_fresh_one_applies_exactly() {
    directory::stale_plan(Slapd).await;
}

#[tokio::test]
async fn slapd_in_process_emulator_keeps_its_directory_between_runs() {
    directory::in_process_emulator(Slapd).await;
}
