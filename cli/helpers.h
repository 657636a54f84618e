/* Helpers shared by the images, content, leases and login commands: human
 * sizes and ages as ctr/docker print them, protobuf label maps built from
 * KEY=VALUE operands, Content/Read into memory or a stream, and a terminal
 * prompt.
 *
 * Label maps: every containerd message with `map<string,string> labels`
 * compiles to its own LabelsEntry type, all of the shape {base, key, value};
 * the functions here work on any of them through the entry's descriptor, so
 * one implementation serves Image, Info, Lease and CreateRequest labels.
 */
#ifndef BERTH_CLI_HELPERS_H
#define BERTH_CLI_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

#include "cli.h"
#include "google/protobuf/timestamp.pb-c.h"

/* "0.0 B", "512.0 B", "1.2 MiB": base 1024, one decimal (ctr's
 * progress.Bytes).  buf must hold HUMAN_SIZE_MAX bytes. */
#define HUMAN_SIZE_MAX 32
const char *human_size (char *buf, int64_t bytes);

/* Docker's HumanDuration of now - then followed by " ago": "Less than a
 * second ago", "About a minute ago", "3 minutes ago", "2 days ago".  A
 * missing time prints "-".  buf must hold HUMAN_AGE_MAX bytes. */
#define HUMAN_AGE_MAX 48
const char *human_age (char *buf, const Google__Protobuf__Timestamp *then, time_t now);

/* RFC 3339 in UTC with nanoseconds when there are any
 * ("2024-05-01T10:00:00.5Z"); NULL for a missing time.  malloc'ed. */
char *timestamp_rfc3339 (const Google__Protobuf__Timestamp *ts);
/* The JSON form of the above (null when missing). */
json_object *timestamp_json (const Google__Protobuf__Timestamp *ts);
/* RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" of a time_t, into buf (>= 32 bytes). */
const char *time_rfc3339 (char *buf, time_t t);

/* A label map under construction, for a request.  entries are messages of
 * entry_desc (an ..._LabelsEntry descriptor). */
struct pb_labels
{
  const ProtobufCMessageDescriptor *entry_desc;
  size_t n;
  ProtobufCMessage **entries;
};
/* Append key=value (both copied).  Returns 0 or -ENOMEM. */
int pb_labels_add (struct pb_labels *l, const char *key, const char *value);
/* Append every KEY=VALUE operand (a bare KEY means "true", cli_split_label). */
int pb_labels_add_args (struct pb_labels *l, int argc, char **argv);
void pb_labels_free (struct pb_labels *l);
/* Update mask paths "labels.<key>" for every entry, NULL-terminated. */
char **pb_labels_mask_paths (const struct pb_labels *l);

/* Reading labels of a response: entries are any LabelsEntry messages.
 * "k1=v1,k2=v2" sorted by key, or NULL for none (so tables print "-").
 * The entries are sorted in place. */
char *pb_labels_string (void **entries, size_t n);
json_object *pb_labels_json (void **entries, size_t n);
/* The value of key, or NULL. */
const char *pb_labels_get (void *const *entries, size_t n, const char *key);

/* Content/Read of a whole blob into memory, refusing blobs larger than max
 * (BERTH_E_EXHAUSTED) so that a lying descriptor cannot make the CLI
 * allocate gigabytes.  *ret is NUL-terminated (not counted in *ret_len).
 * A connection failure has been printed and leaves err NULL (as
 * cli_unary). */
int content_read_all (struct cli *cli, const char *digest, size_t max, char **ret, size_t *ret_len,
                      berth_error **err);
/* Content/Read streamed to fd; returns 0 or an error (a write error is
 * BERTH_E_INTERNAL with errno). */
int content_read_to_fd (struct cli *cli, const char *digest, int fd, berth_error **err);

/* Ask on the terminal (/dev/tty): prints prompt on stderr, reads a line;
 * echo off for passwords.  Returns 0, -ENOTTY without a terminal, or
 * -errno.  *ret is malloc'ed, without the newline. */
int cli_prompt (const char *prompt, bool echo, char **ret);
/* Is stdin a terminal we can prompt on? */
bool cli_can_prompt (void);

/* Media types (OCI and Docker v2 schema 2). */
bool media_type_is_index (const char *mt);
bool media_type_is_manifest (const char *mt);
bool media_type_is_config (const char *mt);

#endif
