/* A small matcher for containerd's filter syntax
 * (github.com/containerd/containerd/filters), shared by every snapshotter:
 *
 *   filter    := selector ("," selector)*     every selector must match
 *   selector  := fieldpath [op value]          no op: the field is present
 *   fieldpath := field ("." field)*            field: [A-Za-z0-9_]+ or quoted
 *   op        := "==" | "!=" | "~="            ~= is a POSIX extended regex
 *   value     := quoted ("…", '…' or /…/) | characters up to ","
 *
 * A list of filters matches when any one matches; an empty list matches
 * everything.  As in containerd, "!=" and "~=" compare an absent field as
 * the empty string, "==" needs the field present.
 *
 * The same matcher as plugins/stores/local/filter.c: a plugin may not share
 * code with another, so the SDK carries its own copy for snapshotters.
 */
#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "snapstore-private.h"

enum op
{
  OP_PRESENT,
  OP_EQ,
  OP_NE,
  OP_MATCH,
};

struct selector
{
  char **path;
  size_t npath;
  enum op op;
  char *value;
  regex_t re;
  bool has_re;
};

struct conj
{
  struct selector *sel;
  size_t n;
};

struct snapstore_filter
{
  struct conj *alts;
  size_t n;
};

static void
selector_clear (struct selector *sel)
{
  for (size_t i = 0; i < sel->npath; i++)
    free (sel->path[i]);
  free (sel->path);
  free (sel->value);
  if (sel->has_re)
    regfree (&sel->re);
}

void
snapstore_filter_free (snapstore_filter *f)
{
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->n; i++)
    {
      for (size_t j = 0; j < f->alts[i].n; j++)
        selector_clear (&f->alts[i].sel[j]);
      free (f->alts[i].sel);
    }
  free (f->alts);
  free (f);
}

struct parser
{
  const struct berth_host *host;
  berth_error *err;
  const char *text; /* the whole filter, for messages */
  const char *p;
};

static int
parse_error (struct parser *ps, const char *what)
{
  return ps->host->error_set (ps->err, BERTH_E_INVALID, 0, "invalid filter %.200s at column %zu: %s", ps->text,
                                 (size_t) (ps->p - ps->text) + 1, what);
}

static void
skip_ws (struct parser *ps)
{
  while (*ps->p == ' ' || *ps->p == '\t')
    ps->p++;
}

/* A quoted string starting at ps->p; "…" and '…' take backslash escapes,
 * /…/ only \/ (so that regex escapes survive). */
static int
parse_quoted (struct parser *ps, char **ret)
{
  char q = *ps->p++;
  size_t cap = strlen (ps->p) + 1, n = 0;
  char *out = malloc (cap);
  if (out == NULL)
    return ps->host->error_set (ps->err, BERTH_E_NOMEM, 0, "out of memory");
  for (;;)
    {
      char c = *ps->p;
      if (c == '\0')
        {
          free (out);
          return parse_error (ps, "unterminated quoted string");
        }
      ps->p++;
      if (c == q)
        break;
      if (c == '\\' && *ps->p != '\0')
        {
          char e = *ps->p++;
          if (q == '/')
            {
              if (e != '/')
                out[n++] = '\\';
              out[n++] = e;
              continue;
            }
          out[n++] = e == 'n' ? '\n' : e == 't' ? '\t' : e;
          continue;
        }
      out[n++] = c;
    }
  out[n] = '\0';
  *ret = out;
  return 0;
}

static int
parse_field (struct parser *ps, char **ret)
{
  if (*ps->p == '"' || *ps->p == '\'')
    return parse_quoted (ps, ret);
  const char *start = ps->p;
  while (isalnum ((unsigned char) *ps->p) || *ps->p == '_')
    ps->p++;
  if (ps->p == start)
    return parse_error (ps, "expected a field name");
  *ret = strndup (start, (size_t) (ps->p - start));
  return *ret ? 0 : ps->host->error_set (ps->err, BERTH_E_NOMEM, 0, "out of memory");
}

