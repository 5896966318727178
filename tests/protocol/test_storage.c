/* Storage failures: with the data directory on a small tmpfs that is filled up, a PUSH that
 * cannot be stored gets -ERR (never +OK), due scheduled jobs are neither lost nor doubled,
 * and everything works again once space returns. Needs permission to mount a tmpfs (root);
 * otherwise the cases are skipped. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMPFS_BYTES (16 * 1024 * 1024)

struct full_disk {
    char *mount_dir;
    char *data_dir;
    char *filler;
};

/* Mounts a fresh tmpfs below the case directory, or skips the case. */
static void mount_small_disk(struct full_disk *disk) {
    th_require_private_server();
    disk->mount_dir = th_fmt("%s/mnt", th_case_dir());
    if (mkdir(disk->mount_dir, 0700) != 0) {
        th_fail("cannot create %s: %s", disk->mount_dir, strerror(errno));
    }
    char *options = th_fmt("size=%d,mode=0700", TMPFS_BYTES);
    if (mount("tmpfs", disk->mount_dir, "tmpfs", 0, options) != 0) {
        th_skip("cannot mount a tmpfs at %s (%s); run as root to test full disks",
                disk->mount_dir, strerror(errno));
    }
    disk->data_dir = th_fmt("%s/data", disk->mount_dir);
    disk->filler = th_fmt("%s/filler", disk->mount_dir);
    if (mkdir(disk->data_dir, 0700) != 0) {
        th_fail("cannot create %s: %s", disk->data_dir, strerror(errno));
    }
}

/* Writes a filler file until the filesystem reports ENOSPC, then gives back room_bytes so the
 * database can still grow a little before writes start to fail. */
static void fill_disk(struct full_disk *disk, off_t room_bytes) {
    int fd = open(disk->filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        th_fail("cannot create %s: %s", disk->filler, strerror(errno));
    }
    static char block[4096];
    memset(block, 'f', sizeof block);
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0 && errno == ENOSPC) {
            break;
        }
        if (n < 0) {
            th_fail("writing %s failed: %s", disk->filler, strerror(errno));
        }
        if (n < (ssize_t)sizeof block) {
            break;
        }
    }
    /* Fill the last partial block too. */
    while (write(fd, "f", 1) == 1) {
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (room_bytes > 0 && ftruncate(fd, size > room_bytes ? size - room_bytes : 0) != 0) {
        th_fail("cannot shrink %s: %s", disk->filler, strerror(errno));
    }
    close(fd);
}

static void free_disk(struct full_disk *disk) {
    if (unlink(disk->filler) != 0) {
        th_fail("cannot remove %s: %s", disk->filler, strerror(errno));
    }
}

static char *payload(size_t len) {
    char *s = th_keep(malloc(len + 1));
    for (size_t i = 0; i < len; i++) {
        s[i] = (char)('a' + (i * 7) % 26);
    }
    s[len] = '\0';
    return s;
}

enum push_result { PUSH_OK, PUSH_ERROR };

