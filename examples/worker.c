/* Processes "SendEmail" jobs from the "default" queue of the server named by FAKTORY_URL until
 * SIGINT or SIGTERM (SIGTSTP stops fetching). Usage: worker [CONCURRENCY] */
#include <stdio.h>
#include <stdlib.h>

#include <fabrik/fabrik.h>

static int send_email(struct fabrik_task *task, void *arg) {
    (void)arg;
    const char *to = fabrik_task_arg_string(task, 0);
    if (!to) {
        fabrik_task_fail(task, "ArgumentError", "the first argument must be an address", "");
        return 1;
    }
    printf("sending mail to %s (job %s)\n", to, fabrik_task_jid(task));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    struct fabrik_worker_options opts;
    fabrik_worker_options_init(&opts);
    opts.concurrency = argc > 1 ? atoi(argv[1]) : 2;

    struct fabrik_worker *worker;
    if (fabrik_worker_new(&worker, &opts) != 0) {
        fprintf(stderr, "worker: invalid options (check FAKTORY_URL)\n");
        return 2;
    }
    fabrik_worker_register(worker, "SendEmail", send_email, NULL);
    int rc = fabrik_worker_run(worker);
    if (rc != 0)
        fprintf(stderr, "worker: %s\n", fabrik_strerror(rc));
    fabrik_worker_free(worker);
    return rc == 0 ? 0 : 1;
}
