/* Producer commands and the job builder. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct fabrik_job {
    json_t *doc;
};

/* ---- jobs -------------------------------------------------------------------------------- */

void fabrik_jid_generate(char out[FABRIK_JID_LEN + 1]) {
    for (int i = 0; i < FABRIK_JID_LEN; i += 16) {
        uint64_t r = fc_random64();
        for (int j = 0; j < 16 && i + j < FABRIK_JID_LEN; j++) {
            out[i + j] = "0123456789abcdef"[r & 15];
            r >>= 4;
        }
    }
    out[FABRIK_JID_LEN] = '\0';
}

struct fabrik_job *fabrik_job_new(const char *jobtype) {
    if (!jobtype || !*jobtype)
        return NULL;
    struct fabrik_job *job = malloc(sizeof *job);
    if (!job)
        return NULL;
    char jid[FABRIK_JID_LEN + 1];
    fabrik_jid_generate(jid);
    job->doc = json_pack("{s:s, s:s, s:s, s:[]}", "jid", jid, "jobtype", jobtype, "queue",
                         "default", "args");
    if (!job->doc) {
        free(job);
        return NULL;
    }
    return job;
}

void fabrik_job_free(struct fabrik_job *job) {
    if (!job)
        return;
    json_decref(job->doc);
    free(job);
}

static int set_new(struct fabrik_job *job, const char *key, json_t *value) {
    if (!job || !value)
        return FABRIK_EINVAL;
    return json_object_set_new(job->doc, key, value) == 0 ? 0 : FABRIK_ENOMEM;
}

static json_t *parse_json(const char *text) {
    return text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
}

int fabrik_job_set_jid(struct fabrik_job *job, const char *jid) {
    return set_new(job, "jid", jid && *jid ? json_string(jid) : NULL);
}

int fabrik_job_set_queue(struct fabrik_job *job, const char *queue) {
    return set_new(job, "queue", queue && *queue ? json_string(queue) : NULL);
}

int fabrik_job_set_args(struct fabrik_job *job, const char *args_json) {
    json_t *args = parse_json(args_json);
    if (!json_is_array(args)) {
        json_decref(args);
        return FABRIK_EINVAL;
    }
    return set_new(job, "args", args);
}

static int append_arg(struct fabrik_job *job, json_t *value) {
    if (!job || !value) {
        json_decref(value);
        return FABRIK_EINVAL;
    }
    return json_array_append_new(json_object_get(job->doc, "args"), value) == 0 ? 0
                                                                                : FABRIK_ENOMEM;
}

int fabrik_job_add_arg_string(struct fabrik_job *job, const char *value) {
    return append_arg(job, value ? json_string(value) : NULL);
}

int fabrik_job_add_arg_int(struct fabrik_job *job, long long value) {
    return append_arg(job, json_integer((json_int_t)value));
}

int fabrik_job_add_arg_json(struct fabrik_job *job, const char *value_json) {
    return append_arg(job, parse_json(value_json));
}

int fabrik_job_set_priority(struct fabrik_job *job, int priority) {
    return set_new(job, "priority", json_integer(priority));
}

int fabrik_job_set_retry(struct fabrik_job *job, int retry) {
    return set_new(job, "retry", json_integer(retry));
}

int fabrik_job_set_reserve_for(struct fabrik_job *job, int seconds) {
    return set_new(job, "reserve_for", seconds > 0 ? json_integer(seconds) : NULL);
}

int fabrik_job_set_at(struct fabrik_job *job, const char *at) {
    return set_new(job, "at", at && *at ? json_string(at) : NULL);
}

int fabrik_job_set_in(struct fabrik_job *job, double seconds) {
    if (!isfinite(seconds))
        return FABRIK_EINVAL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double at = (double)now.tv_sec + (double)now.tv_nsec / 1e9 + seconds;
    time_t whole = (time_t)floor(at);
    long nanos = (long)((at - floor(at)) * 1e9);
    struct tm tm;
    gmtime_r(&whole, &tm);
    char text[64];
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof text - n, ".%09ldZ", nanos);
    return fabrik_job_set_at(job, text);
}

int fabrik_job_set_custom(struct fabrik_job *job, const char *key, const char *value_json) {
    if (!job || !key)
        return FABRIK_EINVAL;
    json_t *value = parse_json(value_json);
    if (!value)
        return FABRIK_EINVAL;
    json_t *custom = json_object_get(job->doc, "custom");
    if (!json_is_object(custom)) {
        custom = json_object();
        json_object_set_new(job->doc, "custom", custom);
    }
    return json_object_set_new(custom, key, value) == 0 ? 0 : FABRIK_ENOMEM;
}

int fabrik_job_set_field(struct fabrik_job *job, const char *key, const char *value_json) {
    if (!key)
        return FABRIK_EINVAL;
    return set_new(job, key, parse_json(value_json));
}

const char *fabrik_job_jid(const struct fabrik_job *job) {
    return job ? json_string_value(json_object_get(job->doc, "jid")) : NULL;
}

