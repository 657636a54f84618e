/* A TOML 1.0 parser (https://toml.io/en/v1.0.0), written for untrusted input.
 *
 * toml_parse() turns a byte buffer into a tree of struct toml_value.  It
 * validates UTF-8, accepts a leading BOM, bounds nesting depth
 * (TOML_MAX_DEPTH), detects integer overflow, never reads past `len`, and
 * stays linear in the input size (tables are hashed, buffers double).
 *
 * Every key and value keeps the line:column where it starts (1-based;
 * columns count characters, not bytes), so that later checks can point at
 * them.  Strings and keys are NUL-terminated but may also contain NUL
 * (\u0000), so their length is kept too.  Datetimes are kept as text (with
 * 't', 'z' and the space separator normalised to 'T' and 'Z') plus their kind.
 *
 * The tree is owned by the root returned by toml_parse and freed by
 * toml_free; it is not modified after parsing, so it may be read from
 * several threads.
 */
#ifndef BERTH_TOML_H
#define BERTH_TOML_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TOML_MAX_DEPTH 128

enum toml_type
{
  TOML_STRING = 1,
  TOML_INTEGER,
  TOML_FLOAT,
  TOML_BOOL,
  TOML_DATETIME,
  TOML_ARRAY,
  TOML_TABLE,
};

enum toml_datetime_kind
{
  TOML_DATETIME_OFFSET = 1, /* 1979-05-27T07:32:00Z, 1979-05-27T00:32:00-07:00 */
  TOML_DATETIME_LOCAL,      /* 1979-05-27T07:32:00 */
  TOML_DATE_LOCAL,          /* 1979-05-27 */
  TOML_TIME_LOCAL,          /* 07:32:00 */
};

struct toml_pos
{
  uint32_t line, col;
};

struct toml_value;

struct toml_kv
{
  char *key;   /* one key component, unescaped */
  size_t key_len;
  struct toml_pos pos; /* where this key component was (first) written */
  struct toml_value *value;
};

struct toml_value
{
  enum toml_type type;
  struct toml_pos pos; /* start of the value; a table's header or first dotted key */
  uint32_t flags;      /* private to toml.c */
  uint32_t depth;      /* containers only: 0 for the root table */
  union
  {
    struct
    {
      char *s;
      size_t len;
    } str;
    int64_t i;
    double f;
    int b;
    struct
    {
      char *text;
      enum toml_datetime_kind kind;
    } dt;
    struct
    {
      struct toml_value **items;
      size_t n, cap;
    } arr;
    struct
    {
      struct toml_kv *items; /* in document order */
      size_t n, cap;
      uint32_t *index; /* open-addressed hash of items, private */
      size_t index_cap;
    } tab;
  } u;
};

/* Where and why parsing failed; msg has no position in it. */
struct toml_error
{
  struct toml_pos pos;
  char msg[256];
};

/* Parse `len` bytes of `text`.  On failure returns BERTH_E_INVALID (or
 * BERTH_E_NOMEM), fills *ret_error when given and err with
 * "line L, column C: what". */
int toml_parse (const char *text, size_t len, struct toml_value **ret, struct toml_error *ret_error,
                berth_error **err);

void toml_free (struct toml_value *v);
static inline void
toml_freep (struct toml_value **v)
{
  toml_free (*v);
  *v = NULL;
}
#define _cleanup_toml_ __attribute__ ((cleanup (toml_freep)))

/* The entry of table `t` named `key` (one component, NUL-terminated), or NULL. */
const struct toml_kv *toml_table_find (const struct toml_value *t, const char *key);
const struct toml_value *toml_table_get (const struct toml_value *t, const char *key);

/* "string", "integer", "float", "boolean", "datetime" (per kind: "offset
 * datetime", "local datetime", "local date", "local time"), "array", "table". */
const char *toml_type_name (const struct toml_value *v);

/* Write `v` as toml-test tagged JSON (see tests/toml-test-decoder.c) into a
 * malloc'd string; NULL when out of memory. */
char *toml_to_tagged_json (const struct toml_value *v);

/* `s` (len bytes) as a TOML basic string with its quotes, malloc'd; NULL
 * when out of memory. */
char *toml_quote (const char *s, size_t len);
/* A key component as written in TOML: bare when it can be, else quoted. */
char *toml_quote_key (const char *s);

#endif
