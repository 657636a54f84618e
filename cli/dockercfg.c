#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cleanup.h"
#include "dockercfg.h"
#include "fs.h"

/* A helper's answer is a small JSON document or a one-line error. */
#define HELPER_OUTPUT_MAX (1u << 20)

struct dockercfg
{
  char *path;
  json_object *root;
};

static void
free_secret (char *s)
{
  if (s)
    {
      explicit_bzero (s, strlen (s));
      free (s);
    }
}

static void
free_secretp (char **s)
{
  free_secret (*s);
  *s = NULL;
}
#define _cleanup_secret_ _cleanup_ (free_secretp)

/* ---- base64 ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
dockercfg_base64_encode (const void *data, size_t len)
{
  const unsigned char *in = data;
  char *out = malloc ((len + 2) / 3 * 4 + 1);
  if (out == NULL)
    return NULL;
  char *p = out;
  for (size_t i = 0; i < len; i += 3)
    {
      unsigned v = (unsigned) in[i] << 16;
      if (i + 1 < len)
        v |= (unsigned) in[i + 1] << 8;
      if (i + 2 < len)
        v |= in[i + 2];
      *p++ = b64_alphabet[(v >> 18) & 63];
      *p++ = b64_alphabet[(v >> 12) & 63];
      *p++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
      *p++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
  *p = 0;
  return out;
}

char *
dockercfg_base64_decode (const char *s, size_t *ret_len)
{
  size_t n = strlen (s);
  while (n > 0 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return NULL;
  char *out = malloc (n / 4 * 3 + 3 + 1);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++)
    {
      const char *c = strchr (b64_alphabet, s[i]);
      if (c == NULL || s[i] == 0)
        {
          free (out);
          return NULL;
        }
      acc = acc << 6 | (unsigned) (c - b64_alphabet);
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          out[o++] = (char) ((acc >> bits) & 0xff);
        }
    }
  out[o] = 0;
  if (ret_len)
    *ret_len = o;
  return out;
}

/* ---- paths and keys ---- */

int
dockercfg_default_path (char **ret, berth_error **err)
{
  const char *dir = getenv ("DOCKER_CONFIG");
  char *p = NULL;
  int r;
  if (dir && *dir)
    r = asprintf (&p, "%s/config.json", dir);
  else
    {
      const char *home = getenv ("HOME");
      if (home == NULL || *home == 0)
        return berth_error_set (err, BERTH_E_NOTFOUND, 0,
                                "neither $DOCKER_CONFIG nor $HOME is set: no place for config.json");
      r = asprintf (&p, "%s/.docker/config.json", home);
    }
  if (r < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "config.json path");
  *ret = p;
  return 0;
}

char *
dockercfg_server_key (const char *server)
{
  if (server == NULL || *server == 0)
    return strdup (DOCKERCFG_HUB_KEY);
  const char *h = server;
  if (strncmp (h, "https://", 8) == 0)
    h += 8;
  else if (strncmp (h, "http://", 7) == 0)
    h += 7;
  size_t n = strcspn (h, "/");
  if ((n == 9 && strncmp (h, "docker.io", 9) == 0) || (n == 15 && strncmp (h, "index.docker.io", 15) == 0)
      || (n == 20 && strncmp (h, "registry-1.docker.io", 20) == 0))
    return strdup (DOCKERCFG_HUB_KEY);
  return strndup (h, n);
}

static bool
key_matches (const char *entry_key, const char *key)
{
  if (strcmp (entry_key, key) == 0)
    return true;
  _cleanup_free_ char *norm = dockercfg_server_key (entry_key);
  return norm && strcmp (norm, key) == 0;
}

/* ---- load / save ---- */

