#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "helpers.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"

/* ---- sizes, ages, times ---- */

const char *
human_size (char *buf, int64_t bytes)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double v = (double) bytes;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < ARRAY_SIZE (units))
    {
      v /= 1024.0;
      u++;
    }
  snprintf (buf, HUMAN_SIZE_MAX, "%.1f %s", v, units[u]);
  return buf;
}

const char *
human_age (char *buf, const Google__Protobuf__Timestamp *then, time_t now)
{
  if (then == NULL || (then->seconds == 0 && then->nanos == 0))
    return strcpy (buf, "-");
  double d = (double) now - (double) then->seconds - then->nanos / 1e9;
  long s = d < 0 ? 0 : (long) d;
  long m = s / 60;
  long h = (long) (d / 3600.0 + 0.5);
  if (s < 1)
    snprintf (buf, HUMAN_AGE_MAX, "Less than a second ago");
  else if (s == 1)
    snprintf (buf, HUMAN_AGE_MAX, "1 second ago");
  else if (s < 60)
    snprintf (buf, HUMAN_AGE_MAX, "%ld seconds ago", s);
  else if (m == 1)
    snprintf (buf, HUMAN_AGE_MAX, "About a minute ago");
  else if (m < 60)
    snprintf (buf, HUMAN_AGE_MAX, "%ld minutes ago", m);
  else if (h == 1)
    snprintf (buf, HUMAN_AGE_MAX, "About an hour ago");
  else if (h < 48)
    snprintf (buf, HUMAN_AGE_MAX, "%ld hours ago", h);
  else if (h < 24 * 7 * 2)
    snprintf (buf, HUMAN_AGE_MAX, "%ld days ago", h / 24);
  else if (h < 24 * 30 * 2)
    snprintf (buf, HUMAN_AGE_MAX, "%ld weeks ago", h / 24 / 7);
  else if (h < 24 * 365 * 2)
    snprintf (buf, HUMAN_AGE_MAX, "%ld months ago", h / 24 / 30);
  else
    snprintf (buf, HUMAN_AGE_MAX, "%ld years ago", s / 3600 / 24 / 365);
  return buf;
}

const char *
time_rfc3339 (char *buf, time_t t)
{
  struct tm tm;
  if (gmtime_r (&t, &tm) == NULL)
    return strcpy (buf, "-");
  strftime (buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

char *
timestamp_rfc3339 (const Google__Protobuf__Timestamp *ts)
{
  if (ts == NULL)
    return NULL;
  struct tm tm;
  time_t t = (time_t) ts->seconds;
  if (gmtime_r (&t, &tm) == NULL)
    return NULL;
  char date[32];
  strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char *s = NULL;
  int r;
  if (ts->nanos > 0)
    {
      /* Go's RFC3339Nano: the fraction without trailing zeros. */
      char frac[16];
      snprintf (frac, sizeof frac, "%09" PRId32, ts->nanos);
      for (size_t i = strlen (frac); i > 0 && frac[i - 1] == '0'; i--)
        frac[i - 1] = 0;
      r = asprintf (&s, "%s.%sZ", date, frac);
    }
  else
    r = asprintf (&s, "%sZ", date);
  return r < 0 ? NULL : s;
}

json_object *
timestamp_json (const Google__Protobuf__Timestamp *ts)
{
  _cleanup_free_ char *s = timestamp_rfc3339 (ts);
  return s ? json_object_new_string (s) : NULL;
}

/* ---- label maps ---- */

static char **
entry_field (ProtobufCMessage *m, const char *name)
{
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name (m->descriptor, name);
  return f ? (char **) ((char *) m + f->offset) : NULL;
}

static const char *
entry_get (const void *entry, const char *name)
{
  char **p = entry_field ((ProtobufCMessage *) entry, name);
  return p && *p ? *p : "";
}

int
pb_labels_add (struct pb_labels *l, const char *key, const char *value)
{
  ProtobufCMessage **n = realloc (l->entries, (l->n + 1) * sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  l->entries = n;
  ProtobufCMessage *m = calloc (1, l->entry_desc->sizeof_message);
  if (m == NULL)
    return -ENOMEM;
  protobuf_c_message_init (l->entry_desc, m);
  char **k = entry_field (m, "key"), **v = entry_field (m, "value");
  if (k == NULL || v == NULL)
    {
      free (m);
      return -EINVAL;
    }
  *k = strdup (key);
  *v = strdup (value);
  l->entries[l->n++] = m; /* freed by pb_labels_free even when a strdup failed */
  return *k && *v ? 0 : -ENOMEM;
}

int
pb_labels_add_args (struct pb_labels *l, int argc, char **argv)
{
  for (int i = 0; i < argc; i++)
    {
      _cleanup_free_ char *k = NULL, *v = NULL;
      if (cli_split_label (argv[i], &k, &v) < 0 || pb_labels_add (l, k, v) < 0)
        return -ENOMEM;
    }
  return 0;
}

void
pb_labels_free (struct pb_labels *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      char **k = entry_field (l->entries[i], "key"), **v = entry_field (l->entries[i], "value");
      free (*k);
      free (*v);
      free (l->entries[i]);
    }
  free (l->entries);
  l->entries = NULL;
  l->n = 0;
}

char **
pb_labels_mask_paths (const struct pb_labels *l)
{
  char **paths = calloc (l->n + 1, sizeof *paths);
  if (paths == NULL)
    return NULL;
  for (size_t i = 0; i < l->n; i++)
    if (asprintf (&paths[i], "labels.%s", entry_get (l->entries[i], "key")) < 0)
      {
        paths[i] = NULL;
        strv_free (paths);
        return NULL;
      }
  return paths;
}

static int
entry_cmp (const void *a, const void *b)
{
  return strcmp (entry_get (*(void *const *) a, "key"), entry_get (*(void *const *) b, "key"));
}

char *
pb_labels_string (void **entries, size_t n)
{
  if (n == 0)
    return NULL;
  qsort (entries, n, sizeof *entries, entry_cmp);
  char *s = NULL;
  size_t len = 0;
  _cleanup_fclose_ FILE *f = open_memstream (&s, &len);
  if (f == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    fprintf (f, "%s%s=%s", i ? "," : "", entry_get (entries[i], "key"), entry_get (entries[i], "value"));
  if (fclose (TAKE_PTR (f)) != 0)
    {
      free (s);
      return NULL;
    }
  return s;
}

json_object *
pb_labels_json (void **entries, size_t n)
{
  json_object *o = json_object_new_object ();
  if (n)
    qsort (entries, n, sizeof *entries, entry_cmp);
  for (size_t i = 0; i < n; i++)
    json_object_object_add (o, entry_get (entries[i], "key"), json_object_new_string (entry_get (entries[i], "value")));
  return o;
}

const char *
pb_labels_get (void *const *entries, size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (entry_get (entries[i], "key"), key) == 0)
      return entry_get (entries[i], "value");
  return NULL;
}

/* ---- Content/Read ---- */

#define CONTENT_READ "/containerd.services.content.v1.Content/Read"

struct read_buf
{
  size_t max;
  char *data;
  size_t len;
  size_t cap;
  int fd;
};

static int
on_read (const ProtobufCMessage *msg, void *data, berth_error **err)
{
  const Containerd__Services__Content__V1__ReadContentResponse *r = (const void *) msg;
  struct read_buf *b = data;
  if (b->fd >= 0)
    {
      for (size_t off = 0; off < r->data.len;)
        {
          ssize_t w = write (b->fd, r->data.data + off, r->data.len - off);
          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            return berth_error_set (err, BERTH_E_INTERNAL, errno, "writing the content");
          off += (size_t) w;
        }
      return 0;
    }
  if (r->offset < 0 || (uint64_t) r->offset != b->len)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "the server sent offset %" PRId64 ", expected %zu",
                            r->offset, b->len);
  if (r->data.len > b->max - b->len)
    return berth_error_set (err, BERTH_E_EXHAUSTED, 0, "larger than %zu bytes", b->max);
  if (b->len + r->data.len + 1 > b->cap)
    {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + r->data.len + 1)
        cap *= 2;
      char *n = realloc (b->data, cap);
      if (n == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "reading the content");
      b->data = n;
      b->cap = cap;
    }
  memcpy (b->data + b->len, r->data.data, r->data.len);
  b->len += r->data.len;
  return 0;
}

