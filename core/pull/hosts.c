/* hosts.toml (containerd certs.d layout) → the ordered endpoints of a
 * registry host.  See hosts.h for the rules. */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "core/config/toml.h"
#include "core/pull/hosts.h"

#define HOSTS_FILE_MAX (1024 * 1024)

static int
strv_push (char ***v, const char *s)
{
  size_t n = 0;
  if (*v)
    while ((*v)[n])
      n++;
  char **nv = realloc (*v, (n + 2) * sizeof (char *));
  if (nv == NULL)
    return -ENOMEM;
  *v = nv;
  nv[n] = strdup (s);
  if (nv[n] == NULL)
    return -ENOMEM;
  nv[n + 1] = NULL;
  return 0;
}

static void
host_clear (struct registry_host *h)
{
  free (h->scheme);
  free (h->host);
  free (h->path);
  strv_free (h->ca);
  strv_free (h->client_cert);
  strv_free (h->client_key);
  strv_free (h->headers);
  memset (h, 0, sizeof *h);
}

void
hosts_free (struct registry_hosts *h)
{
  if (h == NULL)
    return;
  for (size_t i = 0; i < h->n; i++)
    host_clear (&h->items[i]);
  free (h->items);
  free (h->dir);
  free (h);
}

/* Split "host:port", "[::1]:port", "::1" into the host part (no brackets)
 * and port ("" when none). */
static void
split_host_port (const char *hostport, char *host, size_t host_sz, const char **ret_port)
{
  const char *port = "";
  size_t hl;
  if (hostport[0] == '[')
    {
      const char *end = strchr (hostport, ']');
      if (end == NULL)
        end = hostport + strlen (hostport);
      hl = (size_t) (end - hostport - 1);
      if (hl >= host_sz)
        hl = host_sz - 1;
      memcpy (host, hostport + 1, hl);
      host[hl] = '\0';
      if (*end == ']' && end[1] == ':')
        port = end + 2;
    }
  else
    {
      const char *colon = strrchr (hostport, ':');
      if (colon && strchr (hostport, ':') == colon)
        {
          hl = (size_t) (colon - hostport);
          port = colon + 1;
        }
      else
        hl = strlen (hostport); /* no port, or a bare IPv6 address */
      if (hl >= host_sz)
        hl = host_sz - 1;
      memcpy (host, hostport, hl);
      host[hl] = '\0';
    }
  *ret_port = port;
}

