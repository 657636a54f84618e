#include <config.h>

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "core/config/toml.h"

/* Parse text that must be valid. */
static struct toml_value *
parse_ok (const char *text)
{
  _cleanup_error_ berth_error *err = NULL;
  struct toml_value *doc = NULL;
  int r = toml_parse (text, strlen (text), &doc, NULL, &err);
  ck_assert_msg (r == 0, "parse failed: %s", err ? berth_error_message (err) : "?");
  return doc;
}

/* Parse n bytes that must be invalid; returns the message "line L, column C: ...". */
static char *
parse_fail_n (const char *text, size_t n, struct toml_error *ret_terr)
{
  _cleanup_error_ berth_error *err = NULL;
  struct toml_value *doc = NULL;
  struct toml_error terr;
  int r = toml_parse (text, n, &doc, &terr, &err);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_ptr_null (doc);
  ck_assert_ptr_nonnull (err);
  if (ret_terr)
    *ret_terr = terr;
  return strdup (berth_error_message (err));
}

static char *
parse_fail (const char *text)
{
  return parse_fail_n (text, strlen (text), NULL);
}

#define assert_fails_with(text, expected)                 \
  do                                                      \
    {                                                     \
      _cleanup_free_ char *msg_ = parse_fail (text);      \
      ck_assert_str_eq (msg_, expected);                  \
    }                                                     \
  while (0)

#define assert_fails_containing(text, part)                                          \
  do                                                                                 \
    {                                                                                \
      _cleanup_free_ char *msg_ = parse_fail (text);                                 \
      ck_assert_msg (strstr (msg_, part) != NULL, "`%s` not in `%s`", part, msg_);   \
    }                                                                                \
  while (0)

START_TEST (test_error_names_line_and_column)
{
  assert_fails_with ("a = 1\nb = 2\nc     x = 3\n", "line 3, column 7: expected '=' after key, found 'x'");
  assert_fails_with ("a = 1\n[t]\n  b = \"x\n", "line 3, column 9: newline in a single-line string");
  assert_fails_with ("a = [1, 2\n", "line 1, column 5: unterminated array");
}
END_TEST

START_TEST (test_columns_count_characters_not_bytes)
{
  /* "é" is two bytes but one column. */
  assert_fails_with ("k = \"é\" x\n", "line 1, column 9: expected a newline after the value, found 'x'");
}
END_TEST

START_TEST (test_tree_keeps_positions_of_keys_and_values)
{
  _cleanup_toml_ struct toml_value *doc = parse_ok ("# c\n\n[server]\n  port =   8080\n  a.b = true\n");
  const struct toml_kv *server = toml_table_find (doc, "server");
  ck_assert_ptr_nonnull (server);
  ck_assert_uint_eq (server->pos.line, 3);
  ck_assert_uint_eq (server->pos.col, 2);
  const struct toml_kv *port = toml_table_find (server->value, "port");
  ck_assert_uint_eq (port->pos.line, 4);
  ck_assert_uint_eq (port->pos.col, 3);
  ck_assert_int_eq (port->value->type, TOML_INTEGER);
  ck_assert_int_eq (port->value->u.i, 8080);
  ck_assert_uint_eq (port->value->pos.line, 4);
  ck_assert_uint_eq (port->value->pos.col, 12);
  const struct toml_kv *a = toml_table_find (server->value, "a");
  const struct toml_kv *b = toml_table_find (a->value, "b");
  ck_assert_uint_eq (b->pos.line, 5);
  ck_assert_uint_eq (b->pos.col, 5);
  ck_assert_uint_eq (b->value->pos.col, 9);
}
END_TEST

START_TEST (test_duplicate_keys_are_rejected_with_first_definition)
{
  assert_fails_with ("a = 1\nb = 2\na = 3\n",
                     "line 3, column 1: duplicate key `a` (first defined at line 1, column 1)");
  assert_fails_containing ("t = { x = 1, x = 2 }\n", "duplicate key `x`");
  assert_fails_containing ("a.b = 1\na.b = 2\n", "duplicate key `a.b`");
}
END_TEST

