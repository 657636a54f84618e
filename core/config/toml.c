/* TOML 1.0 parser; see toml.h for the contract.
 *
 * One pass over the bytes after a UTF-8 validation pass.  Recursion happens
 * only for arrays and inline tables and is bounded by TOML_MAX_DEPTH, which
 * also bounds the depth of the finished tree (every container knows its
 * depth), so toml_free and the JSON writer recurse safely too.
 *
 * Table flags implement the spec's "defined once" rules:
 *   F_EXPLICIT  defined by a [header] or an [[array]] element
 *   F_DOTTED    created by a dotted key (a.b = 1 creates a as F_DOTTED)
 *   F_INLINE    an inline table: closed for good once its '}' is read
 *   F_AOT       an array made by [[header]] (others are static arrays)
 * Headers may pass through implicit, explicit and dotted tables and the last
 * element of an array of tables; dotted keys may only pass through tables
 * made by dotted keys in the same section (toml-test's
 * invalid/table/append-with-dotted-keys-*).
 */
#include <config.h>

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "core/config/toml.h"

enum
{
  F_EXPLICIT = 1u << 0,
  F_DOTTED = 1u << 1,
  F_INLINE = 1u << 2,
  F_AOT = 1u << 3,
};

#define MAX_KEY_PARTS TOML_MAX_DEPTH

/* ------------------------------------------------------------------ */
/* Growable byte buffer */

struct sbuf
{
  char *s;
  size_t len, cap;
};

static int
sbuf_reserve (struct sbuf *b, size_t more)
{
  if (more > SIZE_MAX / 2 - b->len - 1)
    return BERTH_E_NOMEM;
  size_t need = b->len + more + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 32;
  while (cap < need)
    cap *= 2;
  char *s = realloc (b->s, cap);
  if (s == NULL)
    return BERTH_E_NOMEM;
  b->s = s;
  b->cap = cap;
  return 0;
}

static int
sbuf_add (struct sbuf *b, const char *s, size_t n)
{
  int r = sbuf_reserve (b, n);
  if (r < 0)
    return r;
  memcpy (b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
  return 0;
}

static int
sbuf_addc (struct sbuf *b, char c)
{
  return sbuf_add (b, &c, 1);
}

static int BERTH_PRINTF (2, 3)
sbuf_printf (struct sbuf *b, const char *fmt, ...)
{
  va_list ap;
  char tmp[64];
  va_start (ap, fmt);
  int n = vsnprintf (tmp, sizeof tmp, fmt, ap);
  va_end (ap);
  if (n < 0)
    return BERTH_E_INTERNAL;
  if ((size_t) n < sizeof tmp)
    return sbuf_add (b, tmp, n);
  int r = sbuf_reserve (b, n);
  if (r < 0)
    return r;
  va_start (ap, fmt);
  vsnprintf (b->s + b->len, n + 1, fmt, ap);
  va_end (ap);
  b->len += n;
  return 0;
}

/* Make sure s is an allocated, NUL-terminated string (possibly empty). */
static char *
sbuf_steal (struct sbuf *b, size_t *ret_len)
{
  if (b->s == NULL && sbuf_reserve (b, 0) < 0)
    return NULL;
  b->s[b->len] = '\0';
  *ret_len = b->len;
  b->cap = b->len = 0;
  return TAKE_PTR (b->s);
}

/* ------------------------------------------------------------------ */
/* Values */

void
toml_free (struct toml_value *v)
{
  if (v == NULL)
    return;
  switch (v->type)
    {
    case TOML_STRING:
      free (v->u.str.s);
      break;
    case TOML_DATETIME:
      free (v->u.dt.text);
      break;
    case TOML_ARRAY:
      for (size_t i = 0; i < v->u.arr.n; i++)
        toml_free (v->u.arr.items[i]);
      free (v->u.arr.items);
      break;
    case TOML_TABLE:
      for (size_t i = 0; i < v->u.tab.n; i++)
        {
          free (v->u.tab.items[i].key);
          toml_free (v->u.tab.items[i].value);
        }
      free (v->u.tab.items);
      free (v->u.tab.index);
      break;
    default:
      break;
    }
  free (v);
}

static struct toml_value *
value_new (enum toml_type type, struct toml_pos pos)
{
  struct toml_value *v = calloc (1, sizeof *v);
  if (v == NULL)
    return NULL;
  v->type = type;
  v->pos = pos;
  return v;
}

static uint32_t
hash_key (const char *k, size_t n)
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    {
      h ^= (unsigned char) k[i];
      h *= 16777619u;
    }
  return h;
}

static struct toml_kv *
table_lookup_n (const struct toml_value *t, const char *k, size_t n)
{
  if (t->u.tab.index_cap == 0)
    return NULL;
  size_t mask = t->u.tab.index_cap - 1;
  for (size_t i = hash_key (k, n) & mask;; i = (i + 1) & mask)
    {
      uint32_t slot = t->u.tab.index[i];
      if (slot == 0)
        return NULL;
      struct toml_kv *kv = &t->u.tab.items[slot - 1];
      if (kv->key_len == n && memcmp (kv->key, k, n) == 0)
        return kv;
    }
}

static void
index_put (uint32_t *index, size_t cap, const struct toml_kv *kv, uint32_t slot)
{
  size_t mask = cap - 1;
  size_t i = hash_key (kv->key, kv->key_len) & mask;
  while (index[i] != 0)
    i = (i + 1) & mask;
  index[i] = slot;
}

/* Append key → value to table t (the key must not be there); takes value
 * and a copy of the key. */
static int
table_add (struct toml_value *t, const char *k, size_t n, struct toml_pos pos, struct toml_value *value)
{
  if (t->u.tab.n == t->u.tab.cap)
    {
      size_t cap = t->u.tab.cap ? t->u.tab.cap * 2 : 4;
      if (cap > UINT32_MAX / 2)
        return BERTH_E_NOMEM;
      struct toml_kv *items = realloc (t->u.tab.items, cap * sizeof *items);
      if (items == NULL)
        return BERTH_E_NOMEM;
      t->u.tab.items = items;
      t->u.tab.cap = cap;
    }
  if ((t->u.tab.n + 1) * 2 > t->u.tab.index_cap)
    {
      size_t cap = t->u.tab.index_cap ? t->u.tab.index_cap * 2 : 8;
      uint32_t *index = calloc (cap, sizeof *index);
      if (index == NULL)
        return BERTH_E_NOMEM;
      for (size_t i = 0; i < t->u.tab.n; i++)
        index_put (index, cap, &t->u.tab.items[i], i + 1);
      free (t->u.tab.index);
      t->u.tab.index = index;
      t->u.tab.index_cap = cap;
    }
  char *key = malloc (n + 1);
  if (key == NULL)
    return BERTH_E_NOMEM;
  memcpy (key, k, n);
  key[n] = '\0';
  struct toml_kv *kv = &t->u.tab.items[t->u.tab.n];
  *kv = (struct toml_kv){ .key = key, .key_len = n, .pos = pos, .value = value };
  t->u.tab.n++;
  index_put (t->u.tab.index, t->u.tab.index_cap, kv, t->u.tab.n);
  return 0;
}

