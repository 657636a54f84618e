/* WWW-Authenticate parsing, base64, token answers and the token cache. */
#include <config.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/auth.h"

struct parsed
{
  struct auth_challenge *c;
  size_t n;
};

static void
parsed_free (struct parsed *p)
{
  auth_challenges_free (p->c, p->n);
}

static struct parsed
parse_ok (const char *h)
{
  struct parsed p = { 0 };
  _cleanup_error_ berth_error *err = NULL;
  int r = auth_parse_challenges (h, strlen (h), &p.c, &p.n, &err);
  ck_assert_msg (r == 0, "\"%s\": %s", h, err ? berth_error_message (err) : "?");
  return p;
}

static void
assert_parse_fails (const char *h, size_t len)
{
  struct auth_challenge *c = NULL;
  size_t n = 0;
  _cleanup_error_ berth_error *err = NULL;
  int r = auth_parse_challenges (h, len, &c, &n, &err);
  ck_assert_msg (r == BERTH_E_INVALID, "\"%s\" parsed", h);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "WWW-Authenticate"));
}

START_TEST (test_bearer_challenge_gives_realm_service_and_scope)
{
  _cleanup_ (parsed_free) struct parsed p
      = parse_ok ("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                  "scope=\"repository:library/busybox:pull\"");
  ck_assert_uint_eq (p.n, 1);
  ck_assert_int_eq (p.c[0].scheme, AUTH_SCHEME_BEARER);
  ck_assert_str_eq (p.c[0].realm, "https://auth.docker.io/token");
  ck_assert_str_eq (p.c[0].service, "registry.docker.io");
  ck_assert_str_eq (p.c[0].scope, "repository:library/busybox:pull");
  ck_assert_ptr_null (p.c[0].error);
}
END_TEST

START_TEST (test_several_challenges_in_one_header_are_split)
{
  _cleanup_ (parsed_free) struct parsed p
      = parse_ok ("Negotiate abc==, Basic realm=\"x, y\" , bearer  realm = tok , service=\"s\", error=invalid_token");
  ck_assert_uint_eq (p.n, 3);
  ck_assert_int_eq (p.c[0].scheme, AUTH_SCHEME_OTHER);
  ck_assert_int_eq (p.c[1].scheme, AUTH_SCHEME_BASIC);
  ck_assert_str_eq (p.c[1].realm, "x, y");
  ck_assert_int_eq (p.c[2].scheme, AUTH_SCHEME_BEARER);
  ck_assert_str_eq (p.c[2].realm, "tok");
  ck_assert_str_eq (p.c[2].service, "s");
  ck_assert_str_eq (p.c[2].error, "invalid_token");
}
END_TEST

START_TEST (test_quoted_strings_are_unescaped_and_first_duplicate_wins)
{
  _cleanup_ (parsed_free) struct parsed p = parse_ok ("Bearer realm=\"a\\\"b\\\\c\", REALM=\"second\", x=\"\"");
  ck_assert_str_eq (p.c[0].realm, "a\"b\\c");
}
END_TEST

START_TEST (test_scheme_without_parameters_is_accepted)
{
  _cleanup_ (parsed_free) struct parsed p = parse_ok ("Basic");
  ck_assert_uint_eq (p.n, 1);
  ck_assert_int_eq (p.c[0].scheme, AUTH_SCHEME_BASIC);
  ck_assert_ptr_null (p.c[0].realm);
}
END_TEST

START_TEST (test_malformed_challenges_are_refused)
{
  assert_parse_fails ("", 0);
  assert_parse_fails (" , ,", 4);
  assert_parse_fails ("Bearer realm=\"unterminated", strlen ("Bearer realm=\"unterminated"));
  assert_parse_fails ("Bearer realm=\"a\\", strlen ("Bearer realm=\"a\\"));
  assert_parse_fails ("Bearer realm=\"new\nline\"", strlen ("Bearer realm=\"new\nline\""));
  assert_parse_fails ("=foo", 4);
  assert_parse_fails ("Bearer realm=\"a\"junk", strlen ("Bearer realm=\"a\"junk"));
  assert_parse_fails ("Bearer realm=@", strlen ("Bearer realm=@"));
  assert_parse_fails ("Bearer\x01", 7);
  assert_parse_fails ("Bearer realm=\"a\0b\"", 18);
  char *big = malloc (AUTH_HEADER_MAX + 2);
  memset (big, 'a', AUTH_HEADER_MAX + 1);
  big[AUTH_HEADER_MAX + 1] = '\0';
  assert_parse_fails (big, AUTH_HEADER_MAX + 1);
  /* too many challenges */
  char many[512] = "";
  for (int i = 0; i < AUTH_MAX_CHALLENGES + 1; i++)
    strcat (many, "Basic, ");
  assert_parse_fails (many, strlen (many));
  free (big);
}
END_TEST

START_TEST (test_parser_never_reads_past_len)
{
  /* the quote closes after len: must be unterminated, not read on */
  const char *h = "Bearer realm=\"abc\"";
  struct auth_challenge *c = NULL;
  size_t n = 0;
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (auth_parse_challenges (h, strlen (h) - 1, &c, &n, &err), BERTH_E_INVALID);
}
END_TEST