char *fabrik_job_to_json(const struct fabrik_job *job) {
    return job ? json_dumps(job->doc, JSON_COMPACT) : NULL;
}

/* ---- producer commands ------------------------------------------------------------------- */

/* Sends "<verb> <argument>". */
static int call_ok_arg(struct fabrik_client *c, const char *verb, const char *arg) {
    if (!c || !arg)
        return FABRIK_EINVAL;
    char *line = fc_printf("%s %s", verb, arg);
    if (!line)
        return FABRIK_ENOMEM;
    int rc = fc_call_ok(c, line);
    free(line);
    return rc;
}

static int call_string_arg(struct fabrik_client *c, const char *verb, const char *arg,
                           char **out) {
    if (!c || !arg)
        return FABRIK_EINVAL;
    char *line = fc_printf("%s %s", verb, arg);
    if (!line)
        return FABRIK_ENOMEM;
    int rc = fc_call_string(c, line, out);
    free(line);
    return rc;
}

/* Checks that text is one JSON value of the given jansson type, so that a malformed argument
 * fails here with FABRIK_EINVAL instead of reaching the server. Re-encodes it compactly. */
static int compact_json(struct fabrik_client *c, const char *text, json_type type, char **out) {
    json_error_t error;
    json_t *value = text ? json_loads(text, JSON_DECODE_ANY, &error) : NULL;
    if (!value)
        return fc_set_error(c, FABRIK_EINVAL, "invalid JSON: %s", text ? error.text : "NULL");
    if (json_typeof(value) != type) {
        json_decref(value);
        return fc_set_error(c, FABRIK_EINVAL, "invalid JSON: expected an %s",
                            type == JSON_ARRAY ? "array" : "object");
    }
    *out = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    return *out ? 0 : fc_set_error(c, FABRIK_ENOMEM, "out of memory");
}

int fabrik_push(struct fabrik_client *client, const char *job_json) {
    if (!client)
        return FABRIK_EINVAL;
    char *body;
    int rc = compact_json(client, job_json, JSON_OBJECT, &body);
    if (rc != 0)
        return rc;
    rc = call_ok_arg(client, "PUSH", body);
    free(body);
    return rc;
}

int fabrik_push_job(struct fabrik_client *client, const struct fabrik_job *job) {
    if (!client || !job)
        return FABRIK_EINVAL;
    char *body = fabrik_job_to_json(job);
    if (!body)
        return FABRIK_ENOMEM;
    int rc = call_ok_arg(client, "PUSH", body);
    free(body);
    return rc;
}

void fabrik_push_errors_free(struct fabrik_push_error *errors, size_t count) {
    for (size_t i = 0; errors && i < count; i++) {
        free(errors[i].jid);
        free(errors[i].message);
    }
    free(errors);
}

static int collect_push_errors(struct fabrik_client *c, const char *reply,
                               struct fabrik_push_error **errors, size_t *count) {
    json_t *map = json_loads(reply, 0, NULL);
    if (!json_is_object(map)) {
        json_decref(map);
        return fc_set_error(c, FABRIK_EPROTOCOL, "PUSHB reply is not a JSON object");
    }
    size_t n = json_object_size(map);
    struct fabrik_push_error *list = calloc(n ? n : 1, sizeof *list);
    if (!list) {
        json_decref(map);
        return FABRIK_ENOMEM;
    }
    size_t i = 0;
    const char *jid;
    json_t *value;
    json_object_foreach(map, jid, value) {
        const char *message = json_is_string(value) ? json_string_value(value) : "";
        list[i].jid = strdup(jid);
        list[i].message = strdup(message);
        list[i].code = strncmp(message, "NOTUNIQUE", 9) == 0 ? FABRIK_ENOTUNIQUE
                                                              : FABRIK_ESERVER;
        i++;
    }
    json_decref(map);
    if (errors)
        *errors = list;
    else
        fabrik_push_errors_free(list, n);
    if (count)
        *count = n;
    return 0;
}

int fabrik_push_bulk(struct fabrik_client *client, const char *jobs_json,
                     struct fabrik_push_error **errors, size_t *error_count) {
    if (errors)
        *errors = NULL;
    if (error_count)
        *error_count = 0;
    if (!client)
        return FABRIK_EINVAL;
    char *body;
    int rc = compact_json(client, jobs_json, JSON_ARRAY, &body);
    if (rc != 0)
        return rc;
    char *reply = NULL;
    rc = call_string_arg(client, "PUSHB", body, &reply);
    free(body);
    if (rc == 0)
        rc = collect_push_errors(client, reply, errors, error_count);
    free(reply);
    return rc;
}

int fabrik_info(struct fabrik_client *client, char **json) {
    if (!client || !json)
        return FABRIK_EINVAL;
    return fc_call_string(client, "INFO", json);
}

int fabrik_flush(struct fabrik_client *client) {
    return client ? fc_call_ok(client, "FLUSH") : FABRIK_EINVAL;
}

