/* Cron expressions, next-run times in a time zone, and [[cron]] entries. */
#include "ent/cron.h"

#include <dirent.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "config/toml.h"
#include "core/job.h"
#include "util/buf.h"

#define SEARCH_DAYS (5 * 366)

/* ---- expressions ------------------------------------------------------------------------ */

struct field_spec {
    const char *name;
    int min, max;
    const char *const *names;   /* names for min.. (NULL: numbers only) */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct field_spec fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names},
};

/* Reads a number or a name at *p; returns -1 when there is neither. */
static int read_value(const char **p, const struct field_spec *f) {
    if (**p >= '0' && **p <= '9') {
        int v = 0, digits = 0;
        while (**p >= '0' && **p <= '9' && digits < 4) {
            v = v * 10 + (**p - '0');
            (*p)++;
            digits++;
        }
        return v;
    }
    for (int i = 0; f->names && f->names[i]; i++) {
        if (strncasecmp(*p, f->names[i], 3) == 0) {
            *p += 3;
            return f->min + i;
        }
    }
    return -1;
}

/* Parses one comma-separated item ("*", "a", "a-b", any of them with "/step") into bits. */
static int parse_item(const char *p, const char *end, const struct field_spec *f, uint64_t *bits,
                      char *err, size_t errlen) {
    int lo, hi;
    bool star = false;
    if (p < end && *p == '*') {
        lo = f->min;
        hi = f->max == 7 ? 6 : f->max;
        star = true;
        p++;
    } else {
        lo = read_value(&p, f);
        if (lo < 0)
            goto bad;
        hi = lo;
        if (p < end && *p == '-') {
            p++;
            hi = read_value(&p, f);
            if (hi < 0)
                goto bad;
        }
    }
    int step = 1;
    if (p < end && *p == '/') {
        p++;
        const char *digits = p;
        step = read_value(&p, &(struct field_spec){f->name, 0, 0, NULL});
        if (step < 1 || p == digits) {
            snprintf(err, errlen, "%s: a step /n needs a whole number n of at least 1", f->name);
            return -1;
        }
        if (!star && hi == lo)
            hi = f->max == 7 ? 6 : f->max;   /* "a/n" means from a to the end */
    }
    if (p != end)
        goto bad;
    if (lo > hi) {
        snprintf(err, errlen, "%s: the range %d-%d runs backwards; write the smaller value first",
                 f->name, lo, hi);
        return -1;
    }
    if (lo < f->min || hi > f->max) {
        snprintf(err, errlen, "%s: %d is outside %d-%d", f->name, lo < f->min ? lo : hi, f->min,
                 f->max);
        return -1;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << (f->max == 7 && v == 7 ? 0 : v);
    return 0;

bad:
    snprintf(err, errlen, "%s: \"%.*s\" is not a number, a name, *, a range a-b or a step /n",
             f->name, (int)(end - p > 20 ? 20 : end - p), p);
    return -1;
}

static int parse_field(const char *text, size_t len, int index, uint64_t *bits, char *err,
                       size_t errlen) {
    const struct field_spec *f = &fields[index];
    *bits = 0;
    const char *p = text, *end = text + len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if (item_end == p) {
            snprintf(err, errlen, "%s: empty list item", f->name);
            return -1;
        }
        char why[160];
        if (parse_item(p, item_end, f, bits, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

static const struct {
    const char *name;
    const char *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    while (*text == ' ' || *text == '\t')
        text++;
    if (text[0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
            size_t n = strlen(macros[i].name);
            if (strncmp(text, macros[i].name, n) == 0 && strspn(text + n, " \t") == strlen(text + n))
                return cron_parse(macros[i].expansion, out, err, errlen);
        }
        snprintf(err, errlen,
                 "unknown macro \"%.20s\"; use @yearly, @monthly, @weekly, @daily or @hourly",
                 text);
        return -1;
    }
    uint64_t bits[5];
    const char *p = text;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == 0) {
            snprintf(err, errlen,
                     "expected 5 fields (minute hour day-of-month month day-of-week), found %d",
                     i);
            return -1;
        }
        if (parse_field(p, len, i, &bits[i], err, errlen) != 0)
            return -1;
        if (i == 2)
            out->any_day = len == 1 && p[0] == '*';
        if (i == 4)
            out->any_weekday = len == 1 && p[0] == '*';
        p += len;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p) {
        snprintf(err, errlen, "expected 5 fields, found more: \"%.20s\"", p);
        return -1;
    }
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->weekdays = (uint8_t)bits[4];
    return 0;
}

/* ---- time zones --------------------------------------------------------------------------- */

bool cron_zone_exists(const char *tz) {
    if (!tz || !tz[0] || strcmp(tz, "UTC") == 0)
        return true;
    if (tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 200)
        return false;
    char path[256];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
    /* The tz directory also holds tables such as zone.tab; a zone file starts with "TZif". */
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool zone = f && fread(magic, 1, sizeof magic, f) == sizeof magic &&
                memcmp(magic, "TZif", 4) == 0;
    if (f)
        fclose(f);
    return zone;
}

/* The process time zone is global state: cron switches it only around its own calls, on the
 * loop thread, and puts the previous value back. */
struct zone_guard {
    char *saved;
    bool switched;   /* TZ differed and was set; re-reading zone files is the slow part */
};

static void zone_enter(const char *tz, struct zone_guard *g) {
    const char *current = getenv("TZ");
    const char *wanted = tz && tz[0] ? tz : "UTC";
    g->switched = !current || strcmp(current, wanted) != 0;
    g->saved = current ? xstrdup(current) : NULL;
    if (g->switched) {
        setenv("TZ", wanted, 1);
        tzset();
    }
}

static void zone_leave(struct zone_guard *g) {
    if (g->switched) {
        if (g->saved)
            setenv("TZ", g->saved, 1);
        else
            unsetenv("TZ");
        tzset();
    }
    free(g->saved);
}

/* Converts a wall time (as seconds of a clock that has no DST) to UTC in the current zone.
 * Returns 1 with *utc set (the earlier instant when the wall time occurs twice), or 0 when the
 * wall time does not exist (a DST gap). */
static int wall_to_utc(time_t wall, time_t *utc) {
    struct tm want;
    gmtime_r(&wall, &want);
    int found = 0;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm = want;
        tm.tm_isdst = dst;
        time_t t = mktime(&tm);
        struct tm back;
        if (t == (time_t)-1 || !localtime_r(&t, &back))
            continue;
        if (back.tm_hour == want.tm_hour && back.tm_min == want.tm_min &&
            back.tm_mday == want.tm_mday && back.tm_mon == want.tm_mon &&
            back.tm_year == want.tm_year && (!found || t < *utc)) {
            *utc = t;
            found = 1;
        }
    }
    return found;
}

static bool day_matches(const struct cron_expr *e, const struct tm *day) {
    if (!(e->months & (1u << (day->tm_mon + 1))))
        return false;
    bool dom = (e->days >> day->tm_mday) & 1u;
    bool dow = (e->weekdays >> day->tm_wday) & 1u;
    if (e->any_day && e->any_weekday)
        return true;
    if (e->any_day)
        return dow;
    if (e->any_weekday)
        return dom;
    return dom || dow;   /* both restricted: either matches, as in every cron since Vixie's */
}

/* Resolves candidate wall time w: its UTC instant, or for a DST gap the first minute after
 * the gap. */
static time_t resolve_wall(time_t wall) {
    time_t utc = (time_t)-1;
    for (int k = 0; k < 24 * 60; k++) {
        if (wall_to_utc(wall + 60 * k, &utc))
            return utc;
    }
    return (time_t)-1;
}

double cron_next(const struct cron_expr *e, const char *tz, double after) {
    struct zone_guard guard;
    zone_enter(tz, &guard);

    time_t start = (time_t)floor(after);
    struct tm local;
    localtime_r(&start, &local);
    local.tm_sec = 0;
    /* Wall-clock arithmetic runs on a DST-free clock: the wall fields read as UTC. */
    time_t wall = timegm(&local) + 60;
    time_t day = wall - wall % 86400;
    double result = 0;

    for (int d = 0; d < SEARCH_DAYS && result == 0; d++, day += 86400) {
        struct tm date;
        gmtime_r(&day, &date);
        if (!day_matches(e, &date))
            continue;
        for (int h = 0; h < 24 && result == 0; h++) {
            if (!((e->hours >> h) & 1u))
                continue;
            for (int m = 0; m < 60; m++) {
                if (!((e->minutes >> m) & 1ULL))
                    continue;
                time_t candidate = day + h * 3600 + m * 60;
                if (candidate < wall)
                    continue;
                time_t utc = resolve_wall(candidate);
                if (utc != (time_t)-1 && (double)utc > after) {
                    result = (double)utc;
                    break;
                }
            }
        }
    }
    zone_leave(&guard);
    return result;
}

/* ---- entries ------------------------------------------------------------------------------ */

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names the file of every [[cron]] entry: the config module merges the conf.d files into one
 * document, so each file is parsed again on its own to count its entries. sources[i] gets
 * "<path> entry <k>" (owned); an unreadable layout leaves the generic "conf.d entry <i>". */
static void name_sources(const char *conf_dir, char **sources, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "conf.d entry %zu", i + 1);
        sources[i] = xstrdup(text);
    }
    DIR *dir = conf_dir ? opendir(conf_dir) : NULL;
    if (!dir)
        return;
    char **names = NULL;
    size_t count = 0;
    struct dirent *ent;
    while ((ent = readdir(dir))) {
        size_t len = strlen(ent->d_name);
        if (ent->d_name[0] != '.' && len > 5 && strcmp(ent->d_name + len - 5, ".toml") == 0) {
            names = xrealloc(names, (count + 1) * sizeof *names);
            names[count++] = xstrdup(ent->d_name);
        }
    }
    closedir(dir);
    qsort(names, count, sizeof *names, compare_names);

    size_t index = 0;
    for (size_t f = 0; f < count; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", conf_dir, names[f]);
        FILE *file = fopen(path, "rb");
        struct buf content = {0};
        char chunk[4096];
        size_t got;
        while (file && (got = fread(chunk, 1, sizeof chunk, file)) > 0)
            buf_append(&content, chunk, got);
        if (file)
            fclose(file);
        struct toml_doc *doc = NULL;
        struct toml_error terr;
        json_t *json = NULL;
        if (toml_doc_parse(content.data ? content.data : "", content.len, &doc, &terr) == 0)
            json = toml_doc_to_json(doc, &terr);
        size_t entries = json_array_size(json_object_get(json, "cron"));
        for (size_t k = 0; k < entries && index < n; k++, index++) {
            free(sources[index]);
            char text[4200];
            snprintf(text, sizeof text, "%s entry %zu", path, k + 1);
            sources[index] = xstrdup(text);
        }
        json_decref(json);
        toml_doc_free(doc);
        buf_free(&content);
        free(names[f]);
    }
    free(names);
}