static int
array_add (struct toml_value *a, struct toml_value *v)
{
  if (a->u.arr.n == a->u.arr.cap)
    {
      size_t cap = a->u.arr.cap ? a->u.arr.cap * 2 : 4;
      if (cap > SIZE_MAX / sizeof (struct toml_value *))
        return BERTH_E_NOMEM;
      struct toml_value **items = realloc (a->u.arr.items, cap * sizeof *items);
      if (items == NULL)
        return BERTH_E_NOMEM;
      a->u.arr.items = items;
      a->u.arr.cap = cap;
    }
  a->u.arr.items[a->u.arr.n++] = v;
  return 0;
}

const struct toml_kv *
toml_table_find (const struct toml_value *t, const char *key)
{
  if (t == NULL || t->type != TOML_TABLE || key == NULL)
    return NULL;
  return table_lookup_n (t, key, strlen (key));
}

const struct toml_value *
toml_table_get (const struct toml_value *t, const char *key)
{
  const struct toml_kv *kv = toml_table_find (t, key);
  return kv ? kv->value : NULL;
}

const char *
toml_type_name (const struct toml_value *v)
{
  if (v == NULL)
    return "nothing";
  switch (v->type)
    {
    case TOML_STRING:
      return "string";
    case TOML_INTEGER:
      return "integer";
    case TOML_FLOAT:
      return "float";
    case TOML_BOOL:
      return "boolean";
    case TOML_DATETIME:
      switch (v->u.dt.kind)
        {
        case TOML_DATETIME_OFFSET:
          return "offset datetime";
        case TOML_DATETIME_LOCAL:
          return "local datetime";
        case TOML_DATE_LOCAL:
          return "local date";
        case TOML_TIME_LOCAL:
          return "local time";
        }
      return "datetime";
    case TOML_ARRAY:
      return "array";
    case TOML_TABLE:
      return "table";
    }
  return "unknown";
}

/* ------------------------------------------------------------------ */
/* Parser state */

struct parser
{
  const char *p, *end;
  uint32_t line, col;
  struct toml_value *root;
  struct toml_value *cur; /* table that key = value lines go into */
  struct toml_error error;
  bool failed;
};

struct key_part
{
  char *s;
  size_t len;
  struct toml_pos pos;
};

struct key
{
  struct key_part *parts;
  size_t n, cap;
};

static void
key_clear (struct key *k)
{
  for (size_t i = 0; i < k->n; i++)
    free (k->parts[i].s);
  free (k->parts);
  *k = (struct key){ 0 };
}

static inline struct toml_pos
here (const struct parser *ps)
{
  return (struct toml_pos){ ps->line, ps->col };
}

static inline int
peek (const struct parser *ps, size_t off)
{
  if ((size_t) (ps->end - ps->p) <= off)
    return -1;
  return (unsigned char) ps->p[off];
}

static inline bool
at_end (const struct parser *ps)
{
  return ps->p >= ps->end;
}

static inline void
adv (struct parser *ps)
{
  unsigned char c = (unsigned char) *ps->p++;
  if (c == '\n')
    {
      ps->line++;
      ps->col = 1;
    }
  else if ((c & 0xC0) != 0x80)
    ps->col++;
}

static inline void
adv_n (struct parser *ps, size_t n)
{
  while (n-- > 0)
    adv (ps);
}

static int BERTH_PRINTF (3, 4)
fail_at (struct parser *ps, struct toml_pos pos, const char *fmt, ...)
{
  if (!ps->failed)
    {
      va_list ap;
      va_start (ap, fmt);
      vsnprintf (ps->error.msg, sizeof ps->error.msg, fmt, ap);
      va_end (ap);
      ps->error.pos = pos;
      ps->failed = true;
    }
  return BERTH_E_INVALID;
}

#define fail(ps, ...) fail_at ((ps), here (ps), __VA_ARGS__)

static int
nomem (struct parser *ps)
{
  if (!ps->failed)
    {
      snprintf (ps->error.msg, sizeof ps->error.msg, "out of memory");
      ps->error.pos = here (ps);
      ps->failed = true;
    }
  return BERTH_E_NOMEM;
}

/* For messages: the key, printable and cut short. */
static const char *
show (const char *s, size_t n, char buf[static 72])
{
  size_t o = 0;
  for (size_t i = 0; i < n && o < 64; i++)
    {
      unsigned char c = (unsigned char) s[i];
      buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
    }
  if (o == 64 && n > 64)
    {
      memcpy (buf + o, "...", 3);
      o += 3;
    }
  buf[o] = '\0';
  return buf;
}

/* Describe the character at the cursor for "unexpected ..." messages. */
static const char *
show_char (const struct parser *ps, char buf[static 24])
{
  int c = peek (ps, 0);
  if (c < 0)
    return "end of file";
  if (c == '\n' || c == '\r')
    return "end of line";
  if (c >= 0x20 && c < 0x7f)
    snprintf (buf, 24, "'%c'", c);
  else if (c < 0x80)
    snprintf (buf, 24, "byte 0x%02x", (unsigned) c);
  else
    snprintf (buf, 24, "non-ASCII character");
  return buf;
}

/* ------------------------------------------------------------------ */
/* UTF-8 */

static size_t
utf8_seq_len (const unsigned char *s, size_t avail)
{
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    {
      n = 3;
      if (c == 0xE0)
        lo = 0xA0;
      else if (c == 0xED)
        hi = 0x9F; /* no surrogates */
    }
  else if (c >= 0xF0 && c <= 0xF4)
    {
      n = 4;
      if (c == 0xF0)
        lo = 0x90;
      else if (c == 0xF4)
        hi = 0x8F;
    }
  else
    return 0;
  if (avail < n)
    return 0;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return n;
}

