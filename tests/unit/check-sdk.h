/* For Check suites that call the plugin SDK's libraries (snapstore,
 * layerindex) the way a plugin does: with a host-owned `berth_error *err`
 * record (lib/error.h) that each assertion makes and frees. */
#ifndef BERTH_TESTS_CHECK_SDK_H
#define BERTH_TESTS_CHECK_SDK_H

#include <check.h>
#include <string.h>

#include <berth/plugin.h>

#include "error.h"

/* A host table with errors only: what libberth-layerindex needs. */
static const struct berth_host check_sdk_host __attribute__ ((unused)) = {
  .size = sizeof (struct berth_host),
  .error_set = berth_error_set_into,
  .error_wrap = berth_error_wrap_into,
};

/* Assert a call taking `err` (a berth_error *) returned 0. */
#define ck_ok(call)                                                                                \
  do                                                                                               \
    {                                                                                              \
      berth_error *err = berth_error_new ();                                                       \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #call, r_, berth_error_message (err));                \
      berth_error_free (err);                                                                      \
    }                                                                                              \
  while (0)

/* Assert a call failed with `code` and a message containing `needle`. */
#define ck_fails(call, code, needle)                                                               \
  do                                                                                               \
    {                                                                                              \
      berth_error *err = berth_error_new ();                                                       \
      int r_ = (call);                                                                             \
      const char *m_ = berth_error_message (err);                                                  \
      ck_assert_msg (r_ == (code), "%s = %d, expected %d (%s)", #call, r_, (code), m_ ? m_ : "");  \
      ck_assert_msg (m_ && strstr (m_, (needle)), "`%s` does not contain `%s`", m_ ? m_ : "",       \
                     (needle));                                                                    \
      berth_error_free (err);                                                                      \
    }                                                                                              \
  while (0)

#endif
