/* Pushes one "SendEmail" job to the server named by FAKTORY_URL (default
 * tcp://127.0.0.1:7419) and prints its jid. Usage: producer [EMAIL], where EMAIL is the
 * job's argument (default user@example.com). */
#include <stdio.h>

#include <fabrik/fabrik.h>

int main(int argc, char **argv) {
    struct fabrik_client *client;
    char err[256];
    if (fabrik_client_open(&client, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "producer: %s\n", err);
        return 1;
    }

    struct fabrik_job *job = fabrik_job_new("SendEmail");
    fabrik_job_add_arg_string(job, argc > 1 ? argv[1] : "user@example.com");
    int rc = fabrik_push_job(client, job);
    if (rc == 0)
        printf("%s\n", fabrik_job_jid(job));
    else
        fprintf(stderr, "producer: push failed: %s\n", fabrik_client_error(client));

    fabrik_job_free(job);
    fabrik_client_close(client);
    return rc == 0 ? 0 : 1;
}
