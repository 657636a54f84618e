#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "filters.h"

enum op
{
  OP_PRESENT,
  OP_EQ,
  OP_NE,
  OP_MATCH,
};

struct selector
{
  char **path; /* NULL-terminated */
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

struct filter_set
{
  struct conj *alts;
  size_t n;
};

static void
selector_clear (struct selector *s)
{
  strv_free (s->path);
  free (s->value);
  if (s->has_re)
    regfree (&s->re);
}

void
filters_free (filter_set *f)
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
  const char *s;
  size_t pos;
  const char *text;
};

static int
perr (struct parser *p, berth_error **err, const char *what)
{
  return berth_error_set (err, BERTH_E_INVALID, 0, "filter `%s`: %s at position %zu", p->text, what, p->pos + 1);
}

static void
skip_ws (struct parser *p)
{
  while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t')
    p->pos++;
}

static int
parse_quoted (struct parser *p, char **ret, berth_error **err)
{
  char q = p->s[p->pos++];
  size_t cap = strlen (p->s + p->pos) + 1, n = 0;
  _cleanup_free_ char *out = malloc (cap);
  if (out == NULL)
    return BERTH_E_NOMEM;
  for (;;)
    {
      char c = p->s[p->pos];
      if (c == '\0')
        return perr (p, err, "unterminated quoted string");
      p->pos++;
      if (c == q)
        break;
      if (c == '\\' && p->s[p->pos] != '\0')
        c = p->s[p->pos++];
      out[n++] = c;
    }
  out[n] = '\0';
  *ret = TAKE_PTR (out);
  return 0;
}

static int
parse_field (struct parser *p, char **ret, berth_error **err)
{
  if (p->s[p->pos] == '"' || p->s[p->pos] == '\'' || p->s[p->pos] == '`')
    return parse_quoted (p, ret, err);
  size_t start = p->pos;
  while (isalnum ((unsigned char) p->s[p->pos]) || p->s[p->pos] == '_' || p->s[p->pos] == '-')
    p->pos++;
  if (p->pos == start)
    return perr (p, err, "expected a field name");
  *ret = strndup (p->s + start, p->pos - start);
  return *ret ? 0 : BERTH_E_NOMEM;
}

static int
parse_selector (struct parser *p, struct selector *sel, berth_error **err)
{
  memset (sel, 0, sizeof *sel);
  skip_ws (p);
  for (;;)
    {
      char *field = NULL;
      int r = parse_field (p, &field, err);
      if (r < 0)
        return r;
      char **np = realloc (sel->path, (sel->npath + 2) * sizeof (char *));
      if (np == NULL)
        {
          free (field);
          return BERTH_E_NOMEM;
        }
      sel->path = np;
      sel->path[sel->npath++] = field;
      sel->path[sel->npath] = NULL;
      if (p->s[p->pos] != '.')
        break;
      p->pos++;
    }
  skip_ws (p);
  const char *o = p->s + p->pos;
  if (*o == '\0' || *o == ',')
    {
      sel->op = OP_PRESENT;
      return 0;
    }
  if (strncmp (o, "==", 2) == 0)
    sel->op = OP_EQ;
  else if (strncmp (o, "!=", 2) == 0)
    sel->op = OP_NE;
  else if (strncmp (o, "~=", 2) == 0)
    sel->op = OP_MATCH;
  else
    return perr (p, err, "expected ==, != or ~=");
  p->pos += 2;
  skip_ws (p);
  int r;
  if (p->s[p->pos] == '"' || p->s[p->pos] == '\'' || p->s[p->pos] == '`')
    r = parse_quoted (p, &sel->value, err);
  else
    {
      size_t start = p->pos;
      while (p->s[p->pos] && p->s[p->pos] != ',')
        p->pos++;
      size_t end = p->pos;
      while (end > start && (p->s[end - 1] == ' ' || p->s[end - 1] == '\t'))
        end--;
      if (end == start)
        return perr (p, err, "expected a value");
      sel->value = strndup (p->s + start, end - start);
      r = sel->value ? 0 : BERTH_E_NOMEM;
    }
  if (r < 0)
    return r;
  if (sel->op == OP_MATCH)
    {
      if (regcomp (&sel->re, sel->value, REG_EXTENDED | REG_NOSUB) != 0)
        return perr (p, err, "invalid regular expression");
      sel->has_re = true;
    }
  skip_ws (p);
  return 0;
}

int
filters_parse (const char *const *filters, size_t n, filter_set **ret, berth_error **err)
{
  filter_set *f = calloc (1, sizeof *f);
  if (f == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "filters");
  for (size_t i = 0; i < n; i++)
    {
      if (filters[i] == NULL || filters[i][0] == '\0')
        continue;
      struct conj *na = realloc (f->alts, (f->n + 1) * sizeof *na);
      if (na == NULL)
        {
          filters_free (f);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "filters");
        }
      f->alts = na;
      struct conj *c = &f->alts[f->n++];
      memset (c, 0, sizeof *c);
      struct parser p = { .s = filters[i], .pos = 0, .text = filters[i] };
      for (;;)
        {
          struct selector *ns = realloc (c->sel, (c->n + 1) * sizeof *ns);
          if (ns == NULL)
            {
              filters_free (f);
              return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "filters");
            }
          c->sel = ns;
          int r = parse_selector (&p, &c->sel[c->n], err);
          c->n++;
          if (r < 0)
            {
              filters_free (f);
              return r == BERTH_E_NOMEM ? berth_error_set (err, r, ENOMEM, "filters") : r;
            }
          if (p.s[p.pos] == '\0')
            break;
          if (p.s[p.pos] != ',')
            {
              int e = perr (&p, err, "expected `,`");
              filters_free (f);
              return e;
            }
          p.pos++;
        }
    }
  *ret = f;
  return 0;
}

static bool
selector_match (const struct selector *s, filter_adaptor adaptor, void *obj)
{
  const char *v = adaptor (obj, (const char *const *) s->path, s->npath);
  switch (s->op)
    {
    case OP_PRESENT: return v != NULL;
    case OP_EQ: return v != NULL && strcmp (v, s->value) == 0;
    case OP_NE: return v == NULL || strcmp (v, s->value) != 0;
    case OP_MATCH: return v != NULL && regexec (&s->re, v, 0, NULL, 0) == 0;
    }
  return false;
}

bool
filters_match (const filter_set *f, filter_adaptor adaptor, void *obj)
{
  if (f == NULL || f->n == 0)
    return true;
  for (size_t i = 0; i < f->n; i++)
    {
      bool all = true;
      for (size_t j = 0; all && j < f->alts[i].n; j++)
        all = selector_match (&f->alts[i].sel[j], adaptor, obj);
      if (all)
        return true;
    }
  return false;
}

bool
filters_is_empty (const filter_set *f)
{
  return f == NULL || f->n == 0;
}
