#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/oci.h"

#define SHA_A "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
#define SHA_B "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
#define SHA_C "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"

static const char manifest_json[] =
  "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
  "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":7023,\"digest\":\"" SHA_A "\"},"
  "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"size\":32654,\"digest\":\"" SHA_B "\","
  "\"annotations\":{\"a\":\"1\",\"b\":\"2\"}},"
  "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"size\":10000000000,\"digest\":\"" SHA_C "\","
  "\"urls\":[\"https://example.com/x\",\"http://[::1]:8080/y\"]}],"
  "\"annotations\":{\"org.opencontainers.image.created\":\"2024-01-01T00:00:00Z\"}}";

static const char docker_manifest_json[] =
  "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
  "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":1469,\"digest\":\"" SHA_A "\"},"
  "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":2479,\"digest\":\"" SHA_B "\"},"
  "{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"size\":5,\"digest\":\"" SHA_C "\","
  "\"urls\":[\"https://mcr.microsoft.com/l\"]}]}";

static const char index_json[] =
  "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
  "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":7143,\"digest\":\"" SHA_A "\","
  "\"platform\":{\"architecture\":\"ppc64le\",\"os\":\"linux\"}},"
  "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":7682,\"digest\":\"" SHA_B "\","
  "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\",\"os.features\":[\"a\"]}}]}";

static const char config_json[] =
  "{\"created\":\"2015-10-31T22:22:56.015925234Z\",\"author\":\"Alyssa\",\"architecture\":\"amd64\",\"os\":\"linux\","
  "\"config\":{\"User\":\"alice\",\"ExposedPorts\":{\"8080/tcp\":{}},\"Env\":[\"PATH=/usr/bin\",\"FOO=a=b\"],"
  "\"Entrypoint\":[\"/bin/my-app\"],\"Cmd\":null,\"Volumes\":{\"/var/job\":{}},\"WorkingDir\":\"/home/alice\","
  "\"Labels\":{\"com.example.a\":\"x\"},\"StopSignal\":\"SIGTERM\",\"ArgsEscaped\":true},"
  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" SHA_A "\",\"" SHA_B "\"]},"
  "\"history\":[{\"created\":\"2015-10-31T22:22:54.690851953Z\",\"created_by\":\"/bin/sh -c #(nop) ADD file\"},"
  "{\"created\":\"2015-10-31T22:22:55.613815829Z\",\"created_by\":\"/bin/sh -c #(nop) CMD\",\"empty_layer\":true}]}";

static int
validate (const char *mt, const char *json, char **ret_msg)
{
  _cleanup_error_ berth_error *err = NULL;
  int r = oci_validate (mt, json, strlen (json), &err);
  if (ret_msg)
    *ret_msg = r < 0 ? strdup (berth_error_message (err)) : NULL;
  if (r < 0)
    ck_assert_ptr_nonnull (err);
  return r;
}

static void
assert_invalid (const char *mt, const char *json, const char *want_in_msg)
{
  _cleanup_free_ char *msg = NULL;
  int r = validate (mt, json, &msg);
  ck_assert_msg (r == BERTH_E_INVALID, "expected invalid (%s): %s", want_in_msg, json);
  ck_assert_msg (strstr (msg, want_in_msg) != NULL, "message \"%s\" lacks \"%s\"", msg, want_in_msg);
}

static void
assert_valid (const char *mt, const char *json)
{
  _cleanup_free_ char *msg = NULL;
  int r = validate (mt, json, &msg);
  ck_assert_msg (r == 0, "expected valid, got: %s\n%s", msg, json);
}

START_TEST (test_manifest_parses_into_descriptors)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_manifest_freep) oci_manifest *m = NULL;
  ck_assert_int_eq (oci_manifest_parse (OCI_MT_MANIFEST, manifest_json, strlen (manifest_json), &m, &err), 0);
  ck_assert_str_eq (m->media_type, OCI_MT_MANIFEST);
  ck_assert_str_eq (m->config.digest, SHA_A);
  ck_assert_int_eq (m->config.size, 7023);
  ck_assert_int_eq (m->n_layers, 2);
  ck_assert_str_eq (m->layers[0].media_type, OCI_MT_LAYER_GZIP);
  ck_assert_str_eq (oci_map_get (&m->layers[0].annotations, "b"), "2");
  ck_assert_ptr_null (oci_map_get (&m->layers[0].annotations, "c"));
  ck_assert (m->layers[1].size == 10000000000LL); /* a 10 GB claim is a number like any other */
  ck_assert_str_eq (m->layers[1].urls[1], "http://[::1]:8080/y");
  ck_assert_ptr_null (m->layers[1].urls[2]);
  ck_assert_ptr_null (m->subject);
  ck_assert_str_eq (oci_map_get (&m->annotations, "org.opencontainers.image.created"), "2024-01-01T00:00:00Z");
}
END_TEST