static int
content_read (struct cli *cli, const char *digest, struct read_buf *b, berth_error **err)
{
  grpc_client *c = cli_client (cli);
  if (c == NULL)
    return BERTH_E_UNAVAILABLE;
  struct grpc_client_md md[] = { { "containerd-namespace", cli->ns } };
  Containerd__Services__Content__V1__ReadContentRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
  req.digest = (char *) digest;
  return grpc_client_server_stream (c, CONTENT_READ, md, ARRAY_SIZE (md), &req.base,
                                    &containerd__services__content__v1__read_content_response__descriptor, on_read,
                                    b, err);
}

int
content_read_all (struct cli *cli, const char *digest, size_t max, char **ret, size_t *ret_len, berth_error **err)
{
  struct read_buf b = { .max = max, .fd = -1 };
  int r = content_read (cli, digest, &b, err);
  if (r < 0)
    {
      free (b.data);
      return r;
    }
  if (b.data == NULL && (b.data = malloc (1)) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "reading the content");
  b.data[b.len] = 0;
  *ret = b.data;
  *ret_len = b.len;
  return 0;
}

int
content_read_to_fd (struct cli *cli, const char *digest, int fd, berth_error **err)
{
  struct read_buf b = { .fd = fd };
  return content_read (cli, digest, &b, err);
}

/* ---- prompts ---- */

bool
cli_can_prompt (void)
{
  return isatty (STDIN_FILENO) == 1;
}

int
cli_prompt (const char *prompt, bool echo, char **ret)
{
  if (!cli_can_prompt ())
    return -ENOTTY;
  struct termios old, quiet;
  bool restore = false;
  fputs (prompt, stderr);
  fflush (stderr);
  if (!echo && tcgetattr (STDIN_FILENO, &old) == 0)
    {
      quiet = old;
      quiet.c_lflag &= ~(tcflag_t) ECHO;
      quiet.c_lflag |= ECHONL;
      restore = tcsetattr (STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline (&line, &cap, stdin);
  int saved = errno;
  if (restore)
    tcsetattr (STDIN_FILENO, TCSAFLUSH, &old);
  if (n < 0)
    {
      free (line);
      return feof (stdin) ? -ENODATA : -saved;
    }
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = 0;
  *ret = line;
  return 0;
}

/* ---- media types ---- */

bool
media_type_is_index (const char *mt)
{
  return mt && (strcmp (mt, "application/vnd.oci.image.index.v1+json") == 0
                || strcmp (mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
}

bool
media_type_is_manifest (const char *mt)
{
  return mt && (strcmp (mt, "application/vnd.oci.image.manifest.v1+json") == 0
                || strcmp (mt, "application/vnd.docker.distribution.manifest.v2+json") == 0);
}

bool
media_type_is_config (const char *mt)
{
  return mt && (strcmp (mt, "application/vnd.oci.image.config.v1+json") == 0
                || strcmp (mt, "application/vnd.docker.container.image.v1+json") == 0);
}
