/* C interface to the TOML parser (tomlplusplus, C++17): parses one TOML document, converts it
 * to jansson values and reports source lines for error messages. The config module is its
 * only caller. No C++ exception crosses this interface. */
#ifndef FABRIK_CONFIG_TOML_H
#define FABRIK_CONFIG_TOML_H

#include <jansson.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A parsed TOML document; opaque to C. */
struct toml_doc;

/* Location and description of a parse or conversion failure. Lines and columns count from 1,
 * and 0 means unknown. */
struct toml_error {
    int line;
    int column;
    int previous_line;  /* for a redefined table: the line of its first definition, else 0 */
    char message[256];
};

/* Parses len bytes of text (need not be NUL-terminated) as one TOML document. Returns 0 and
 * stores a new document in *out (caller frees it with toml_doc_free), or -1 with err filled. */
int toml_doc_parse(const char *text, size_t len, struct toml_doc **out, struct toml_error *err);

/* Converts the document to a new JSON object (caller owns the reference): tables become
 * objects, arrays arrays, dates and times RFC 3339 strings. Returns NULL with err filled for a
 * float that JSON cannot hold (inf, nan) or when memory runs out. */
json_t *toml_doc_to_json(const struct toml_doc *doc, struct toml_error *err);

/* Returns the line where table.key is defined, or where table is when key is NULL; 0 when
 * the document has no such node. */
int toml_doc_line(const struct toml_doc *doc, const char *table, const char *key);

/* Releases a document; accepts NULL. */
void toml_doc_free(struct toml_doc *doc);

#ifdef __cplusplus
}
#endif

#endif
