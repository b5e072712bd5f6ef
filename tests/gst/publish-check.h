/* gst-earlyexit: helpers shared by the earlyexitpublish tests
 * (test-earlyexitpublish.c, test-earlyexitpublish-kafka.c): running a
 * pipeline to EOS while counting the buffers at its sink and collecting its
 * warnings, checking the messages (sequence numbers, schema), and with
 * PUBLISH_CHECK_MQTT a real mosquitto broker and a libmosquitto subscriber.
 *
 * Environment (tests/gst/meson.build): EE_TEST_IMAGE_MODEL,
 * EE_TEST_COUNT_MODEL, EE_TEST_SC_MODEL (the test models), EE_PUBLISH_SCHEMA
 * (docs/earlyexit-result.schema.json), EE_PUBLISH_VALIDATE
 * (tests/gst/publish_validate.py), EE_PYTHON (a python3 with jsonschema),
 * EE_MOSQUITTO (the broker), EE_MOSQUITTO_PASSWD. */
#ifndef PUBLISH_CHECK_H
#define PUBLISH_CHECK_H

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "earlyexit-meta.h"
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#ifdef PUBLISH_CHECK_MQTT
#include <mosquitto.h>
#endif

static inline const gchar *
env_path (const gchar *var)
{
  const gchar *p = g_getenv (var);

  fail_unless (p != NULL, "%s is not set (run through meson test)", var);
  return p;
}

/* A fresh temporary folder (removed by rm_tree). */
static inline gchar *
make_tmp_dir (void)
{
  gchar *dir = g_dir_make_tmp ("eepublish-XXXXXX", NULL);

  fail_unless (dir != NULL);
  return dir;
}

static inline void
rm_tree (const gchar *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  if (!d)
    return;
  while ((name = g_dir_read_name (d))) {
    gchar *path = g_build_filename (dir, name, NULL);

    if (g_file_test (path, G_FILE_TEST_IS_DIR))
      rm_tree (path);
    else
      g_unlink (path);
    g_free (path);
  }
  g_dir_close (d);
  g_rmdir (dir);
}

/* A pipeline run to EOS */
typedef struct
{
  GstElement *pipeline;
  GstElement *publish; /* the element named "pub" */
  gint frames;         /* buffers at the sink named "sink" (atomic) */
  gint results;        /* results on the buffers at the sink (atomic) */
  GPtrArray *warnings; /* the texts of the WARNING messages */
  gchar *error;        /* the first ERROR's text, or NULL */
} Run;

static inline void
on_handoff (GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer data)
{
  Run *r = data;
  gpointer state = NULL;

  g_atomic_int_inc (&r->frames);
  while (gst_buffer_iterate_earlyexit_results (buf, &state))
    g_atomic_int_inc (&r->results);
}

/* Parses `desc` (with a fakesink name=sink and the publisher name=pub). */
static inline Run *
run_new (const gchar *desc)
{
  Run *r = g_new0 (Run, 1);
  GError *err = NULL;
  GstElement *sink;

  r->pipeline = gst_parse_launch (desc, &err);
  fail_unless (r->pipeline != NULL && err == NULL, "%s: %s", desc,
               err ? err->message : "");
  sink = gst_bin_get_by_name (GST_BIN (r->pipeline), "sink");
  r->publish = gst_bin_get_by_name (GST_BIN (r->pipeline), "pub");
  fail_unless (sink && r->publish);
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), r);
  gst_object_unref (sink);
  r->warnings = g_ptr_array_new_with_free_func (g_free);
  return r;
}

/* Takes the bus messages until EOS or an error, waiting `poll_ms` at most
 * for each; FALSE when the pipeline is not done yet. */
