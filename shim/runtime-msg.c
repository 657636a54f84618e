/* The reason a runc-compatible binary gives for a failure, so that the user
 * sees runc's own words (`exec: "/nope": stat /nope: no such file or
 * directory`).  Both inputs are hostile text: bounded, never read past len,
 * the result always NUL-terminated. */
#include <string.h>

#include "shim.h"

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Copy a quoted string starting after its opening quote, undoing JSON (and
 * Go %q) escapes; stops at the closing quote or at end. */
static void
unquote (const char *p, const char *end, char *ret, size_t retlen)
{
  size_t k = 0;
  while (p < end && *p != '"' && k + 4 < retlen)
    {
      char c = *p++;
      if (c == '\\' && p < end)
        {
          char e = *p++;
          switch (e)
            {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': case 'f': c = ' '; break;
            case 'u':
              {
                unsigned v = 0;
                int i;
                for (i = 0; i < 4 && p < end && hexval (*p) >= 0; i++, p++)
                  v = v * 16 + (unsigned) hexval (*p);
                if (v < 0x80)
                  c = v >= 0x20 ? (char) v : ' ';
                else if (v < 0x800)
                  {
                    ret[k++] = (char) (0xc0 | (v >> 6));
                    c = (char) (0x80 | (v & 0x3f));
                  }
                else
                  {
                    ret[k++] = (char) (0xe0 | (v >> 12));
                    ret[k++] = (char) (0x80 | ((v >> 6) & 0x3f));
                    c = (char) (0x80 | (v & 0x3f));
                  }
                break;
              }
            default: c = e; break;
            }
        }
      ret[k++] = c;
    }
  ret[k] = '\0';
}

static const char *
memmem_last_line_start (const char *base, const char *p)
{
  while (p > base && p[-1] != '\n')
    p--;
  return p;
}

bool
runtime_msg_from_json_log (const char *log, size_t len, char *ret, size_t retlen)
{
  static const char *const levels[] = { "\"level\":\"fatal\"", "\"level\":\"error\"" };
  const char *best = NULL;
  /* The last error (or fatal) record wins: runc logs the cause last. */
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    {
      const char *p = log, *end = log + len;
      size_t ll = strlen (levels[i]);
      while (p < end)
        {
          const char *hit = memmem (p, (size_t) (end - p), levels[i], ll);
          if (hit == NULL)
            break;
          if (best == NULL || hit > best)
            best = hit;
          p = hit + ll;
        }
    }
  if (best == NULL || retlen == 0)
    return false;
  const char *line = memmem_last_line_start (log, best);
  const char *eol = memchr (line, '\n', (size_t) (log + len - line));
  if (eol == NULL)
    eol = log + len;
  const char *m = memmem (line, (size_t) (eol - line), "\"msg\":\"", 7);
  if (m == NULL)
    return false;
  unquote (m + 7, eol, ret, retlen);
  return *ret != '\0';
}

bool
runtime_msg_from_stderr (const char *text, size_t len, char *ret, size_t retlen)
{
  if (retlen == 0)
    return false;
  *ret = '\0';
  /* logrus' text format: time="..." level=error msg="..." */
  const char *last = NULL, *p = text, *end = text + len;
  while (p < end)
    {
      const char *hit = memmem (p, (size_t) (end - p), "msg=\"", 5);
      if (hit == NULL)
        break;
      last = hit;
      p = hit + 5;
    }
  if (last)
    {
      const char *eol = memchr (last, '\n', (size_t) (end - last));
      unquote (last + 5, eol ? eol : end, ret, retlen);
      return *ret != '\0';
    }
  /* Otherwise the text itself, trimmed, control characters blanked. */
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\r'))
    len--;
  while (len > 0 && (*text == '\n' || *text == ' '))
    text++, len--;
  size_t k = 0;
  for (size_t i = 0; i < len && k + 1 < retlen; i++)
    {
      unsigned char c = (unsigned char) text[i];
      ret[k++] = (c < 0x20 && c != '\t') ? (c == '\n' ? ';' : ' ') : (char) c;
    }
  ret[k] = '\0';
  return k > 0;
}
