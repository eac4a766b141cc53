/* safetensors reader and atomic writer. The header is a small, fixed kind of JSON, read
 * here by a strict recursive-descent parser that names the tensor at fault. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "clcl/safetensors.h"

/* Larger headers are refused, as the reference implementation does. */
#define MAX_HEADER_BYTES (100u << 20)

typedef struct {
    char *key, *value;
} meta_pair;

typedef struct {
    clcl_safetensors_entry e;
    uint64_t begin, end;
    void *own; /* an aligned copy when the entry's bytes were not aligned in the file */
} entry_slot;

struct clcl_safetensors {
    char *source;
    unsigned char *data; /* the tensor bytes (everything after the header) */
    size_t data_size;
    entry_slot *entries;
    int n, cap;
    meta_pair *meta;
    int n_meta, cap_meta;
};

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    {"F32", 4}, {"I64", 8}, {"F64", 8},  {"F16", 2},     {"BF16", 2},
    {"I32", 4}, {"U32", 4}, {"U64", 8},  {"I16", 2},     {"U16", 2},
    {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1},
};

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void *grow(void *array, int *cap, int need, size_t elem) {
    if (need <= *cap)
        return array;
    int cap2 = *cap ? 2 * *cap : 32;
    while (cap2 < need)
        cap2 *= 2;
    void *grown = realloc(array, (size_t)cap2 * elem);
    if (grown)
        *cap = cap2;
    return grown;
}

/* ---- the JSON cursor -------------------------------------------------------------------- */

typedef struct {
    const char *start, *p, *end;
    const char *what; /* the file, for messages */
} cursor;

static clcl_status syntax(const cursor *c, const char *expected) {
    return clcl_fail(CLCL_ERR_FORMAT,
                     "%s: safetensors header is not valid JSON: expected %s at header byte %ld",
                     c->what, expected, (long)(c->p - c->start));
}

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int peek(cursor *c, char ch) {
    skip_ws(c);
    return c->p < c->end && *c->p == ch;
}

static clcl_status expect_char(cursor *c, char ch) {
    char text[4] = {'\'', ch, '\'', 0};
    if (!peek(c, ch))
        return syntax(c, text);
    c->p++;
    return CLCL_OK;
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int read_hex4(cursor *c, unsigned *out) {
    unsigned v = 0;
    if (c->end - c->p < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(c->p[i]);
        if (h < 0)
            return 0;
        v = v * 16 + (unsigned)h;
    }
    c->p += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(char *dst, unsigned cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A \u escape (the cursor after the 'u'), with a surrogate pair when there is one. */
static int read_unicode_escape(cursor *c, unsigned *cp) {
    unsigned lo;
    if (!read_hex4(c, cp))
        return 0;
    if (*cp >= 0xdc00 && *cp < 0xe000)
        return 0;
    if (*cp < 0xd800 || *cp >= 0xdc00)
        return 1;
    if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
        return 0;
    c->p += 2;
    if (!read_hex4(c, &lo) || lo < 0xdc00 || lo >= 0xe000)
        return 0;
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 1;
}

static char escape_char(char ch) {
    switch (ch) {
        case '"':
        case '\\':
        case '/':
            return ch;
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        default:
            return 0;
    }
}

/* A JSON string into a malloc'ed, NUL-terminated copy. */
static clcl_status parse_string(cursor *c, char **out) {
    clcl_status st = expect_char(c, '"');
    if (st != CLCL_OK)
        return st;
    char *s = malloc((size_t)(c->end - c->p) + 1); /* an escape never grows the text */
    size_t n = 0;
    if (!s)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory reading the header", c->what);
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20) {
            free(s);
            return syntax(c, "no raw control character inside a string");
        }
        if (ch != '\\') {
            s[n++] = (char)ch;
            continue;
        }
        if (c->p >= c->end)
            break;
        char esc = *c->p++;
        unsigned cp;
        if (esc == 'u') {
            if (!read_unicode_escape(c, &cp)) {
                free(s);
                return syntax(c, "a valid \\u escape");
            }
            n += put_utf8(s + n, cp);
        } else if (escape_char(esc)) {
            s[n++] = escape_char(esc);
        } else {
            free(s);
            return syntax(c, "a valid escape after '\\'");
        }
    }
    if (c->p >= c->end) {
        free(s);
        return syntax(c, "the end of a string");
    }
    c->p++;
    s[n] = 0;
    if (strlen(s) != n) {
        free(s);
        return syntax(c, "no \\u0000 inside a string");
    }
    *out = s;
    return CLCL_OK;
}

/* A non-negative JSON integer that fits in 64 bits. */
static clcl_status parse_uint(cursor *c, const char *field, const char *tensor, uint64_t *out) {
    uint64_t v = 0;
    skip_ws(c);
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': %s value does not fit in 64 bits",
                             c->what, tensor, field);
        v = v * 10 + d;
        c->p++;
    }
    if (c->p == start || (c->p < c->end && strchr(".eE-+", *c->p)) ||
        (start < c->end && *start == '-'))
        return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': %s must hold non-negative integers",
                         c->what, tensor, field);
    if (c->p - start > 1 && *start == '0')
        return syntax(c, "an integer without leading zeros");
    *out = v;
    return CLCL_OK;
}