START_TEST (test_tables_defined_twice_are_rejected)
{
  assert_fails_with ("[a]\nx = 1\n[b]\n[a]\n", "line 4, column 1: table `a` is already defined at line 1, column 2");
  assert_fails_containing ("[a]\nb.c = 1\n[a.b]\n", "table `a.b` is already defined");
  assert_fails_containing ("a = {}\n[a]\n", "already defined");
  assert_fails_containing ("a = []\n[[a]]\n", "cannot define array of tables `a`");
  assert_fails_containing ("[[a]]\n[a]\n", "already defined");
  assert_fails_containing ("a = 1\n[a.b]\n", "cannot define a table under `a`");
}
END_TEST

START_TEST (test_implicit_tables_may_be_defined_later)
{
  _cleanup_toml_ struct toml_value *doc = parse_ok ("[a.b.c]\nx = 1\n[a]\ny = 2\n[[t]]\nn = 1\n[t.sub]\nm = 1\n[[t]]\n");
  const struct toml_value *t = toml_table_get (doc, "t");
  ck_assert_int_eq (t->type, TOML_ARRAY);
  ck_assert_uint_eq (t->u.arr.n, 2);
  ck_assert_ptr_nonnull (toml_table_get (t->u.arr.items[0], "sub"));
}
END_TEST

START_TEST (test_dotted_keys_cannot_reopen_tables)
{
  assert_fails_containing ("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", "cannot add keys to `b`");
  assert_fails_containing ("a = { b = 1 }\na.c = 2\n", "cannot add keys to `a`");
  assert_fails_containing ("a = 1\na.b = 2\n", "cannot add keys to `a`");
}
END_TEST

START_TEST (test_malformed_documents_are_rejected)
{
  assert_fails_containing ("= 1\n", "expected a key");
  assert_fails_containing ("a = \n", "expected a value");
  assert_fails_containing ("a = 1 2\n", "expected a newline after the value");
  assert_fails_containing ("[a\n", "expected ']' to close the table header");
  assert_fails_containing ("[[a]\n", "expected ']]'");
  assert_fails_containing ("a = { b = 1, }\n", "trailing comma in inline table");
  assert_fails_containing ("a = { b = 1\n", "expected ',' or '}' in inline table");
  assert_fails_containing ("a = \"\\q\"\n", "invalid escape");
  assert_fails_containing ("a = \"\\uD800\"\n", "not a Unicode scalar value");
  assert_fails_containing ("a = 1\r2\n", "carriage return");
  assert_fails_containing ("a = 01\n", "leading zeros");
  assert_fails_containing ("a = 1__0\n", "invalid number");
  assert_fails_containing ("a = 1.\n", "invalid float");
  assert_fails_containing ("a = 1e999\n", "out of range");
  assert_fails_containing ("a = 2021-02-29\n", "invalid date");
  assert_fails_containing ("a = 24:00:00\n", "invalid time");
  assert_fails_containing ("a = tru\n", "true or false");
  assert_fails_containing ("a = \"\"\"x\"\"\"\"\"\"\n", "too many quotes");
  assert_fails_containing ("# bell \a\n", "control character 0x07 in comment");
}
END_TEST

START_TEST (test_nul_bytes_and_bad_utf8_are_rejected)
{
  struct toml_error terr;
  _cleanup_free_ char *m1 = parse_fail_n ("a = \"x\0y\"\n", 10, &terr);
  ck_assert_str_eq (m1, "line 1, column 7: control character 0x00 in string");
  _cleanup_free_ char *m2 = parse_fail_n ("a = 1\nb = \"\xC3\x28\"\n", 13, &terr);
  ck_assert_str_eq (m2, "line 2, column 6: invalid UTF-8");
  _cleanup_free_ char *m3 = parse_fail_n ("a = \"\xED\xA0\x80\"\n", 9, NULL); /* encoded surrogate */
  ck_assert_str_eq (m3, "line 1, column 6: invalid UTF-8");
}
END_TEST