int fabrik_mutate(struct fabrik_client *client, const char *cmd, const char *target,
                  const char *filter_json) {
    if (!client || !cmd || !target)
        return FABRIK_EINVAL;
    json_t *doc = json_pack("{s:s, s:s}", "cmd", cmd, "target", target);
    if (filter_json) {
        json_t *filter = json_loads(filter_json, 0, NULL);
        if (!json_is_object(filter)) {
            json_decref(filter);
            json_decref(doc);
            return fc_set_error(client, FABRIK_EINVAL, "the MUTATE filter must be a JSON "
                                                       "object");
        }
        json_object_set_new(doc, "filter", filter);
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!body)
        return FABRIK_ENOMEM;
    int rc = call_ok_arg(client, "MUTATE", body);
    free(body);
    return rc;
}

/* Builds "QUEUE <sub> name1 name2 ..." after checking that no name contains a space. */
static char *queue_line(struct fabrik_client *c, const char *sub, const char *const *queues,
                        size_t count) {
    if (!queues || count == 0) {
        fc_set_error(c, FABRIK_EINVAL, "at least one queue name is required");
        return NULL;
    }
    size_t len = strlen(sub) + 8;
    for (size_t i = 0; i < count; i++) {
        if (!queues[i] || !*queues[i] || strpbrk(queues[i], " \r\n")) {
            fc_set_error(c, FABRIK_EINVAL, "invalid queue name \"%s\"",
                         queues[i] ? queues[i] : "(null)");
            return NULL;
        }
        len += strlen(queues[i]) + 1;
    }
    char *line = malloc(len);
    if (!line)
        return NULL;
    int n = snprintf(line, len, "QUEUE %s", sub);
    for (size_t i = 0; i < count; i++)
        n += snprintf(line + n, len - (size_t)n, " %s", queues[i]);
    return line;
}

static int queue_ok(struct fabrik_client *c, const char *sub, const char *const *queues,
                    size_t count) {
    if (!c)
        return FABRIK_EINVAL;
    char *line = queue_line(c, sub, queues, count);
    if (!line)
        return FABRIK_EINVAL;
    int rc = fc_call_ok(c, line);
    free(line);
    return rc;
}

int fabrik_queue_pause(struct fabrik_client *client, const char *const *queues, size_t count) {
    return queue_ok(client, "PAUSE", queues, count);
}

int fabrik_queue_resume(struct fabrik_client *client, const char *const *queues, size_t count) {
    return queue_ok(client, "RESUME", queues, count);
}

int fabrik_queue_remove(struct fabrik_client *client, const char *const *queues, size_t count) {
    return queue_ok(client, "REMOVE", queues, count);
}

int fabrik_queue_latency(struct fabrik_client *client, const char *const *queues, size_t count,
                         char **json) {
    if (!client || !json)
        return FABRIK_EINVAL;
    char *line = queue_line(client, "LATENCY", queues, count);
    if (!line)
        return FABRIK_EINVAL;
    int rc = fc_call_string(client, line, json);
    free(line);
    return rc;
}

/* ---- batches and tracking ---------------------------------------------------------------- */

static bool valid_token(const char *s) {
    return s && *s && !strpbrk(s, " \r\n");
}

int fabrik_batch_new(struct fabrik_client *client, const char *batch_json, char **bid) {
    if (!client || !bid)
        return FABRIK_EINVAL;
    char *body;
    int rc = compact_json(client, batch_json, JSON_OBJECT, &body);
    if (rc != 0)
        return rc;
    rc = call_string_arg(client, "BATCH NEW", body, bid);
    free(body);
    return rc;
}

int fabrik_batch_open(struct fabrik_client *client, const char *bid, char **bid_out) {
    if (!client || !valid_token(bid))
        return FABRIK_EINVAL;
    return call_string_arg(client, "BATCH OPEN", bid, bid_out);
}

int fabrik_batch_commit(struct fabrik_client *client, const char *bid) {
    if (!client || !valid_token(bid))
        return FABRIK_EINVAL;
    return call_ok_arg(client, "BATCH COMMIT", bid);
}

int fabrik_batch_status(struct fabrik_client *client, const char *bid, char **json) {
    if (!client || !valid_token(bid) || !json)
        return FABRIK_EINVAL;
    return call_string_arg(client, "BATCH STATUS", bid, json);
}

int fabrik_track_set(struct fabrik_client *client, const char *jid, int percent,
                     const char *desc, const char *reserve_until) {
    if (!client || !jid || !*jid || percent < -1 || percent > 100)
        return FABRIK_EINVAL;
    json_t *doc = json_pack("{s:s}", "jid", jid);
    if (percent >= 0)
        json_object_set_new(doc, "percent", json_integer(percent));
    if (desc)
        json_object_set_new(doc, "desc", json_string(desc));
    if (reserve_until)
        json_object_set_new(doc, "reserve_until", json_string(reserve_until));
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!body)
        return FABRIK_ENOMEM;
    int rc = call_ok_arg(client, "TRACK SET", body);
    free(body);
    return rc;
}

int fabrik_track_get(struct fabrik_client *client, const char *jid, char **json) {
    if (!client || !valid_token(jid) || !json)
        return FABRIK_EINVAL;
    return call_string_arg(client, "TRACK GET", jid, json);
}
