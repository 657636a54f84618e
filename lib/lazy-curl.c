/* libcurl, loaded at first use: see lazy-curl.h. */
#include <config.h>

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lazy-curl.h"

/* configure's; tests/unit/test-lazy-missing.c names a missing one. */
#ifndef LAZY_CURL_SONAME
#define LAZY_CURL_SONAME LIBCURL_SONAME
#endif

struct lazy_curl lazy_curl;

/* Each field of struct lazy_curl and the libcurl symbol behind it. */
#define SYMBOL(field) { "curl_" #field, offsetof (struct lazy_curl, field) }
static const struct
{
  const char *name;
  size_t offset;
} symbols[] = {
  SYMBOL (global_init),
  SYMBOL (free),
  SYMBOL (easy_init),
  SYMBOL (easy_cleanup),
  SYMBOL (easy_reset),
  SYMBOL (easy_setopt),
  SYMBOL (easy_getinfo),
  SYMBOL (easy_perform),
  SYMBOL (easy_strerror),
  SYMBOL (easy_escape),
  SYMBOL (slist_append),
  SYMBOL (slist_free_all),
  SYMBOL (multi_init),
  SYMBOL (multi_cleanup),
  SYMBOL (multi_setopt),
  SYMBOL (multi_add_handle),
  SYMBOL (multi_remove_handle),
  SYMBOL (multi_perform),
  SYMBOL (multi_poll),
  SYMBOL (multi_info_read),
};
_Static_assert (sizeof symbols / sizeof symbols[0] == sizeof (struct lazy_curl) / sizeof (void (*) (void)),
                "one symbol for each field of struct lazy_curl");

/* Written once by load(), under pthread_once; empty when loading worked. */
static char load_error[512];

/* "cannot load <soname>: <why>"; dlopen's dlerror() starts with the name
 * already ("<soname>: cannot open shared object file: ..."). */
static void
set_load_error (const char *why)
{
  size_t n = strlen (LAZY_CURL_SONAME);
  if (strncmp (why, LAZY_CURL_SONAME, n) == 0 && strncmp (why + n, ": ", 2) == 0)
    why += n + 2;
  snprintf (load_error, sizeof load_error, "cannot load %s: %s", LAZY_CURL_SONAME, why);
}

static void
load (void)
{
  /* The handle is kept for the life of the process: libcurl is never
   * unloaded (its global state and threads would outlive a dlclose). */
  void *h = dlopen (LAZY_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    {
      set_load_error (dlerror ());
      return;
    }
  struct lazy_curl table = { 0 };
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++)
    {
      void *p = dlsym (h, symbols[i].name);
      if (p == NULL)
        {
          set_load_error (dlerror ());
          dlclose (h);
          return;
        }
      memcpy ((char *) &table + symbols[i].offset, &p, sizeof p);
    }
  lazy_curl = table;

  CURLcode cc = curl_global_init (CURL_GLOBAL_DEFAULT);
  if (cc != CURLE_OK)
    snprintf (load_error, sizeof load_error, "curl_global_init: %s", curl_easy_strerror (cc));
}

int
lazy_curl_load (berth_error **err)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once (&once, load);
  if (load_error[0])
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "%s", load_error);
  return 0;
}