START_TEST (test_parser_never_reads_past_the_length_it_is_given)
{
  /* Exactly-sized heap copies, so that AddressSanitizer sees any overread. */
  const char *cases[] = { "a = \"abc", "a = '''x''", "a = 1979-05-27T07:3", "a = [1,", "a = {b=", "a = 0x",
                          "[a.b", "a = \"\\u00", "a = tr", "k = 1e", "a = \"\"\"\\", "\xEF\xBB" };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      size_t n = strlen (cases[i]);
      _cleanup_free_ char *buf = malloc (n);
      memcpy (buf, cases[i], n);
      _cleanup_free_ char *msg = parse_fail_n (buf, n, NULL);
      ck_assert_msg (strncmp (msg, "line 1, column ", 15) == 0, "%s", msg);
    }
  /* A valid document cut short by len. */
  _cleanup_free_ char *m = parse_fail_n ("a = 12345", 3, NULL);
  ck_assert_str_eq (m, "line 1, column 4: expected a value, found end of file");
}
END_TEST

START_TEST (test_integers_that_overflow_64_bits_are_rejected)
{
  _cleanup_toml_ struct toml_value *doc
      = parse_ok ("max = 9223372036854775807\nmin = -9223372036854775808\nhex = 0x7FFF_FFFF_FFFF_FFFF\n"
                  "bin = 0b1010\noct = 0o755\n");
  ck_assert_int_eq (toml_table_get (doc, "max")->u.i, INT64_MAX);
  ck_assert_int_eq (toml_table_get (doc, "min")->u.i, INT64_MIN);
  ck_assert_int_eq (toml_table_get (doc, "hex")->u.i, INT64_MAX);
  ck_assert_int_eq (toml_table_get (doc, "bin")->u.i, 10);
  ck_assert_int_eq (toml_table_get (doc, "oct")->u.i, 0755);
  assert_fails_with ("a = 9223372036854775808\n", "line 1, column 5: integer `9223372036854775808` does not fit in 64 bits");
  assert_fails_containing ("a = -9223372036854775809\n", "does not fit in 64 bits");
  assert_fails_containing ("a = 0x8000000000000000\n", "does not fit in 64 bits");
  assert_fails_containing ("a = 99999999999999999999999999999999999999999999\n", "does not fit in 64 bits");
  assert_fails_containing ("a = -0x1\n", "a sign is not allowed");
}
END_TEST

static char *
repeat (const char *s, size_t times, const char *tail)
{
  size_t n = strlen (s), t = strlen (tail);
  char *out = malloc (n * times + t + 1);
  for (size_t i = 0; i < times; i++)
    memcpy (out + i * n, s, n);
  memcpy (out + n * times, tail, t + 1);
  return out;
}

START_TEST (test_deep_nesting_is_an_error_not_a_crash)
{
  _cleanup_free_ char *arrays = repeat ("[", 100000, "");
  _cleanup_free_ char *text = NULL;
  ck_assert_int_ge (asprintf (&text, "a = %s", arrays), 0);
  _cleanup_free_ char *m1 = parse_fail (text);
  ck_assert_msg (strstr (m1, "nesting deeper than 128 levels") != NULL, "%s", m1);

  _cleanup_free_ char *inl = repeat ("{a=", 100000, "");
  _cleanup_free_ char *text2 = NULL;
  ck_assert_int_ge (asprintf (&text2, "a = %s", inl), 0);
  _cleanup_free_ char *m2 = parse_fail (text2);
  ck_assert_msg (strstr (m2, "nesting deeper") != NULL, "%s", m2);

  /* Headers and dotted keys add up to the same bound. */
  _cleanup_free_ char *hdr = repeat ("a.", 100, "a]\n");
  _cleanup_free_ char *dotted = repeat ("b.", 100, "b = 1\n");
  _cleanup_free_ char *text3 = NULL;
  ck_assert_int_ge (asprintf (&text3, "[%s%s", hdr, dotted), 0);
  _cleanup_free_ char *m3 = parse_fail (text3);
  ck_assert_msg (strstr (m3, "line 2, column ") && strstr (m3, "nesting deeper"), "%s", m3);

  _cleanup_free_ char *longkey = repeat ("k.", 200, "k = 1\n");
  _cleanup_free_ char *m4 = parse_fail (longkey);
  ck_assert_msg (strstr (m4, "more than 128 parts") || strstr (m4, "nesting deeper"), "%s", m4);
}
END_TEST

