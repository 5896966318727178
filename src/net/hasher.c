/* Password-hash thread: requests in, results out, both under one mutex. */
#include "net/hasher.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/auth.h"
#include "util/buf.h"

struct hash_job {
    uint64_t conn_id;
    char *password;
    char salt[AUTH_SALT_HEX];
    int iterations;
    char result[AUTH_HASH_HEX];
    struct hash_job *next;
};

struct hasher {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct hash_job *todo, *todo_tail;
    struct hash_job *done;
    bool stop;
    int wake_pipe[2];          /* the thread writes a byte; the loop reads it */
    struct event *done_event;
    hasher_done_cb cb;
    void *ctx;
};

static void job_free(struct hash_job *job) {
    free(job->password);
    free(job);
}

static void *hasher_main(void *arg) {
    struct hasher *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->todo && !h->stop)
            pthread_cond_wait(&h->wake, &h->lock);
        if (h->stop)
            break;
        struct hash_job *job = h->todo;
        h->todo = job->next;
        if (!h->todo)
            h->todo_tail = NULL;
        pthread_mutex_unlock(&h->lock);

        auth_hash(job->password, job->salt, job->iterations, job->result);

        pthread_mutex_lock(&h->lock);
        job->next = h->done;
        h->done = job;
        /* A full pipe already holds a wake-up, so a failed write loses nothing. */
        ssize_t ignored = write(h->wake_pipe[1], "", 1);
        (void)ignored;
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* Runs on the loop: hands every finished hash to the callback. */
static void hasher_done(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    struct hasher *h = arg;
    char drain[256];
    while (read(fd, drain, sizeof drain) > 0) {
    }
    pthread_mutex_lock(&h->lock);
    struct hash_job *done = h->done;
    h->done = NULL;
    pthread_mutex_unlock(&h->lock);
    while (done) {
        struct hash_job *next = done->next;
        h->cb(h->ctx, done->conn_id, done->result);
        job_free(done);
        done = next;
    }
}

struct hasher *hasher_new(struct event_base *base, hasher_done_cb done, void *ctx) {
    struct hasher *h = xcalloc(1, sizeof *h);
    h->cb = done;
    h->ctx = ctx;
    if (pipe2(h->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    h->done_event = event_new(base, h->wake_pipe[0], EV_READ | EV_PERSIST, hasher_done, h);
    if (!h->done_event || event_add(h->done_event, NULL) != 0 ||
        pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
        if (h->done_event)
            event_free(h->done_event);
        close(h->wake_pipe[0]);
        close(h->wake_pipe[1]);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->wake);
        free(h);
        return NULL;
    }
    return h;
}

void hasher_submit(struct hasher *h, uint64_t conn_id, const char *password, const char *salt,
                   int iterations) {
    struct hash_job *job = xcalloc(1, sizeof *job);
    job->conn_id = conn_id;
    job->password = xstrdup(password);
    strncpy(job->salt, salt, sizeof job->salt - 1);
    job->iterations = iterations;
    pthread_mutex_lock(&h->lock);
    if (h->todo_tail)
        h->todo_tail->next = job;
    else
        h->todo = job;
    h->todo_tail = job;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

void hasher_free(struct hasher *h) {
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    for (struct hash_job *j = h->todo, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    for (struct hash_job *j = h->done, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    event_free(h->done_event);
    close(h->wake_pipe[0]);
    close(h->wake_pipe[1]);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->wake);
    free(h);
}
