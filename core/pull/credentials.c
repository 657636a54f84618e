/* Docker config.json credentials and docker-credential-* helpers.  See
 * credentials.h.  Secrets are wiped (explicit_bzero) when dropped. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "core/pull/auth.h"
#include "core/pull/credentials.h"

#define CONFIG_MAX (4 * 1024 * 1024)
#define HELPER_OUTPUT_MAX (64 * 1024)
#define HELPER_TIMEOUT_MS 5000

extern char **environ;

static void
free_secret (char *s)
{
  if (s)
    {
      explicit_bzero (s, strlen (s));
      free (s);
    }
}

void
credentials_clear (struct registry_credentials *c)
{
  free (c->username);
  free_secret (c->secret);
  free_secret (c->identity_token);
  c->username = c->secret = c->identity_token = NULL;
}

static void
credentials_clearp (struct registry_credentials *c)
{
  credentials_clear (c);
}

const char *
credentials_server_key (const char *host)
{
  if (strcmp (host, "docker.io") == 0 || strcmp (host, "index.docker.io") == 0
      || strcmp (host, "registry-1.docker.io") == 0)
    return "https://index.docker.io/v1/";
  return host;
}

static bool
is_docker_hub (const char *h)
{
  return strcmp (h, "docker.io") == 0 || strcmp (h, "index.docker.io") == 0 || strcmp (h, "registry-1.docker.io") == 0;
}

/* The host part of a config key: strip "scheme://" and anything from the
 * first '/'; writes into buf. */
static const char *
key_host (const char *key, char *buf, size_t sz)
{
  const char *p = strstr (key, "://");
  p = p ? p + 3 : key;
  size_t l = strcspn (p, "/");
  if (l >= sz)
    l = sz - 1;
  memcpy (buf, p, l);
  buf[l] = '\0';
  return buf;
}

static bool
key_matches (const char *key, const char *host)
{
  char buf[512];
  const char *kh = key_host (key, buf, sizeof buf);
  if (strcasecmp (kh, host) == 0)
    return true;
  return is_docker_hub (host) && is_docker_hub (kh);
}

/* The member of object `o` whose key matches host (exact key first). */
static struct json_object *
find_for_host (struct json_object *o, const char *host)
{
  struct json_object *v = NULL;
  if (o == NULL || !json_object_is_type (o, json_type_object))
    return NULL;
  if (json_object_object_get_ex (o, credentials_server_key (host), &v))
    return v;
  json_object_object_foreach (o, k, val)
  {
    if (key_matches (k, host))
      return val;
  }
  return NULL;
}