static inline gboolean
run_poll (Run *r, GstBus *bus, gint poll_ms)
{
  GstMessage *msg;

  while ((msg = gst_bus_timed_pop_filtered (bus, poll_ms * GST_MSECOND,
                                            GST_MESSAGE_EOS | GST_MESSAGE_ERROR
                                                | GST_MESSAGE_WARNING))) {
    GError *err = NULL;
    gboolean done = FALSE;

    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_WARNING:
        gst_message_parse_warning (msg, &err, NULL);
        GST_INFO ("warning: %s", err->message);
        g_ptr_array_add (r->warnings, g_strdup (err->message));
        break;
      case GST_MESSAGE_ERROR:
        gst_message_parse_error (msg, &err, NULL);
        GST_INFO ("error: %s", err->message);
        r->error = g_strdup (err->message);
        done = TRUE;
        break;
      default:
        done = TRUE;
        break;
    }
    g_clear_error (&err);
    gst_message_unref (msg);
    if (done)
      return TRUE;
    poll_ms = 0;
  }
  return FALSE;
}

/* Plays the pipeline; calls `tick` (when not NULL) between bus polls until
 * EOS or an error. Leaves the pipeline in NULL. */
static inline void
run_play (Run *r, void (*tick) (Run *r, gpointer data), gpointer data)
{
  GstBus *bus = gst_element_get_bus (r->pipeline);

  if (gst_element_set_state (r->pipeline, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE)
    while (!run_poll (r, bus, 20))
      if (tick)
        tick (r, data);
  run_poll (r, bus, 0);
  gst_element_set_state (r->pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
}

/* The publisher's stats counter `name` (after run_play: final). */
static inline guint64
run_stat (Run *r, const gchar *name)
{
  GstStructure *s;
  guint64 v = 0;
  guint u;

  g_object_get (r->publish, "stats", &s, NULL);
  fail_unless (s != NULL);
  if (!gst_structure_get_uint64 (s, name, &v)) {
    fail_unless (gst_structure_get_uint (s, name, &u), "no stats field %s",
                 name);
    v = u;
  }
  gst_structure_free (s);
  return v;
}

/* TRUE when a warning contains `text`. */
static inline gboolean
run_warned (Run *r, const gchar *text)
{
  for (guint i = 0; i < r->warnings->len; i++)
    if (strstr (g_ptr_array_index (r->warnings, i), text))
      return TRUE;
  return FALSE;
}

static inline void
run_free (Run *r)
{
  gst_object_unref (r->publish);
  gst_object_unref (r->pipeline);
  g_ptr_array_unref (r->warnings);
  g_free (r->error);
  g_free (r);
}

/* Messages */

/* The `seq` of a message (fails unless it is a JSON object with an integer
 * seq and the expected source). */
static inline gint64
message_seq (const gchar *json, gsize len, const gchar *source)
{
  JsonParser *p = json_parser_new ();
  GError *err = NULL;
  JsonObject *o;
  gint64 seq;

  fail_unless (json_parser_load_from_data (p, json, (gssize)len, &err),
               "not JSON: %.200s", json);
  fail_unless (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)));
  o = json_node_get_object (json_parser_get_root (p));
  fail_unless (json_object_has_member (o, "seq"));
  seq = json_object_get_int_member (o, "seq");
  fail_unless_equals_string (json_object_get_string_member (o, "source"),
                             source);
  g_object_unref (p);
  return seq;
}

/* Validates every line of `path` with publish_validate.py against the
 * schema; fails unless all `n` are valid. */
static inline void
validate_file (const gchar *path, guint n)
{
  const gchar *argv[]
      = { env_path ("EE_PYTHON"), env_path ("EE_PUBLISH_VALIDATE"),
          env_path ("EE_PUBLISH_SCHEMA"), path, NULL };
  gchar *out = NULL, *err = NULL, *want = g_strdup_printf ("%u valid\n", n);
  gint status;

  fail_unless (g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_DEFAULT, NULL,
                             NULL, &out, &err, &status, NULL));
  fail_unless (g_spawn_check_wait_status (status, NULL),
               "schema validation failed:\n%s%s", out, err);
  fail_unless_equals_string (out, want);
  g_free (out);
  g_free (err);
  g_free (want);
}

/* Collected messages: the payloads (in arrival order) and the set of
 * sequence numbers seen. */