START_TEST (test_nesting_up_to_the_limit_is_accepted)
{
  _cleanup_free_ char *open = repeat ("[", TOML_MAX_DEPTH, "");
  _cleanup_free_ char *close = repeat ("]", TOML_MAX_DEPTH, "\n");
  _cleanup_free_ char *text = NULL;
  ck_assert_int_ge (asprintf (&text, "a = %s%s", open, close), 0);
  _cleanup_toml_ struct toml_value *doc = parse_ok (text);
  _cleanup_free_ char *json = toml_to_tagged_json (doc);
  ck_assert_ptr_nonnull (json);
}
END_TEST

START_TEST (test_large_inputs_parse_in_linear_time)
{
  /* 200k keys in one table, a 1M-item array, a 4 MiB string: quadratic
   * lookups or copies would take minutes. */
  size_t keys = 200000;
  char *text = malloc (keys * 24 + (1u << 23));
  size_t o = 0;
  for (size_t i = 0; i < keys; i++)
    o += (size_t) sprintf (text + o, "key%zu = %zu\n", i, i);
  o += (size_t) sprintf (text + o, "arr = [");
  for (size_t i = 0; i < 1000000; i++)
    {
      memcpy (text + o, "1,", 2);
      o += 2;
    }
  o += (size_t) sprintf (text + o, "]\ns = \"");
  memset (text + o, 'x', 4u << 20);
  o += 4u << 20;
  o += (size_t) sprintf (text + o, "\"\n");
  clock_t start = clock ();
  _cleanup_toml_ struct toml_value *doc = NULL;
  ck_assert_int_eq (toml_parse (text, o, &doc, NULL, NULL), 0);
  double secs = (double) (clock () - start) / CLOCKS_PER_SEC;
  ck_assert_uint_eq (doc->u.tab.n, keys + 2);
  ck_assert_int_eq (toml_table_get (doc, "key199999")->u.i, 199999);
  ck_assert_uint_eq (toml_table_get (doc, "arr")->u.arr.n, 1000000);
  ck_assert_uint_eq (toml_table_get (doc, "s")->u.str.len, 4u << 20);
  ck_assert_msg (secs < 20, "took %.1f s", secs);
  free (text);
}
END_TEST

START_TEST (test_datetimes_keep_text_and_kind)
{
  _cleanup_toml_ struct toml_value *doc
      = parse_ok ("odt = 1979-05-27 07:32:00.999z\nldt = 1979-05-27t07:32:00\nld = 2024-02-29\nlt = 23:59:59.5\n"
                  "off = 1979-05-27T00:32:00-07:00\n");
  const struct toml_value *v = toml_table_get (doc, "odt");
  ck_assert_int_eq (v->type, TOML_DATETIME);
  ck_assert_int_eq (v->u.dt.kind, TOML_DATETIME_OFFSET);
  ck_assert_str_eq (v->u.dt.text, "1979-05-27T07:32:00.999Z");
  ck_assert_int_eq (toml_table_get (doc, "ldt")->u.dt.kind, TOML_DATETIME_LOCAL);
  ck_assert_str_eq (toml_table_get (doc, "ldt")->u.dt.text, "1979-05-27T07:32:00");
  ck_assert_int_eq (toml_table_get (doc, "ld")->u.dt.kind, TOML_DATE_LOCAL);
  ck_assert_int_eq (toml_table_get (doc, "lt")->u.dt.kind, TOML_TIME_LOCAL);
  ck_assert_str_eq (toml_table_get (doc, "off")->u.dt.text, "1979-05-27T00:32:00-07:00");
  ck_assert_str_eq (toml_type_name (toml_table_get (doc, "ld")), "local date");
}
END_TEST

