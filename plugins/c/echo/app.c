// echo-c@1: completes with its input unchanged; the input "fail" fails the task with reason
// BadInput. plugin.h is generated from wit/world.wit by `componentize-c bindings`.
#include <stdio.h>
#include <string.h>

#include "plugin.h"

// WIT strings are pointer + length, not NUL-terminated: compare and print them with lengths.
static bool string_is(const plugin_string_t *s, const char *text) {
    return s->len == strlen(text) && memcmp(s->ptr, text, s->len) == 0;
}

bool exports_swasm_activity_activity_run(exports_swasm_activity_activity_activity_task_t *task,
                                         plugin_option_string_t *ret,
                                         exports_swasm_activity_activity_activity_error_t *err) {
    // stderr (and stdout) become host log lines tagged with the activity id and type.
    fprintf(stderr, "echo-c: activity %.*s of workflow %.*s\n", (int)task->activity_id.len,
            (const char *)task->activity_id.ptr, (int)task->workflow_execution.workflow_id.len,
            (const char *)task->workflow_execution.workflow_id.ptr);

    if (task->input.is_some && string_is(&task->input.val, "fail")) {
        // Returning false answers the `err` case; its strings are freed by the bindings
        // after the host has copied them, so they must come from malloc (string_dup).
        err->tag = SWASM_ACTIVITY_TYPES_ACTIVITY_ERROR_FAILED;
        plugin_string_dup(&err->val.failed.reason, "BadInput");
        err->val.failed.details.is_some = true;
        plugin_string_dup(&err->val.failed.details.val, "input was \"fail\"");
        exports_swasm_activity_activity_activity_task_free(task);
        return false;
    }

    // The task is ours to free; hand its input string over to the result instead of copying.
    *ret = task->input;
    task->input.is_some = false;
    exports_swasm_activity_activity_activity_task_free(task);
    return true;
}