typedef struct
{
  GMutex lock;
  GPtrArray *payloads; /* gchar * */
  GHashTable *seqs;    /* gint64 seq -> itself */
  const gchar *source;
  gchar *bad_topic; /* a message on another topic */
  const gchar *topic;
} Collected;

static inline void
collected_init (Collected *c, const gchar *source, const gchar *topic)
{
  g_mutex_init (&c->lock);
  c->payloads = g_ptr_array_new_with_free_func (g_free);
  c->seqs = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  c->source = source;
  c->topic = topic;
  c->bad_topic = NULL;
}

static inline void
collected_add (Collected *c, const gchar *topic, const void *payload, gsize len)
{
  gchar *copy = g_strndup (payload, len);
  gint64 *seq = g_new (gint64, 1);

  *seq = message_seq (copy, len, c->source);
  g_mutex_lock (&c->lock);
  if (topic && c->topic && strcmp (topic, c->topic) && !c->bad_topic)
    c->bad_topic = g_strdup (topic);
  g_ptr_array_add (c->payloads, copy);
  g_hash_table_add (c->seqs, seq);
  g_mutex_unlock (&c->lock);
}

static inline guint
collected_unique (Collected *c)
{
  guint n;

  g_mutex_lock (&c->lock);
  n = g_hash_table_size (c->seqs);
  g_mutex_unlock (&c->lock);
  return n;
}

/* Waits until `n` distinct messages arrived (or 60 s passed: the check that
 * follows then fails with the numbers). */
static inline void
collected_wait (Collected *c, guint n)
{
  for (gint i = 0; i < 6000 && collected_unique (c) < n; i++)
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);
}

/* Every payload to a JSON lines file, validated. */
static inline void
collected_validate (Collected *c, const gchar *dir)
{
  gchar *path = g_build_filename (dir, "received.jsonl", NULL);
  GString *all = g_string_new (NULL);

  for (guint i = 0; i < c->payloads->len; i++)
    g_string_append_printf (all, "%s\n",
                            (gchar *)g_ptr_array_index (c->payloads, i));
  fail_unless (g_file_set_contents (path, all->str, all->len, NULL));
  validate_file (path, c->payloads->len);
  g_string_free (all, TRUE);
  g_free (path);
}

static inline void
collected_clear (Collected *c)
{
  g_ptr_array_unref (c->payloads);
  g_hash_table_unref (c->seqs);
  g_free (c->bad_topic);
  g_mutex_clear (&c->lock);
}

#ifdef PUBLISH_CHECK_MQTT
/* A free TCP port on 127.0.0.1. */
static inline gint
free_port (void)
{
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t len = sizeof a;
  gint fd = socket (AF_INET, SOCK_STREAM, 0), port;

  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  fail_unless (fd >= 0 && bind (fd, (struct sockaddr *)&a, sizeof a) == 0
               && getsockname (fd, (struct sockaddr *)&a, &len) == 0);
  port = ntohs (a.sin_port);
  close (fd);
  return port;
}

static inline gboolean
port_accepts (gint port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (port) };
  gint fd = socket (AF_INET, SOCK_STREAM, 0);
  gboolean ok;

  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  ok = connect (fd, (struct sockaddr *)&a, sizeof a) == 0;
  close (fd);
  return ok;
}

/* A mosquitto broker on 127.0.0.1:port with the config lines `extra`, its
 * files in `dir`. */
typedef struct
{
  gchar *conf;
  gint port;
  GPid pid;
} Broker;

static inline void
broker_start (Broker *b)
{
  const gchar *argv[] = { env_path ("EE_MOSQUITTO"), "-c", b->conf, NULL };
  GError *err = NULL;
  gint i;

  fail_unless (
      g_spawn_async (NULL, (gchar **)argv, NULL,
                     G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, &b->pid, &err),
      "cannot start mosquitto: %s", err ? err->message : "");
  /* up to 20 s for the listener (a loaded machine) */
  for (i = 0; i < 2000 && !port_accepts (b->port); i++)
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);
  fail_unless (i < 2000, "mosquitto (%s) did not listen on port %d", b->conf,
               b->port);
}