START_TEST (test_docker_schema2_manifest_keeps_its_media_types)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_manifest_freep) oci_manifest *m = NULL;
  ck_assert_int_eq (oci_manifest_parse (NULL, docker_manifest_json, strlen (docker_manifest_json), &m, &err), 0);
  ck_assert_str_eq (m->media_type, DOCKER_MT_MANIFEST);
  ck_assert_str_eq (m->config.media_type, DOCKER_MT_CONFIG);
  ck_assert_int_eq (oci_media_type_kind (m->layers[1].media_type), OCI_KIND_LAYER);
  ck_assert (oci_media_type_is_docker (m->layers[1].media_type));
  assert_valid (DOCKER_MT_MANIFEST, docker_manifest_json);
}
END_TEST

START_TEST (test_schema1_is_refused_with_advice)
{
  static const char s1[] = "{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"latest\",\"fsLayers\":[],\"history\":[]}";
  _cleanup_error_ berth_error *err = NULL;
  oci_manifest *m = NULL;
  ck_assert_int_eq (oci_manifest_parse (NULL, s1, strlen (s1), &m, &err), BERTH_E_NOTSUP);
  ck_assert_str_eq (berth_error_message (err), OCI_SCHEMA1_MESSAGE);
  berth_error_free (err);
  err = NULL;
  ck_assert_int_eq (oci_manifest_parse (DOCKER_MT_MANIFEST_V1_SIGNED, s1, strlen (s1), &m, &err), BERTH_E_NOTSUP);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "schema 1 manifests are deprecated"));
  ck_assert_ptr_null (m);
  /* The validator's verdict is "invalid", with the same advice. */
  assert_invalid (OCI_MT_MANIFEST, s1, "push the image with a current client");
  ck_assert_int_eq (validate (DOCKER_MT_MANIFEST_V1, s1, NULL), BERTH_E_NOTSUP);
  ck_assert_str_eq (oci_detect_media_type (s1, strlen (s1)), DOCKER_MT_MANIFEST_V1);
}
END_TEST

START_TEST (test_index_parses_platforms)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_index_freep) oci_index *x = NULL;
  ck_assert_int_eq (oci_index_parse (NULL, index_json, strlen (index_json), &x, &err), 0);
  ck_assert_str_eq (x->media_type, OCI_MT_INDEX);
  ck_assert_int_eq (x->n_manifests, 2);
  ck_assert_str_eq (x->manifests[0].platform->architecture, "ppc64le");
  ck_assert_ptr_null (x->manifests[0].platform->variant);
  ck_assert_str_eq (x->manifests[1].platform->variant, "v8");
  ck_assert_str_eq (x->manifests[1].platform->os_features[0], "a");
}
END_TEST

START_TEST (test_config_parses_every_field)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_config_freep) oci_config *c = NULL;
  ck_assert_int_eq (oci_config_parse (OCI_MT_CONFIG, config_json, strlen (config_json), &c, &err), 0);
  ck_assert_str_eq (c->architecture, "amd64");
  ck_assert_str_eq (c->os, "linux");
  ck_assert_ptr_null (c->variant);
  ck_assert_str_eq (c->config.user, "alice");
  ck_assert_str_eq (c->config.env[1], "FOO=a=b");
  ck_assert_ptr_null (c->config.env[2]);
  ck_assert_str_eq (c->config.entrypoint[0], "/bin/my-app");
  ck_assert_ptr_null (c->config.cmd); /* null: unset, inherit */
  ck_assert_str_eq (c->config.exposed_ports[0], "8080/tcp");
  ck_assert_str_eq (c->config.volumes[0], "/var/job");
  ck_assert_str_eq (c->config.working_dir, "/home/alice");
  ck_assert_str_eq (oci_map_get (&c->config.labels, "com.example.a"), "x");
  ck_assert_str_eq (c->config.stop_signal, "SIGTERM");
  ck_assert (c->config.args_escaped);
  ck_assert_str_eq (c->rootfs_type, "layers");
  ck_assert_int_eq (c->n_diff_ids, 2);
  ck_assert_str_eq (c->diff_ids[1], SHA_B);
  ck_assert_int_eq (c->n_history, 2);
  ck_assert (!c->history[0].empty_layer);
  ck_assert (c->history[1].empty_layer);
  ck_assert_str_eq (c->history[1].created_by, "/bin/sh -c #(nop) CMD");
}
END_TEST

