/* libcurl, loaded at first use.
 *
 * berthd and berth link neither libcurl nor its dependencies (GnuTLS, Kerberos,
 * LDAP, libssh2, ...): their relocations and constructors cost an idle
 * daemon ~4 MiB of RSS, and an idle daemon never pulls.  Instead
 * lazy_curl_load() dlopens libcurl (RTLD_NOW | RTLD_LOCAL, by the SONAME
 * configure found) the first time a registry session is made, fills
 * `lazy_curl` with the functions core uses, and runs curl_global_init().
 *
 * Usage, in a file that calls libcurl:
 *
 *   #define CURL_DISABLE_TYPECHECK   (typecheck-gcc.h makes curl_easy_setopt a macro)
 *   #include <curl/curl.h>
 *   #include "lazy-curl.h"
 *
 * after which curl_easy_init () & co. are calls through `lazy_curl`, so the
 * call sites read as plain libcurl.  Each entry point calls
 * lazy_curl_load() before any of them.  A function core starts to use is
 * added to the struct, the #define list and the table in lazy-curl.c.
 */
#ifndef BERTH_LIB_LAZY_CURL_H
#define BERTH_LIB_LAZY_CURL_H

#include <curl/curl.h>

#include "error.h"

struct lazy_curl
{
  __typeof__ (curl_global_init) *global_init;
  __typeof__ (curl_free) *free;
  __typeof__ (curl_easy_init) *easy_init;
  __typeof__ (curl_easy_cleanup) *easy_cleanup;
  __typeof__ (curl_easy_reset) *easy_reset;
  __typeof__ (curl_easy_setopt) *easy_setopt;
  __typeof__ (curl_easy_getinfo) *easy_getinfo;
  __typeof__ (curl_easy_perform) *easy_perform;
  __typeof__ (curl_easy_strerror) *easy_strerror;
  __typeof__ (curl_easy_escape) *easy_escape;
  __typeof__ (curl_slist_append) *slist_append;
  __typeof__ (curl_slist_free_all) *slist_free_all;
  __typeof__ (curl_multi_init) *multi_init;
  __typeof__ (curl_multi_cleanup) *multi_cleanup;
  __typeof__ (curl_multi_setopt) *multi_setopt;
  __typeof__ (curl_multi_add_handle) *multi_add_handle;
  __typeof__ (curl_multi_remove_handle) *multi_remove_handle;
  __typeof__ (curl_multi_perform) *multi_perform;
  __typeof__ (curl_multi_poll) *multi_poll;
  __typeof__ (curl_multi_info_read) *multi_info_read;
};

/* Filled by the first successful lazy_curl_load(); read-only after. */
extern struct lazy_curl lazy_curl;

/* Load libcurl once (thread-safe: pthread_once) and initialise it.  0, or
 * BERTH_E_INTERNAL with "cannot load libcurl.so.4: <dlerror>" (or the
 * curl_global_init failure), every call alike. */
int lazy_curl_load (berth_error **err);

/* curl.h makes these three function-like macros (to check the argument
 * count), which would shadow the pointers. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt

#define curl_global_init lazy_curl.global_init
#define curl_free lazy_curl.free
#define curl_easy_init lazy_curl.easy_init
#define curl_easy_cleanup lazy_curl.easy_cleanup
#define curl_easy_reset lazy_curl.easy_reset
#define curl_easy_setopt lazy_curl.easy_setopt
#define curl_easy_getinfo lazy_curl.easy_getinfo
#define curl_easy_perform lazy_curl.easy_perform
#define curl_easy_strerror lazy_curl.easy_strerror
#define curl_easy_escape lazy_curl.easy_escape
#define curl_slist_append lazy_curl.slist_append
#define curl_slist_free_all lazy_curl.slist_free_all
#define curl_multi_init lazy_curl.multi_init
#define curl_multi_cleanup lazy_curl.multi_cleanup
#define curl_multi_setopt lazy_curl.multi_setopt
#define curl_multi_add_handle lazy_curl.multi_add_handle
#define curl_multi_remove_handle lazy_curl.multi_remove_handle
#define curl_multi_perform lazy_curl.multi_perform
#define curl_multi_poll lazy_curl.multi_poll
#define curl_multi_info_read lazy_curl.multi_info_read

#endif
