// countdown-c@1: input {"steps":N,"step_ms":M} (defaults 10 and 100). Every step sleeps, then
// heartbeats its progress ({"step":3,"of":10}); stops with `canceled` as soon as the host says
// cancellation was requested; completes with {"done":N}.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

// Finds `"key"` followed by `:` and a non-negative integer in a small flat JSON object.
// Returns 1 when found, 0 when the key is absent, -1 when its value is not such an integer.
static int json_uint(const char *json, const char *key, long *out) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *at = strstr(json, quoted);
    if (at == NULL) return 0;
    at += strlen(quoted);
    while (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r') at++;
    if (*at++ != ':') return -1;
    while (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r') at++;
    char *end;
    long value = strtol(at, &end, 10);
    if (end == at || value < 0) return -1;
    *out = value;
    return 1;
}

static bool fail(exports_swasm_activity_activity_activity_error_t *err, const char *details) {
    fprintf(stderr, "countdown-c: bad input: %s\n", details);
    err->tag = SWASM_ACTIVITY_TYPES_ACTIVITY_ERROR_FAILED;
    plugin_string_dup(&err->val.failed.reason, "BadInput");
    err->val.failed.details.is_some = true;
    plugin_string_dup(&err->val.failed.details.val, details);
    return false;
}

bool exports_swasm_activity_activity_run(exports_swasm_activity_activity_activity_task_t *task,
                                         plugin_option_string_t *ret,
                                         exports_swasm_activity_activity_activity_error_t *err) {
    long steps = 10, step_ms = 100;
    if (task->input.is_some) {
        // Copy to a NUL-terminated buffer for the C string functions.
        char *input = strndup((const char *)task->input.val.ptr, task->input.val.len);
        int s = json_uint(input, "steps", &steps);
        int m = json_uint(input, "step_ms", &step_ms);
        free(input);
        if (s < 0 || m < 0) {
            exports_swasm_activity_activity_activity_task_free(task);
            return fail(err, "expected {\"steps\":N,\"step_ms\":M} with non-negative integers");
        }
    }
    exports_swasm_activity_activity_activity_task_free(task);

    fprintf(stderr, "countdown-c: %ld steps of %ld ms\n", steps, step_ms);
    char progress[64];
    for (long step = 1; step <= steps; step++) {
        // nanosleep -> WASI preview 1 poll_oneoff -> (adapter) wasi:clocks/monotonic-clock.
        struct timespec pause = {step_ms / 1000, (step_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        snprintf(progress, sizeof progress, "{\"step\":%ld,\"of\":%ld}", step, steps);
        plugin_string_t details;
        plugin_string_set(&details, progress);  // borrowed: the host copies it during the call
        if (swasm_activity_host_heartbeat(&details)) {
            fprintf(stderr, "countdown-c: cancel requested at step %ld\n", step);
            err->tag = SWASM_ACTIVITY_TYPES_ACTIVITY_ERROR_CANCELED;
            err->val.canceled.is_some = true;
            plugin_string_dup(&err->val.canceled.val, progress);
            return false;
        }
    }
    char done[32];
    snprintf(done, sizeof done, "{\"done\":%ld}", steps);
    ret->is_some = true;
    plugin_string_dup(&ret->val, done);
    return true;
}