START_TEST (test_config_empty_entrypoint_differs_from_absent)
{
  static const char j[] = "{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[]},"
                          "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_config_freep) oci_config *c = NULL;
  ck_assert_int_eq (oci_config_parse (DOCKER_MT_CONFIG, j, strlen (j), &c, &err), 0);
  ck_assert_ptr_nonnull (c->config.entrypoint);
  ck_assert_ptr_null (c->config.entrypoint[0]);
  ck_assert_ptr_null (c->config.cmd);
  ck_assert_ptr_nonnull (c->diff_ids);
  ck_assert_int_eq (c->n_diff_ids, 0);
}
END_TEST

START_TEST (test_keys_fold_case_as_go_reads_them)
{
  /* Go's encoding/json (and so containerd) reads "env" as Env: the bad
   * entry must be seen even though the schema only knows "Env". */
  static const char bad[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"env\":[\"foo\"]},"
                            "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  assert_invalid (OCI_MT_CONFIG, bad, "config.Env");
  static const char good[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"ENV\":[\"A=1\"],\"cmd\":[\"sh\"]},"
                             "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_config_freep) oci_config *c = NULL;
  ck_assert_int_eq (oci_config_parse (NULL, good, strlen (good), &c, &err), 0);
  ck_assert_str_eq (c->config.env[0], "A=1");
  ck_assert_str_eq (c->config.cmd[0], "sh");
  /* A later folded key wins, and its type is checked. */
  static const char later[] = "{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"" SHA_A "\",\"DIGEST\":\"sha256:AB\"}";
  assert_invalid (OCI_MT_DESCRIPTOR, later, "digest");
  static const char kelvin[] = "{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"" SHA_A "\",\"\xe2\x84\xaaind\":1,"
                               "\"\xc5\xbfize\":\"x\"}";
  assert_invalid (OCI_MT_DESCRIPTOR, kelvin, "into Go value of type int64");
}
END_TEST

START_TEST (test_hostile_json_is_refused)
{
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",}", "invalid JSON");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\"} x", "after top-level value");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":NaN}", "invalid JSON");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":-Infinity}", "invalid JSON");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":1.}", "digit expected");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":01}", "invalid JSON");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":\"a\tb\"}", "control character");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":\"\\x\"}", "invalid escape");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":\"\xff\"}", "UTF-8");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":\"\xed\xa0\x80\"}", "UTF-8");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"a\\u0000\":1}", "NUL");
  assert_invalid (OCI_MT_LAYOUT, "/* c */{\"imageLayoutVersion\":\"1.0.0\"}", "invalid JSON");
  assert_invalid (OCI_MT_LAYOUT, "", "end of JSON input");
  assert_invalid (OCI_MT_LAYOUT, "null", "expected object");
  assert_invalid (OCI_MT_LAYOUT, "\xef\xbb\xbf{\"imageLayoutVersion\":\"1.0.0\"}", "invalid JSON");
  assert_valid (OCI_MT_LAYOUT, " \r\n\t{\"imageLayoutVersion\":\"1.0.0\",\"x\":[1e400,-0,\"\\ud800\"]}\n");
}
END_TEST

START_TEST (test_duplicate_keys_are_refused)
{
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"imageLayoutVersion\":\"1.0.0\"}", "duplicate key");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":{\"a\":{\"b\":1},\"a\":2}}", "duplicate key");
  /* The same key in two objects is not a duplicate. */
  assert_valid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":{\"a\":1},\"y\":{\"a\":1}}");
}
END_TEST

START_TEST (test_documents_past_the_limits_are_refused)
{
  size_t n = OCI_DOC_MAX + 2;
  _cleanup_free_ char *big = malloc (n + 1);
  memset (big, ' ', n);
  big[0] = '{';
  big[n - 1] = '}';
  big[n] = '\0';
  assert_invalid (OCI_MT_LAYOUT, big, "too large");
  char deep[2 * (OCI_DEPTH_MAX + 2) + 64];
  size_t i = 0;
  i += sprintf (deep, "{\"imageLayoutVersion\":\"1.0.0\",\"x\":");
  for (int k = 0; k < OCI_DEPTH_MAX; k++)
    deep[i++] = '[';
  for (int k = 0; k < OCI_DEPTH_MAX; k++)
    deep[i++] = ']';
  strcpy (deep + i, "}");
  assert_invalid (OCI_MT_LAYOUT, deep, "nesting too deep");
}
END_TEST

