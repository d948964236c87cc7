// echo-js@1: completes with its input unchanged; the input "fail" fails the task with reason
// BadInput. Built by `make plugins` with the componentize-js CLI (docs/guides/javascript.md).

export const activity = {
  /** @param task the WIT activity-task record, with camelCase field names. */
  run(task) {
    // console.error / console.log become host log lines tagged with activity id and type.
    console.error(`echo-js: activity ${task.activityId} of workflow ${task.workflowExecution.workflowId}`);
    if (task.input === 'fail') {
      // A thrown value becomes the `err` case of the WIT result: here activity-error.failed.
      throw { tag: 'failed', val: { reason: 'BadInput', details: 'input was "fail"' } };
    }
    return task.input; // undefined -> none
  },
};