START_TEST (test_strings_decode_escapes_and_keep_embedded_nul)
{
  _cleanup_toml_ struct toml_value *doc = parse_ok ("\"k\\u0000x\" = \"a\\u0000b\\tc\\U0001F600\"\n"
                                                    "ml = \"\"\"\n  one \\\n    two\"\"\"\"\n"
                                                    "lit = '''C:\\path'''\n");
  const struct toml_kv *kv = &doc->u.tab.items[0];
  ck_assert_uint_eq (kv->key_len, 3);
  ck_assert_int_eq (memcmp (kv->key, "k\0x", 3), 0);
  ck_assert_uint_eq (kv->value->u.str.len, 9);
  ck_assert_int_eq (memcmp (kv->value->u.str.s, "a\0b\tc\xF0\x9F\x98\x80", 9), 0);
  ck_assert_str_eq (toml_table_get (doc, "ml")->u.str.s, "  one two\"");
  ck_assert_str_eq (toml_table_get (doc, "lit")->u.str.s, "C:\\path");
}
END_TEST

START_TEST (test_bom_is_skipped_and_positions_start_after_it)
{
  _cleanup_toml_ struct toml_value *doc = parse_ok ("\xEF\xBB\xBF" "a = 1\n");
  ck_assert_uint_eq (doc->u.tab.items[0].pos.col, 1);
  assert_fails_with ("\xEF\xBB\xBF" "a = x\n", "line 1, column 5: expected a value, found 'x'");
}
END_TEST

START_TEST (test_tagged_json_matches_toml_test_format)
{
  _cleanup_toml_ struct toml_value *doc
      = parse_ok ("a = 1\nb = [\"x\\\"\", 1.5, inf]\n[t]\nd = 07:00:00\nn = -nan\nq = \"\\u001f\"\n");
  _cleanup_free_ char *json = toml_to_tagged_json (doc);
  ck_assert_str_eq (json, "{\"a\":{\"type\":\"integer\",\"value\":\"1\"},"
                          "\"b\":[{\"type\":\"string\",\"value\":\"x\\\"\"},{\"type\":\"float\",\"value\":\"1.5\"},"
                          "{\"type\":\"float\",\"value\":\"inf\"}],"
                          "\"t\":{\"d\":{\"type\":\"time-local\",\"value\":\"07:00:00\"},"
                          "\"n\":{\"type\":\"float\",\"value\":\"nan\"},"
                          "\"q\":{\"type\":\"string\",\"value\":\"\\u001f\"}}}");
}
END_TEST

START_TEST (test_quoted_strings_and_keys_parse_back)
{
  const char raw[] = "we\"ird\\ \n\t\x01 ü";
  _cleanup_free_ char *q = toml_quote (raw, sizeof raw - 1);
  _cleanup_free_ char *k = toml_quote_key ("io.berth.x");
  _cleanup_free_ char *bare = toml_quote_key ("bare_key-1");
  ck_assert_str_eq (bare, "bare_key-1");
  ck_assert_str_eq (k, "\"io.berth.x\"");
  _cleanup_free_ char *text = NULL;
  ck_assert_int_ge (asprintf (&text, "%s = %s\n", k, q), 0);
  _cleanup_toml_ struct toml_value *doc = parse_ok (text);
  const struct toml_value *v = toml_table_get (doc, "io.berth.x");
  ck_assert_ptr_nonnull (v);
  ck_assert_uint_eq (v->u.str.len, sizeof raw - 1);
  ck_assert_int_eq (memcmp (v->u.str.s, raw, sizeof raw - 1), 0);
}
END_TEST

/* A cheap, deterministic cousin of tests/fuzz/fuzz-toml.c that runs in
 * every `make check`: mutated documents either parse or fail with a
 * position, never anything else (ASan builds also catch memory errors). */
