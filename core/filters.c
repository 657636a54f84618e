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

/* glibc's regcomp copies a subexpression once per repetition (x+ becomes
 * xx*, x{n} n copies, and so on down nested groups), so a short hostile
 * filter asks for gigabytes ("id~=a" and 80 `+`), and stacked quantifiers
 * make its epsilon closures take minutes ("m++++++++~+=++?+++..."): both
 * found by tests/fuzz/fuzz-filters.  containerd's Go regexp refuses such
 * expressions (nested repetition operator, repeat count over 1000, program
 * too large) and has no backreferences, whose matching can take exponential
 * time in glibc.  So refuse a quantifier right after another (POSIX leaves
 * it undefined; one `?` is let through, as Go's lazy `*?` reads), `\1`..`\9`,
 * a nesting past RE_MAX_DEPTH, and a compiled tree estimated (an upper bound:
 * each byte a node, each repetition a copy) past RE_MAX_NODES.
 * Returns NULL or why the expression is refused. */
#define RE_MAX_NODES 20000
#define RE_MAX_DEPTH 32

static const char *
regex_refusal (const char *re)
{
  size_t total[RE_MAX_DEPTH + 1], last[RE_MAX_DEPTH + 1];
  int d = 0, prev_quant = 0; /* quantifiers just seen in a row */
  total[0] = last[0] = 0;
  for (const char *q = re; *q; q++)
    {
      size_t atom = 1, factor = 0;
      switch (*q)
        {
        case '\\':
          if (q[1] >= '1' && q[1] <= '9')
            return "backreferences are not supported";
          if (q[1])
            q++;
          break;
        case '[':
          q++;
          if (*q == '^')
            q++;
          if (*q == ']')
            q++;
          for (; *q && *q != ']'; q++)
            if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '='))
              {
                const char *e = q + 2;
                while (*e && !(e[0] == q[1] && e[1] == ']'))
                  e++;
                if (*e == '\0')
                  return NULL; /* unterminated: regcomp says so */
                q = e + 1;
              }
          if (*q == '\0')
            return NULL;
          break;
        case '(':
          if (++d > RE_MAX_DEPTH)
            return "too deeply nested";
          total[d] = last[d] = 0;
          prev_quant = 0;
          continue;
        case ')':
          if (d == 0)
            break;
          atom = total[d] + 1;
          d--;
          break;
        case '|':
          last[d] = 0;
          prev_quant = 0;
          continue;
        case '*':
        case '?':
          factor = 1;
          break;
        case '+':
          factor = 2;
          break;
        case '{':
          if (isdigit ((unsigned char) q[1]))
            {
              char *e;
              unsigned long m = strtoul (q + 1, &e, 10), n = m;
              if (*e == ',' && isdigit ((unsigned char) e[1]))
                n = strtoul (e + 1, &e, 10);
              else if (*e == ',')
                e++, n = m + 1;
              if (*e == '}')
                {
                  if (m > 1000 || n > 1000)
                    return "a repeat count is over 1000";
                  factor = (m > n ? m : n) + 1;
                  q = e;
                }
            }
          break;
        }
      if (factor && prev_quant && !(*q == '?' && prev_quant == 1))
        return "a repetition of a repetition (nested repetition operator)";
      prev_quant = factor ? prev_quant + 1 : 0;
      if (factor)
        {
          /* the last atom, repeated: its copies replace it */
          size_t grown = last[d] * factor + 1;
          total[d] += grown - last[d];
          last[d] = grown;
        }
      else
        {
          total[d] += atom;
          last[d] = atom;
        }
      if (total[d] > RE_MAX_NODES || last[d] > RE_MAX_NODES)
        return "too large once compiled";
    }
  return NULL;
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
      const char *why = regex_refusal (sel->value);
      if (why)
        return berth_error_set (err, BERTH_E_INVALID, 0, "filter `%s`: regular expression `%s`: %s", p->text,
                                sel->value, why);
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