static const char *
get_str (struct json_object *o, const char *k)
{
  struct json_object *v;
  if (o && json_object_object_get_ex (o, k, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

static struct json_object *
parse_json (const char *text, size_t len)
{
  struct json_tokener *tok = json_tokener_new_ex (64);
  if (tok == NULL)
    return NULL;
  struct json_object *o = json_tokener_parse_ex (tok, text, (int) len);
  if (o && tok->char_offset != (int) len)
    {
      /* trailing bytes other than white space are an error */
      for (size_t i = (size_t) tok->char_offset; i < len; i++)
        if (!strchr (" \t\r\n", text[i]))
          {
            json_object_put (o);
            o = NULL;
            break;
          }
    }
  json_tokener_free (tok);
  return o;
}

static bool
valid_helper_name (const char *n)
{
  if (n[0] == '\0' || strlen (n) > 64)
    return false;
  for (const char *p = n; *p; p++)
    if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') || *p == '-' || *p == '_'
          || *p == '.'))
      return false;
  return true;
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
credentials_run_helper (const char *helper, const char *server_url, struct registry_credentials *ret,
                        berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  if (!valid_helper_name (helper))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid credential helper name");

  _cleanup_free_ char *prog = NULL;
  if (asprintf (&prog, "docker-credential-%s", helper) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credential helper");

  int in[2], out[2];
  /* stdin is a socket so that writing to a helper that exited early gives
   * EPIPE (MSG_NOSIGNAL), not SIGPIPE. */
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "credential helper %s", prog);
  if (pipe2 (out, O_CLOEXEC) < 0)
    {
      int e = errno;
      close (in[0]);
      close (in[1]);
      return berth_error_set (err, BERTH_E_INTERNAL, e, "credential helper %s", prog);
    }
  _cleanup_close_ int in_w = in[1], out_r = out[0];

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
  posix_spawn_file_actions_adddup2 (&fa, out[1], 1);
  posix_spawn_file_actions_addopen (&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init (&attr);
  sigset_t none, all;
  sigemptyset (&none);
  sigfillset (&all);
  posix_spawnattr_setsigmask (&attr, &none);
  sigset_t dfl;
  sigemptyset (&dfl);
  sigaddset (&dfl, SIGPIPE);
  posix_spawnattr_setsigdefault (&attr, &dfl);
  posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = { prog, (char *) "get", NULL };
  pid_t pid;
  int r = posix_spawnp (&pid, prog, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&attr);
  close (in[0]);
  close (out[1]);
  if (r != 0)
    return berth_error_set (err, r == ENOENT ? BERTH_E_NOTFOUND : BERTH_E_UNAVAILABLE, r,
                            "running credential helper %s", prog);

  int64_t deadline = now_ms () + HELPER_TIMEOUT_MS;
  size_t ulen = strlen (server_url);
  (void) send (in_w, server_url, ulen, MSG_NOSIGNAL);
  close (TAKE_FD (in_w));

  _cleanup_free_ char *buf = malloc (HELPER_OUTPUT_MAX + 1);
  size_t n = 0;
  bool timed_out = false, too_big = false;
  if (buf == NULL)
    {
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credential helper");
    }
  for (;;)
    {
      int64_t left = deadline - now_ms ();
      if (left <= 0)
        {
          timed_out = true;
          break;
        }
      struct pollfd pfd = { .fd = out_r, .events = POLLIN };
      int pr = poll (&pfd, 1, (int) left);
      if (pr < 0 && errno == EINTR)
        continue;
      if (pr <= 0)
        {
          timed_out = pr == 0;
          break;
        }
      ssize_t k = read (out_r, buf + n, HELPER_OUTPUT_MAX - n);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        break;
      n += (size_t) k;
      if (n == HELPER_OUTPUT_MAX)
        {
          too_big = true;
          break;
        }
    }
  buf[n] = '\0';
  int status = 0;
  if (timed_out || too_big)
    kill (pid, SIGKILL);
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  _cleanup_free_ char *clean = buf; /* wiped below */
  buf = NULL;

  int code = 0;
  if (timed_out)
    code = berth_error_set (err, BERTH_E_DEADLINE, 0, "credential helper %s timed out", prog);
  else if (too_big)
    code = berth_error_set (err, BERTH_E_INVALID, 0, "credential helper %s: output too large", prog);
  else if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      if (strstr (clean, "credentials not found") == NULL)
        code = berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "credential helper %s failed (%s %d)", prog,
                                WIFEXITED (status) ? "exit status" : "signal",
                                WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
    }
  else
    {
      struct json_object *o = parse_json (clean, n);
      const char *u = get_str (o, "Username"), *s = get_str (o, "Secret");
      if (o == NULL || !json_object_is_type (o, json_type_object))
        code = berth_error_set (err, BERTH_E_INVALID, 0, "credential helper %s: malformed answer", prog);
      else if (s && s[0])
        {
          if (u && strcmp (u, "<token>") == 0)
            ret->identity_token = strdup (s);
          else
            {
              ret->username = strdup (u ? u : "");
              ret->secret = strdup (s);
            }
          if ((ret->identity_token == NULL && ret->secret == NULL) || (ret->secret && ret->username == NULL))
            {
              credentials_clear (ret);
              code = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credential helper");
            }
        }
      json_object_put (o);
    }
  explicit_bzero (clean, n);
  return code;
}

int
credentials_from_config (const char *json, size_t len, const char *host, struct registry_credentials *ret,
                         berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  struct json_object *o = parse_json (json, len);
  if (o == NULL || !json_object_is_type (o, json_type_object))
    {
      json_object_put (o);
      return berth_error_set (err, BERTH_E_INVALID, 0, "malformed docker config.json");
    }
  int r = 0;
  struct json_object *helpers = NULL;
  json_object_object_get_ex (o, "credHelpers", &helpers);
  struct json_object *h = find_for_host (helpers, host);
  const char *helper = h && json_object_is_type (h, json_type_string) ? json_object_get_string (h) : NULL;
  if (helper == NULL)
    helper = get_str (o, "credsStore");
  if (helper && helper[0])
    {
      r = credentials_run_helper (helper, credentials_server_key (host), ret, err);
      if (r < 0 || ret->secret || ret->identity_token)
        goto out;
    }

  struct json_object *auths = NULL;
  json_object_object_get_ex (o, "auths", &auths);
  struct json_object *a = find_for_host (auths, host);
  if (a && json_object_is_type (a, json_type_object))
    {
      struct registry_credentials c = { 0 };
      const char *auth = get_str (a, "auth");
      const char *user = get_str (a, "username"), *pass = get_str (a, "password");
      const char *tok = get_str (a, "identitytoken");
      if (auth && auth[0])
        {
          size_t dl = 0;
          _cleanup_free_ char *dec = (char *) auth_base64_decode (auth, strlen (auth), &dl);
          char *colon = dec ? memchr (dec, ':', dl) : NULL;
          if (colon == NULL || memchr (dec, '\0', dl))
            {
              if (dec)
                explicit_bzero (dec, dl);
              r = berth_error_set (err, BERTH_E_INVALID, 0,
                                   "docker config.json: invalid \"auth\" for %s (want base64 of user:password)",
                                   credentials_server_key (host));
              goto out;
            }
          *colon = '\0';
          c.username = strdup (dec);
          c.secret = strdup (colon + 1);
          explicit_bzero (dec, dl);
        }
      else if (user && pass)
        {
          c.username = strdup (user);
          c.secret = strdup (pass);
        }
      if (tok && tok[0])
        c.identity_token = strdup (tok);
      if ((c.username == NULL) != (c.secret == NULL) || (tok && tok[0] && c.identity_token == NULL))
        {
          credentials_clear (&c);
          r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "docker config.json");
          goto out;
        }
      *ret = c;
    }
out:
  json_object_put (o);
  return r;
}

int
credentials_lookup (const char *docker_config_dir, const char *host, struct registry_credentials *ret,
                    berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  _cleanup_free_ char *path = NULL;
  const char *dir = docker_config_dir;
  if (dir == NULL || dir[0] == '\0')
    dir = getenv ("DOCKER_CONFIG");
  if (dir && dir[0])
    {
      if (asprintf (&path, "%s/config.json", dir) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
    }
  else
    {
      const char *home = getenv ("HOME");
      if (home == NULL || home[0] == '\0')
        return 0;
      if (asprintf (&path, "%s/.docker/config.json", home) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
    }
  _cleanup_fclose_ FILE *f = fopen (path, "re");
  if (f == NULL)
    {
      if (errno == ENOENT || errno == ENOTDIR)
        return 0;
      return berth_error_set (err, berth_errcode_from_errno (errno), errno, "reading %s", path);
    }
  _cleanup_free_ char *buf = malloc (CONFIG_MAX + 1);
  if (buf == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
  size_t n = fread (buf, 1, CONFIG_MAX + 1, f);
  if (ferror (f))
    return berth_error_set (err, BERTH_E_INTERNAL, EIO, "reading %s", path);
  if (n > CONFIG_MAX)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: too large", path);
  _cleanup_(credentials_clearp) struct registry_credentials c = { 0 };
  int r = credentials_from_config (buf, n, host, &c, err);
  explicit_bzero (buf, n);
  if (r < 0)
    return berth_error_wrap (err, "%s", path);
  *ret = c;
  memset (&c, 0, sizeof c);
  return 0;
}