static int
parse_selector (struct parser *ps, struct selector *sel)
{
  for (;;)
    {
      char *field = NULL;
      int r = parse_field (ps, &field);
      if (r < 0)
        return r;
      char **np = realloc (sel->path, (sel->npath + 1) * sizeof *np);
      if (np == NULL)
        {
          free (field);
          return ps->host->error_set (ps->err, BERTH_E_NOMEM, 0, "out of memory");
        }
      sel->path = np;
      sel->path[sel->npath++] = field;
      if (*ps->p != '.')
        break;
      ps->p++;
    }
  skip_ws (ps);
  if (*ps->p == '\0' || *ps->p == ',')
    {
      sel->op = OP_PRESENT;
      return 0;
    }
  if (strncmp (ps->p, "==", 2) == 0)
    sel->op = OP_EQ;
  else if (strncmp (ps->p, "!=", 2) == 0)
    sel->op = OP_NE;
  else if (strncmp (ps->p, "~=", 2) == 0)
    sel->op = OP_MATCH;
  else
    return parse_error (ps, "expected an operator (==, != or ~=)");
  ps->p += 2;
  skip_ws (ps);
  if (*ps->p == '"' || *ps->p == '\'' || *ps->p == '/')
    {
      int r = parse_quoted (ps, &sel->value);
      if (r < 0)
        return r;
    }
  else
    {
      const char *start = ps->p;
      while (*ps->p != '\0' && *ps->p != ',')
        ps->p++;
      const char *end = ps->p;
      while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
      if (end == start)
        return parse_error (ps, "expected a value");
      sel->value = strndup (start, (size_t) (end - start));
      if (sel->value == NULL)
        return ps->host->error_set (ps->err, BERTH_E_NOMEM, 0, "out of memory");
    }
  if (sel->op == OP_MATCH)
    {
      int rc = regcomp (&sel->re, sel->value, REG_EXTENDED | REG_NOSUB);
      if (rc != 0)
        {
          char msg[128];
          regerror (rc, &sel->re, msg, sizeof msg);
          return ps->host->error_set (ps->err, BERTH_E_INVALID, 0, "invalid filter %.200s: regex %.200s: %s",
                                         ps->text, sel->value, msg);
        }
      sel->has_re = true;
    }
  return 0;
}

static int
parse_one (struct parser *ps, struct conj *c)
{
  for (;;)
    {
      skip_ws (ps);
      struct selector *ns = realloc (c->sel, (c->n + 1) * sizeof *ns);
      if (ns == NULL)
        return ps->host->error_set (ps->err, BERTH_E_NOMEM, 0, "out of memory");
      c->sel = ns;
      memset (&c->sel[c->n], 0, sizeof c->sel[c->n]);
      int r = parse_selector (ps, &c->sel[c->n++]);
      if (r < 0)
        return r;
      skip_ws (ps);
      if (*ps->p == '\0')
        return 0;
      if (*ps->p != ',')
        return parse_error (ps, "expected , or the end");
      ps->p++;
    }
}

int
snapstore_filter_parse (const struct berth_host *host, const char *const *filters, snapstore_filter **ret, berth_error *err)
{
  *ret = NULL;
  size_t n = 0;
  for (const char *const *f = filters; f && *f; f++)
    if (**f != '\0')
      n++;
  if (n == 0)
    return 0;
  snapstore_filter *lf = calloc (1, sizeof *lf);
  if (lf == NULL || (lf->alts = calloc (n, sizeof *lf->alts)) == NULL)
    {
      free (lf);
      return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  for (const char *const *f = filters; *f; f++)
    {
      if (**f == '\0')
        continue;
      struct parser ps = { .host = host, .err = err, .text = *f, .p = *f };
      int r = parse_one (&ps, &lf->alts[lf->n++]);
      if (r < 0)
        {
          snapstore_filter_free (lf);
          return r;
        }
    }
  *ret = lf;
  return 0;
}

static bool
selector_match (const struct selector *sel, snapstore_filter_field field, void *obj)
{
  const char *v = field (obj, (const char *const *) sel->path, sel->npath);
  switch (sel->op)
    {
    case OP_PRESENT:
      return v != NULL;
    case OP_EQ:
      return v != NULL && strcmp (v, sel->value) == 0;
    case OP_NE:
      return strcmp (v ? v : "", sel->value) != 0;
    case OP_MATCH:
      return regexec (&sel->re, v ? v : "", 0, NULL, 0) == 0;
    }
  return false;
}

bool
snapstore_filter_match (const snapstore_filter *f, snapstore_filter_field field, void *obj)
{
  if (f == NULL)
    return true;
  for (size_t i = 0; i < f->n; i++)
    {
      bool all = true;
      for (size_t j = 0; all && j < f->alts[i].n; j++)
        all = selector_match (&f->alts[i].sel[j], field, obj);
      if (all)
        return true;
    }
  return false;
}

bool
snapstore_filter_uses (const snapstore_filter *f, const char *name)
{
  for (size_t i = 0; f && i < f->n; i++)
    for (size_t j = 0; j < f->alts[i].n; j++)
      if (strcmp (f->alts[i].sel[j].path[0], name) == 0)
        return true;
  return false;
}