static int
check_utf8 (struct parser *ps)
{
  const unsigned char *s = (const unsigned char *) ps->p;
  size_t len = ps->end - ps->p;
  uint32_t line = ps->line, col = ps->col;
  for (size_t i = 0; i < len;)
    {
      if (s[i] < 0x80)
        {
          if (s[i] == '\n')
            {
              line++;
              col = 1;
            }
          else
            col++;
          i++;
          continue;
        }
      size_t n = utf8_seq_len (s + i, len - i);
      if (n == 0)
        return fail_at (ps, (struct toml_pos){ line, col }, "invalid UTF-8");
      i += n;
      col++;
    }
  return 0;
}

static int
utf8_encode (struct sbuf *b, uint32_t cp)
{
  char tmp[4];
  size_t n;
  if (cp < 0x80)
    {
      tmp[0] = (char) cp;
      n = 1;
    }
  else if (cp < 0x800)
    {
      tmp[0] = (char) (0xC0 | (cp >> 6));
      tmp[1] = (char) (0x80 | (cp & 0x3F));
      n = 2;
    }
  else if (cp < 0x10000)
    {
      tmp[0] = (char) (0xE0 | (cp >> 12));
      tmp[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
      tmp[2] = (char) (0x80 | (cp & 0x3F));
      n = 3;
    }
  else
    {
      tmp[0] = (char) (0xF0 | (cp >> 18));
      tmp[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
      tmp[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
      tmp[3] = (char) (0x80 | (cp & 0x3F));
      n = 4;
    }
  return sbuf_add (b, tmp, n);
}

/* ------------------------------------------------------------------ */
/* Whitespace, comments, newlines */

static void
skip_ws (struct parser *ps)
{
  while (!at_end (ps) && (*ps->p == ' ' || *ps->p == '\t'))
    adv (ps);
}

/* A control character that may not appear raw in comments and strings. */
static inline bool
is_bad_control (int c)
{
  return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static int
skip_comment (struct parser *ps)
{
  /* at '#' */
  adv (ps);
  while (!at_end (ps))
    {
      int c = peek (ps, 0);
      if (c == '\n' || (c == '\r' && peek (ps, 1) == '\n'))
        return 0;
      if (is_bad_control (c))
        return fail (ps, "control character 0x%02x in comment", (unsigned) c);
      adv (ps);
    }
  return 0;
}

/* At a newline: consume it; a CR must be followed by LF. */
static int
eat_newline (struct parser *ps)
{
  int c = peek (ps, 0);
  if (c == '\n')
    {
      adv (ps);
      return 0;
    }
  if (c == '\r' && peek (ps, 1) == '\n')
    {
      adv_n (ps, 2);
      return 0;
    }
  return fail (ps, "carriage return not followed by a line feed");
}

/* Whitespace, comments and newlines, as allowed between array items. */
static int
skip_ws_comments_newlines (struct parser *ps)
{
  for (;;)
    {
      skip_ws (ps);
      int c = peek (ps, 0);
      int r = 0;
      if (c == '#')
        r = skip_comment (ps);
      else if (c == '\n' || c == '\r')
        r = eat_newline (ps);
      else
        return 0;
      if (r < 0)
        return r;
    }
}

/* After a key/value pair or a header: whitespace, a comment, then a newline or the end. */
static int
expect_eol (struct parser *ps, const char *after)
{
  skip_ws (ps);
  int c = peek (ps, 0);
  int r;
  if (c == '#')
    {
      r = skip_comment (ps);
      if (r < 0)
        return r;
      c = peek (ps, 0);
    }
  if (c < 0)
    return 0;
  if (c == '\n' || c == '\r')
    return eat_newline (ps);
  char buf[24];
  return fail (ps, "expected a newline after %s, found %s", after, show_char (ps, buf));
}

/* ------------------------------------------------------------------ */
/* Strings */

static int
hex_val (int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* At the backslash of an escape inside a basic string. */
static int
parse_escape (struct parser *ps, struct sbuf *b)
{
  struct toml_pos pos = here (ps);
  adv (ps);
  int c = peek (ps, 0);
  char out;
  switch (c)
    {
    case 'b':
      out = '\b';
      break;
    case 't':
      out = '\t';
      break;
    case 'n':
      out = '\n';
      break;
    case 'f':
      out = '\f';
      break;
    case 'r':
      out = '\r';
      break;
    case '"':
      out = '"';
      break;
    case '\\':
      out = '\\';
      break;
    case 'u':
    case 'U':
      {
        int digits = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 1; i <= digits; i++)
          {
            int h = hex_val (peek (ps, i));
            if (h < 0)
              return fail_at (ps, pos, "\\%c escape needs %d hex digits", c, digits);
            cp = cp * 16 + (uint32_t) h;
          }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          return fail_at (ps, pos, "escape \\%c%0*X is not a Unicode scalar value", c, digits, cp);
        adv_n (ps, digits + 1);
        return utf8_encode (b, cp) < 0 ? nomem (ps) : 0;
      }
    default:
      {
        char buf[24];
        return fail_at (ps, pos, "invalid escape sequence: backslash followed by %s", show_char (ps, buf));
      }
    }
  adv (ps);
  return sbuf_addc (b, out) < 0 ? nomem (ps) : 0;
}

/* Copy one raw (already UTF-8 validated) character. */
static int
copy_char (struct parser *ps, struct sbuf *b)
{
  size_t n = utf8_seq_len ((const unsigned char *) ps->p, ps->end - ps->p);
  if (n == 0)
    n = 1;
  if (sbuf_add (b, ps->p, n) < 0)
    return nomem (ps);
  adv_n (ps, n);
  return 0;
}

/* Single-line basic ("...") or literal ('...') string, cursor on the quote. */
static int
parse_simple_string (struct parser *ps, struct sbuf *b)
{
  char q = *ps->p;
  struct toml_pos start = here (ps);
  adv (ps);
  for (;;)
    {
      int c = peek (ps, 0);
      if (c < 0)
        return fail_at (ps, start, "unterminated string");
      if (c == q)
        {
          adv (ps);
          return 0;
        }
      if (c == '\n' || c == '\r')
        return fail (ps, "newline in a single-line string");
      if (is_bad_control (c))
        return fail (ps, "control character 0x%02x in string", (unsigned) c);
      int r = (q == '"' && c == '\\') ? parse_escape (ps, b) : copy_char (ps, b);
      if (r < 0)
        return r;
    }
}

/* Multi-line basic or literal string, cursor on the first of three quotes. */
static int
parse_ml_string (struct parser *ps, struct sbuf *b)
{
  char q = *ps->p;
  struct toml_pos start = here (ps);
  adv_n (ps, 3);
  /* A newline right after the opening delimiter is trimmed. */
  if (peek (ps, 0) == '\n')
    adv (ps);
  else if (peek (ps, 0) == '\r' && peek (ps, 1) == '\n')
    adv_n (ps, 2);
  for (;;)
    {
      int c = peek (ps, 0);
      if (c < 0)
        return fail_at (ps, start, "unterminated multi-line string");
      if (c == q && peek (ps, 1) == q && peek (ps, 2) == q)
        {
          size_t nq = 3;
          while (peek (ps, nq) == q)
            nq++;
          if (nq > 5)
            return fail (ps, "too many quotes at the end of a multi-line string");
          for (size_t i = 3; i < nq; i++)
            if (sbuf_addc (b, q) < 0)
              return nomem (ps);
          adv_n (ps, nq);
          return 0;
        }
      int r;
      if (c == '\n')
        {
          adv (ps);
          r = sbuf_addc (b, '\n') < 0 ? nomem (ps) : 0;
        }
      else if (c == '\r')
        {
          if (peek (ps, 1) != '\n')
            return fail (ps, "carriage return not followed by a line feed");
          adv_n (ps, 2);
          r = sbuf_addc (b, '\n') < 0 ? nomem (ps) : 0;
        }
      else if (is_bad_control (c))
        return fail (ps, "control character 0x%02x in string", (unsigned) c);
      else if (q == '"' && c == '\\')
        {
          /* A line-ending backslash eats all whitespace and newlines up
           * to the next other character. */
          size_t i = 1;
          while (peek (ps, i) == ' ' || peek (ps, i) == '\t')
            i++;
          int d = peek (ps, i);
          if (d == '\n' || (d == '\r' && peek (ps, i + 1) == '\n'))
            {
              adv_n (ps, i);
              for (;;)
                {
                  int e = peek (ps, 0);
                  if (e == ' ' || e == '\t' || e == '\n')
                    adv (ps);
                  else if (e == '\r' && peek (ps, 1) == '\n')
                    adv_n (ps, 2);
                  else
                    break;
                }
              r = 0;
            }
          else
            r = parse_escape (ps, b);
        }
      else
        r = copy_char (ps, b);
      if (r < 0)
        return r;
    }
}

/* ------------------------------------------------------------------ */
/* Keys */

static inline bool
is_bare_key_char (int c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int
parse_key (struct parser *ps, struct key *k)
{
  for (;;)
    {
      skip_ws (ps);
      if (k->n == MAX_KEY_PARTS)
        return fail (ps, "key has more than %d parts", MAX_KEY_PARTS);
      if (k->n == k->cap)
        {
          size_t cap = k->cap ? k->cap * 2 : 4;
          struct key_part *parts = realloc (k->parts, cap * sizeof *parts);
          if (parts == NULL)
            return nomem (ps);
          k->parts = parts;
          k->cap = cap;
        }
      struct key_part *part = &k->parts[k->n];
      part->pos = here (ps);
      struct sbuf b = { 0 };
      int c = peek (ps, 0);
      int r = 0;
      if (c == '"' || c == '\'')
        {
          if (peek (ps, 1) == c && peek (ps, 2) == c)
            return fail (ps, "a key cannot be a multi-line string");
          r = parse_simple_string (ps, &b);
        }
      else if (is_bare_key_char (c))
        {
          const char *start = ps->p;
          while (is_bare_key_char (peek (ps, 0)))
            adv (ps);
          if (sbuf_add (&b, start, ps->p - start) < 0)
            r = nomem (ps);
        }
      else
        {
          char buf[24];
          r = fail (ps, "expected a key, found %s", show_char (ps, buf));
        }
      if (r < 0)
        {
          free (b.s);
          return r;
        }
      part->s = sbuf_steal (&b, &part->len);
      if (part->s == NULL)
        return nomem (ps);
      k->n++;
      skip_ws (ps);
      if (peek (ps, 0) != '.')
        return 0;
      adv (ps);
    }
}

static const char *
show_key (const struct key *k, size_t upto, char buf[static 200])
{
  size_t o = 0;
  for (size_t i = 0; i < upto && o < 150; i++)
    {
      char tmp[72];
      int n = snprintf (buf + o, 200 - o, "%s%s", i ? "." : "", show (k->parts[i].s, k->parts[i].len, tmp));
      if (n < 0)
        break;
      o += (size_t) n;
    }
  if (o >= 200)
    o = 199;
  buf[o] = '\0';
  return buf;
}

/* ------------------------------------------------------------------ */
/* Numbers and datetimes */

/* Digits of the given base with single underscores between them.
 * Returns the number of digits, -1 when an underscore is misplaced. */
static int
check_digits (const char *s, size_t n, int base)
{
  int digits = 0;
  bool prev_digit = false;
  for (size_t i = 0; i < n; i++)
    {
      int c = (unsigned char) s[i];
      if (c == '_')
        {
          if (!prev_digit)
            return -1;
          prev_digit = false;
          continue;
        }
      int v = hex_val (c);
      if (v < 0 || v >= base)
        return -1;
      prev_digit = true;
      digits++;
    }
  return prev_digit ? digits : -1;
}

static bool
all_digits (const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static int
num2 (const char *s)
{
  return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool
is_date (const char *s, size_t n)
{
  return n >= 10 && all_digits (s, 4) && s[4] == '-' && all_digits (s + 5, 2) && s[7] == '-'
         && all_digits (s + 8, 2);
}

static bool
is_time_start (const char *s, size_t n)
{
  return n >= 3 && all_digits (s, 2) && s[2] == ':';
}

static int
days_in_month (int y, int m)
{
  static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return days[m - 1];
}

/* HH:MM:SS[.frac]; returns the length used, or -1. */
static int
parse_time (const char *s, size_t n)
{
  if (n < 8 || !all_digits (s, 2) || s[2] != ':' || !all_digits (s + 3, 2) || s[5] != ':'
      || !all_digits (s + 6, 2))
    return -1;
  if (num2 (s) > 23 || num2 (s + 3) > 59 || num2 (s + 6) > 59)
    return -1;
  size_t i = 8;
  if (i < n && s[i] == '.')
    {
      i++;
      size_t d = i;
      while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
      if (i == d)
        return -1;
    }
  return (int) i;
}

static int
parse_datetime (struct parser *ps, struct toml_pos pos, const char *s, size_t n, struct toml_value **ret)
{
  enum toml_datetime_kind kind;
  if (is_date (s, n))
    {
      int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + num2 (s + 2);
      int m = num2 (s + 5), d = num2 (s + 8);
      if (m < 1 || m > 12 || d < 1 || d > days_in_month (y, m))
        return fail_at (ps, pos, "invalid date");
      if (n == 10)
        kind = TOML_DATE_LOCAL;
      else
        {
          if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
            return fail_at (ps, pos, "invalid datetime");
          int t = parse_time (s + 11, n - 11);
          if (t < 0)
            return fail_at (ps, pos, "invalid time in datetime");
          size_t i = 11 + (size_t) t;
          if (i == n)
            kind = TOML_DATETIME_LOCAL;
          else if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z'))
            kind = TOML_DATETIME_OFFSET;
          else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && all_digits (s + i + 1, 2) && s[i + 3] == ':'
                   && all_digits (s + i + 4, 2) && num2 (s + i + 1) <= 23 && num2 (s + i + 4) <= 59)
            kind = TOML_DATETIME_OFFSET;
          else
            return fail_at (ps, pos, "invalid offset in datetime");
        }
    }
  else
    {
      int t = parse_time (s, n);
      if (t < 0 || (size_t) t != n)
        return fail_at (ps, pos, "invalid time");
      kind = TOML_TIME_LOCAL;
    }
  char *text = strndup (s, n);
  if (text == NULL)
    return nomem (ps);
  for (size_t i = 0; i < n; i++)
    {
      if (text[i] == ' ' || text[i] == 't')
        text[i] = 'T';
      else if (text[i] == 'z')
        text[i] = 'Z';
    }
  struct toml_value *v = value_new (TOML_DATETIME, pos);
  if (v == NULL)
    {
      free (text);
      return nomem (ps);
    }
  v->u.dt.text = text;
  v->u.dt.kind = kind;
  *ret = v;
  return 0;
}

static locale_t
c_locale (void)
{
  static locale_t loc;
  locale_t l = __atomic_load_n (&loc, __ATOMIC_ACQUIRE);
  if (l != (locale_t) 0)
    return l;
  l = newlocale (LC_ALL_MASK, "C", (locale_t) 0);
  if (l == (locale_t) 0)
    return l;
  locale_t expected = (locale_t) 0;
  if (!__atomic_compare_exchange_n (&loc, &expected, l, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    {
      freelocale (l);
      l = expected;
    }
  return l;
}

static int
parse_number (struct parser *ps, struct toml_pos pos, const char *s, size_t n, struct toml_value **ret)
{
  const char *orig = s;
  size_t orig_n = n;
  char buf[72];
  bool neg = false, sign = false;
  if (n > 0 && (s[0] == '+' || s[0] == '-'))
    {
      neg = s[0] == '-';
      sign = true;
      s++;
      n--;
    }
  if (n == 3 && (memcmp (s, "inf", 3) == 0 || memcmp (s, "nan", 3) == 0))
    {
      struct toml_value *v = value_new (TOML_FLOAT, pos);
      if (v == NULL)
        return nomem (ps);
      v->u.f = s[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
      *ret = v;
      return 0;
    }
  int base = 10;
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b'))
    {
      if (sign)
        return fail_at (ps, pos, "a sign is not allowed on a %s integer",
                        s[1] == 'x' ? "hexadecimal" : s[1] == 'o' ? "octal" : "binary");
      base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
      s += 2;
      n -= 2;
    }
  bool is_float = false;
  if (base == 10)
    for (size_t i = 0; i < n; i++)
      if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
        is_float = true;

  if (!is_float)
    {
      if (check_digits (s, n, base) < 0)
        return fail_at (ps, pos, "invalid number `%s`", show (orig, orig_n, buf));
      if (base == 10 && n > 1 && s[0] == '0')
        return fail_at (ps, pos, "leading zeros are not allowed in `%s`", show (orig, orig_n, buf));
      uint64_t limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
      uint64_t acc = 0;
      for (size_t i = 0; i < n; i++)
        {
          if (s[i] == '_')
            continue;
          uint64_t d = (uint64_t) hex_val ((unsigned char) s[i]);
          if (acc > (limit - d) / (uint64_t) base)
            return fail_at (ps, pos, "integer `%s` does not fit in 64 bits", show (orig, orig_n, buf));
          acc = acc * (uint64_t) base + d;
        }
      struct toml_value *v = value_new (TOML_INTEGER, pos);
      if (v == NULL)
        return nomem (ps);
      v->u.i = neg ? (int64_t) (0 - acc) : (int64_t) acc;
      *ret = v;
      return 0;
    }

  /* Float: int [. frac] [e exp], at least one of frac and exp. */
  size_t i = 0;
  while (i < n && s[i] != '.' && s[i] != 'e' && s[i] != 'E')
    i++;
  if (check_digits (s, i, 10) < 0 || (i > 1 && s[0] == '0'))
    return fail_at (ps, pos, "invalid float `%s`", show (orig, orig_n, buf));
  if (i < n && s[i] == '.')
    {
      size_t f = ++i;
      while (i < n && s[i] != 'e' && s[i] != 'E')
        i++;
      if (check_digits (s + f, i - f, 10) < 0)
        return fail_at (ps, pos, "invalid float `%s`", show (orig, orig_n, buf));
    }
  if (i < n)
    {
      size_t e = ++i;
      if (e < n && (s[e] == '+' || s[e] == '-'))
        e++;
      if (check_digits (s + e, n - e, 10) < 0)
        return fail_at (ps, pos, "invalid float `%s`", show (orig, orig_n, buf));
    }
  struct sbuf clean = { 0 };
  _cleanup_free_ char *clean_s = NULL;
  for (size_t j = 0; j < orig_n; j++)
    if (orig[j] != '_' && sbuf_addc (&clean, orig[j]) < 0)
      {
        free (clean.s);
        return nomem (ps);
      }
  clean_s = clean.s;
  locale_t loc = c_locale ();
  if (loc == (locale_t) 0)
    return nomem (ps);
  errno = 0;
  char *endp;
  double d = strtod_l (clean_s, &endp, loc);
  if (*endp != '\0')
    return fail_at (ps, pos, "invalid float `%s`", show (orig, orig_n, buf));
  if (isinf (d))
    return fail_at (ps, pos, "float `%s` is out of range", show (orig, orig_n, buf));
  struct toml_value *v = value_new (TOML_FLOAT, pos);
  if (v == NULL)
    return nomem (ps);
  v->u.f = d;
  *ret = v;
  return 0;
}

static inline bool
is_token_char (int c)
{
  return is_bare_key_char (c) || c == '+' || c == '.' || c == ':';
}

static int
parse_number_or_datetime (struct parser *ps, struct toml_value **ret)
{
  struct toml_pos pos = here (ps);
  const char *start = ps->p;
  size_t n = 0;
  while (is_token_char (peek (ps, n)))
    n++;
  /* "1979-05-27 07:32:00": a date, one space, then a time. */
  if (n == 10 && is_date (start, n) && peek (ps, 10) == ' ' && peek (ps, 11) >= '0' && peek (ps, 11) <= '9'
      && peek (ps, 12) >= '0' && peek (ps, 12) <= '9' && peek (ps, 13) == ':')
    {
      n = 11;
      while (is_token_char (peek (ps, n)))
        n++;
    }
  if (n == 0)
    {
      char buf[24];
      return fail (ps, "expected a value, found %s", show_char (ps, buf));
    }
  adv_n (ps, n);
  if (is_date (start, n) || is_time_start (start, n))
    return parse_datetime (ps, pos, start, n, ret);
  return parse_number (ps, pos, start, n, ret);
}

/* ------------------------------------------------------------------ */
/* Values, arrays, inline tables */

static int parse_value (struct parser *ps, uint32_t depth, struct toml_value **ret);
static int insert_keyval (struct parser *ps, struct toml_value *t, uint32_t depth);

static int
new_container (struct parser *ps, enum toml_type type, struct toml_pos pos, uint32_t depth,
               struct toml_value **ret)
{
  if (depth > TOML_MAX_DEPTH)
    return fail_at (ps, pos, "nesting deeper than %d levels", TOML_MAX_DEPTH);
  struct toml_value *v = value_new (type, pos);
  if (v == NULL)
    return nomem (ps);
  v->depth = depth;
  *ret = v;
  return 0;
}

static int
parse_array (struct parser *ps, uint32_t depth, struct toml_value **ret)
{
  _cleanup_toml_ struct toml_value *a = NULL;
  struct toml_pos start = here (ps);
  int r = new_container (ps, TOML_ARRAY, start, depth, &a);
  if (r < 0)
    return r;
  adv (ps); /* '[' */
  for (;;)
    {
      r = skip_ws_comments_newlines (ps);
      if (r < 0)
        return r;
      if (peek (ps, 0) == ']')
        break;
      struct toml_value *item = NULL;
      r = parse_value (ps, depth, &item);
      if (r < 0)
        return r;
      if (array_add (a, item) < 0)
        {
          toml_free (item);
          return nomem (ps);
        }
      r = skip_ws_comments_newlines (ps);
      if (r < 0)
        return r;
      int c = peek (ps, 0);
      if (c == ',')
        {
          adv (ps);
          continue;
        }
      if (c == ']')
        break;
      if (c < 0)
        return fail_at (ps, start, "unterminated array");
      char buf[24];
      return fail (ps, "expected ',' or ']' in array, found %s", show_char (ps, buf));
    }
  adv (ps); /* ']' */
  *ret = TAKE_PTR (a);
  return 0;
}

static int
parse_inline_table (struct parser *ps, uint32_t depth, struct toml_value **ret)
{
  _cleanup_toml_ struct toml_value *t = NULL;
  struct toml_pos start = here (ps);
  int r = new_container (ps, TOML_TABLE, start, depth, &t);
  if (r < 0)
    return r;
  adv (ps); /* '{' */
  skip_ws (ps);
  if (peek (ps, 0) == '}')
    adv (ps);
  else
    for (;;)
      {
        r = insert_keyval (ps, t, depth);
        if (r < 0)
          return r;
        skip_ws (ps);
        int c = peek (ps, 0);
        if (c == '}')
          {
            adv (ps);
            break;
          }
        if (c == ',')
          {
            adv (ps);
            skip_ws (ps);
            if (peek (ps, 0) == '}')
              return fail (ps, "trailing comma in inline table");
            continue;
          }
        if (c < 0)
          return fail_at (ps, start, "unterminated inline table");
        char buf[24];
        return fail (ps, "expected ',' or '}' in inline table, found %s", show_char (ps, buf));
      }
  t->flags |= F_INLINE;
  *ret = TAKE_PTR (t);
  return 0;
}

static int
match_word (struct parser *ps, const char *w)
{
  size_t n = strlen (w);
  if ((size_t) (ps->end - ps->p) < n || memcmp (ps->p, w, n) != 0)
    return 0;
  if (is_bare_key_char (peek (ps, n)))
    return 0;
  return 1;
}

/* A value; `depth` is that of the container the value goes into. */
static int
parse_value (struct parser *ps, uint32_t depth, struct toml_value **ret)
{
  struct toml_pos pos = here (ps);
  int c = peek (ps, 0);
  switch (c)
    {
    case '"':
    case '\'':
      {
        struct sbuf b = { 0 };
        int r;
        if (peek (ps, 1) == c && peek (ps, 2) == c)
          r = parse_ml_string (ps, &b);
        else
          r = parse_simple_string (ps, &b);
        if (r < 0)
          {
            free (b.s);
            return r;
          }
        struct toml_value *v = value_new (TOML_STRING, pos);
        if (v == NULL || (v->u.str.s = sbuf_steal (&b, &v->u.str.len)) == NULL)
          {
            free (b.s);
            free (v);
            return nomem (ps);
          }
        *ret = v;
        return 0;
      }
    case '[':
      return parse_array (ps, depth + 1, ret);
    case '{':
      return parse_inline_table (ps, depth + 1, ret);
    case 't':
    case 'f':
      {
        bool t = c == 't';
        if (!match_word (ps, t ? "true" : "false"))
          return fail (ps, "expected a value (true or false?)");
        adv_n (ps, t ? 4 : 5);
        struct toml_value *v = value_new (TOML_BOOL, pos);
        if (v == NULL)
          return nomem (ps);
        v->u.b = t;
        *ret = v;
        return 0;
      }
    default:
      if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'i' || c == 'n')
        return parse_number_or_datetime (ps, ret);
      {
        char buf[24];
        return fail (ps, "expected a value, found %s", show_char (ps, buf));
      }
    }
}

/* key = value into table t (a [section] or an inline table at `depth`). */
static int
insert_keyval (struct parser *ps, struct toml_value *t, uint32_t depth)
{
  _cleanup_ (key_clear) struct key k = { 0 };
  int r = parse_key (ps, &k);
  if (r < 0)
    return r;
  char kb[200];
  for (size_t i = 0; i + 1 < k.n; i++)
    {
      struct key_part *p = &k.parts[i];
      struct toml_kv *kv = table_lookup_n (t, p->s, p->len);
      if (kv == NULL)
        {
          struct toml_value *sub = NULL;
          r = new_container (ps, TOML_TABLE, p->pos, t->depth + 1, &sub);
          if (r < 0)
            return r;
          sub->flags |= F_DOTTED;
          if (table_add (t, p->s, p->len, p->pos, sub) < 0)
            {
              toml_free (sub);
              r = nomem (ps);
              return r;
            }
          t = sub;
          continue;
        }
      struct toml_value *v = kv->value;
      if (v->type != TOML_TABLE || (v->flags & F_INLINE) || !(v->flags & F_DOTTED))
        {
          r = fail_at (ps, p->pos, "cannot add keys to `%s`: it was defined at line %u, column %u",
                       show_key (&k, i + 1, kb), kv->pos.line, kv->pos.col);
          return r;
        }
      t = v;
    }
  struct key_part *last = &k.parts[k.n - 1];
  struct toml_kv *dup = table_lookup_n (t, last->s, last->len);
  if (dup != NULL)
    {
      r = fail_at (ps, last->pos, "duplicate key `%s` (first defined at line %u, column %u)",
                   show_key (&k, k.n, kb), dup->pos.line, dup->pos.col);
      return r;
    }
  skip_ws (ps);
  if (peek (ps, 0) != '=')
    {
      char buf[24];
      r = fail (ps, "expected '=' after key, found %s", show_char (ps, buf));
      return r;
    }
  adv (ps);
  skip_ws (ps);
  struct toml_value *v = NULL;
  (void) depth;
  r = parse_value (ps, t->depth, &v);
  if (r < 0)
    return r;
  if (table_add (t, last->s, last->len, last->pos, v) < 0)
    {
      toml_free (v);
      r = nomem (ps);
    }
  return r;
}

/* [a.b.c] or [[a.b.c]], cursor on the first '['. */
static int
parse_header (struct parser *ps)
{
  struct toml_pos start = here (ps);
  bool aot = peek (ps, 1) == '[';
  adv_n (ps, aot ? 2 : 1);
  _cleanup_ (key_clear) struct key k = { 0 };
  char kb[200];
  int r = parse_key (ps, &k);
  if (r < 0)
    return r;
  if (peek (ps, 0) != ']' || (aot && peek (ps, 1) != ']'))
    {
      char buf[24];
      r = fail (ps, "expected '%s' to close the table header, found %s", aot ? "]]" : "]", show_char (ps, buf));
      return r;
    }
  adv_n (ps, aot ? 2 : 1);

  struct toml_value *t = ps->root;
  for (size_t i = 0; i + 1 < k.n; i++)
    {
      struct key_part *p = &k.parts[i];
      struct toml_kv *kv = table_lookup_n (t, p->s, p->len);
      if (kv == NULL)
        {
          struct toml_value *sub = NULL;
          r = new_container (ps, TOML_TABLE, p->pos, t->depth + 1, &sub);
          if (r < 0)
            return r;
          if (table_add (t, p->s, p->len, p->pos, sub) < 0)
            {
              toml_free (sub);
              r = nomem (ps);
              return r;
            }
          t = sub;
          continue;
        }
      struct toml_value *v = kv->value;
      if (v->type == TOML_TABLE && !(v->flags & F_INLINE))
        t = v;
      else if (v->type == TOML_ARRAY && (v->flags & F_AOT) && v->u.arr.n > 0)
        t = v->u.arr.items[v->u.arr.n - 1];
      else
        {
          r = fail_at (ps, p->pos, "cannot define a table under `%s`: it is %s %s defined at line %u, column %u",
                       show_key (&k, i + 1, kb), v->type == TOML_ARRAY ? "an" : "a", toml_type_name (v),
                       kv->pos.line, kv->pos.col);
          return r;
        }
    }

  struct key_part *last = &k.parts[k.n - 1];
  struct toml_kv *kv = table_lookup_n (t, last->s, last->len);
  if (!aot)
    {
      if (kv == NULL)
        {
          struct toml_value *sub = NULL;
          r = new_container (ps, TOML_TABLE, start, t->depth + 1, &sub);
          if (r < 0)
            return r;
          sub->flags |= F_EXPLICIT;
          if (table_add (t, last->s, last->len, last->pos, sub) < 0)
            {
              toml_free (sub);
              r = nomem (ps);
              return r;
            }
          ps->cur = sub;
        }
      else
        {
          struct toml_value *v = kv->value;
          if (v->type != TOML_TABLE || (v->flags & (F_EXPLICIT | F_DOTTED | F_INLINE)))
            {
              r = fail_at (ps, start, "table `%s` is already defined at line %u, column %u",
                           show_key (&k, k.n, kb), kv->pos.line, kv->pos.col);
              return r;
            }
          v->flags |= F_EXPLICIT;
          v->pos = start;
          kv->pos = last->pos;
          ps->cur = v;
        }
    }
  else
    {
      struct toml_value *arr;
      if (kv == NULL)
        {
          arr = NULL;
          r = new_container (ps, TOML_ARRAY, start, t->depth + 1, &arr);
          if (r < 0)
            return r;
          arr->flags |= F_AOT;
          if (table_add (t, last->s, last->len, last->pos, arr) < 0)
            {
              toml_free (arr);
              r = nomem (ps);
              return r;
            }
        }
      else
        {
          arr = kv->value;
          if (arr->type != TOML_ARRAY || !(arr->flags & F_AOT))
            {
              r = fail_at (ps, start, "cannot define array of tables `%s`: it is already %s %s defined at line %u, column %u",
                           show_key (&k, k.n, kb), arr->type == TOML_ARRAY ? "an" : "a", toml_type_name (arr),
                           kv->pos.line, kv->pos.col);
              return r;
            }
        }
      struct toml_value *sub = NULL;
      r = new_container (ps, TOML_TABLE, start, arr->depth + 1, &sub);
      if (r < 0)
        return r;
      sub->flags |= F_EXPLICIT;
      if (array_add (arr, sub) < 0)
        {
          toml_free (sub);
          r = nomem (ps);
          return r;
        }
      ps->cur = sub;
    }
  r = expect_eol (ps, "the table header");
  return r;
}

static int
parse_document (struct parser *ps)
{
  for (;;)
    {
      skip_ws (ps);
      int c = peek (ps, 0);
      int r;
      if (c < 0)
        return 0;
      if (c == '#')
        r = skip_comment (ps);
      else if (c == '\n' || c == '\r')
        r = eat_newline (ps);
      else if (c == '[')
        r = parse_header (ps);
      else
        {
          r = insert_keyval (ps, ps->cur, ps->cur->depth);
          if (r >= 0)
            r = expect_eol (ps, "the value");
        }
      if (r < 0)
        return r;
    }
}

int
toml_parse (const char *text, size_t len, struct toml_value **ret, struct toml_error *ret_error, berth_error **err)
{
  struct parser ps = { .p = text, .end = text + len, .line = 1, .col = 1 };
  if (len >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0)
    ps.p += 3;
  int r = check_utf8 (&ps);
  if (r >= 0)
    {
      ps.root = value_new (TOML_TABLE, (struct toml_pos){ 1, 1 });
      if (ps.root == NULL)
        r = nomem (&ps);
      else
        {
          ps.root->flags |= F_EXPLICIT;
          ps.cur = ps.root;
          r = parse_document (&ps);
        }
    }
  if (r < 0)
    {
      toml_free (ps.root);
      if (ret_error)
        *ret_error = ps.error;
      return berth_error_set (err, r, 0, "line %u, column %u: %s", ps.error.pos.line, ps.error.pos.col,
                              ps.error.msg);
    }
  *ret = ps.root;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Output */

static int
json_string (struct sbuf *b, const char *s, size_t n)
{
  int r = sbuf_addc (b, '"');
  for (size_t i = 0; i < n && r >= 0; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (c == '"' || c == '\\')
        {
          char e[2] = { '\\', (char) c };
          r = sbuf_add (b, e, 2);
        }
      else if (c < 0x20 || c == 0x7f)
        r = sbuf_printf (b, "\\u%04x", c);
      else
        r = sbuf_addc (b, (char) c);
    }
  return r < 0 ? r : sbuf_addc (b, '"');
}

static int
json_scalar (struct sbuf *b, const char *type, const char *value, size_t n)
{
  int r = sbuf_printf (b, "{\"type\":\"%s\",\"value\":", type);
  if (r >= 0)
    r = json_string (b, value, n);
  if (r >= 0)
    r = sbuf_addc (b, '}');
  return r;
}

static int
json_value (struct sbuf *b, const struct toml_value *v)
{
  char tmp[64];
  int r = 0;
  switch (v->type)
    {
    case TOML_STRING:
      return json_scalar (b, "string", v->u.str.s, v->u.str.len);
    case TOML_INTEGER:
      snprintf (tmp, sizeof tmp, "%lld", (long long) v->u.i);
      return json_scalar (b, "integer", tmp, strlen (tmp));
    case TOML_FLOAT:
      if (isnan (v->u.f))
        snprintf (tmp, sizeof tmp, "nan");
      else if (isinf (v->u.f))
        snprintf (tmp, sizeof tmp, "%sinf", v->u.f < 0 ? "-" : "");
      else
        snprintf (tmp, sizeof tmp, "%.17g", v->u.f);
      return json_scalar (b, "float", tmp, strlen (tmp));
    case TOML_BOOL:
      return json_scalar (b, "bool", v->u.b ? "true" : "false", v->u.b ? 4 : 5);
    case TOML_DATETIME:
      {
        static const char *const kinds[] = { [TOML_DATETIME_OFFSET] = "datetime",
                                             [TOML_DATETIME_LOCAL] = "datetime-local",
                                             [TOML_DATE_LOCAL] = "date-local",
                                             [TOML_TIME_LOCAL] = "time-local" };
        return json_scalar (b, kinds[v->u.dt.kind], v->u.dt.text, strlen (v->u.dt.text));
      }
    case TOML_ARRAY:
      r = sbuf_addc (b, '[');
      for (size_t i = 0; i < v->u.arr.n && r >= 0; i++)
        {
          if (i)
            r = sbuf_addc (b, ',');
          if (r >= 0)
            r = json_value (b, v->u.arr.items[i]);
        }
      return r < 0 ? r : sbuf_addc (b, ']');
    case TOML_TABLE:
      r = sbuf_addc (b, '{');
      for (size_t i = 0; i < v->u.tab.n && r >= 0; i++)
        {
          if (i)
            r = sbuf_addc (b, ',');
          if (r >= 0)
            r = json_string (b, v->u.tab.items[i].key, v->u.tab.items[i].key_len);
          if (r >= 0)
            r = sbuf_addc (b, ':');
          if (r >= 0)
            r = json_value (b, v->u.tab.items[i].value);
        }
      return r < 0 ? r : sbuf_addc (b, '}');
    }
  return BERTH_E_INTERNAL;
}

char *
toml_to_tagged_json (const struct toml_value *v)
{
  struct sbuf b = { 0 };
  if (json_value (&b, v) < 0)
    {
      free (b.s);
      return NULL;
    }
  size_t n;
  return sbuf_steal (&b, &n);
}

char *
toml_quote (const char *s, size_t n)
{
  struct sbuf b = { 0 };
  int r = sbuf_addc (&b, '"');
  for (size_t i = 0; i < n && r >= 0; i++)
    {
      unsigned char c = (unsigned char) s[i];
      switch (c)
        {
        case '"':
          r = sbuf_add (&b, "\\\"", 2);
          break;
        case '\\':
          r = sbuf_add (&b, "\\\\", 2);
          break;
        case '\n':
          r = sbuf_add (&b, "\\n", 2);
          break;
        case '\t':
          r = sbuf_add (&b, "\\t", 2);
          break;
        default:
          if (c < 0x20 || c == 0x7f)
            r = sbuf_printf (&b, "\\u%04X", c);
          else
            r = sbuf_addc (&b, (char) c);
        }
    }
  if (r >= 0)
    r = sbuf_addc (&b, '"');
  if (r < 0)
    {
      free (b.s);
      return NULL;
    }
  size_t len;
  return sbuf_steal (&b, &len);
}

char *
toml_quote_key (const char *s)
{
  size_t n = strlen (s);
  bool bare = n > 0;
  for (size_t i = 0; i < n && bare; i++)
    bare = is_bare_key_char ((unsigned char) s[i]);
  return bare ? strdup (s) : toml_quote (s, n);
}