static int check_entry_keys(const json_t *entry, const char *source, char *err, size_t errlen) {
    static const char *const known[] = {"schedule", "job", "timezone", "catch_up"};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)entry, key, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            snprintf(err, errlen,
                     "%s: unknown key \"%s\"; [[cron]] takes schedule, timezone, catch_up and a "
                     "[cron.job] table",
                     source, key);
            return -1;
        }
    }
    return 0;
}

/* Builds the job template from [cron.job]; checks types and runs the push validation on a
 * sample so an invalid queue name fails at start-up, not at 3 a.m. */
static json_t *parse_template(const json_t *job, const char *source, char *err, size_t errlen) {
    if (!json_is_object(job)) {
        snprintf(err, errlen, "%s: missing [cron.job] table with at least type = \"JobType\"",
                 source);
        return NULL;
    }
    static const struct {
        const char *key;
        json_type type;
        const char *as;
    } keys[] = {
        {"type", JSON_STRING, "jobtype"},  {"queue", JSON_STRING, "queue"},
        {"args", JSON_ARRAY, "args"},      {"retry", JSON_INTEGER, "retry"},
        {"reserve_for", JSON_INTEGER, "reserve_for"}, {"custom", JSON_OBJECT, "custom"},
        {"priority", JSON_INTEGER, "priority"},
    };
    json_t *tpl = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)job, key, v) {
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(keys[i].key, key) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0]) {
            snprintf(err, errlen,
                     "%s: job.%s is not a job field; use type, queue, args, retry, reserve_for, "
                     "priority or custom",
                     source, key);
            goto fail;
        }
        if (json_typeof(v) != keys[i].type) {
            snprintf(err, errlen, "%s: job.%s has the wrong type", source, key);
            goto fail;
        }
        json_object_set(tpl, keys[i].as, v);
    }
    if (!json_is_string(json_object_get(tpl, "jobtype"))) {
        snprintf(err, errlen, "%s: job.type is required, as in type = \"NightlyReport\"", source);
        goto fail;
    }
    if (!json_object_get(tpl, "args"))
        json_object_set_new(tpl, "args", json_array());

    json_t *sample = json_deep_copy(tpl);
    json_object_set_new(sample, "jid", json_string("cron-validation"));
    struct job_info info;
    char why[256];
    int rc = job_prepare(sample, 0, &info, why, sizeof why);
    json_decref(sample);
    if (rc != 0) {
        snprintf(err, errlen, "%s: job: %s", source, why);
        goto fail;
    }
    return tpl;