START_TEST (test_mutated_documents_parse_or_fail_with_a_position)
{
  static const char *const seeds[] = {
    "a = 1\n[t]\nb.c = \"x\\u00e9\"\n[[arr]]\nd = [1, 2.5, true, 1979-05-27T07:32:00Z]\n",
    "x = { y = { z = [ 'lit', \"\"\"ml\\\n  s\"\"\" ] } }\n# comment\nt = 07:32:00.5\n",
    "[a.b]\n[a]\nk = 0x_ff\nf = -1_000.5e-3\nn = nan\ni = -inf\n'q k' = '''\nx'''\n",
  };
  uint32_t state = 12345;
  for (int round = 0; round < 20000; round++)
    {
      const char *seed = seeds[round % ARRAY_SIZE (seeds)];
      size_t n = strlen (seed);
      char buf[256];
      memcpy (buf, seed, n);
      int edits = 1 + round % 4;
      for (int e = 0; e < edits && n > 0; e++)
        {
          state = state * 1103515245u + 12345u;
          size_t at = (state >> 8) % n;
          state = state * 1103515245u + 12345u;
          switch ((state >> 16) % 3)
            {
            case 0: /* change a byte */
              buf[at] = (char) (state >> 3);
              break;
            case 1: /* cut the rest */
              n = at;
              break;
            default: /* duplicate a byte */
              if (n + 1 < sizeof buf)
                {
                  memmove (buf + at + 1, buf + at, n - at);
                  n++;
                }
            }
        }
      struct toml_value *doc = NULL;
      struct toml_error terr = { { 0, 0 }, "" };
      int r = toml_parse (buf, n, &doc, &terr, NULL);
      if (r == 0)
        {
          char *json = toml_to_tagged_json (doc);
          ck_assert_ptr_nonnull (json);
          free (json);
          toml_free (doc);
        }
      else
        {
          ck_assert_int_eq (r, BERTH_E_INVALID);
          ck_assert_ptr_null (doc);
          ck_assert_uint_ge (terr.pos.line, 1);
          ck_assert_uint_ge (terr.pos.col, 1);
          ck_assert_uint_gt (strlen (terr.msg), 0);
        }
    }
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("toml");
  TCase *tc = tcase_create ("parse");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_error_names_line_and_column);
  tcase_add_test (tc, test_columns_count_characters_not_bytes);
  tcase_add_test (tc, test_tree_keeps_positions_of_keys_and_values);
  tcase_add_test (tc, test_duplicate_keys_are_rejected_with_first_definition);
  tcase_add_test (tc, test_tables_defined_twice_are_rejected);
  tcase_add_test (tc, test_implicit_tables_may_be_defined_later);
  tcase_add_test (tc, test_dotted_keys_cannot_reopen_tables);
  tcase_add_test (tc, test_malformed_documents_are_rejected);
  tcase_add_test (tc, test_nul_bytes_and_bad_utf8_are_rejected);
  tcase_add_test (tc, test_parser_never_reads_past_the_length_it_is_given);
  tcase_add_test (tc, test_integers_that_overflow_64_bits_are_rejected);
  tcase_add_test (tc, test_deep_nesting_is_an_error_not_a_crash);
  tcase_add_test (tc, test_nesting_up_to_the_limit_is_accepted);
  tcase_add_test (tc, test_large_inputs_parse_in_linear_time);
  tcase_add_test (tc, test_datetimes_keep_text_and_kind);
  tcase_add_test (tc, test_strings_decode_escapes_and_keep_embedded_nul);
  tcase_add_test (tc, test_bom_is_skipped_and_positions_start_after_it);
  tcase_add_test (tc, test_tagged_json_matches_toml_test_format);
  tcase_add_test (tc, test_quoted_strings_and_keys_parse_back);
  tcase_add_test (tc, test_mutated_documents_parse_or_fail_with_a_position);
  suite_add_tcase (s, tc);
  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}
