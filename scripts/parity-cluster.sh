#!/usr/bin/env bash
# Behaviour parity of the clustered shape: runs the edge's behaviour suites (every integration
# test of stratus-edge that uses the `TestServer` harness) against three clustered edges behind a
# round-robin front (STRATUS_TEST_SHAPE=cluster, edge/tests/support/cluster_shape.rs), so
# consecutive connections of a test land on different edges.
#
# Needs STRATUS_TEST_NATS_URL and STRATUS_TEST_REDIS_URL (scripts/test.sh exports them; by hand:
# `source scripts/services-test-up.sh`). Extra arguments go to cargo nextest.
#
# Excluded, each for a reason written down in edge/docs/mqtt-over-nats.md ("Behaviour parity"):
# tests of what the clustered shape does differently on purpose, of the embedded shape's own
# machinery, or of gaps not closed yet. A test that is not listed here and fails, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/stratus-target}"
: "${STRATUS_TEST_NATS_URL:?run through scripts/test.sh or source scripts/services-test-up.sh}"
: "${STRATUS_TEST_REDIS_URL:?run through scripts/test.sh or source scripts/services-test-up.sh}"

excluded=(
    # Departure: 5.0 publishers never hear 0x10 (the publishing edge does not know the
    # subscribers of other edges).
    'test(qos1_publish_nobody_subscribes_to_is_acknowledged_with_no_matching_subscribers)'
    'test(every_first_byte_after_connack_follows_the_packet_type_table)'
    'test(v5_connack_advertises_qos_2_and_retain_and_a_retained_qos2_publish_is_accepted)'
    'test(first_packet_other_than_connect_is_closed_silently)'
    'test(dollar_topics_are_accepted_but_never_matched_by_leading_wildcards)'
    # Harness: the front cannot relay a refusal CONNACK that the edge follows with a reset (it
    # closes without reading an oversized body).
    'test(connect_larger_than_max_packet_size_is_refused_from_its_header)'
    'test(oversized_first_packets_are_refused_from_the_header_without_buffering_the_body)'
    # Departure: a PINGRESP on one connection fences QoS 0 messages published on another only in
    # the embedded shape; through NATS they may arrive after it (and a QoS 0 message published
    # just before an UNSUBSCRIBE/SUBSCRIBE pair may reach the new subscription).
    'test(v5_invalid_filter_fails_only_its_own_suback_entry)'
    'test(ten_thousand_subscribe_unsubscribe_rounds_leave_a_healthy_connection)'
    'test(v5_more_unacknowledged_publishes_than_receive_maximum_is_disconnected)'
    # Departure: a message on one filter does not fence messages on another published before it
    # (each filter's NATS subscription is routed by a task of its own).
    'test(max_inflight_messages_caps_a_larger_client_receive_maximum)'
    # Gap: a revoked right reaches every edge through its change events, a moment after the API
    # answered.
    'test(removing_a_publish_right_refuses_the_next_publish)'
    'test(will_is_checked_when_published_not_only_at_connect)'
    # Departure: $SYS figures are per edge.
    'binary(sys_topics)'
    'test(sys_subscribers_see_only_their_own_tenant_figures)'
    # The embedded shape's own machinery: SQLite restore summary and state edited in the SQLite
    # file (the kill test covers the clustered shape), PROXY protocol and WebSocket
    # listeners configured on one edge (the front speaks plain TCP).
    'test(v5_session_queue_and_retained_message_survive_a_graceful_restart)'
    'test(a_packet_id_counter_behind_the_ids_in_flight_never_reuses_one)'
    'binary(proxy_protocol)'
    # Departure: an online persistent session's QoS 1/2 messages beyond its queue limit wait in
    # the stream instead of being dropped.
    'test(messages_beyond_the_session_queue_byte_maximum_are_dropped)'
    # Gap: a retained message acknowledged on one edge can reach another edge's copy a moment
    # after a SUBSCRIBE there.
    'test(retained_dollar_topics_are_not_sent_to_filters_starting_with_a_wildcard)'
)
filter='package(stratus-edge) & kind(test) & !binary(/^cluster_/)'
for e in "${excluded[@]}"; do
    filter+=" & !$e"
done
# Retries: several suites take a client's own close for the server having processed its
# DISCONNECT, which three edges behind a front make a race (a message published right after can
# reach the old connection). nextest reports every test that needed a retry as FLAKY.
# `--workspace` (with the package in the filter) reuses the test binaries of the main test run
# instead of building a `-p stratus-edge` set with other features.
STRATUS_TEST_SHAPE=cluster cargo nextest run --workspace --locked --no-fail-fast \
    --retries 2 -E "$filter" "$@"