fail:
    json_decref(tpl);
    return NULL;
}

static void entry_key(const json_t *entry, char out[65]) {
    char *text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_Digest(text, strlen(text), digest, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    free(text);
}

static int load_entry(const json_t *entry, const char *source, struct cron_entry *out,
                      char *err, size_t errlen) {
    if (!json_is_object(entry)) {
        snprintf(err, errlen, "%s: [[cron]] entries must be tables", source);
        return -1;
    }
    if (check_entry_keys(entry, source, err, errlen) != 0)
        return -1;
    const char *schedule = json_string_value(json_object_get(entry, "schedule"));
    if (!schedule) {
        snprintf(err, errlen, "%s: schedule is required, as in schedule = \"*/5 * * * *\"",
                 source);
        return -1;
    }
    char why[200];
    if (cron_parse(schedule, &out->expr, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: schedule \"%s\": %s", source, schedule, why);
        return -1;
    }
    const json_t *tz = json_object_get(entry, "timezone");
    if (tz && (!json_is_string(tz) || !cron_zone_exists(json_string_value(tz)))) {
        snprintf(err, errlen,
                 "%s: timezone \"%.64s\" is not a zone of the tz database; use a name such as "
                 "\"America/New_York\" or \"UTC\"",
                 source, json_is_string(tz) ? json_string_value(tz) : "(not a string)");
        return -1;
    }
    const char *catch_up = json_string_value(json_object_get(entry, "catch_up"));
    if (json_object_get(entry, "catch_up") &&
        (!catch_up || (strcmp(catch_up, "once") != 0 && strcmp(catch_up, "skip") != 0))) {
        snprintf(err, errlen, "%s: catch_up must be \"once\" or \"skip\"", source);
        return -1;
    }
    out->job = parse_template(json_object_get(entry, "job"), source, err, errlen);
    if (!out->job)
        return -1;
    out->schedule = xstrdup(schedule);
    out->timezone = tz && json_string_value(tz)[0] ? xstrdup(json_string_value(tz)) : NULL;
    out->catch_up = catch_up && strcmp(catch_up, "skip") == 0 ? CRON_CATCH_UP_SKIP
                                                              : CRON_CATCH_UP_ONCE;
    out->source = xstrdup(source);
    entry_key(entry, out->key);
    return 0;
}

int cron_load(const json_t *document, const char *conf_dir, struct cron_set *out, char *err,
              size_t errlen) {
    memset(out, 0, sizeof *out);
    const json_t *list = document ? json_object_get(document, "cron") : NULL;
    if (!list)
        return 0;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "cron must be an array of tables: write [[cron]], not [cron]");
        return -1;
    }
    size_t n = json_array_size(list);
    char **sources = xcalloc(n ? n : 1, sizeof *sources);
    name_sources(conf_dir, sources, n);
    out->entries = xcalloc(n ? n : 1, sizeof *out->entries);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = load_entry(json_array_get(list, i), sources[i], &out->entries[i], err, errlen);
        if (rc == 0)
            out->n++;
    }
    for (size_t i = 0; i < n; i++)
        free(sources[i]);
    free(sources);
    if (rc != 0)
        cron_set_free(out);
    return rc;
}

json_t *cron_make_job(const struct cron_entry *entry) {
    json_t *job = json_deep_copy(entry->job);
    unsigned char bytes[12];
    char jid[25];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
        for (size_t i = 0; i < sizeof bytes; i++)
            bytes[i] = (unsigned char)rand();
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(jid + 2 * i, 3, "%02x", bytes[i]);
    json_object_set_new(job, "jid", json_string(jid));
    return job;
}

void cron_set_free(struct cron_set *set) {
    for (size_t i = 0; i < set->n; i++) {
        struct cron_entry *e = &set->entries[i];
        free(e->schedule);
        free(e->timezone);
        free(e->source);
        json_decref(e->job);
    }
    free(set->entries);
    memset(set, 0, sizeof *set);
}
