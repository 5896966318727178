/* libcurl transport for fabrikctl's HTTP API calls. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Responses larger than this are cut off; list pages are at most 500 jobs. */
#define MAX_RESPONSE_BYTES (64u << 20)

struct buffer {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata) {
    struct buffer *buf = userdata;
    size_t n = size * nmemb;
    if (buf->len + n > MAX_RESPONSE_BYTES)
        return 0;
    char *grown = realloc(buf->data, buf->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + buf->len, ptr, n);
    buf->data = grown;
    buf->len += n;
    buf->data[buf->len] = '\0';
    return n;
}

char *http_escape(const char *text) {
    char *escaped = curl_easy_escape(NULL, text, 0);
    char *copy = escaped ? strdup(escaped) : NULL;
    curl_free(escaped);
    return copy;
}

/* Checks that base_url parses and uses http or https, because libcurl would otherwise try
 * any scheme it supports (an ftp:// URL waits for an FTP greeting). */
static enum http_status check_base_url(struct http_client *http) {
    CURLU *url = curl_url();
    char *scheme = NULL;
    CURLUcode rc = url ? curl_url_set(url, CURLUPART_URL, http->base_url, 0) : CURLUE_OUT_OF_MEMORY;
    if (rc == CURLUE_OK)
        rc = curl_url_get(url, CURLUPART_SCHEME, &scheme, 0);
    enum http_status status = HTTP_OK;
    if (rc != CURLUE_OK) {
        snprintf(http->error, sizeof http->error,
                 "invalid web API URL \"%s\": %s; use http://HOST:PORT or https://HOST:PORT",
                 http->base_url, curl_url_strerror(rc));
        status = HTTP_URL_ERROR;
    } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(http->error, sizeof http->error,
                 "invalid web API URL \"%s\": the scheme must be http or https, not %s",
                 http->base_url, scheme);
        status = HTTP_URL_ERROR;
    }
    curl_free(scheme);
    curl_url_cleanup(url);
    return status;
}

/* Describes a failed transfer; a few libcurl messages are reworded for fabrik's web port. */
static void describe_transfer_error(struct http_client *http, CURLcode rc) {
    switch (rc) {
    case CURLE_GOT_NOTHING:
        snprintf(http->error, sizeof http->error,
                 "the web API at %s closed the connection without a response; the server may "
                 "be stopping", http->base_url);
        break;
    case CURLE_COULDNT_CONNECT:
        snprintf(http->error, sizeof http->error,
                 "cannot connect to the web API at %s: %s; queues, list and backup need "
                 "fabrik's web port (--web-url or FABRIK_WEB_URL)",
                 http->base_url, curl_easy_strerror(rc));
        break;
    default:
        snprintf(http->error, sizeof http->error, "cannot reach the web API at %s: %s",
                 http->base_url, curl_easy_strerror(rc));
    }
}

static enum http_status classify(struct http_client *http, long code, json_t *doc) {
    if (code >= 200 && code < 300)
        return HTTP_OK;
    if (code == 401) {
        snprintf(http->error, sizeof http->error, "%s",
                 http->password ? "the web API rejected the password (HTTP 401); check "
                                  "--password or the password in the URL"
                                : "the web API requires a password (HTTP 401); put it in the "
                                  "URL (tcp://:PASSWORD@host:7419) or pass --password");
        return HTTP_AUTH_ERROR;
    }
    const char *message = json_string_value(json_object_get(doc, "error"));
    snprintf(http->error, sizeof http->error, "HTTP %ld: %s", code,
             message ? message : "the web server returned an error");
    return code == 401 ? HTTP_AUTH_ERROR : HTTP_SERVER_ERROR;
}

enum http_status http_request(struct http_client *http, const char *path, const json_t *body,
                              json_t **out) {
    *out = NULL;
    enum http_status status = check_base_url(http);
    if (status != HTTP_OK)
        return status;
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(http->error, sizeof http->error, "cannot initialise libcurl");
        return HTTP_CONNECT_ERROR;
    }
    int base_len = (int)strlen(http->base_url);
    while (base_len > 0 && http->base_url[base_len - 1] == '/')
        base_len--;
    size_t url_len = (size_t)base_len + strlen(path) + 1;
    char *url = malloc(url_len);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct buffer response = {0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(url, url_len, "%.*s%s", base_len, http->base_url, path);

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT,
                     http->timeout_seconds > 0 ? http->timeout_seconds : HTTP_TIMEOUT_SECONDS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (http->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, http->ca_file);
    if (http->password) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, "fabrikctl");
        curl_easy_setopt(curl, CURLOPT_PASSWORD, http->password);
    }
    if (payload)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);

    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        describe_transfer_error(http, rc);
        status = HTTP_CONNECT_ERROR;
    } else {
        long code = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        json_t *doc = response.data ? json_loads(response.data, 0, NULL) : NULL;
        status = classify(http, code, doc);
        if (status == HTTP_OK && !doc) {
            snprintf(http->error, sizeof http->error, "the web API at %s did not return JSON",
                     http->base_url);
            status = HTTP_SERVER_ERROR;
        }
        if (status == HTTP_OK)
            *out = doc;
        else
            json_decref(doc);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(response.data);
    free(payload);
    free(url);
    return status;
}
