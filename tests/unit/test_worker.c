/* Unit tests of the worker registry: one record per wid shared by its connections, removal
 * with the last connection, and the forward-only state machine running -> quiet -> terminate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "core/worker.h"

static int setup(void **state) {
    struct worker_registry *reg = test_calloc(1, sizeof *reg);
    *state = reg;
    return 0;
}

static int teardown(void **state) {
    struct worker_registry *reg = *state;
    worker_registry_free(reg);
    test_free(reg);
    return 0;
}

static void attach_creates_record(void **state) {
    struct worker_registry *reg = *state;
    json_t *labels = json_pack("[s, s]", "ruby", "fast");
    struct worker *w = worker_attach(reg, "wid-1", "host-a", 4242, labels, 1000.5);
    assert_non_null(w);
    assert_string_equal(w->wid, "wid-1");
    assert_string_equal(w->hostname, "host-a");
    assert_int_equal(w->pid, 4242);
    assert_true(json_equal(w->labels, labels));
    assert_int_equal(w->state, WORKER_RUNNING);
    assert_true(w->started == 1000.5);
    assert_true(w->last_beat == 1000.5);
    assert_int_equal(w->connections, 1);
    assert_int_equal(worker_count(reg), 1);
    json_decref(labels);
}

static void attach_copies_labels(void **state) {
    struct worker_registry *reg = *state;
    json_t *labels = json_pack("[s]", "ruby");
    struct worker *w = worker_attach(reg, "wid-1", "host-a", 1, labels, 0);
    json_array_append_new(labels, json_string("changed"));
    assert_int_equal(json_array_size(w->labels), 1);
    json_decref(labels);
}

static void attach_without_hostname_and_labels(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", NULL, 0, NULL, 0);
    assert_string_equal(w->hostname, "");
    assert_true(json_is_array(w->labels));
    assert_int_equal(json_array_size(w->labels), 0);
}

static void attach_same_wid_shares_record(void **state) {
    struct worker_registry *reg = *state;
    struct worker *first = worker_attach(reg, "wid-1", "host-a", 1, NULL, 10);
    struct worker *second = worker_attach(reg, "wid-1", "host-b", 2, NULL, 20);
    assert_ptr_equal(first, second);
    assert_int_equal(second->connections, 2);
    assert_int_equal(worker_count(reg), 1);
}

static void attach_again_keeps_first_registration(void **state) {
    struct worker_registry *reg = *state;
    worker_attach(reg, "wid-1", "host-a", 1, NULL, 10);
    struct worker *w = worker_attach(reg, "wid-1", "host-b", 2, NULL, 20);
    assert_string_equal(w->hostname, "host-a");
    assert_int_equal(w->pid, 1);
    assert_true(w->started == 10);
}

static void attach_distinct_wids_counted(void **state) {
    struct worker_registry *reg = *state;
    worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_attach(reg, "wid-2", "h", 2, NULL, 0);
    worker_attach(reg, "wid-3", "h", 3, NULL, 0);
    worker_attach(reg, "wid-2", "h", 2, NULL, 0);
    assert_int_equal(worker_count(reg), 3);
}

static void find_returns_record_or_null(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    assert_ptr_equal(worker_find(reg, "wid-1"), w);
    assert_null(worker_find(reg, "wid-2"));
    assert_null(worker_find(reg, "wid-"));
}

static void detach_keeps_record_with_connections(void **state) {
    struct worker_registry *reg = *state;
    worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_detach(reg, w);
    assert_ptr_equal(worker_find(reg, "wid-1"), w);
    assert_int_equal(w->connections, 1);
    assert_int_equal(worker_count(reg), 1);
}

static void detach_last_connection_removes(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_detach(reg, w);
    worker_detach(reg, w);
    assert_null(worker_find(reg, "wid-1"));
    assert_int_equal(worker_count(reg), 0);
}

static void detach_leaves_other_workers(void **state) {
    struct worker_registry *reg = *state;
    struct worker *a = worker_attach(reg, "wid-a", "h", 1, NULL, 0);
    struct worker *b = worker_attach(reg, "wid-b", "h", 2, NULL, 0);
    worker_detach(reg, a);
    assert_null(worker_find(reg, "wid-a"));
    assert_ptr_equal(worker_find(reg, "wid-b"), b);
    assert_int_equal(worker_count(reg), 1);
}

static void reattach_after_removal_starts_fresh(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 10);
    worker_signal(w, WORKER_QUIET);
    worker_detach(reg, w);
    w = worker_attach(reg, "wid-1", "h2", 2, NULL, 50);
    assert_int_equal(w->state, WORKER_RUNNING);
    assert_true(w->started == 50);
    assert_int_equal(w->connections, 1);
}

static void remove_drops_record_with_connections(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_attach(reg, "wid-2", "h", 1, NULL, 0);
    worker_remove(reg, w);
    assert_null(worker_find(reg, "wid-1"));
    assert_int_equal(worker_count(reg), 1);
}

static void signal_running_to_quiet(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    assert_true(worker_signal(w, WORKER_QUIET));
    assert_int_equal(w->state, WORKER_QUIET);
}

static void signal_quiet_to_terminate(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_signal(w, WORKER_QUIET);
    assert_true(worker_signal(w, WORKER_TERMINATE));
    assert_int_equal(w->state, WORKER_TERMINATE);
}

static void signal_running_to_terminate(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    assert_true(worker_signal(w, WORKER_TERMINATE));
    assert_int_equal(w->state, WORKER_TERMINATE);
}

static void signal_never_goes_back(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_signal(w, WORKER_TERMINATE);
    assert_false(worker_signal(w, WORKER_QUIET));
    assert_int_equal(w->state, WORKER_TERMINATE);
    assert_false(worker_signal(w, WORKER_RUNNING));
    assert_int_equal(w->state, WORKER_TERMINATE);
}

static void signal_quiet_back_to_running_refused(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_signal(w, WORKER_QUIET);
    assert_false(worker_signal(w, WORKER_RUNNING));
    assert_int_equal(w->state, WORKER_QUIET);
}

static void signal_same_state_unchanged(void **state) {
    struct worker_registry *reg = *state;
    struct worker *w = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    assert_false(worker_signal(w, WORKER_RUNNING));
    worker_signal(w, WORKER_QUIET);
    assert_false(worker_signal(w, WORKER_QUIET));
    assert_int_equal(w->state, WORKER_QUIET);
}

static void signal_shared_by_connections(void **state) {
    struct worker_registry *reg = *state;
    struct worker *first = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_signal(first, WORKER_QUIET);
    struct worker *second = worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    assert_int_equal(second->state, WORKER_QUIET);
}

static void parse_state_names(void **state) {
    (void)state;
    enum worker_state s = WORKER_RUNNING;
    assert_int_equal(worker_parse_state("quiet", &s), 0);
    assert_int_equal(s, WORKER_QUIET);
    assert_int_equal(worker_parse_state("terminate", &s), 0);
    assert_int_equal(s, WORKER_TERMINATE);
}

static void parse_state_rejects_others(void **state) {
    (void)state;
    enum worker_state s = WORKER_QUIET;
    assert_int_equal(worker_parse_state("running", &s), -1);
    assert_int_equal(worker_parse_state("QUIET", &s), -1);
    assert_int_equal(worker_parse_state("", &s), -1);
    assert_int_equal(worker_parse_state(NULL, &s), -1);
    assert_int_equal(s, WORKER_QUIET);
}

static void state_names(void **state) {
    (void)state;
    assert_string_equal(worker_state_name(WORKER_RUNNING), "running");
    assert_string_equal(worker_state_name(WORKER_QUIET), "quiet");
    assert_string_equal(worker_state_name(WORKER_TERMINATE), "terminate");
}

static void registry_free_twice_is_safe(void **state) {
    struct worker_registry *reg = *state;
    worker_attach(reg, "wid-1", "h", 1, NULL, 0);
    worker_attach(reg, "wid-2", "h", 1, NULL, 0);
    worker_registry_free(reg);
    assert_int_equal(worker_count(reg), 0);
    worker_registry_free(reg);
    assert_int_equal(worker_count(reg), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(attach_creates_record, setup, teardown),
        cmocka_unit_test_setup_teardown(attach_copies_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(attach_without_hostname_and_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(attach_same_wid_shares_record, setup, teardown),
        cmocka_unit_test_setup_teardown(attach_again_keeps_first_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(attach_distinct_wids_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(find_returns_record_or_null, setup, teardown),
        cmocka_unit_test_setup_teardown(detach_keeps_record_with_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(detach_last_connection_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(detach_leaves_other_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(reattach_after_removal_starts_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_drops_record_with_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_running_to_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_quiet_to_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_running_to_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_quiet_back_to_running_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_same_state_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(signal_shared_by_connections, setup, teardown),
        cmocka_unit_test(parse_state_names),
        cmocka_unit_test(parse_state_rejects_others),
        cmocka_unit_test(state_names),
        cmocka_unit_test_setup_teardown(registry_free_twice_is_safe, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