static inline Broker *
broker_new (const gchar *dir, const gchar *extra)
{
  Broker *b = g_new0 (Broker, 1);
  gchar *text;

  b->port = free_port ();
  b->conf = g_build_filename (dir, "mosquitto.conf", NULL);
  /* as root, mosquitto would switch to the user mosquitto, who cannot read
   * the test's folder */
  text = g_strdup_printf ("listener %d 127.0.0.1\n%s%s\n", b->port,
                          geteuid () == 0 ? "user root\n" : "", extra);
  fail_unless (g_file_set_contents (b->conf, text, -1, NULL));
  g_free (text);
  broker_start (b);
  return b;
}

/* SIGTERM (a persistent broker saves its sessions) and wait. */
static inline void
broker_stop (Broker *b)
{
  if (!b->pid)
    return;
  kill (b->pid, SIGTERM);
  waitpid (b->pid, NULL, 0);
  g_spawn_close_pid (b->pid);
  b->pid = 0;
}

static inline void
broker_free (Broker *b)
{
  broker_stop (b);
  g_free (b->conf);
  g_free (b);
}

/* A libmosquitto subscriber on `topic`, QoS 1, its own thread. */
typedef struct
{
  struct mosquitto *mosq;
  Collected *c;
  gint subscribed; /* atomic */
} Sub;

static inline void
sub_on_connect (struct mosquitto *mosq, void *data, int rc)
{
  Sub *s = data;

  if (rc == 0)
    mosquitto_subscribe (mosq, NULL, s->c->topic, 1);
}

static inline void
sub_on_subscribe (struct mosquitto *mosq, void *data, int mid, int n,
                  const int *granted)
{
  g_atomic_int_set (&((Sub *)data)->subscribed, 1);
}

static inline void
sub_on_message (struct mosquitto *mosq, void *data,
                const struct mosquitto_message *m)
{
  collected_add (((Sub *)data)->c, m->topic, m->payload, m->payloadlen);
}

/* `persistent`: a session the broker keeps (and persists) while the
 * subscriber is away, so that no QoS 1 message is lost on its side. */
static inline Sub *
sub_new (Broker *b, Collected *c, gboolean persistent, const gchar *ca,
         const gchar *user, const gchar *password)
{
  Sub *s = g_new0 (Sub, 1);
  gint i;

  mosquitto_lib_init ();
  s->c = c;
  s->mosq = mosquitto_new (persistent ? "ee-test-subscriber" : NULL,
                           !persistent, s);
  fail_unless (s->mosq != NULL);
  mosquitto_connect_callback_set (s->mosq, sub_on_connect);
  mosquitto_subscribe_callback_set (s->mosq, sub_on_subscribe);
  mosquitto_message_callback_set (s->mosq, sub_on_message);
  mosquitto_reconnect_delay_set (s->mosq, 1, 1, false);
  if (ca)
    fail_unless (mosquitto_tls_set (s->mosq, ca, NULL, NULL, NULL, NULL)
                 == MOSQ_ERR_SUCCESS);
  if (user)
    mosquitto_username_pw_set (s->mosq, user, password);
  fail_unless (mosquitto_connect (s->mosq, "127.0.0.1", b->port, 10)
               == MOSQ_ERR_SUCCESS);
  fail_unless (mosquitto_loop_start (s->mosq) == MOSQ_ERR_SUCCESS);
  for (i = 0; i < 2000 && !g_atomic_int_get (&s->subscribed); i++)
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);
  fail_unless (g_atomic_int_get (&s->subscribed), "subscription not acked");
  return s;
}

static inline void
sub_free (Sub *s)
{
  mosquitto_disconnect (s->mosq);
  mosquitto_loop_stop (s->mosq, false);
  mosquitto_destroy (s->mosq);
  g_free (s);
}
#endif /* PUBLISH_CHECK_MQTT */

#endif /* PUBLISH_CHECK_H */