/* [a, b, ...] of non-negative integers, at most `max` of them. */
static clcl_status parse_uint_array(cursor *c, const char *field, const char *tensor, int max,
                                    uint64_t *values, int *n) {
    clcl_status st = expect_char(c, '[');
    if (st != CLCL_OK)
        return st;
    *n = 0;
    if (peek(c, ']')) {
        c->p++;
        return CLCL_OK;
    }
    for (;;) {
        if (*n == max)
            return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': %s has more than %d values",
                             c->what, tensor, field, max);
        st = parse_uint(c, field, tensor, &values[(*n)++]);
        if (st != CLCL_OK)
            return st;
        if (peek(c, ']')) {
            c->p++;
            return CLCL_OK;
        }
        st = expect_char(c, ',');
        if (st != CLCL_OK)
            return st;
    }
}

/* ---- header contents -------------------------------------------------------------------- */

static int dtype_lookup(const char *name, size_t *size) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (!strcmp(dtype_table[i].name, name)) {
            *size = dtype_table[i].size;
            return 1;
        }
    return 0;
}

static const char *dtype_name_of(clcl_dtype d) {
    return d == CLCL_DTYPE_F32 ? "F32" : d == CLCL_DTYPE_I64 ? "I64" : "?";
}

static clcl_status parse_metadata(cursor *c, clcl_safetensors *st) {
    clcl_status s = expect_char(c, '{');
    if (s != CLCL_OK)
        return s;
    if (peek(c, '}')) {
        c->p++;
        return CLCL_OK;
    }
    for (;;) {
        char *key = NULL, *value = NULL;
        s = parse_string(c, &key);
        if (s == CLCL_OK)
            s = expect_char(c, ':');
        if (s == CLCL_OK && !peek(c, '"'))
            s = clcl_fail(CLCL_ERR_FORMAT, "%s: __metadata__ value of '%s' must be a string",
                          c->what, key);
        if (s == CLCL_OK)
            s = parse_string(c, &value);
        meta_pair *grown =
            s == CLCL_OK ? grow(st->meta, &st->cap_meta, st->n_meta + 1, sizeof *st->meta) : NULL;
        if (s == CLCL_OK && !grown)
            s = clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory reading the header", c->what);
        if (s != CLCL_OK) {
            free(key);
            free(value);
            return s;
        }
        st->meta = grown;
        st->meta[st->n_meta++] = (meta_pair){key, value};
        if (peek(c, '}')) {
            c->p++;
            return CLCL_OK;
        }
        s = expect_char(c, ',');
        if (s != CLCL_OK)
            return s;
    }
}