START_TEST (test_sizes_must_be_int64_and_not_negative)
{
  char j[512];
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":9223372036854775807,\"digest\":\"%s\"}", SHA_A);
  assert_valid (OCI_MT_DESCRIPTOR, j);
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":9223372036854775808,\"digest\":\"%s\"}", SHA_A);
  assert_invalid (OCI_MT_DESCRIPTOR, j, "overflows int64");
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":1.0,\"digest\":\"%s\"}", SHA_A);
  assert_invalid (OCI_MT_DESCRIPTOR, j, "int64");
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":-1,\"digest\":\"%s\"}", SHA_A);
  assert_invalid (OCI_MT_DESCRIPTOR, j, "negative");
  /* The index schema allows negative sizes; the spec does not. */
  snprintf (j, sizeof j, "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"size\":-5,\"digest\":\"%s\"}]}", SHA_A);
  assert_invalid (OCI_MT_INDEX, j, "negative");
}
END_TEST

START_TEST (test_digest_grammar_and_registered_algorithms)
{
  ck_assert_int_eq (oci_digest_validate (SHA_A, strlen (SHA_A), NULL), 0);
  ck_assert_int_eq (oci_digest_algorithm (SHA_A), OCI_DIGEST_SHA256);
  ck_assert_str_eq (oci_digest_encoded (SHA_A), SHA_A + 7);
  static const char *const good[] = {
    "sha512:" "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
    "blake3:abc",
  };
  for (size_t i = 0; i < ARRAY_SIZE (good); i++)
    ck_assert_msg (oci_digest_validate (good[i], strlen (good[i]), NULL) == 0, "%s", good[i]);
  static const char *const bad[] = {
    "sha256:A3ED95CAEB02FFE68CDD9FD84406680AE93D633CB16422D00E8A7C22955B46D4",
    "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d",
    "sha512:abcd",
    "SHA256:abc",
    ":abc",
    "sha256",
    "sha256:",
    "sha256+foo+-b:abc",
    "sha256:a/b",
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      ck_assert_msg (oci_digest_validate (bad[i], strlen (bad[i]), &err) == BERTH_E_INVALID, "%s", bad[i]);
      ck_assert_ptr_nonnull (strstr (berth_error_message (err), "digest"));
    }
  /* Nested descriptors get the same check (the spec's MUST). */
  char j[1024];
  snprintf (j, sizeof j,
            "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"sha256:abc\"},"
            "\"layers\":[{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"%s\"}]}",
            SHA_A);
  assert_invalid (OCI_MT_MANIFEST, j, "$.config.digest");
  assert_invalid (OCI_MT_CONFIG,
                  "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"x\"]}}",
                  "diff_ids[0]");
}
END_TEST

START_TEST (test_ambiguous_manifest_or_index_is_refused)
{
  /* CVE-2021-41190 */
  char j[1024];
  snprintf (j, sizeof j,
            "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"%s\"},"
            "\"layers\":[{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"%s\"}],\"Manifests\":[]}",
            SHA_A, SHA_B);
  _cleanup_error_ berth_error *err = NULL;
  oci_manifest *m = NULL;
  ck_assert_int_eq (oci_manifest_parse (NULL, j, strlen (j), &m, &err), BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "ambiguous"));
  berth_error_free (err);
  err = NULL;
  oci_index *x = NULL;
  size_t n = strlen (index_json);
  _cleanup_free_ char *withlayers = malloc (n + 32);
  memcpy (withlayers, index_json, n - 1);
  strcpy (withlayers + n - 1, ",\"layers\":[]}");
  ck_assert_int_eq (oci_index_parse (NULL, withlayers, strlen (withlayers), &x, &err), BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "ambiguous"));
  ck_assert_ptr_null (x);
}
END_TEST

