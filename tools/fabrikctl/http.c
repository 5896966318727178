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

static enum http_status classify(struct http_client *http, long code, json_t *doc) {
    if (code >= 200 && code < 300)
        return HTTP_OK;
    const char *message = json_string_value(json_object_get(doc, "error"));
    snprintf(http->error, sizeof http->error, "HTTP %ld: %s", code,
             message ? message : "the web server returned an error");
    return code == 401 ? HTTP_AUTH_ERROR : HTTP_SERVER_ERROR;
}

enum http_status http_request(struct http_client *http, const char *path, const json_t *body,
                              json_t **out) {
    *out = NULL;
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(http->error, sizeof http->error, "cannot initialise libcurl");
        return HTTP_CONNECT_ERROR;
    }
    size_t url_len = strlen(http->base_url) + strlen(path) + 1;
    char *url = malloc(url_len);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct buffer response = {0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(url, url_len, "%s%s", http->base_url, path);

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

    enum http_status status;
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        snprintf(http->error, sizeof http->error, "cannot reach the web API at %s: %s",
                 http->base_url, curl_easy_strerror(rc));
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