/* Fills the slot's dtype, shape, count and bytes, and checks them against the offsets. */
static clcl_status finish_entry(cursor *c, entry_slot *slot, char *dtype, const uint64_t *shape,
                                int ndim, const uint64_t *offsets, int n_offsets) {
    clcl_safetensors_entry *e = &slot->e;
    size_t elem;
    if (!dtype_lookup(dtype, &elem))
        return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", c->what, e->name,
                         dtype);
    e->dtype = !strcmp(dtype, "F32")   ? CLCL_DTYPE_F32
               : !strcmp(dtype, "I64") ? CLCL_DTYPE_I64
                                       : CLCL_DTYPE_OTHER;
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (!strcmp(dtype_table[i].name, dtype))
            e->dtype_name = dtype_table[i].name;
    if (n_offsets != 2 || offsets[1] < offsets[0])
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets must be [begin, end] with begin <= end",
                         c->what, e->name);
    uint64_t count = 1;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] > INT64_MAX || (shape[i] && count > UINT64_MAX / 16 / shape[i]))
            return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': shape is too large", c->what,
                             e->name);
        e->shape[i] = (int64_t)shape[i];
        count *= shape[i];
    }
    e->count = (size_t)count;
    e->bytes = (size_t)count * elem;
    slot->begin = offsets[0];
    slot->end = offsets[1];
    if (offsets[1] - offsets[0] != e->bytes)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: tensor '%s': shape holds %zu bytes of %s but data_offsets [%llu, "
                         "%llu] span %llu",
                         c->what, e->name, e->bytes, dtype, (unsigned long long)offsets[0],
                         (unsigned long long)offsets[1],
                         (unsigned long long)(offsets[1] - offsets[0]));
    return CLCL_OK;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} for the tensor `name`. */
static clcl_status parse_entry(cursor *c, entry_slot *slot) {
    const char *name = slot->e.name;
    uint64_t shape[CLCL_SAFETENSORS_MAX_DIMS], offsets[2];
    int ndim = -1, n_offsets = -1;
    char *dtype = NULL, *key = NULL;
    clcl_status s = expect_char(c, '{');

    while (s == CLCL_OK) {
        s = parse_string(c, &key);
        if (s == CLCL_OK)
            s = expect_char(c, ':');
        if (s != CLCL_OK)
            break;
        int dup = 0;
        if (!strcmp(key, "dtype")) {
            dup = dtype != NULL;
            if (!dup)
                s = parse_string(c, &dtype);
        } else if (!strcmp(key, "shape")) {
            dup = ndim >= 0;
            if (!dup)
                s = parse_uint_array(c, "shape", name, CLCL_SAFETENSORS_MAX_DIMS, shape, &ndim);
        } else if (!strcmp(key, "data_offsets")) {
            dup = n_offsets >= 0;
            if (!dup)
                s = parse_uint_array(c, "data_offsets", name, 2, offsets, &n_offsets);
        } else {
            s = clcl_fail(CLCL_ERR_FORMAT,
                          "%s: tensor '%s': unexpected key \"%s\" (expected dtype, shape, "
                          "data_offsets)",
                          c->what, name, key);
        }
        if (dup)
            s = clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': key \"%s\" given twice", c->what, name,
                          key);
        free(key);
        key = NULL;
        if (s != CLCL_OK || peek(c, '}'))
            break;
        s = expect_char(c, ',');
    }
    if (s == CLCL_OK)
        s = expect_char(c, '}');
    if (s == CLCL_OK && (!dtype || ndim < 0 || n_offsets < 0))
        s = clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s': missing %s", c->what, name,
                      !dtype     ? "dtype"
                      : ndim < 0 ? "shape"
                                 : "data_offsets");
    if (s == CLCL_OK)
        s = finish_entry(c, slot, dtype, shape, ndim, offsets, n_offsets);
    free(dtype);
    return s;
}

static clcl_status parse_header(cursor *c, clcl_safetensors *st) {
    clcl_status s = expect_char(c, '{');
    int seen_meta = 0;
    if (s != CLCL_OK)
        return s;
    if (peek(c, '}')) {
        c->p++;
        return CLCL_OK;
    }
    for (;;) {
        char *name = NULL;
        CLCL_TRY(parse_string(c, &name));
        if ((s = expect_char(c, ':')) != CLCL_OK) {
            free(name);
            return s;
        }
        if (!strcmp(name, "__metadata__")) {
            free(name);
            if (seen_meta++)
                return clcl_fail(CLCL_ERR_FORMAT, "%s: __metadata__ given twice", c->what);
            CLCL_TRY(parse_metadata(c, st));
        } else {
            entry_slot *grown = grow(st->entries, &st->cap, st->n + 1, sizeof *st->entries);
            if (!grown) {
                free(name);
                return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory reading the header",
                                 c->what);
            }
            st->entries = grown;
            entry_slot *slot = &st->entries[st->n++];
            memset(slot, 0, sizeof *slot);
            slot->e.name = name;
            CLCL_TRY(parse_entry(c, slot));
        }
        if (peek(c, '}')) {
            c->p++;
            break;
        }
        CLCL_TRY(expect_char(c, ','));
    }
    skip_ws(c);
    if (c->p != c->end)
        return syntax(c, "only spaces after the header's closing '}'");
    return CLCL_OK;
}