bool
hosts_is_localhost (const char *hostport)
{
  char h[256];
  const char *port;
  split_host_port (hostport, h, sizeof h, &port);
  if (strcasecmp (h, "localhost") == 0 || strcmp (h, "::1") == 0)
    return true;
  unsigned a, b, c, d;
  char tail;
  if (sscanf (h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 && d < 256)
    return true;
  return false;
}

static const char *
host_port (const char *hostport)
{
  char h[256];
  const char *port;
  split_host_port (hostport, h, sizeof h, &port);
  return port;
}

static char *
abs_path (const char *p, const char *base_dir)
{
  char *r = NULL;
  if (p[0] == '/' || base_dir == NULL)
    return strdup (p);
  if (asprintf (&r, "%s/%s", base_dir, p) < 0)
    return NULL;
  return r;
}

static int
bad_type (berth_error **err, const struct toml_value *v, const char *what)
{
  return berth_error_set (err, BERTH_E_INVALID, 0, "line %u, column %u: invalid type %s for \"%s\"", v->pos.line,
                          v->pos.col, toml_type_name (v), what);
}

/* Parse "https://host:port/path" (a scheme is optional, https assumed). */
static int
parse_server_url (struct registry_host *h, const char *url, bool override_path, berth_error **err)
{
  const char *rest = url;
  if (strncmp (url, "https://", 8) == 0)
    {
      h->scheme = strdup ("https");
      rest = url + 8;
    }
  else if (strncmp (url, "http://", 7) == 0)
    {
      h->scheme = strdup ("http");
      rest = url + 7;
    }
  else if (strstr (url, "://"))
    return berth_error_set (err, BERTH_E_INVALID, 0, "unsupported scheme in host \"%s\"", url);
  else
    h->scheme = strdup ("https");
  if (h->scheme == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
  size_t hl = strcspn (rest, "/?#");
  if (hl == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "no host in \"%s\"", url);
  for (size_t i = 0; i < hl; i++)
    {
      unsigned char c = (unsigned char) rest[i];
      if (c <= ' ' || c >= 0x7f || c == '@' || c == '\\')
        return berth_error_set (err, BERTH_E_INVALID, 0, "invalid host in \"%s\"", url);
    }
  h->host = strndup (rest, hl);
  if (h->host == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
  const char *p = rest + hl;
  if (*p == '?' || *p == '#')
    return berth_error_set (err, BERTH_E_INVALID, 0, "query or fragment in host \"%s\"", url);

  /* Clean the path: collapse "//", drop a trailing "/". */
  _cleanup_free_ char *path = malloc (strlen (p) + 4);
  if (path == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
  size_t o = 0;
  for (const char *q = p; *q; q++)
    {
      if (*q == '/' && o > 0 && path[o - 1] == '/')
        continue;
      unsigned char c = (unsigned char) *q;
      if (c <= ' ' || c >= 0x7f || c == '?' || c == '#')
        return berth_error_set (err, BERTH_E_INVALID, 0, "invalid path in \"%s\"", url);
      path[o++] = *q;
    }
  while (o > 0 && path[o - 1] == '/')
    o--;
  path[o] = '\0';
  if (o == 0)
    strcpy (path, override_path ? "" : "/v2");
  else if (!override_path && (o < 3 || strcmp (path + o - 3, "/v2") != 0))
    strcat (path, "/v2");
  h->path = TAKE_PTR (path);
  return 0;
}

static int
parse_string_or_array (const struct toml_value *v, const char *what, const char *base_dir, char ***out,
                       berth_error **err)
{
  if (v->type == TOML_STRING)
    {
      _cleanup_free_ char *p = abs_path (v->u.str.s, base_dir);
      if (p == NULL || strv_push (out, p) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
      return 0;
    }
  if (v->type != TOML_ARRAY)
    return bad_type (err, v, what);
  for (size_t i = 0; i < v->u.arr.n; i++)
    {
      const struct toml_value *it = v->u.arr.items[i];
      if (it->type != TOML_STRING)
        return bad_type (err, it, what);
      _cleanup_free_ char *p = abs_path (it->u.str.s, base_dir);
      if (p == NULL || strv_push (out, p) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
    }
  return 0;
}

static int
push_client (struct registry_host *h, const char *cert, const char *key, const char *base_dir, berth_error **err)
{
  _cleanup_free_ char *c = abs_path (cert, base_dir);
  _cleanup_free_ char *k = key[0] ? abs_path (key, base_dir) : strdup ("");
  if (c == NULL || k == NULL || strv_push (&h->client_cert, c) < 0 || strv_push (&h->client_key, k) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
  return 0;
}

static int
parse_client (struct registry_host *h, const struct toml_value *v, const char *base_dir, berth_error **err)
{
  if (v->type == TOML_STRING)
    return push_client (h, v->u.str.s, "", base_dir, err);
  if (v->type != TOML_ARRAY)
    return bad_type (err, v, "client");
  for (size_t i = 0; i < v->u.arr.n; i++)
    {
      const struct toml_value *it = v->u.arr.items[i];
      if (it->type == TOML_STRING)
        {
          int r = push_client (h, it->u.str.s, "", base_dir, err);
          if (r < 0)
            return r;
          continue;
        }
      if (it->type != TOML_ARRAY || it->u.arr.n != 2 || it->u.arr.items[0]->type != TOML_STRING
          || it->u.arr.items[1]->type != TOML_STRING)
        return berth_error_set (err, BERTH_E_INVALID, 0,
                                "line %u, column %u: invalid pair for \"client\" (want [\"cert\", \"key\"])",
                                it->pos.line, it->pos.col);
      int r = push_client (h, it->u.arr.items[0]->u.str.s, it->u.arr.items[1]->u.str.s, base_dir, err);
      if (r < 0)
        return r;
    }
  return 0;
}

static bool
header_token_ok (const char *s, bool value)
{
  if (!value && *s == '\0')
    return false;
  for (; *s; s++)
    {
      unsigned char c = (unsigned char) *s;
      if (c == '\r' || c == '\n' || c == '\0')
        return false;
      if (!value && (c <= ' ' || c == ':' || c >= 0x7f))
        return false;
    }
  return true;
}

static int
push_header (struct registry_host *h, const char *name, const struct toml_value *v, berth_error **err)
{
  if (v->type != TOML_STRING)
    return bad_type (err, v, "header");
  if (!header_token_ok (name, false) || !header_token_ok (v->u.str.s, true) || strlen (v->u.str.s) != v->u.str.len)
    return berth_error_set (err, BERTH_E_INVALID, 0, "line %u, column %u: invalid header \"%s\"", v->pos.line,
                            v->pos.col, header_token_ok (name, false) ? name : "?");
  _cleanup_free_ char *line = NULL;
  if (asprintf (&line, "%s: %s", name, v->u.str.s) < 0 || strv_push (&h->headers, line) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
  return 0;
}

/* One [host."url"] table, or the root (url = server, may be NULL). */
static int
parse_host_table (struct registry_host *h, const char *url, const struct toml_value *t, const char *base_dir,
                  bool *ret_explicit_tls, berth_error **err)
{
  const struct toml_value *v;
  bool override_path = false;
  bool explicit_tls = false;
  int r;

  if ((v = toml_table_get (t, "override_path")))
    {
      if (v->type != TOML_BOOL)
        return bad_type (err, v, "override_path");
      override_path = v->u.b;
    }
  if (url && url[0])
    {
      r = parse_server_url (h, url, override_path, err);
      if (r < 0)
        return r;
    }

  if ((v = toml_table_get (t, "capabilities")))
    {
      if (v->type != TOML_ARRAY)
        return bad_type (err, v, "capabilities");
      for (size_t i = 0; i < v->u.arr.n; i++)
        {
          const struct toml_value *c = v->u.arr.items[i];
          if (c->type != TOML_STRING)
            return bad_type (err, c, "capabilities");
          if (strcasecmp (c->u.str.s, "pull") == 0)
            h->caps |= HOST_CAP_PULL;
          else if (strcasecmp (c->u.str.s, "resolve") == 0)
            h->caps |= HOST_CAP_RESOLVE;
          else if (strcasecmp (c->u.str.s, "push") == 0)
            h->caps |= HOST_CAP_PUSH;
          else
            return berth_error_set (err, BERTH_E_INVALID, 0, "line %u, column %u: unknown capability \"%s\"",
                                    c->pos.line, c->pos.col, c->u.str.s);
        }
    }
  else
    h->caps = HOST_CAP_PULL | HOST_CAP_RESOLVE | HOST_CAP_PUSH;

  if ((v = toml_table_get (t, "skip_verify")))
    {
      if (v->type != TOML_BOOL)
        return bad_type (err, v, "skip_verify");
      h->skip_verify = v->u.b;
      explicit_tls = true;
    }
  if ((v = toml_table_get (t, "ca")))
    {
      r = parse_string_or_array (v, "ca", base_dir, &h->ca, err);
      if (r < 0)
        return r;
      explicit_tls = true;
    }
  if ((v = toml_table_get (t, "client")))
    {
      r = parse_client (h, v, base_dir, err);
      if (r < 0)
        return r;
      explicit_tls = true;
    }
  if ((v = toml_table_get (t, "header")))
    {
      if (v->type != TOML_TABLE)
        return bad_type (err, v, "header");
      for (size_t i = 0; i < v->u.tab.n; i++)
        {
          const struct toml_kv *kv = &v->u.tab.items[i];
          if (strlen (kv->key) != kv->key_len)
            return berth_error_set (err, BERTH_E_INVALID, 0, "invalid header name");
          if (kv->value->type == TOML_ARRAY)
            {
              for (size_t j = 0; j < kv->value->u.arr.n; j++)
                {
                  r = push_header (h, kv->key, kv->value->u.arr.items[j], err);
                  if (r < 0)
                    return r;
                }
            }
          else
            {
              r = push_header (h, kv->key, kv->value, err);
              if (r < 0)
                return r;
            }
        }
    }
  if ((v = toml_table_get (t, "dial_timeout")) && v->type != TOML_STRING)
    return bad_type (err, v, "dial_timeout");
  *ret_explicit_tls = explicit_tls;
  return 0;
}

static int
hosts_append (struct registry_hosts *hs, struct registry_host **ret)
{
  struct registry_host *n = realloc (hs->items, (hs->n + 1) * sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  hs->items = n;
  memset (&n[hs->n], 0, sizeof n[hs->n]);
  *ret = &n[hs->n++];
  return 0;
}

/* Fill in the default server (no `server` key), then the per-endpoint rules
 * that depend on the namespace. */
static int
hosts_finish (struct registry_hosts *hs, const char *host, bool plain_http, const bool *explicit_tls,
              berth_error **err)
{
  if (hs->n > 0)
    {
      struct registry_host *last = &hs->items[hs->n - 1];
      if (last->host == NULL)
        {
          const char *port = host_port (host);
          free (last->scheme);
          last->scheme = NULL;
          if (strcmp (host, "docker.io") == 0)
            {
              last->scheme = strdup (plain_http ? "http" : "https");
              last->host = strdup ("registry-1.docker.io");
            }
          else
            {
              last->host = strdup (host);
              if (plain_http)
                last->scheme = strdup ("http");
              else if (hosts_is_localhost (host))
                {
                  /* containerd: localhost is https (unverified), with an
                   * HTTP fallback when the port does not settle it. */
                  last->scheme = strdup (strcmp (port, "80") == 0 ? "http" : "https");
                  if (strcmp (port, "80") != 0)
                    last->skip_verify = true;
                  last->http_fallback = port[0] != '\0' && strcmp (port, "443") != 0 && strcmp (port, "80") != 0;
                }
              else
                last->scheme = strdup ("https");
            }
          free (last->path);
          last->path = strdup ("/v2");
          if (last->scheme == NULL || last->host == NULL || last->path == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          if (last->caps == 0)
            last->caps = HOST_CAP_PULL | HOST_CAP_RESOLVE | HOST_CAP_PUSH;
        }
    }
  for (size_t i = 0; i < hs->n; i++)
    {
      struct registry_host *h = &hs->items[i];
      const char *ns_host = strcmp (host, "docker.io") == 0 ? "registry-1.docker.io" : host;
      h->mirror = strcmp (h->host, ns_host) != 0;
      if (strcmp (h->scheme, "http") == 0 && explicit_tls && explicit_tls[i]
          && strcmp (host_port (h->host), "80") != 0)
        {
          free (h->scheme);
          h->scheme = strdup ("https");
          if (h->scheme == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          h->http_fallback = true;
        }
    }
  return 0;
}

int
hosts_parse (const char *text, size_t len, const char *base_dir, const char *host, bool plain_http,
             struct registry_hosts **ret, berth_error **err)
{
  _cleanup_toml_ struct toml_value *doc = NULL;
  int r = toml_parse (text, len, &doc, NULL, err);
  if (r < 0)
    return r;

  _cleanup_(hosts_freep) struct registry_hosts *hs = calloc (1, sizeof *hs);
  if (hs == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");

  const struct toml_value *tab = toml_table_get (doc, "host");
  size_t nh = tab && tab->type == TOML_TABLE ? tab->u.tab.n : 0;
  if (tab && tab->type != TOML_TABLE)
    return bad_type (err, tab, "host");
  _cleanup_free_ bool *explicit_tls = calloc (nh + 1, sizeof (bool));
  if (explicit_tls == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");

  for (size_t i = 0; i < nh; i++)
    {
      const struct toml_kv *kv = &tab->u.tab.items[i];
      struct registry_host *h;
      if (kv->value->type != TOML_TABLE)
        return bad_type (err, kv->value, "host");
      if (strlen (kv->key) != kv->key_len || kv->key[0] == '\0')
        return berth_error_set (err, BERTH_E_INVALID, 0, "line %u, column %u: invalid host name", kv->pos.line,
                                kv->pos.col);
      if (hosts_append (hs, &h) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
      r = parse_host_table (h, kv->key, kv->value, base_dir, &explicit_tls[i], err);
      if (r < 0)
        return berth_error_wrap (err, "host \"%s\"", kv->key);
    }

  const struct toml_value *server = toml_table_get (doc, "server");
  if (server && server->type != TOML_STRING)
    return bad_type (err, server, "server");
  struct registry_host *root;
  if (hosts_append (hs, &root) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
  if (server && strlen (server->u.str.s) != server->u.str.len)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid server");
  r = parse_host_table (root, server ? server->u.str.s : NULL, doc, base_dir, &explicit_tls[nh], err);
  if (r < 0)
    return server ? berth_error_wrap (err, "server \"%s\"", server->u.str.s) : r;
  if (root->host == NULL)
    explicit_tls[nh] = false; /* the default server's own rules apply */

  r = hosts_finish (hs, host, plain_http, explicit_tls, err);
  if (r < 0)
    return r;
  *ret = TAKE_PTR (hs);
  return 0;
}

static int
read_file (const char *path, char **ret, size_t *ret_len)
{
  _cleanup_fclose_ FILE *f = fopen (path, "re");
  if (f == NULL)
    return -errno;
  _cleanup_free_ char *buf = malloc (HOSTS_FILE_MAX + 1);
  if (buf == NULL)
    return -ENOMEM;
  size_t n = fread (buf, 1, HOSTS_FILE_MAX + 1, f);
  if (ferror (f))
    return -EIO;
  if (n > HOSTS_FILE_MAX)
    return -EFBIG;
  buf[n] = '\0';
  *ret = TAKE_PTR (buf);
  *ret_len = n;
  return 0;
}

static int
cmpstr (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Docker's certs.d pattern: *.crt are CAs, *.cert with the matching *.key
 * are client pairs; sorted by name for a stable order. */
static int
load_cert_files (struct registry_host *h, const char *dir, bool *ret_any, berth_error **err)
{
  DIR *d = opendir (dir);
  if (d == NULL)
    return 0;
  _cleanup_strv_ char **names = NULL;
  struct dirent *de;
  while ((de = readdir (d)))
    if (de->d_name[0] != '.' && strv_push (&names, de->d_name) < 0)
      {
        closedir (d);
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
      }
  closedir (d);
  size_t n = 0;
  while (names && names[n])
    n++;
  if (n)
    qsort (names, n, sizeof (char *), cmpstr);
  for (size_t i = 0; i < n; i++)
    {
      const char *nm = names[i];
      size_t l = strlen (nm);
      _cleanup_free_ char *p = NULL;
      if (asprintf (&p, "%s/%s", dir, nm) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
      if (l > 4 && strcmp (nm + l - 4, ".crt") == 0)
        {
          if (strv_push (&h->ca, p) < 0)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          *ret_any = true;
        }
      else if (l > 5 && strcmp (nm + l - 5, ".cert") == 0)
        {
          _cleanup_free_ char *key = NULL;
          if (asprintf (&key, "%.*s.key", (int) (l - 5), p + strlen (dir) + 1) < 0)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          _cleanup_free_ char *kp = abs_path (key, dir);
          struct stat st;
          if (kp == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          if (stat (kp, &st) < 0)
            return berth_error_set (err, BERTH_E_INVALID, 0, "missing key %s for client certificate %s", kp, p);
          if (strv_push (&h->client_cert, p) < 0 || strv_push (&h->client_key, kp) < 0)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          *ret_any = true;
        }
    }
  return 0;
}

int
hosts_load (const char *config_path, const char *host, bool plain_http, struct registry_hosts **ret,
            berth_error **err)
{
  _cleanup_free_ char *dir = NULL;
  if (host == NULL || host[0] == '\0' || strchr (host, '/') || strstr (host, ".."))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid registry host \"%s\"", host ? host : "");

  if (config_path && config_path[0])
    {
      char alt[PATH_MAX];
      const char *port = host_port (host);
      const char *cands[3] = { NULL, host, "_default" };
      if (port[0] && strlen (host) < sizeof alt - 2)
        {
          snprintf (alt, sizeof alt, "%.*s_%s_", (int) (port - host - 1), host, port);
          cands[0] = alt;
        }
      for (size_t i = 0; i < 3 && dir == NULL; i++)
        {
          if (cands[i] == NULL)
            continue;
          _cleanup_free_ char *p = NULL;
          struct stat st;
          if (asprintf (&p, "%s/%s", config_path, cands[i]) < 0)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
          if (stat (p, &st) == 0 && S_ISDIR (st.st_mode))
            dir = TAKE_PTR (p);
        }
    }

  _cleanup_(hosts_freep) struct registry_hosts *hs = NULL;
  if (dir)
    {
      _cleanup_free_ char *file = NULL, *text = NULL;
      size_t len = 0;
      if (asprintf (&file, "%s/hosts.toml", dir) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
      int r = read_file (file, &text, &len);
      if (r < 0 && r != -ENOENT)
        return berth_error_set (err, berth_errcode_from_errno (-r), -r, "reading %s", file);
      if (r == 0 && len > 0)
        {
          r = hosts_parse (text, len, dir, host, plain_http, &hs, err);
          if (r < 0)
            return berth_error_wrap (err, "%s", file);
        }
    }
  if (hs == NULL)
    {
      bool any = false;
      struct registry_host *h;
      hs = calloc (1, sizeof *hs);
      if (hs == NULL || hosts_append (hs, &h) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "hosts");
      if (dir)
        {
          int r = load_cert_files (h, dir, &any, err);
          if (r < 0)
            return r;
        }
      bool explicit_tls = false;
      int r = hosts_finish (hs, host, plain_http, &explicit_tls, err);
      if (r < 0)
        return r;
    }
  hs->dir = TAKE_PTR (dir);
  *ret = TAKE_PTR (hs);
  return 0;
}