int
dockercfg_load (const char *path, dockercfg **ret, berth_error **err)
{
  _cleanup_free_ char *p = NULL;
  if (path)
    p = strdup (path);
  else
    {
      int r = dockercfg_default_path (&p, err);
      if (r < 0)
        return r;
    }
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "loading config.json");

  json_object *root = NULL;
  _cleanup_fclose_ FILE *f = fopen (p, "re");
  if (f == NULL && errno != ENOENT)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "opening %s", p);
  if (f)
    {
      _cleanup_free_ char *data = NULL;
      size_t len = 0;
      _cleanup_fclose_ FILE *m = open_memstream (&data, &len);
      char buf[8192];
      size_t n;
      while (m && (n = fread (buf, 1, sizeof buf, f)) > 0)
        fwrite (buf, 1, n, m);
      if (m == NULL || ferror (f) || fclose (TAKE_PTR (m)) != 0)
        return berth_error_set (err, BERTH_E_INTERNAL, errno, "reading %s", p);
      size_t i = 0;
      while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r'))
        i++;
      if (i < len)
        {
          json_tokener *tok = json_tokener_new ();
          if (tok == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "reading %s", p);
          root = json_tokener_parse_ex (tok, data, (int) len);
          enum json_tokener_error jerr = json_tokener_get_error (tok);
          json_tokener_free (tok);
          if (root == NULL || !json_object_is_type (root, json_type_object))
            {
              json_object_put (root);
              return berth_error_set (err, BERTH_E_INVALID, 0, "%s: not a JSON object%s%s", p,
                                      root ? "" : ": ", root ? "" : json_tokener_error_desc (jerr));
            }
        }
    }
  if (root == NULL)
    root = json_object_new_object ();
  dockercfg *c = calloc (1, sizeof *c);
  if (c == NULL || root == NULL)
    {
      free (c);
      json_object_put (root);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "loading %s", p);
    }
  c->path = TAKE_PTR (p);
  c->root = root;
  *ret = c;
  return 0;
}

void
dockercfg_free (dockercfg *c)
{
  if (c == NULL)
    return;
  free (c->path);
  json_object_put (c->root);
  free (c);
}

const char *
dockercfg_path (const dockercfg *c)
{
  return c->path;
}

static int
write_all (int fd, const char *s, size_t len)
{
  while (len > 0)
    {
      ssize_t w = write (fd, s, len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -errno;
      s += w;
      len -= (size_t) w;
    }
  return 0;
}

int
dockercfg_save (dockercfg *c, berth_error **err)
{
  /* Write through a symlink to its target, as docker does. */
  _cleanup_free_ char *target = NULL;
  struct stat st;
  if (lstat (c->path, &st) == 0 && S_ISLNK (st.st_mode))
    {
      target = realpath (c->path, NULL);
      if (target == NULL)
        return berth_error_set (err, berth_errcode_from_errno (errno), errno, "resolving %s", c->path);
    }
  const char *path = target ? target : c->path;

  _cleanup_free_ char *dir = strdup (path);
  if (dir == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "saving %s", path);
  char *slash = strrchr (dir, '/');
  if (slash && slash != dir)
    {
      *slash = 0;
      int r = fs_mkdir_p (dir, 0700);
      if (r < 0)
        return berth_error_set (err, berth_errcode_from_errno (-r), -r, "creating %s", dir);
    }

  _cleanup_free_ char *tmp = NULL;
  if (asprintf (&tmp, "%s.XXXXXX", path) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "saving %s", path);
  _cleanup_close_ int fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "creating a file next to %s", path);
  const char *s = json_object_to_json_string_ext (c->root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB
                                                               | JSON_C_TO_STRING_SPACED
                                                               | JSON_C_TO_STRING_NOSLASHESCAPE);
  int r = fchmod (fd, 0600) < 0 ? -errno : 0;
  if (r == 0)
    r = write_all (fd, s, strlen (s));
  if (r == 0)
    r = write_all (fd, "\n", 1);
  if (r == 0 && fsync (fd) < 0)
    r = -errno;
  if (r == 0 && close (TAKE_FD (fd)) < 0)
    r = -errno;
  if (r == 0 && rename (tmp, path) < 0)
    r = -errno;
  if (r < 0)
    {
      unlink (tmp);
      return berth_error_set (err, berth_errcode_from_errno (-r), -r, "writing %s", path);
    }
  /* The rename is durable once the directory is. */
  _cleanup_close_ int dfd = open (slash && slash != dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    fsync (dfd);
  return 0;
}

/* ---- credential helpers ---- */

const char *
dockercfg_helper (const dockercfg *c, const char *key)
{
  json_object *helpers, *store;
  if (json_object_object_get_ex (c->root, "credHelpers", &helpers) && json_object_is_type (helpers, json_type_object))
    {
      json_object_object_foreach (helpers, k, v)
        if (key_matches (k, key) && json_object_is_type (v, json_type_string) && *json_object_get_string (v))
          return json_object_get_string (v);
    }
  if (json_object_object_get_ex (c->root, "credsStore", &store) && json_object_is_type (store, json_type_string)
      && *json_object_get_string (store))
    return json_object_get_string (store);
  return NULL;
}

/* Run docker-credential-<name> ACTION with input on its stdin; its stdout
 * in *ret_out (trimmed).  A non-zero exit is an error carrying what the
 * helper printed; "credentials not found" is BERTH_E_NOTFOUND. */
static int
run_helper (const char *name, const char *action, const char *input, char **ret_out, berth_error **err)
{
  _cleanup_free_ char *prog = NULL;
  if (asprintf (&prog, "docker-credential-%s", name) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credential helper");
  /* stdin is a socket so that a helper that exits without reading cannot
   * kill us with SIGPIPE (send with MSG_NOSIGNAL). */
  int in[2], out[2];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "running %s", prog);
  if (pipe2 (out, O_CLOEXEC) < 0)
    {
      int e = errno;
      close (in[0]);
      close (in[1]);
      return berth_error_set (err, BERTH_E_INTERNAL, e, "running %s", prog);
    }
  fflush (NULL);
  pid_t pid = fork ();
  if (pid < 0)
    {
      int e = errno;
      close (in[0]);
      close (in[1]);
      close (out[0]);
      close (out[1]);
      return berth_error_set (err, BERTH_E_INTERNAL, e, "running %s", prog);
    }
  if (pid == 0)
    {
      if (dup2 (in[1], STDIN_FILENO) < 0 || dup2 (out[1], STDOUT_FILENO) < 0)
        _exit (126);
      execlp (prog, prog, action, (char *) NULL);
      _exit (errno == ENOENT ? 127 : 126);
    }
  close (in[1]);
  close (out[1]);
  int r = 0;
  size_t len = strlen (input);
  for (size_t off = 0; off < len;)
    {
      ssize_t w = send (in[0], input + off, len - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        break; /* the helper went away; its exit status says why */
      off += (size_t) w;
    }
  close (in[0]);

  _cleanup_free_ char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;)
    {
      if (n + 4096 + 1 > cap)
        {
          cap = cap ? cap * 2 : 8192;
          char *nb = realloc (buf, cap);
          if (nb == NULL)
            {
              r = -ENOMEM;
              break;
            }
          buf = nb;
        }
      ssize_t rd = read (out[0], buf + n, cap - n - 1);
      if (rd < 0 && errno == EINTR)
        continue;
      if (rd <= 0)
        break;
      n += (size_t) rd;
      if (n > HELPER_OUTPUT_MAX)
        {
          r = -E2BIG;
          break;
        }
    }
  close (out[0]);
  int status = 0;
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (r < 0)
    {
      if (buf)
        explicit_bzero (buf, n);
      return berth_error_set (err, BERTH_E_INTERNAL, -r, "reading the answer of %s %s", prog, action);
    }
  if (buf == NULL)
    buf = calloc (1, 1);
  if (buf == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "running %s", prog);
  buf[n] = 0;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
    buf[--n] = 0;
  if (WIFEXITED (status) && WEXITSTATUS (status) == 127 && n == 0)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "credential helper %s not found on PATH", prog);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      int code = strstr (buf, "credentials not found") ? BERTH_E_NOTFOUND : BERTH_E_INTERNAL;
      if (WIFSIGNALED (status))
        r = berth_error_set (err, code, 0, "%s %s: killed by signal %d", prog, action, WTERMSIG (status));
      else
        r = berth_error_set (err, code, 0, "%s %s failed (exit %d)%s%s", prog, action, WEXITSTATUS (status),
                             n ? ": " : "", buf);
      explicit_bzero (buf, n);
      return r;
    }
  *ret_out = TAKE_PTR (buf);
  return 0;
}