/* ---- layout checks ---------------------------------------------------------------------- */

static int by_offset(const void *a, const void *b) {
    const entry_slot *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sorts by offset and checks that the tensors tile the data exactly; that names are
 * unique; then points each entry at its (aligned) bytes. */
static clcl_status check_layout(clcl_safetensors *st) {
    uint64_t expected = 0;
    if (st->n > 1)
        qsort(st->entries, (size_t)st->n, sizeof *st->entries, by_offset);
    for (int i = 0; i < st->n; i++) {
        entry_slot *s = &st->entries[i];
        if (s->end > st->data_size)
            return clcl_fail(CLCL_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%llu, %llu] run past the %zu bytes "
                             "of tensor data",
                             st->source, s->e.name, (unsigned long long)s->begin,
                             (unsigned long long)s->end, st->data_size);
        if (s->begin != expected)
            return clcl_fail(CLCL_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%llu, %llu] %s the previous tensor "
                             "(which ends at %llu)",
                             st->source, s->e.name, (unsigned long long)s->begin,
                             (unsigned long long)s->end,
                             s->begin < expected ? "overlap" : "leave a hole after",
                             (unsigned long long)expected);
        expected = s->end;
    }
    if (expected != st->data_size)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: the tensors cover %llu bytes but the file holds %zu after the "
                         "header",
                         st->source, (unsigned long long)expected, st->data_size);
    for (int i = 0; i < st->n; i++)
        for (int j = i + 1; j < st->n; j++)
            if (!strcmp(st->entries[i].e.name, st->entries[j].e.name))
                return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s' appears twice", st->source,
                                 st->entries[i].e.name);
    for (int i = 0; i < st->n; i++) {
        entry_slot *s = &st->entries[i];
        const unsigned char *src = st->data + s->begin;
        if (s->e.bytes && ((uintptr_t)src % 8) != 0) {
            s->own = malloc(s->e.bytes);
            if (!s->own)
                return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", st->source);
            memcpy(s->own, src, s->e.bytes);
            src = s->own;
        }
        s->e.data = src;
    }
    return CLCL_OK;
}

/* ---- reading ---------------------------------------------------------------------------- */

static clcl_status reader_new(const char *what, clcl_safetensors **out) {
    *out = NULL;
    if (!host_is_little_endian())
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: safetensors needs a little-endian host", what);
    clcl_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->source = strdup(what))) {
        free(st);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", what);
    }
    *out = st;
    return CLCL_OK;
}

static uint64_t read_le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static clcl_status check_header_length(const char *what, uint64_t n, uint64_t size) {
    if (size < 8)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: %llu bytes is too short for a safetensors file (8-byte header "
                         "length first)",
                         what, (unsigned long long)size);
    if (n < 2 || n > size - 8 || n > MAX_HEADER_BYTES)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: bad safetensors header length %llu (the file holds %llu bytes "
                         "after the length; at most %u allowed): not a safetensors file?",
                         what, (unsigned long long)n, (unsigned long long)(size - 8),
                         MAX_HEADER_BYTES);
    return CLCL_OK;
}

static clcl_status parse_json(clcl_safetensors *st, const char *json, size_t n) {
    cursor c = {json, json, json + n, st->source};
    if (json[0] != '{')
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: safetensors header must start with '{' (found byte 0x%02x)",
                         st->source, (unsigned char)json[0]);
    CLCL_TRY(parse_header(&c, st));
    return check_layout(st);
}