START_TEST (test_document_of_another_kind_is_refused)
{
  _cleanup_error_ berth_error *err = NULL;
  oci_manifest *m = NULL;
  /* an index served as a manifest */
  ck_assert_int_eq (oci_manifest_parse (OCI_MT_MANIFEST, index_json, strlen (index_json), &m, &err), BERTH_E_INVALID);
  berth_error_free (err);
  err = NULL;
  /* a manifest whose mediaType says index */
  size_t n = strlen (manifest_json);
  _cleanup_free_ char *j = strdup (manifest_json);
  char *p = strstr (j, "image.manifest.v1");
  memcpy (p, "image.index.v1+js", 17);
  memmove (p + 15, p + 18, strlen (p + 18) + 1);
  ck_assert_int_lt (strlen (j), n);
  ck_assert_int_eq (oci_manifest_parse (NULL, j, strlen (j), &m, &err), BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "expected an image manifest"));
  berth_error_free (err);
  err = NULL;
  ck_assert_int_eq (oci_config_parse (OCI_MT_LAYER_GZIP, config_json, strlen (config_json), NULL, &err), BERTH_E_INVALID);
  ck_assert_ptr_null (m);
}
END_TEST

START_TEST (test_detect_media_type_from_shape)
{
  ck_assert_str_eq (oci_detect_media_type (manifest_json, strlen (manifest_json)), OCI_MT_MANIFEST);
  ck_assert_str_eq (oci_detect_media_type (docker_manifest_json, strlen (docker_manifest_json)), DOCKER_MT_MANIFEST);
  ck_assert_str_eq (oci_detect_media_type (config_json, strlen (config_json)), OCI_MT_CONFIG);
  static const char idx[] = "{\"schemaVersion\":2,\"manifests\":[]}";
  ck_assert_str_eq (oci_detect_media_type (idx, strlen (idx)), OCI_MT_INDEX);
  static const char man[] = "{\"schemaVersion\":2,\"config\":{},\"layers\":[]}";
  ck_assert_str_eq (oci_detect_media_type (man, strlen (man)), OCI_MT_MANIFEST);
  static const char both[] = "{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}";
  ck_assert_ptr_null (oci_detect_media_type (both, strlen (both)));
  static const char lay[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  ck_assert_str_eq (oci_detect_media_type (lay, strlen (lay)), OCI_MT_LAYOUT);
  ck_assert_ptr_null (oci_detect_media_type ("[1]", 3));
  ck_assert_ptr_null (oci_detect_media_type ("{", 1));
}
END_TEST

START_TEST (test_embedded_data_is_decoded)
{
  char j[512];
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":3,\"digest\":\"%s\",\"data\":\"YW\\r\\nJj\"}", SHA_A);
  _cleanup_error_ berth_error *err = NULL;
  oci_descriptor d;
  ck_assert_int_eq (oci_descriptor_parse (j, strlen (j), &d, &err), 0);
  ck_assert_int_eq (d.data_len, 3);
  ck_assert (memcmp (d.data, "abc", 3) == 0);
  oci_descriptor c;
  ck_assert_int_eq (oci_descriptor_copy (&c, &d, &err), 0);
  oci_descriptor_clear (&d);
  ck_assert_str_eq (c.digest, SHA_A);
  ck_assert (memcmp (c.data, "abc", 3) == 0);
  oci_descriptor_clear (&c);
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":3,\"digest\":\"%s\",\"data\":\"YWJ\"}", SHA_A);
  assert_invalid (OCI_MT_DESCRIPTOR, j, "base64");
  snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":3,\"digest\":\"%s\",\"data\":\"YW=j\"}", SHA_A);
  assert_invalid (OCI_MT_DESCRIPTOR, j, "base64");
}
END_TEST

START_TEST (test_urls_must_be_absolute_uris)
{
  static const char *const good[] = { "https://a.b/c?d#e", "urn:x", "http://user:pw@h:80/", "http://[fe80::1]/x",
                                      "http://h/%41" };
  static const char *const bad[] = { "value", "/rel", "http://h:port/", "http://[fe80::1/x", "http://fe80::1/x",
                                     "http://h/%4", "http://[zz::1]/", "ht tp://x", "http://h\x01/" };
  char j[512];
  for (size_t i = 0; i < ARRAY_SIZE (good); i++)
    {
      snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"%s\",\"urls\":[\"%s\"]}", SHA_A, good[i]);
      assert_valid (OCI_MT_DESCRIPTOR, j);
    }
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      snprintf (j, sizeof j, "{\"mediaType\":\"a/b\",\"size\":1,\"digest\":\"%s\",\"urls\":[\"%s\"]}", SHA_A, bad[i]);
      _cleanup_free_ char *msg = NULL;
      ck_assert_msg (validate (OCI_MT_DESCRIPTOR, j, &msg) == BERTH_E_INVALID, "%s accepted", bad[i]);
    }
}
END_TEST