static void push_fails_cleanly_when_disk_full(void) {
    struct full_disk disk;
    mount_small_disk(&disk);
    struct th_server_opts opts = { .data_dir = disk.data_dir };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);
    TH_PUSH(c, "job-before-full", NULL);

    /* About 30 of the 32 KiB jobs still fit, and the pushes after them must fail. */
    fill_disk(&disk, 1024 * 1024);
    enum { PUSHES = 400 };
    enum push_result results[PUSHES];
    int errors = 0;
    char *arg = payload(32 * 1024);
    for (int i = 0; i < PUSHES; i++) {
        const struct th_reply *r = th_cmd(c, "PUSH {\"jid\":\"job-full-%04d\",\"jobtype\":\"T\","
                                             "\"args\":[\"%s\"]}", i, arg);
        if (r->kind == TH_SIMPLE && strcmp(r->line, "+OK") == 0) {
            results[i] = PUSH_OK;
        } else if (r->kind == TH_ERROR) {
            /* A failed write is reported as a storage error, not as a bad request. */
            if (strncmp(r->line, "-ERR storage", 12) != 0) {
                th_fail("PUSH %d on a full disk answered %s; expected -ERR storage ...", i,
                        r->line);
            }
            results[i] = PUSH_ERROR;
            errors++;
        } else {
            th_fail("PUSH %d on a full disk answered %s", i, r->line);
        }
    }
    fprintf(stderr, "%d of %d pushes on the full disk were rejected\n", errors, PUSHES);
    TH_CHECK(errors > 0);
    TH_CHECK(errors < PUSHES);
    TH_CHECK(th_server_log_contains(srv, "level=error"));
    TH_CHECK(th_server_alive(srv));
    TH_CHECK(th_cmd(c, "INFO")->kind == TH_BULK);

    free_disk(&disk);
    TH_PUSH(c, "job-after-free", NULL);

    /* After a crash exactly the acknowledged jobs are there: none lost, none extra. */
    th_server_kill(srv);
    th_close(c);
    th_server_restart(srv);
    c = th_producer(srv);
    int acknowledged = 0;
    for (int i = 0; i < PUSHES; i++) {
        acknowledged += results[i] == PUSH_OK;
    }
    TH_EQ_INT(TH_QUEUE_SIZE(c, "default"), acknowledged + 2);
    TH_FETCH_JID(c, "default", "job-before-full");
    for (int i = 0; i < PUSHES; i++) {
        if (results[i] == PUSH_OK) {
            TH_FETCH_JID(c, "default", th_fmt("job-full-%04d", i));
            TH_OK(c, "ACK {\"jid\":\"job-full-%04d\"}", i);
        }
    }
    TH_FETCH_JID(c, "default", "job-after-free");
}

static void due_jobs_kept_while_disk_full(void) {
    struct full_disk disk;
    mount_small_disk(&disk);
    struct th_server_opts opts = { .data_dir = disk.data_dir };
    struct th_server *srv = th_server_start(&opts);
    struct th_conn *c = th_producer(srv);

    enum { JOBS = 20 };
    char at[64];
    th_format_time(TH_SERVER_TIME(c) + 10, at, sizeof at);
    char *arg = payload(16 * 1024);
    for (int i = 0; i < JOBS; i++) {
        TH_OK(c, "PUSH {\"jid\":\"job-due-%04d\",\"jobtype\":\"T\",\"args\":[\"%s\"],"
                 "\"queue\":\"due\",\"at\":\"%s\"}", i, arg, at);
    }
    fill_disk(&disk, 0);
    /* Use up whatever room the database still had. */
    for (int i = 0; i < 200; i++) {
        th_cmd(c, "PUSH {\"jid\":\"job-filler-%04d\",\"jobtype\":\"T\",\"args\":[\"%s\"],"
                  "\"queue\":\"filler\"}", i, arg);
    }

    /* Moving the due jobs may fail to commit now, which DEBUG CLOCK may report. */
    const struct th_reply *r = th_cmd(c, "DEBUG CLOCK 15");
    TH_CHECK(r->kind == TH_SIMPLE || strncmp(r->line, "-ERR storage", 12) == 0);
    TH_CHECK(th_server_alive(srv));
    json_t *info = TH_INFO(c);
    long long scheduled = TH_JINT(info, "faktory.sets.scheduled");
    json_t *due = json_object_get(th_json_get(info, "faktory.queues"), "due");
    long long queued = due ? json_integer_value(due) : 0;
    fprintf(stderr, "while full: %lld scheduled, %lld queued\n", scheduled, queued);
    TH_EQ_INT(scheduled + queued, JOBS);

    free_disk(&disk);
    TH_CLOCK(c, 120);
    info = TH_INFO(c);
    TH_EQ_INT(TH_JINT(info, "faktory.sets.scheduled"), 0);
    TH_EQ_INT(TH_JINT(info, "faktory.queues.due"), JOBS);
    bool seen[JOBS] = { false };
    for (int i = 0; i < JOBS; i++) {
        json_t *job = TH_FETCH(c, "due");
        TH_CHECK(job != NULL);
        int index = atoi(TH_JSTR(job, "jid") + strlen("job-due-"));
        TH_RANGE(index, 0, JOBS - 1);
        TH_CHECK(!seen[index]);
        seen[index] = true;
    }
    TH_EXPECT(c, "$-1", "FETCH due");
}

int main(int argc, char **argv) {
    static const struct th_case cases[] = {
        TH_CASE(push_fails_cleanly_when_disk_full),
        TH_CASE(due_jobs_kept_while_disk_full),
    };
    return th_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