clcl_status clcl_safetensors_parse(const void *bytes, size_t size, const char *what,
                                   clcl_safetensors **out) {
    const unsigned char *b = bytes;
    clcl_safetensors *st;
    CLCL_TRY(reader_new(what, &st));
    uint64_t n = size >= 8 ? read_le64(b) : 0;
    clcl_status s = check_header_length(what, n, size);
    if (s == CLCL_OK) {
        st->data_size = size - 8 - (size_t)n;
        st->data = malloc(st->data_size ? st->data_size : 1);
        if (!st->data)
            s = clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", what);
    }
    if (s == CLCL_OK) {
        memcpy(st->data, b + 8 + n, st->data_size);
        s = parse_json(st, (const char *)b + 8, (size_t)n);
    }
    if (s != CLCL_OK) {
        clcl_safetensors_free(st);
        return s;
    }
    *out = st;
    return CLCL_OK;
}

static clcl_status read_exact(FILE *f, void *dst, size_t n, const char *path) {
    if (n && fread(dst, 1, n, f) != n)
        return clcl_fail(CLCL_ERR_IO, "%s: read failed: %s", path,
                         ferror(f) ? strerror(errno) : "unexpected end of file");
    return CLCL_OK;
}

static clcl_status read_file(FILE *f, const char *path, clcl_safetensors *st) {
    struct stat sb;
    unsigned char len[8];
    if (fstat(fileno(f), &sb) != 0)
        return clcl_fail(CLCL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size;
    uint64_t n = 0;
    if (size >= 8) {
        CLCL_TRY(read_exact(f, len, 8, path));
        n = read_le64(len);
    }
    CLCL_TRY(check_header_length(path, n, size));

    /* The header, then the tensor bytes into their own (aligned) buffer. */
    char *json = malloc((size_t)n);
    st->data_size = (size_t)(size - 8 - n);
    st->data = malloc(st->data_size ? st->data_size : 1);
    clcl_status s =
        json && st->data ? CLCL_OK : clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", path);
    if (s == CLCL_OK)
        s = read_exact(f, json, (size_t)n, path);
    if (s == CLCL_OK)
        s = read_exact(f, st->data, st->data_size, path);
    if (s == CLCL_OK)
        s = parse_json(st, json, (size_t)n);
    free(json);
    return s;
}

clcl_status clcl_safetensors_read(const char *path, clcl_safetensors **out) {
    clcl_safetensors *st;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return clcl_fail(CLCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    clcl_status s = reader_new(path, &st);
    if (s == CLCL_OK)
        s = read_file(f, path, st);
    fclose(f);
    if (s != CLCL_OK) {
        clcl_safetensors_free(st);
        return s;
    }
    *out = st;
    return CLCL_OK;
}

void clcl_safetensors_free(clcl_safetensors *st) {
    if (!st)
        return;
    for (int i = 0; i < st->n; i++) {
        free((char *)st->entries[i].e.name);
        free(st->entries[i].own);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->entries);
    free(st->meta);
    free(st->data);
    free(st->source);
    free(st);
}

const char *clcl_safetensors_source(const clcl_safetensors *st) {
    return st->source;
}

int clcl_safetensors_count(const clcl_safetensors *st) {
    return st->n;
}

const clcl_safetensors_entry *clcl_safetensors_at(const clcl_safetensors *st, int i) {
    return i >= 0 && i < st->n ? &st->entries[i].e : NULL;
}

const clcl_safetensors_entry *clcl_safetensors_find(const clcl_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->entries[i].e.name, name))
            return &st->entries[i].e;
    return NULL;
}

const char *clcl_safetensors_metadata(const clcl_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key))
            return st->meta[i].value;
    return NULL;
}

