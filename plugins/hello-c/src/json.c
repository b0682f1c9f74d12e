#include "json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper nesting is refused rather than risk the (small) C stack. */
#define MAX_DEPTH 64

typedef struct {
    const char *p;
    const char *end;
    json_status_t status;
} reader_t;

static void skip_space(reader_t *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) {
        r->p++;
    }
}

static bool eat(reader_t *r, char c) {
    skip_space(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

static bool eat_word(reader_t *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) {
        return false;
    }
    r->p += n;
    return true;
}

static int hex4(const char *p, const char *end) {
    if (end - p < 4) {
        return -1;
    }
    int value = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (digit < 0) {
            return -1;
        }
        value = value * 16 + digit;
    }
    return value;
}

static void add_utf8(json_buf_t *out, uint32_t cp) {
    char bytes[4];
    size_t n;
    if (cp < 0x80) {
        bytes[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        bytes[0] = (char)(0xC0 | cp >> 6);
        bytes[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        bytes[0] = (char)(0xE0 | cp >> 12);
        bytes[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        bytes[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        bytes[0] = (char)(0xF0 | cp >> 18);
        bytes[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        bytes[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        bytes[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    json_buf_add(out, bytes, n);
}

/* Reads a string; decodes it into `out` unless `out` is NULL. */
static bool read_string(reader_t *r, json_buf_t *out) {
    if (!eat(r, '"')) {
        return false;
    }
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p++;
        if (c == '"') {
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c != '\\') {
            if (out) {
                json_buf_add(out, (const char *)&c, 1);
            }
            continue;
        }
        if (r->p >= r->end) {
            return false;
        }
        char decoded;
        switch (*r->p++) {
        case '"': decoded = '"'; break;
        case '\\': decoded = '\\'; break;
        case '/': decoded = '/'; break;
        case 'b': decoded = '\b'; break;
        case 'f': decoded = '\f'; break;
        case 'n': decoded = '\n'; break;
        case 'r': decoded = '\r'; break;
        case 't': decoded = '\t'; break;
        case 'u': decoded = 0; break;
        default: return false;
        }
        if (decoded) {
            if (out) {
                json_buf_add(out, &decoded, 1);
            }
            continue;
        }
        int unit = hex4(r->p, r->end);
        if (unit < 0) {
            return false;
        }
        r->p += 4;
        uint32_t cp = (uint32_t)unit;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!eat_word(r, "\\u")) {
                return false;
            }
            int low = hex4(r->p, r->end);
            if (low < 0xDC00 || low > 0xDFFF) {
                return false;
            }
            r->p += 4;
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
        }
        if (out) {
            add_utf8(out, cp);
        }
    }
    return false;
}

static bool digits(reader_t *r) {
    const char *start = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        r->p++;
    }
    return r->p > start;
}

static bool read_number(reader_t *r, double *out) {
    skip_space(r);
    const char *start = r->p;
    eat_word(r, "-");
    if (eat_word(r, "0")) {
        /* a leading zero stands alone */
    } else if (r->p >= r->end || *r->p < '1' || *r->p > '9' || !digits(r)) {
        return false;
    }
    if (eat_word(r, ".") && !digits(r)) {
        return false;
    }
    if (eat_word(r, "e") || eat_word(r, "E")) {
        if (!eat_word(r, "+")) {
            eat_word(r, "-");
        }
        if (!digits(r)) {
            return false;
        }
    }
    if (out) {
        size_t n = (size_t)(r->p - start);
        char *copy = malloc(n + 1);
        if (!copy) {
            r->status = JSON_NO_MEMORY;
            return false;
        }
        memcpy(copy, start, n);
        copy[n] = '\0';
        *out = strtod(copy, NULL);
        free(copy);
    }
    return true;
}

/* Reads any value; decodes scalars into `out` unless `out` is NULL. */
static bool read_value(reader_t *r, json_value_t *out, int depth) {
    json_value_t ignored;
    if (!out) {
        out = &ignored;
    }
    memset(out, 0, sizeof *out);
    skip_space(r);
    if (r->p >= r->end) {
        return false;
    }
    char c = *r->p;
    if (c == '"') {
        if (out == &ignored) {
            return read_string(r, NULL);
        }
        json_buf_t text = {0};
        bool ok = read_string(r, &text);
        json_buf_add(&text, "", 1); /* the terminating NUL */
        if (!ok || text.failed) {
            r->status = ok ? JSON_NO_MEMORY : r->status;
            json_buf_free(&text);
            return false;
        }
        out->kind = JSON_STRING;
        out->string = text.ptr;
        out->string_len = text.len - 1;
        return true;
    }
    if (c == '{' || c == '[') {
        if (depth >= MAX_DEPTH) {
            return false;
        }
        char close = c == '{' ? '}' : ']';
        const char *start = r->p++;
        out->kind = JSON_COMPOSITE;
        bool closed = eat(r, close);
        if (!closed) {
            do {
                if (c == '{' && (!read_string(r, NULL) || !eat(r, ':'))) {
                    return false;
                }
                if (!read_value(r, NULL, depth + 1)) {
                    return false;
                }
            } while (eat(r, ','));
            closed = eat(r, close);
        }
        out->raw = start;
        out->raw_len = (size_t)(r->p - start);
        return closed;
    }
    if (eat_word(r, "true")) {
        out->kind = JSON_BOOL;
        out->boolean = true;
        return true;
    }
    if (eat_word(r, "false")) {
        out->kind = JSON_BOOL;
        return true;
    }
    if (eat_word(r, "null")) {
        out->kind = JSON_NULL;
        return true;
    }
    out->kind = JSON_NUMBER;
    return read_number(r, &out->number);
}

json_status_t json_object_get(const char *text, size_t len, const char *key, json_value_t *out) {
    reader_t r = {text, text + len, JSON_OK};
    memset(out, 0, sizeof *out);
    out->kind = JSON_MISSING;
    if (!eat(&r, '{')) {
        return JSON_NOT_AN_OBJECT;
    }
    bool ok = true;
    if (!eat(&r, '}')) {
        do {
            json_buf_t name = {0};
            ok = read_string(&r, &name) && eat(&r, ':');
            bool wanted = ok && !name.failed && name.len == strlen(key) && memcmp(name.ptr, key, name.len) == 0;
            r.status = name.failed ? JSON_NO_MEMORY : r.status;
            json_buf_free(&name);
            if (!ok) {
                break;
            }
            json_value_t value;
            ok = read_value(&r, wanted ? &value : NULL, 1);
            if (ok && wanted) {
                json_value_free(out);
                *out = value;
            }
        } while (ok && eat(&r, ','));
        ok = ok && eat(&r, '}');
    }
    skip_space(&r);
    if (r.status != JSON_OK || !ok || r.p != r.end) {
        json_value_free(out);
        return r.status != JSON_OK ? r.status : JSON_NOT_AN_OBJECT;
    }
    return JSON_OK;
}

void json_value_free(json_value_t *value) {
    free(value->string);
    memset(value, 0, sizeof *value);
    value->kind = JSON_MISSING;
}

static bool reserve(json_buf_t *buf, size_t extra) {
    if (buf->failed) {
        return false;
    }
    if (buf->len + extra <= buf->cap) {
        return true;
    }
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < buf->len + extra) {
        cap *= 2;
    }
    char *grown = realloc(buf->ptr, cap);
    if (!grown) {
        buf->failed = true;
        return false;
    }
    buf->ptr = grown;
    buf->cap = cap;
    return true;
}

void json_buf_add(json_buf_t *buf, const char *bytes, size_t len) {
    if (reserve(buf, len)) {
        memcpy(buf->ptr + buf->len, bytes, len);
        buf->len += len;
    }
}

void json_buf_vaddf(json_buf_t *buf, const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    /* one more byte for the NUL vsnprintf writes, which is not kept */
    if (n < 0 || !reserve(buf, (size_t)n + 1)) {
        buf->failed = true;
    } else {
        vsnprintf(buf->ptr + buf->len, (size_t)n + 1, format, again);
        buf->len += (size_t)n;
    }
    va_end(again);
}

void json_buf_addf(json_buf_t *buf, const char *format, ...) {
    va_list args;
    va_start(args, format);
    json_buf_vaddf(buf, format, args);
    va_end(args);
}

void json_buf_add_string(json_buf_t *buf, const char *bytes, size_t len) {
    json_buf_add(buf, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c == '"' || c == '\\') {
            json_buf_addf(buf, "\\%c", c);
        } else if (c < 0x20) {
            json_buf_addf(buf, "\\u%04x", c);
        } else {
            json_buf_add(buf, (const char *)&c, 1);
        }
    }
    json_buf_add(buf, "\"", 1);
}

void json_buf_free(json_buf_t *buf) {
    free(buf->ptr);
    *buf = (json_buf_t){0};
}
