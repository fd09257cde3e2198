//! The store conformance suite: every test runs on SQLite, and on PostgreSQL when
//! `ORB_TEST_POSTGRES_URL` is set (CI sets it and fails if PostgreSQL is unreachable).

mod conformance {
    pub mod harness;
    pub mod suite;
}

use conformance::{harness, suite};

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let h = harness::sqlite().await;
                    suite::$name(&h).await;
                }
            )+
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(h) = harness::postgres().await else { return };
                    suite::$name(&h).await;
                }
            )+
        }
    };
}

conformance!(
    migrations_are_idempotent_and_append_only,
    tenants_are_unique_and_listed,
    rooms_map_mailboxes_and_can_be_disabled,
    rooms_reject_duplicate_mailbox_or_location,
    every_booking_field_round_trips,
    set_once_fields_survive_updates,
    concurrent_updates_from_one_version_conflict_and_lose_nothing,
    bookings_are_found_by_either_sides_ids,
    bookings_are_listed_by_room_series_and_window,
    booking_change_timeline_and_jobs_commit_together,
    timeline_and_audit_log_are_append_only,
    series_upsert_and_read,
    cursors_are_per_tenant,
    audit_log_is_per_tenant_newest_first,
    secrets_store_ciphertext_per_tenant_and_rotate_atomically,
    every_read_is_scoped_by_tenant,
    queue_keeps_lane_order_without_overlap_under_8_workers,
    queue_lane_order_holds_across_two_pools,
    expired_lease_is_run_again_and_old_holder_is_refused,
    a_restarted_instance_releases_its_own_jobs_only,
    failing_job_backs_off_then_dies_and_blocks_its_lane_meanwhile,
    jobs_wait_for_run_at_and_heartbeat_extends_the_lease,
    queue_stats_count_every_tenants_jobs_by_status_and_date_the_oldest_due_one,
    subscriptions_round_trip_renew_and_delete,
    inbox_item_and_its_job_commit_together,
    ews_subscription_watermark_round_trips_and_is_updated_by_an_upsert,
    an_ews_inbox_item_and_its_job_are_accepted,
    push_token_hash_is_per_tenant_and_audited,
    push_token_revoke_forgets_only_that_tenants_token_with_audit,
    only_dead_jobs_are_retried_or_dismissed_and_unknown_ids_are_refused,
    tenant_settings_are_versioned_per_tenant_and_audited,
    tenant_settings_optimistic_put_conflicts_and_changes_nothing,
    concurrent_settings_puts_from_one_version_have_one_winner,
    encryption_keys_are_listed_by_not_before_and_deleted_with_audit,
    encryption_keys_reseal_is_all_or_nothing,
    leases_have_one_holder_renew_expire_and_release,
    lease_race_has_exactly_one_winner_across_two_pools,
    purge_deletes_exactly_the_expired_rows_and_audits_the_counts,
    a_persons_data_is_exported_and_erased_everywhere_and_nothing_else,
);