static void shape_text64(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used +=
            (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

clcl_status clcl_safetensors_expect_f32(const clcl_safetensors *st, const char *name, int ndim,
                                        const int *shape, const clcl_safetensors_entry **out) {
    char have[128], want[128];
    int64_t want64[CLCL_SAFETENSORS_MAX_DIMS];
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
    *out = NULL;
    if (!e)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: no tensor '%s'", st->source, name);
    int same = e->ndim == ndim;
    for (int i = 0; i < ndim && i < CLCL_SAFETENSORS_MAX_DIMS; i++) {
        want64[i] = shape[i];
        same = same && e->shape[i] == shape[i];
    }
    shape_text64(e->ndim, e->shape, have, sizeof have);
    shape_text64(ndim, want64, want, sizeof want);
    if (e->dtype != CLCL_DTYPE_F32 || !same)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: tensor '%s' is %s %s; expected F32 %s", st->source,
                         name, e->dtype_name, have, want);
    *out = e;
    return CLCL_OK;
}

clcl_status clcl_safetensors_to_device(clcl_context *ctx, const clcl_safetensors *st,
                                       const clcl_safetensors_entry *e, clcl_tensor *t) {
    if (e->dtype != CLCL_DTYPE_F32 || e->count != t->count)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: tensor '%s' (%s, %zu elements) cannot fill a float tensor of %zu "
                         "elements",
                         st->source, e->name, e->dtype_name, e->count, t->count);
    return clcl_tensor_write(ctx, t, e->data);
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct {
    char *name;
    clcl_dtype dtype;
    int ndim;
    int64_t shape[CLCL_SAFETENSORS_MAX_DIMS];
    size_t bytes;
    void *data;
} out_tensor;

struct clcl_safetensors_writer {
    out_tensor *t;
    int n, cap;
    meta_pair *meta;
    int n_meta, cap_meta;
};

clcl_status clcl_safetensors_writer_create(clcl_safetensors_writer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of memory creating a safetensors writer");
    return CLCL_OK;
}

void clcl_safetensors_writer_free(clcl_safetensors_writer *w) {
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

/* A new slot for `name` after checking the name and shape; its data is allocated. */
static clcl_status writer_slot(clcl_safetensors_writer *w, const char *name, clcl_dtype dtype,
                               int ndim, const int64_t *shape, out_tensor **out) {
    size_t count = 1;
    if (!name || !*name || !strncmp(name, "__", 2))
        return clcl_fail(CLCL_ERR_ARGUMENT, "safetensors: bad tensor name '%s'",
                         name ? name : "(null)");
    if (dtype == CLCL_DTYPE_OTHER || ndim < 0 || ndim > CLCL_SAFETENSORS_MAX_DIMS)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "safetensors: tensor '%s': only F32 and I64 with 0 to %d dimensions "
                         "can be written",
                         name, CLCL_SAFETENSORS_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return clcl_fail(CLCL_ERR_ARGUMENT, "safetensors: tensor '%s' added twice", name);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return clcl_fail(CLCL_ERR_ARGUMENT, "safetensors: tensor '%s': negative dimension",
                             name);
        count *= (size_t)shape[i];
    }
    out_tensor *grown = grow(w->t, &w->cap, w->n + 1, sizeof *w->t);
    if (!grown)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "safetensors: out of memory adding '%s'", name);
    w->t = grown;
    out_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->bytes = count * (dtype == CLCL_DTYPE_F32 ? 4 : 8);
    t->name = strdup(name);
    t->data = malloc(t->bytes ? t->bytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "safetensors: out of memory adding '%s'", name);
    }
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    w->n++;
    *out = t;
    return CLCL_OK;
}

clcl_status clcl_safetensors_add(clcl_safetensors_writer *w, const char *name, clcl_dtype dtype,
                                 int ndim, const int64_t *shape, const void *data) {
    out_tensor *t;
    CLCL_TRY(writer_slot(w, name, dtype, ndim, shape, &t));
    if (t->bytes)
        memcpy(t->data, data, t->bytes);
    return CLCL_OK;
}

clcl_status clcl_safetensors_add_tensor(clcl_safetensors_writer *w, clcl_context *ctx,
                                        const char *name, const clcl_tensor *t) {
    int64_t shape[CLCL_MAX_DIMS];
    out_tensor *slot;
    for (int i = 0; i < t->ndim; i++)
        shape[i] = t->shape[i];
    CLCL_TRY(writer_slot(w, name, CLCL_DTYPE_F32, t->ndim, shape, &slot));
    clcl_status s = clcl_tensor_read(ctx, t, slot->data);
    if (s != CLCL_OK) {
        free(slot->name);
        free(slot->data);
        w->n--;
    }
    return s;
}

clcl_status clcl_safetensors_add_i64(clcl_safetensors_writer *w, const char *name, int64_t value) {
    return clcl_safetensors_add(w, name, CLCL_DTYPE_I64, 0, NULL, &value);
}