START_TEST (test_created_must_be_rfc3339)
{
  static const char *const good[] = { "2015-10-31T22:22:56.015925234Z", "2024-02-29T00:00:00+01:00", "2000-01-01T23:59:59-12:30" };
  static const char *const bad[] = { "2015-10-31 22:22:56Z", "2015-10-31t22:22:56z", "2023-02-29T00:00:00Z",
                                     "2015-10-31T22:22:60Z", "2015-13-01T00:00:00Z", "2015-10-31T22:22:56", "2015-10-31T22:22:56.Z" };
  char j[512];
  for (size_t i = 0; i < ARRAY_SIZE (good); i++)
    {
      snprintf (j, sizeof j,
                "{\"created\":\"%s\",\"architecture\":\"a\",\"os\":\"l\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                good[i]);
      assert_valid (OCI_MT_CONFIG, j);
    }
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      snprintf (j, sizeof j,
                "{\"history\":[{\"created\":\"%s\"}],\"architecture\":\"a\",\"os\":\"l\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                bad[i]);
      assert_invalid (OCI_MT_CONFIG, j, "RFC 3339");
    }
}
END_TEST

START_TEST (test_unknown_media_type_has_no_validator)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (oci_validate ("application/x-foo", "{}", 2, &err), BERTH_E_NOTSUP);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "no validator"));
  ck_assert_int_eq (oci_media_type_kind (OCI_MT_LAYER_ZSTD), OCI_KIND_LAYER);
  ck_assert_int_eq (oci_media_type_kind (DOCKER_MT_MANIFEST_LIST), OCI_KIND_INDEX);
  ck_assert_int_eq (oci_media_type_kind (NULL), OCI_KIND_UNKNOWN);
}
END_TEST

START_TEST (test_layout_file_parses)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_layout_freep) oci_layout *l = NULL;
  static const char j[] = "{\"imageLayoutVersion\": \"1.0.0\"}";
  ck_assert_int_eq (oci_layout_parse (j, strlen (j), &l, &err), 0);
  ck_assert_str_eq (l->image_layout_version, "1.0.0");
  assert_invalid (OCI_MT_LAYOUT, "{\"imageLayoutVersion\": \"1.1.0\"}", "1.0.0");
  assert_invalid (OCI_MT_LAYOUT, "{}", "required");
}
END_TEST

START_TEST (test_strings_holding_nul_are_refused_by_typed_parsers)
{
  static const char j[] = "{\"architecture\":\"amd\\u000064\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  assert_valid (OCI_MT_CONFIG, j); /* as upstream */
  _cleanup_error_ berth_error *err = NULL;
  oci_config *c = NULL;
  ck_assert_int_eq (oci_config_parse (NULL, j, strlen (j), &c, &err), BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "NUL"));
}
END_TEST

static Suite *
oci_suite (void)
{
  Suite *s = suite_create ("oci");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_manifest_parses_into_descriptors);
  tcase_add_test (tc, test_docker_schema2_manifest_keeps_its_media_types);
  tcase_add_test (tc, test_schema1_is_refused_with_advice);
  tcase_add_test (tc, test_index_parses_platforms);
  tcase_add_test (tc, test_config_parses_every_field);
  tcase_add_test (tc, test_config_empty_entrypoint_differs_from_absent);
  tcase_add_test (tc, test_keys_fold_case_as_go_reads_them);
  tcase_add_test (tc, test_hostile_json_is_refused);
  tcase_add_test (tc, test_duplicate_keys_are_refused);
  tcase_add_test (tc, test_documents_past_the_limits_are_refused);
  tcase_add_test (tc, test_sizes_must_be_int64_and_not_negative);
  tcase_add_test (tc, test_digest_grammar_and_registered_algorithms);
  tcase_add_test (tc, test_ambiguous_manifest_or_index_is_refused);
  tcase_add_test (tc, test_document_of_another_kind_is_refused);
  tcase_add_test (tc, test_detect_media_type_from_shape);
  tcase_add_test (tc, test_embedded_data_is_decoded);
  tcase_add_test (tc, test_urls_must_be_absolute_uris);
  tcase_add_test (tc, test_created_must_be_rfc3339);
  tcase_add_test (tc, test_unknown_media_type_has_no_validator);
  tcase_add_test (tc, test_layout_file_parses);
  tcase_add_test (tc, test_strings_holding_nul_are_refused_by_typed_parsers);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (oci_suite)