START_TEST (test_base64_round_trips_and_refuses_garbage)
{
  const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
  const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
  for (size_t i = 0; i < 7; i++)
    {
      _cleanup_free_ char *e = auth_base64_encode (in[i], strlen (in[i]));
      ck_assert_str_eq (e, out[i]);
      size_t l = 99;
      _cleanup_free_ unsigned char *d = auth_base64_decode (e, strlen (e), &l);
      ck_assert_ptr_nonnull (d);
      ck_assert_uint_eq (l, strlen (in[i]));
      ck_assert_str_eq ((char *) d, in[i]);
    }
  size_t l;
  _cleanup_free_ unsigned char *nopad = auth_base64_decode ("Zm9vYg", 6, &l);
  ck_assert_str_eq ((char *) nopad, "foob");
  ck_assert_ptr_null (auth_base64_decode ("Zm9v!", 5, &l));
  ck_assert_ptr_null (auth_base64_decode ("Z", 1, &l));
  ck_assert_ptr_null (auth_base64_decode ("Zm=v", 4, &l));
}
END_TEST

START_TEST (test_basic_header_encodes_user_and_secret)
{
  _cleanup_free_ char *h = auth_basic_header ("alice", "s3cret");
  ck_assert_str_eq (h, "Authorization: Basic YWxpY2U6czNjcmV0");
}
END_TEST

START_TEST (test_token_answers_are_read)
{
  char *t = NULL;
  time_t exp = 0;
  _cleanup_error_ berth_error *err = NULL;
  const char *a = "{\"token\":\"abc\",\"expires_in\":120,\"issued_at\":\"2016-01-01T00:00:00Z\"}";
  ck_assert_int_eq (auth_parse_token (a, strlen (a), 1000, &t, &exp, &err), 0);
  ck_assert_str_eq (t, "abc");
  ck_assert_int_eq (exp, 1120);
  free (t);
  const char *b = "{\"access_token\":\"xyz\"}";
  ck_assert_int_eq (auth_parse_token (b, strlen (b), 1000, &t, &exp, &err), 0);
  ck_assert_str_eq (t, "xyz");
  ck_assert_int_eq (exp, 1000 + AUTH_TOKEN_DEFAULT_EXPIRY);
  free (t);
  const char *bad[] = { "{}", "[]", "{\"token\":\"\"}", "{\"token\":5}", "not json", "{\"token\":\"a\\nb\"}" };
  for (size_t i = 0; i < 6; i++)
    {
      _cleanup_error_ berth_error *e = NULL;
      t = NULL;
      ck_assert_int_eq (auth_parse_token (bad[i], strlen (bad[i]), 1000, &t, &exp, &e), BERTH_E_INVALID);
      ck_assert_ptr_null (t);
    }
}
END_TEST

START_TEST (test_token_cache_keeps_tokens_per_host_and_scope_until_expiry)
{
  struct auth_token_cache *c = auth_token_cache_new ();
  ck_assert_int_eq (auth_token_cache_put (c, "h1", "repository:a:pull", "t1", 100), 0);
  ck_assert_int_eq (auth_token_cache_put (c, "h1", "repository:b:pull", "t2", 100), 0);
  ck_assert_int_eq (auth_token_cache_put (c, "h2", "repository:a:pull", "t3", 100), 0);
  ck_assert_str_eq (auth_token_cache_get (c, "h1", "repository:a:pull", 50), "t1");
  ck_assert_str_eq (auth_token_cache_get (c, "h1", "repository:b:pull", 50), "t2");
  ck_assert_str_eq (auth_token_cache_get (c, "h2", "repository:a:pull", 50), "t3");
  ck_assert_ptr_null (auth_token_cache_get (c, "h1", "repository:a:pull", 100));
  ck_assert_int_eq (auth_token_cache_put (c, "h1", "repository:a:pull", "t1b", 200), 0);
  ck_assert_str_eq (auth_token_cache_get (c, "h1", "repository:a:pull", 150), "t1b");
  auth_token_cache_drop (c, "h1", "repository:a:pull");
  ck_assert_ptr_null (auth_token_cache_get (c, "h1", "repository:a:pull", 150));
  ck_assert_str_eq (auth_token_cache_get (c, "h2", "repository:a:pull", 50), "t3");
  auth_token_cache_free (c);
}
END_TEST

START_TEST (test_token_fetch_refuses_a_realm_that_is_not_http)
{
  struct auth_fetch f = { .realm = "file:///etc/passwd", .service = "s", .scope = "x" };
  char *t = NULL;
  time_t e;
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (auth_fetch_token (&f, &t, &e, &err), BERTH_E_INVALID);
  ck_assert_ptr_null (t);
}
END_TEST

static Suite *
auth_suite (void)
{
  Suite *s = suite_create ("auth");
  TCase *tc = tcase_create ("auth");
  tcase_add_test (tc, test_bearer_challenge_gives_realm_service_and_scope);
  tcase_add_test (tc, test_several_challenges_in_one_header_are_split);
  tcase_add_test (tc, test_quoted_strings_are_unescaped_and_first_duplicate_wins);
  tcase_add_test (tc, test_scheme_without_parameters_is_accepted);
  tcase_add_test (tc, test_malformed_challenges_are_refused);
  tcase_add_test (tc, test_parser_never_reads_past_len);
  tcase_add_test (tc, test_base64_round_trips_and_refuses_garbage);
  tcase_add_test (tc, test_basic_header_encodes_user_and_secret);
  tcase_add_test (tc, test_token_answers_are_read);
  tcase_add_test (tc, test_token_cache_keeps_tokens_per_host_and_scope_until_expiry);
  tcase_add_test (tc, test_token_fetch_refuses_a_realm_that_is_not_http);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (auth_suite)