clcl_status clcl_safetensors_add_metadata(clcl_safetensors_writer *w, const char *key,
                                          const char *value) {
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            char *v = strdup(value);
            if (!v)
                return clcl_fail(CLCL_ERR_NO_MEMORY, "safetensors: out of memory");
            free(w->meta[i].value);
            w->meta[i].value = v;
            return CLCL_OK;
        }
    meta_pair *grown = grow(w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta);
    if (!grown)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "safetensors: out of memory");
    w->meta = grown;
    meta_pair p = {strdup(key), strdup(value)};
    if (!p.key || !p.value) {
        free(p.key);
        free(p.value);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "safetensors: out of memory");
    }
    w->meta[w->n_meta++] = p;
    return CLCL_OK;
}

/* A growing text buffer for the header. */
typedef struct {
    char *s;
    size_t n, cap;
    int failed;
} text_buf;

static void put(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->n + (size_t)k + 16)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
}

static void put_json_string(text_buf *b, const char *s) {
    put(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            put(b, "\\%c", ch);
        else if (ch < 0x20)
            put(b, "\\u%04x", ch);
        else
            put(b, "%c", ch);
    }
    put(b, "\"");
}

/* The JSON header, padded with spaces so that the tensor data starts 8-byte aligned. */
static clcl_status build_header(const clcl_safetensors_writer *w, text_buf *b) {
    uint64_t offset = 0;
    put(b, "{");
    if (w->n_meta) {
        put(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            put(b, i ? "," : "");
            put_json_string(b, w->meta[i].key);
            put(b, ":");
            put_json_string(b, w->meta[i].value);
        }
        put(b, "}%s", w->n ? "," : "");
    }
    for (int i = 0; i < w->n; i++) {
        const out_tensor *t = &w->t[i];
        put(b, i ? "," : "");
        put_json_string(b, t->name);
        put(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name_of(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            put(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        put(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
            (unsigned long long)(offset + t->bytes));
        offset += t->bytes;
    }
    put(b, "}");
    while (!b->failed && (b->n + 8) % 8)
        put(b, " ");
    if (b->failed)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "safetensors: out of memory building the header");
    return CLCL_OK;
}

static clcl_status write_all(FILE *f, const void *data, size_t n, const char *path) {
    if (n && fwrite(data, 1, n, f) != n)
        return clcl_fail(CLCL_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return CLCL_OK;
}

static clcl_status write_contents(const clcl_safetensors_writer *w, const text_buf *h, FILE *f,
                                  const char *tmp) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)h->n >> (8 * i));
    CLCL_TRY(write_all(f, len, 8, tmp));
    CLCL_TRY(write_all(f, h->s, h->n, tmp));
    for (int i = 0; i < w->n; i++)
        CLCL_TRY(write_all(f, w->t[i].data, w->t[i].bytes, tmp));
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        return clcl_fail(CLCL_ERR_IO, "%s: flush failed: %s", tmp, strerror(errno));
    return CLCL_OK;
}

/* fsync the directory holding `path`, so that the rename itself is on disk. */
static void sync_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse fsync on directories */
        close(fd);
    }
}

clcl_status clcl_safetensors_write(const clcl_safetensors_writer *w, const char *path) {
    text_buf header = {0};
    char tmp[4096];
    if (!host_is_little_endian())
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: safetensors needs a little-endian host", path);
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return clcl_fail(CLCL_ERR_IO, "%s: path too long", path);
    CLCL_TRY(build_header(w, &header));

    /* Write beside the target, then rename over it. */
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(header.s);
        return clcl_fail(CLCL_ERR_IO, "%s: cannot create a temporary file %s: %s", path, tmp,
                         strerror(errno));
    }
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    FILE *f = fdopen(fd, "wb");
    clcl_status s = f ? write_contents(w, &header, f, tmp)
                      : clcl_fail(CLCL_ERR_IO, "%s: fdopen: %s", tmp, strerror(errno));
    if (f ? fclose(f) != 0 : close(fd) != 0)
        if (s == CLCL_OK)
            s = clcl_fail(CLCL_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s == CLCL_OK && rename(tmp, path) != 0)
        s = clcl_fail(CLCL_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    if (s != CLCL_OK)
        unlink(tmp);
    else
        sync_parent(path);
    free(header.s);
    return s;
}
