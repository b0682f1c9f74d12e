/* Just enough JSON for an agent: read the members of an object, and build
 * text with escaped strings. No dependencies beyond libc. */
#ifndef HELLO_JSON_H
#define HELLO_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    JSON_MISSING, /* the object has no such member */
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_COMPOSITE, /* an object or an array (not decoded) */
} json_kind_t;

/* One member's value. `string` is owned (NUL-terminated, `string_len`
 * bytes of UTF-8 which may contain NUL); free it with json_value_free.
 * `raw` is a composite's own text, `raw_len` bytes inside the text read
 * (not owned: copy it before that text goes). */
typedef struct {
    json_kind_t kind;
    bool boolean;
    double number;
    char *string;
    size_t string_len;
    const char *raw;
    size_t raw_len;
} json_value_t;

typedef enum {
    JSON_OK,
    JSON_NOT_AN_OBJECT, /* the text is not one well-formed JSON object */
    JSON_NO_MEMORY,
} json_status_t;

/* Finds member `key` of the JSON object `text[0..len)`; the last one wins
 * when a key repeats, as in JavaScript and Python. */
json_status_t json_object_get(const char *text, size_t len, const char *key, json_value_t *out);

void json_value_free(json_value_t *value);

/* A growable text. After a failed allocation `failed` is set and every
 * later append does nothing: check it once, at the end. */
typedef struct {
    char *ptr;
    size_t len;
    size_t cap;
    bool failed;
} json_buf_t;

void json_buf_add(json_buf_t *buf, const char *bytes, size_t len);
void json_buf_addf(json_buf_t *buf, const char *format, ...) __attribute__((format(printf, 2, 3)));
void json_buf_vaddf(json_buf_t *buf, const char *format, va_list args);
/* Appends `bytes` as a JSON string, quoted and escaped. */
void json_buf_add_string(json_buf_t *buf, const char *bytes, size_t len);
void json_buf_free(json_buf_t *buf);

#endif