/* ---- get / store / erase ---- */

static json_object *
auths (const dockercfg *c, bool create)
{
  json_object *a;
  if (json_object_object_get_ex (c->root, "auths", &a) && json_object_is_type (a, json_type_object))
    return a;
  if (!create)
    return NULL;
  a = json_object_new_object ();
  if (a)
    json_object_object_add (c->root, "auths", a);
  return a;
}

static const char *
obj_str (json_object *o, const char *key)
{
  json_object *v;
  if (json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

int
dockercfg_get (const dockercfg *c, const char *key, char **ret_user, char **ret_secret, berth_error **err)
{
  const char *helper = dockercfg_helper (c, key);
  if (helper)
    {
      _cleanup_secret_ char *out = NULL;
      int r = run_helper (helper, "get", key, &out, err);
      if (r < 0)
        return r;
      json_object *o = json_tokener_parse (out);
      const char *user = o ? obj_str (o, "Username") : NULL, *secret = o ? obj_str (o, "Secret") : NULL;
      if (user == NULL || secret == NULL)
        {
          json_object_put (o);
          return berth_error_set (err, BERTH_E_INVALID, 0, "docker-credential-%s get: not a credentials document",
                                  helper);
        }
      *ret_user = strdup (user);
      *ret_secret = strdup (secret);
      /* json-c keeps its copy of the secret until freed; wipe it first. */
      explicit_bzero ((char *) secret, strlen (secret));
      json_object_put (o);
      if (*ret_user == NULL || *ret_secret == NULL)
        {
          free (*ret_user);
          free_secret (*ret_secret);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
        }
      return 0;
    }
  json_object *a = auths (c, false);
  if (a == NULL)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "no credentials for %s in %s", key, c->path);
  json_object_object_foreach (a, k, entry)
      {
        if (!key_matches (k, key) || !json_object_is_type (entry, json_type_object))
          continue;
        const char *auth = obj_str (entry, "auth");
        if (auth && *auth)
          {
            size_t len = 0;
            _cleanup_secret_ char *plain = dockercfg_base64_decode (auth, &len);
            char *colon = plain ? memchr (plain, ':', len) : NULL;
            if (colon == NULL)
              return berth_error_set (err, BERTH_E_INVALID, 0, "%s: auths.\"%s\".auth is not base64(user:password)",
                                      c->path, k);
            *colon = 0;
            *ret_user = strdup (plain);
            *ret_secret = strdup (colon + 1);
          }
        else
          {
            const char *u = obj_str (entry, "username"), *p = obj_str (entry, "password");
            if (u == NULL || p == NULL)
              continue;
            *ret_user = strdup (u);
            *ret_secret = strdup (p);
          }
        if (*ret_user == NULL || *ret_secret == NULL)
          {
            free (*ret_user);
            free_secret (*ret_secret);
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
          }
        return 0;
      }
  return berth_error_set (err, BERTH_E_NOTFOUND, 0, "no credentials for %s in %s", key, c->path);
}

int
dockercfg_store (dockercfg *c, const char *key, const char *user, const char *secret, berth_error **err)
{
  const char *helper = dockercfg_helper (c, key);
  if (helper)
    {
      json_object *o = json_object_new_object ();
      if (o == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
      json_object_object_add (o, "ServerURL", json_object_new_string (key));
      json_object_object_add (o, "Username", json_object_new_string (user));
      json_object_object_add (o, "Secret", json_object_new_string (secret));
      _cleanup_secret_ char *doc = strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN
                                                                                   | JSON_C_TO_STRING_NOSLASHESCAPE));
      json_object_put (o);
      if (doc == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
      _cleanup_free_ char *out = NULL;
      return run_helper (helper, "store", doc, &out, err);
    }

  json_object *a = auths (c, true);
  if (a == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
  _cleanup_secret_ char *plain = NULL;
  if (asprintf (&plain, "%s:%s", user, secret) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
  _cleanup_secret_ char *enc = dockercfg_base64_encode (plain, strlen (plain));
  if (enc == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
  /* Drop entries that name the same server under another spelling, so
   * that the one we write is the one every client finds. */
  bool again = true;
  while (again)
    {
      again = false;
      json_object_object_foreach (a, k, v)
        {
          (void) v;
          if (strcmp (k, key) != 0 && key_matches (k, key))
            {
              json_object_object_del (a, k);
              again = true;
              break;
            }
        }
    }
  json_object *entry;
  if (!json_object_object_get_ex (a, key, &entry) || !json_object_is_type (entry, json_type_object))
    {
      entry = json_object_new_object ();
      if (entry == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
      json_object_object_add (a, key, entry);
    }
  /* Keep the entry's other keys (e.g. identitytoken is dropped by docker,
   * but "email" and unknown ones are not ours to remove). */
  json_object_object_del (entry, "username");
  json_object_object_del (entry, "password");
  json_object_object_add (entry, "auth", json_object_new_string (enc));
  return dockercfg_save (c, err);
}

int
dockercfg_erase (dockercfg *c, const char *key, bool *ret_found, berth_error **err)
{
  bool found = false;
  const char *helper = dockercfg_helper (c, key);
  if (helper)
    {
      _cleanup_free_ char *out = NULL;
      _cleanup_error_ berth_error *herr = NULL;
      int r = run_helper (helper, "erase", key, &out, &herr);
      if (r < 0 && r != BERTH_E_NOTFOUND)
        return berth_error_take (err, TAKE_PTR (herr));
      found = r == 0;
    }
  json_object *a = auths (c, false);
  bool removed = false, again = a != NULL;
  while (again)
    {
      again = false;
      json_object_object_foreach (a, k, v)
        {
          (void) v;
          if (key_matches (k, key))
            {
              json_object_object_del (a, k);
              removed = again = true;
              break;
            }
        }
    }
  if (removed)
    {
      int r = dockercfg_save (c, err);
      if (r < 0)
        return r;
    }
  *ret_found = found || removed;
  return 0;
}
