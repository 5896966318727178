/* fabrik: a job server that speaks the Faktory Work Protocol. main() loads the configuration
 * and runs the server; it is the only function that exits the process. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config/config.h"
#include "net/server.h"
#include "util/log.h"

int main(int argc, char **argv) {
    /* fabrik works in UTC; cron switches to an entry's zone only while it computes a run. */
    setenv("TZ", "UTC", 1);
    tzset();
    struct config cfg = {0};
    enum config_action action = CONFIG_RUN;
    char err[2048];
    if (config_load(&cfg, argc, argv, &action, err, sizeof err) != 0) {
        fprintf(stderr, "fabrik: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (action == CONFIG_EXIT_OK) {
        config_free(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    config_log(&cfg);
    return server_run(&cfg);
}
