/* gst-earlyexit: publishes the earlyexit results passing through as JSON.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:element-earlyexitpublish
 * @title: earlyexitpublish
 *
 * Publishes every earlyexit result passing through (the `EarlyExitResultMeta`
 * that avcrowdcount, exitclassify and audioexitclassify attach to their
 * buffers, every result of a buffer that holds several) as one JSON message:
 * to a file of JSON lines or stdout (`method=file`), to an MQTT broker
 * (`method=mqtt`, libmosquitto) or to Kafka (`method=kafka`, librdkafka). It
 * is a passthrough element on any caps, so it can follow any earlyexit
 * element, video or audio; buffers without a result pass untouched.
 *
 * The video never waits for the network: the streaming thread only turns a
 * result into JSON and appends it to a queue of at most `max-queued`
 * messages, and a publishing thread of the element writes them out. When the
 * queue is full (a broker away, a slow disk) the oldest message is dropped
 * and counted. The `stats` property counts what was published, dropped,
 * queued, the reconnections and the errors; `seq` numbers the messages of
 * one run without gaps, so a consumer sees each drop as a missing number.
 *
 * ## The message (schema `earlyexit-result/1`)
 *
 * One JSON object per result (a line of its own with `method=file`):
 *
 * - `schema` (string): `"earlyexit-result/1"`. Fields may be added within a
 *   version; a change in the meaning or type of a field gets a new version.
 * - `source` (string): the `source` property, by default the name of the
 *   pipeline the element is in.
 * - `seq` (integer): the message's number, 0 for the first of a run
 *   (READY to PAUSED), one more for each following result.
 * - `pts` (integer or null): the buffer's presentation timestamp (ns).
 * - `running-time` (integer or null): the buffer's running time (ns).
 * - `utc` (string): the time the buffer was captured, in UTC, as
 *   `2026-12-06T08:15:00.123456Z`, and `utc-source` (string) where it comes
 *   from: `"ntp"`, the buffer's `GstReferenceTimestampMeta` with caps
 *   `timestamp/x-ntp` (rtpjitterbuffer add-reference-timestamp-meta=true, from
 *   the sender's RTCP reports) or `timestamp/x-unix`; `"clock"`, the system
 *   time at which the pipeline clock reached the buffer's running time (the
 *   clock's time now, less how long ago that was); `"system"`, the system
 *   time at publishing, for a buffer without a timestamp or outside PLAYING.
 * - `freshness` (string): `"fresh"` when the result was computed for this
 *   frame or window, `"carried"` when it repeats an earlier one (the result's
 *   `fresh` field).
 * - `top-k` (array, classifiers only): `{"label", "label-id", "confidence"}`
 *   objects, most probable first, from the result's `top-labels`,
 *   `top-label-ids` and `top-confidences`.
 * - `result` (object): every field of the result structure under its own
 *   name, so fields added by a newer element pass through unchanged. The
 *   elements' documentation lists them; the common ones are `task`
 *   (`"count"` or `"label"`), `count`, `label`, `label-id`, `confidence`,
 *   `exit`, `exit-index`, `n-exits`, `fresh`, `deadline` (ns),
 *   `inference-time` (ns), `deadline-missed`, `unique-id`, `audio-coverage`,
 *   `audio-used`, `window-start` and `window-end` (ns), `valid`, and with
 *   deadline-reference=capture `capture-time` (ns since 1970, UTC) and `age`
 *   (ns from capture to the result). Booleans,
 *   integers and strings keep their type, a number that is not finite
 *   becomes null, arrays become arrays and structures objects; a value of any
 *   other type is written as GStreamer serialises it, as a string.
 *
 * docs/publish.md has the JSON Schema of the message.
 *
 * ## Methods
 *
 * - `file`: JSON lines appended to `location`, or written to stdout when
 *   `location` is unset. With `max-file-size`, a file that would grow past
 *   it is renamed to `location.1` (the older ones to `.2`, `.3`, ... up to
 *   `max-files`, the oldest deleted) and a new `location` is started.
 * - `mqtt`: to the broker at `host`:`port`, on `topic` (`{source}` is
 *   replaced by the source), QoS `qos`, optionally over TLS (`tls-ca-file`)
 *   and with a login (`username`, and the password read at start from
 *   `password-file` or the environment variable named by `password-env`;
 *   the password is never a property, nor logged). A message counts as
 *   published when the broker acknowledged it (QoS 1) or when it was written
 *   to the connection (QoS 0). Messages sent but not yet acknowledged when
 *   the connection drops are sent again on reconnection (QoS 1), so a
 *   consumer may see a message twice (same `seq`).
 * - `kafka`: to the `brokers` on `topic` (default `earlyexit`), keyed by the
 *   source. A message counts as published when the broker acknowledged it.
 *
 * Reconnection: after a failed or lost connection the element waits 100 ms,
 * then twice as long after each further failure, up to 5 s (librdkafka
 * reconnects by itself, its backoff also capped at 5 s). Network trouble is posted as an element warning
 * that says what failed (the host cannot be found or refused the connection,
 * the TLS handshake failed, the broker refused the login, the connection was
 * lost) and what to check, once until the next successful connection; the
 * video is not affected. Settings that cannot work (an unreadable file, no
 * password, an invalid topic, a method this build lacks) are an element
 * error at start.
 *
 * At EOS the element waits up to `flush-timeout` for the queue to be
 * published before it passes the EOS on, and warns about what is left.
 *
 * ## Example launch line
 * |[
 * GST_PLUGIN_PATH=build/gst gst-launch-1.0 \
 *   videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
 *   exitclassify model-file=build/pipelines/demo-classifier.safetensors ! \
 *   earlyexitpublish method=file source=camera-1 ! fakesink
 * ]| prints one JSON line per frame; with a broker on this machine,
 * `earlyexitpublish method=mqtt host=localhost source=camera-1` publishes
 * them on `earlyexit/camera-1` (`mosquitto_sub -t 'earlyexit/#' -v`).
 */
/* clang-format on */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#ifdef HAVE_MQTT
#include <mosquitto.h>
#endif
#ifdef HAVE_KAFKA
#include <librdkafka/rdkafka.h>
#endif

#include "gstearlyexitpublish.h"
#include "ee-props.h"
#include "earlyexit-meta.h"

GST_DEBUG_CATEGORY_STATIC (gst_earlyexit_publish_debug);
#define GST_CAT_DEFAULT gst_earlyexit_publish_debug

#define SCHEMA_NAME "earlyexit-result/1"

#define DEFAULT_METHOD GST_EARLYEXIT_PUBLISH_FILE
#define DEFAULT_MAX_FILE_SIZE 0
#define DEFAULT_MAX_FILES 5
#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT 1883
#define DEFAULT_MQTT_TOPIC "earlyexit/{source}"
#define DEFAULT_KAFKA_TOPIC "earlyexit"
#define DEFAULT_QOS 1
#define DEFAULT_BROKERS "localhost:9092"
#define DEFAULT_MAX_QUEUED 1000
#define DEFAULT_FLUSH_TIMEOUT (5 * GST_SECOND)

/* Messages handed to the client library and not yet confirmed, at most: a
 * bound on what the library holds besides our queue (below libmosquitto's
 * default of 20 QoS 1 messages in flight). */
#define MAX_INFLIGHT 16
/* Reconnection backoff (µs): the first wait, doubled up to the last. */
#define BACKOFF_MIN (100 * G_TIME_SPAN_MILLISECOND)
#define BACKOFF_MAX (5 * G_TIME_SPAN_SECOND)
/* Seconds from 1900 (NTP) to 1970 (Unix). */
#define NTP_UNIX_OFFSET G_GUINT64_CONSTANT (2208988800)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

/* One JSON message. */
struct _EePublishMsg
{
  gchar *json;
  gsize len;
};

/* A method: open() runs in start() and posts an element error when the
 * settings cannot work; run() is the publishing thread; close() runs after
 * the thread ended. */
typedef struct
{
  gboolean (*open) (GstEarlyExitPublish *self);
  void (*run) (GstEarlyExitPublish *self);
  void (*close) (GstEarlyExitPublish *self);
} PublishMethod;

#define GST_TYPE_EARLYEXIT_PUBLISH_METHOD                                      \
  (gst_earlyexit_publish_method_get_type ())
static GType
gst_earlyexit_publish_method_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_EARLYEXIT_PUBLISH_FILE, "JSON lines to a file or stdout", "file" },
    { GST_EARLYEXIT_PUBLISH_MQTT, "MQTT broker (libmosquitto)", "mqtt" },
    { GST_EARLYEXIT_PUBLISH_KAFKA, "Kafka brokers (librdkafka)", "kafka" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (
        &type, g_enum_register_static ("GstEarlyExitPublishMethod", values));
  return type;
}

#define gst_earlyexit_publish_parent_class parent_class
G_DEFINE_TYPE (GstEarlyExitPublish, gst_earlyexit_publish,
               GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (earlyexitpublish, "earlyexitpublish",
                             GST_RANK_NONE, GST_TYPE_EARLYEXIT_PUBLISH);

static void gst_earlyexit_publish_finalize (GObject *object);
static void stats_get (GObject *object, gpointer at, GValue *value);
static GstStateChangeReturn
gst_earlyexit_publish_change_state (GstElement *element,
                                    GstStateChange transition);
static gboolean gst_earlyexit_publish_start (GstBaseTransform *trans);
static gboolean gst_earlyexit_publish_stop (GstBaseTransform *trans);
static gboolean gst_earlyexit_publish_sink_event (GstBaseTransform *trans,
                                                  GstEvent *event);
static GstFlowReturn
gst_earlyexit_publish_transform_ip (GstBaseTransform *trans, GstBuffer *buf);
static const PublishMethod *method_table (GstEarlyExitPublishMethod method);

static void
gst_earlyexit_publish_class_init (GstEarlyExitPublishClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->finalize = gst_earlyexit_publish_finalize;

  /**
   * GstEarlyExitPublish:method:
   *
   * Where the messages go: `file` (JSON lines to `location` or stdout),
   * `mqtt` (an MQTT broker) or `kafka` (Kafka brokers).
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, method),
      g_param_spec_enum ("method", "Method",
                         "Where the JSON messages go: file (JSON lines to "
                         "location or stdout), mqtt or kafka",
                         GST_TYPE_EARLYEXIT_PUBLISH_METHOD, DEFAULT_METHOD,
                         EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:source:
   *
   * The name of the stream in every message (`source`) and in the topic's
   * `{source}`; unset, the name of the pipeline the element is in.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, source),
      g_param_spec_string ("source", "Source",
                           "Name of the stream in the messages and the "
                           "topic's {source} (NULL = the pipeline's name)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:location:
   *
   * method=file: the file the JSON lines are appended to; unset, stdout.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, location),
      g_param_spec_string ("location", "Location",
                           "method=file: file to append the JSON lines to "
                           "(NULL = stdout)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:max-file-size:
   *
   * method=file: a file that would grow past this many bytes is rotated
   * (renamed to `location.1`, the older ones shifted); 0 never rotates.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, max_file_size),
      g_param_spec_uint64 ("max-file-size", "Max file size",
                           "method=file: rotate the file before it grows "
                           "past this many bytes (0 = never)",
                           0, G_MAXUINT64, DEFAULT_MAX_FILE_SIZE,
                           EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:max-files:
   *
   * method=file with max-file-size: how many rotated files
   * (`location.1` ... `location.N`) are kept; the oldest is deleted.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, max_files),
      g_param_spec_uint ("max-files", "Max files",
                         "method=file: rotated files kept (location.1 .. "
                         "location.N); the oldest beyond is deleted",
                         1, 1000, DEFAULT_MAX_FILES, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:host:
   *
   * method=mqtt: the broker's host name or address.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, host),
      g_param_spec_string ("host", "Host",
                           "method=mqtt: the broker's host name or address",
                           DEFAULT_HOST, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:port:
   *
   * method=mqtt: the broker's port (1883; with TLS usually 8883).
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, port),
      g_param_spec_int ("port", "Port",
                        "method=mqtt: the broker's port (TLS usually 8883)", 1,
                        65535, DEFAULT_PORT, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:topic:
   *
   * The topic; `{source}` is replaced by the source. Unset:
   * `earlyexit/{source}` (MQTT), `earlyexit` (Kafka, the messages keyed by
   * the source).
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, topic),
      g_param_spec_string ("topic", "Topic",
                           "Topic, {source} replaced by the source (NULL = "
                           "earlyexit/{source} for MQTT, earlyexit for "
                           "Kafka)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:client-id:
   *
   * The MQTT client id or Kafka client.id; unset, MQTT gets a random one.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, client_id),
      g_param_spec_string ("client-id", "Client id",
                           "MQTT client id or Kafka client.id (NULL = a "
                           "random MQTT id, librdkafka's default)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:qos:
   *
   * method=mqtt: 0 (at most once) or 1 (at least once: resent until the
   * broker acknowledges it).
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, qos),
      g_param_spec_int ("qos", "QoS",
                        "method=mqtt: 0 (at most once) or 1 (at least once)", 0,
                        1, DEFAULT_QOS, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:tls-ca-file:
   *
   * method=mqtt: connect with TLS and check the broker's certificate against
   * this CA certificate (PEM) and the host name; unset, no TLS.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, tls_ca_file),
      g_param_spec_string ("tls-ca-file", "TLS CA file",
                           "method=mqtt: use TLS, trusting the CA "
                           "certificate (PEM) in this file (NULL = no TLS)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:username:
   *
   * method=mqtt: the login; its password comes from `password-file` or
   * `password-env`.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, username),
      g_param_spec_string ("username", "Username",
                           "method=mqtt: user name of the login (password "
                           "from password-file or password-env)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:password-file:
   *
   * method=mqtt: a file whose first line is the password, read at start.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, password_file),
      g_param_spec_string ("password-file", "Password file",
                           "method=mqtt: file whose first line is the "
                           "password (read at start)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:password-env:
   *
   * method=mqtt: the name of an environment variable holding the password,
   * read at start.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, password_env),
      g_param_spec_string ("password-env", "Password variable",
                           "method=mqtt: name of the environment variable "
                           "holding the password (read at start)",
                           NULL, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:brokers:
   *
   * method=kafka: the bootstrap brokers, `host:port[,host:port...]`.
   */
  ee_props_add_field (gobject_class,
                      G_STRUCT_OFFSET (GstEarlyExitPublish, brokers),
                      g_param_spec_string ("brokers", "Brokers",
                                           "method=kafka: bootstrap brokers, "
                                           "host:port[,host:port...]",
                                           DEFAULT_BROKERS, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:max-queued:
   *
   * Messages waiting to be published, at most; a new result beyond it drops
   * the oldest waiting message (counted in `stats`).
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, max_queued),
      g_param_spec_uint ("max-queued", "Max queued",
                         "Messages waiting to be published, at most; beyond, "
                         "the oldest is dropped",
                         1, G_MAXINT, DEFAULT_MAX_QUEUED, EE_PARAM_READY));
  /**
   * GstEarlyExitPublish:flush-timeout:
   *
   * At EOS, how long (ns) to wait for the waiting messages to be published
   * before the EOS goes on.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitPublish, flush_timeout),
      g_param_spec_uint64 ("flush-timeout", "Flush timeout",
                           "At EOS, wait up to this long (ns) for the queue "
                           "to be published",
                           0, G_MAXUINT64, DEFAULT_FLUSH_TIMEOUT,
                           EE_PARAM_PLAYING));
  /**
   * GstEarlyExitPublish:stats:
   *
   * Counters since start: `published` (guint64, confirmed as described for
   * the method), `dropped` (guint64: pushed out of a full queue, refused by
   * the client library, undeliverable, or left at stop), `queued` (guint,
   * waiting or sent and not yet confirmed), `reconnects` (guint64,
   * connections made again after one was lost or failed) and `errors`
   * (guint64, failed connections, writes and deliveries). Every result is
   * published, dropped or queued: published + dropped + queued = results.
   */
  ee_props_add (
      gobject_class, 0,
      g_param_spec_boxed ("stats", "Statistics",
                          "published, dropped, queued, reconnects, errors",
                          GST_TYPE_STRUCTURE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS),
      NULL, stats_get);

  GST_DEBUG_CATEGORY_INIT (gst_earlyexit_publish_debug, "earlyexitpublish", 0,
                           "Publishes earlyexit results as JSON");

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Early-exit result publisher", "Filter/Metadata",
      "Publishes earlyexit results as JSON to a file, MQTT or Kafka",
      "gst-earlyexit");

  element_class->change_state
      = GST_DEBUG_FUNCPTR (gst_earlyexit_publish_change_state);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_earlyexit_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_earlyexit_publish_stop);
  trans_class->sink_event
      = GST_DEBUG_FUNCPTR (gst_earlyexit_publish_sink_event);
  trans_class->transform_ip
      = GST_DEBUG_FUNCPTR (gst_earlyexit_publish_transform_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_EARLYEXIT_PUBLISH_METHOD, 0);
}

static void
gst_earlyexit_publish_init (GstEarlyExitPublish *self)
{
  ee_props_init (G_OBJECT (self), GST_TYPE_EARLYEXIT_PUBLISH);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->queue);
  self->wake[0] = self->wake[1] = -1;
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
msg_free (gpointer data)
{
  EePublishMsg *msg = data;

  g_free (msg->json);
  g_free (msg);
}

static void
gst_earlyexit_publish_finalize (GObject *object)
{
  GstEarlyExitPublish *self = GST_EARLYEXIT_PUBLISH (object);

  ee_props_finalize (object, GST_TYPE_EARLYEXIT_PUBLISH);
  g_free (self->run_source);
  g_free (self->run_topic);
  g_queue_clear_full (&self->queue, msg_free);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static GstStructure *
stats_new (GstEarlyExitPublish *self)
{
  GstStructure *s;

  g_mutex_lock (&self->lock);
  s = gst_structure_new (
      "earlyexitpublish/stats", "published", G_TYPE_UINT64, self->published,
      "dropped", G_TYPE_UINT64, self->dropped, "queued", G_TYPE_UINT,
      self->queue.length + self->inflight, "reconnects", G_TYPE_UINT64,
      self->reconnects, "errors", G_TYPE_UINT64, self->errors, NULL);
  g_mutex_unlock (&self->lock);
  return s;
}

static void
stats_get (GObject *object, gpointer at, GValue *value)
{
  g_value_take_boxed (value, stats_new (GST_EARLYEXIT_PUBLISH (object)));
}

/* JSON writing */

static void
json_string (GString *s, const gchar *str)
{
  gchar *valid = g_utf8_make_valid (str, -1);

  g_string_append_c (s, '"');
  for (const guchar *p = (const guchar *)valid; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (s, "\\%c", *p);
    else if (*p == '\n')
      g_string_append (s, "\\n");
    else if (*p == '\t')
      g_string_append (s, "\\t");
    else if (*p < 0x20)
      g_string_append_printf (s, "\\u%04x", *p);
    else
      g_string_append_c (s, *p);
  }
  g_string_append_c (s, '"');
  g_free (valid);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as `v`; null when `v`
 * is not finite (JSON has no NaN or infinity). */
static void
json_double (GString *s, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v)) {
    g_string_append (s, "null");
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    gchar fmt[8];

    g_snprintf (fmt, sizeof fmt, "%%.%dg", prec);
    g_ascii_formatd (buf, sizeof buf, fmt, v);
    if (g_ascii_strtod (buf, NULL) == v)
      break;
  }
  g_string_append (s, buf);
}

static void json_structure (GString *s, const GstStructure *st);

static void
json_value (GString *s, const GValue *v)
{
  GType type = G_VALUE_TYPE (v);

  if (type == G_TYPE_BOOLEAN)
    g_string_append (s, g_value_get_boolean (v) ? "true" : "false");
  else if (type == G_TYPE_INT)
    g_string_append_printf (s, "%d", g_value_get_int (v));
  else if (type == G_TYPE_UINT)
    g_string_append_printf (s, "%u", g_value_get_uint (v));
  else if (type == G_TYPE_INT64)
    g_string_append_printf (s, "%" G_GINT64_FORMAT, g_value_get_int64 (v));
  else if (type == G_TYPE_UINT64)
    g_string_append_printf (s, "%" G_GUINT64_FORMAT, g_value_get_uint64 (v));
  else if (type == G_TYPE_LONG)
    g_string_append_printf (s, "%ld", g_value_get_long (v));
  else if (type == G_TYPE_ULONG)
    g_string_append_printf (s, "%lu", g_value_get_ulong (v));
  else if (type == G_TYPE_DOUBLE)
    json_double (s, g_value_get_double (v));
  else if (type == G_TYPE_FLOAT)
    json_double (s, g_value_get_float (v));
  else if (type == G_TYPE_STRING) {
    if (g_value_get_string (v))
      json_string (s, g_value_get_string (v));
    else
      g_string_append (s, "null");
  } else if (G_TYPE_IS_ENUM (type)) {
    GEnumValue *ev
        = g_enum_get_value (g_type_class_peek (type), g_value_get_enum (v));

    if (ev)
      json_string (s, ev->value_nick);
    else
      g_string_append_printf (s, "%d", g_value_get_enum (v));
  } else if (GST_VALUE_HOLDS_ARRAY (v) || GST_VALUE_HOLDS_LIST (v)) {
    gboolean array = GST_VALUE_HOLDS_ARRAY (v);
    guint n
        = array ? gst_value_array_get_size (v) : gst_value_list_get_size (v);

    g_string_append_c (s, '[');
    for (guint i = 0; i < n; i++) {
      if (i)
        g_string_append_c (s, ',');
      json_value (s, array ? gst_value_array_get_value (v, i)
                           : gst_value_list_get_value (v, i));
    }
    g_string_append_c (s, ']');
  } else if (GST_VALUE_HOLDS_STRUCTURE (v) && gst_value_get_structure (v))
    json_structure (s, gst_value_get_structure (v));
  else {
    gchar *str = gst_value_serialize (v);

    if (str)
      json_string (s, str);
    else
      g_string_append (s, "null");
    g_free (str);
  }
}

/* `st`'s fields as an object, without the later results of a meta (each is a
 * message of its own). */
static void
json_structure (GString *s, const GstStructure *st)
{
  gboolean first = TRUE;

  g_string_append_c (s, '{');
  for (gint i = 0; i < gst_structure_n_fields (st); i++) {
    const gchar *name = gst_structure_nth_field_name (st, i);

    if (!strcmp (name, EARLYEXIT_RESULT_MORE_FIELD))
      continue;
    if (!first)
      g_string_append_c (s, ',');
    first = FALSE;
    json_string (s, name);
    g_string_append_c (s, ':');
    json_value (s, gst_structure_get_value (st, name));
  }
  g_string_append_c (s, '}');
}

static void
json_time_or_null (GString *s, GstClockTime t)
{
  if (GST_CLOCK_TIME_IS_VALID (t))
    g_string_append_printf (s, "%" G_GUINT64_FORMAT, t);
  else
    g_string_append (s, "null");
}

/* The capture time of a buffer: its UTC time (µs since 1970) and where it
 * came from (the `utc-source` of the schema). */
typedef struct
{
  gint64 utc_us;
  const gchar *from;
} CaptureTime;

static CaptureTime
capture_time (GstEarlyExitPublish *self, GstBuffer *buf,
              GstClockTime running_time)
{
  static GstCaps *ntp_caps, *unix_caps;
  GstReferenceTimestampMeta *ref;
  GstClock *clock;
  CaptureTime ct = { g_get_real_time (), "system" };

  if (g_once_init_enter (&ntp_caps)) {
    unix_caps = gst_caps_new_empty_simple ("timestamp/x-unix");
    GST_MINI_OBJECT_FLAG_SET (unix_caps, GST_MINI_OBJECT_FLAG_MAY_BE_LEAKED);
    GstCaps *caps = gst_caps_new_empty_simple ("timestamp/x-ntp");
    GST_MINI_OBJECT_FLAG_SET (caps, GST_MINI_OBJECT_FLAG_MAY_BE_LEAKED);
    g_once_init_leave (&ntp_caps, caps);
  }
  if ((ref = gst_buffer_get_reference_timestamp_meta (buf, ntp_caps))
      && ref->timestamp >= NTP_UNIX_OFFSET * GST_SECOND) {
    ct.utc_us = (ref->timestamp - NTP_UNIX_OFFSET * GST_SECOND) / GST_USECOND;
    ct.from = "ntp";
  } else if ((ref = gst_buffer_get_reference_timestamp_meta (buf, unix_caps))) {
    ct.utc_us = ref->timestamp / GST_USECOND;
    ct.from = "ntp";
  } else if (GST_CLOCK_TIME_IS_VALID (running_time)
             && GST_STATE (self) == GST_STATE_PLAYING
             && (clock = gst_element_get_clock (GST_ELEMENT (self)))) {
    GstClockTime at
        = gst_element_get_base_time (GST_ELEMENT (self)) + running_time;
    GstClockTimeDiff ago = GST_CLOCK_DIFF (at, gst_clock_get_time (clock));

    ct.utc_us -= ago / GST_USECOND;
    ct.from = "clock";
    gst_object_unref (clock);
  }
  return ct;
}

static void
json_utc (GString *s, gint64 utc_us)
{
  GDateTime *dt = g_date_time_new_from_unix_utc (utc_us / G_USEC_PER_SEC);
  gchar *str;

  if (!dt) {
    g_string_append (s, "\"1970-01-01T00:00:00.000000Z\"");
    return;
  }
  str = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
  g_string_append_printf (
      s, "\"%s.%06dZ\"", str,
      (gint)(((utc_us % G_USEC_PER_SEC) + G_USEC_PER_SEC) % G_USEC_PER_SEC));
  g_free (str);
  g_date_time_unref (dt);
}

static void
json_top_k (GString *s, const GstStructure *r)
{
  guint n = earlyexit_result_get_top_k_size (r);

  g_string_append (s, ",\"top-k\":[");
  for (guint i = 0; i < n; i++) {
    gint id;
    gdouble p;
    const gchar *label = earlyexit_result_get_top_k (r, i, &id, &p);

    if (i)
      g_string_append_c (s, ',');
    g_string_append (s, "{\"label\":");
    if (label)
      json_string (s, label);
    else
      g_string_append (s, "null");
    g_string_append_printf (s, ",\"label-id\":%d,\"confidence\":", id);
    json_double (s, p);
    g_string_append_c (s, '}');
  }
  g_string_append_c (s, ']');
}

static EePublishMsg *
message_new (GstEarlyExitPublish *self, const GstStructure *r, GstClockTime pts,
             GstClockTime running_time, CaptureTime ct)
{
  GString *s = g_string_sized_new (512);
  EePublishMsg *msg = g_new (EePublishMsg, 1);
  gboolean fresh;

  g_string_append (s, "{\"schema\":\"" SCHEMA_NAME "\",\"source\":");
  json_string (s, self->run_source);
  g_string_append_printf (
      s, ",\"seq\":%" G_GUINT64_FORMAT ",\"pts\":", self->seq++);
  json_time_or_null (s, pts);
  g_string_append (s, ",\"running-time\":");
  json_time_or_null (s, running_time);
  g_string_append (s, ",\"utc\":");
  json_utc (s, ct.utc_us);
  g_string_append_printf (s, ",\"utc-source\":\"%s\"", ct.from);
  if (gst_structure_get_boolean (r, "fresh", &fresh))
    g_string_append_printf (s, ",\"freshness\":\"%s\"",
                            fresh ? "fresh" : "carried");
  if (gst_structure_has_field (r, "top-labels"))
    json_top_k (s, r);
  g_string_append (s, ",\"result\":");
  json_structure (s, r);
  g_string_append_c (s, '}');
  msg->len = s->len;
  msg->json = g_string_free (s, FALSE);
  return msg;
}

/* The queue */

static void
wake_publisher (GstEarlyExitPublish *self)
{
  if (self->wake[1] >= 0 && write (self->wake[1], "w", 1) < 0
      && errno != EAGAIN)
    GST_WARNING_OBJECT (self, "cannot wake the publishing thread: %s",
                        g_strerror (errno));
}

static void
drain_wake (GstEarlyExitPublish *self)
{
  gchar buf[64];

  while (read (self->wake[0], buf, sizeof buf) > 0)
    ;
}

/* Streaming thread: never waits for the publisher, only for the lock. */
static void
queue_push (GstEarlyExitPublish *self, EePublishMsg *msg)
{
  g_mutex_lock (&self->lock);
  while (self->queue.length >= self->run_max_queued) {
    msg_free (g_queue_pop_head (&self->queue));
    self->dropped++;
  }
  g_queue_push_tail (&self->queue, msg);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  wake_publisher (self);
}

static EePublishMsg *
queue_pop (GstEarlyExitPublish *self)
{
  EePublishMsg *msg;

  g_mutex_lock (&self->lock);
  msg = g_queue_pop_head (&self->queue);
  g_mutex_unlock (&self->lock);
  return msg;
}

/* Puts back a message the publisher could not hand over. */
static void
queue_unpop (GstEarlyExitPublish *self, EePublishMsg *msg)
{
  g_mutex_lock (&self->lock);
  g_queue_push_head (&self->queue, msg);
  g_mutex_unlock (&self->lock);
}

static gboolean
is_stopping (GstEarlyExitPublish *self)
{
  gboolean stopping;

  g_mutex_lock (&self->lock);
  stopping = self->stopping;
  g_mutex_unlock (&self->lock);
  return stopping;
}

/* Counts `n` results confirmed (published) or lost (dropped), of which
 * `inflight` had been handed to the client library. */
static void
count_done (GstEarlyExitPublish *self, guint n, guint inflight,
            gboolean published)
{
  g_mutex_lock (&self->lock);
  self->inflight -= MIN (inflight, self->inflight);
  if (published)
    self->published += n;
  else
    self->dropped += n;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

static void
count_error (GstEarlyExitPublish *self)
{
  g_mutex_lock (&self->lock);
  self->errors++;
  g_mutex_unlock (&self->lock);
}

/* Waits for a wake-up from the streaming thread (or `fd`, when >= 0, for
 * `events`) up to `timeout_ms`; returns `fd`'s revents. */
static short
wait_wake (GstEarlyExitPublish *self, gint fd, short events, gint timeout_ms)
{
  struct pollfd fds[2] = { { self->wake[0], POLLIN, 0 }, { fd, events, 0 } };

  if (poll (fds, fd >= 0 ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
    GST_WARNING_OBJECT (self, "poll: %s", g_strerror (errno));
  drain_wake (self);
  return fd >= 0 ? fds[1].revents : 0;
}

static gpointer
publish_thread (gpointer data)
{
  GstEarlyExitPublish *self = data;

  method_table (self->run_method)->run (self);
  return NULL;
}

/* method=file */

typedef struct
{
  FILE *fp; /* stdout when path is NULL */
  gchar *path;
  guint64 size;
  guint64 max_size;
  guint max_files;
  gboolean warned;
} FileOut;

static gboolean
file_open (GstEarlyExitPublish *self)
{
  FileOut *f = g_new0 (FileOut, 1);
  GStatBuf st;

  GST_OBJECT_LOCK (self);
  f->path = g_strdup (self->location);
  f->max_size = self->max_file_size;
  f->max_files = self->max_files;
  GST_OBJECT_UNLOCK (self);
  self->backend = f;
  if (!f->path || !f->path[0]) {
    g_clear_pointer (&f->path, g_free);
    f->fp = stdout;
    return TRUE;
  }
  f->fp = fopen (f->path, "a");
  if (!f->fp) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
                       ("Cannot open \"%s\" to write the results: %s. Check "
                        "the location property and the folder's permissions.",
                        f->path, g_strerror (errno)),
                       (NULL));
    return FALSE;
  }
  f->size = g_stat (f->path, &st) == 0 ? (guint64)st.st_size : 0;
  return TRUE;
}

/* location -> location.1 -> location.2 ... -> location.max_files (replaced) */
static gboolean
file_rotate (GstEarlyExitPublish *self, FileOut *f)
{
  fclose (f->fp);
  f->fp = NULL;
  for (guint i = f->max_files; i >= 1; i--) {
    gchar *from = i == 1 ? g_strdup (f->path)
                         : g_strdup_printf ("%s.%u", f->path, i - 1);
    gchar *to = g_strdup_printf ("%s.%u", f->path, i);

    if (g_rename (from, to) != 0 && errno != ENOENT)
      GST_WARNING_OBJECT (self, "cannot rename %s to %s: %s", from, to,
                          g_strerror (errno));
    g_free (from);
    g_free (to);
  }
  f->fp = fopen (f->path, "w");
  f->size = 0;
  GST_DEBUG_OBJECT (self, "rotated %s", f->path);
  return f->fp != NULL;
}

static void
file_write_failed (GstEarlyExitPublish *self, FileOut *f)
{
  count_error (self);
  if (!f->warned)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                         ("Cannot write the results to \"%s\": %s. Check the "
                          "disk space and permissions; results are dropped "
                          "meanwhile.",
                          f->path ? f->path : "stdout", g_strerror (errno)),
                         (NULL));
  f->warned = TRUE;
}

static void
file_run (GstEarlyExitPublish *self)
{
  FileOut *f = self->backend;

  while (!is_stopping (self)) {
    guint written = 0, failed = 0;
    EePublishMsg *msg;

    while ((msg = queue_pop (self))) {
      gboolean ok = TRUE;

      if (f->path && !f->fp)
        f->fp = fopen (f->path, "a"); /* after a failed rotation */
      if (f->path && f->fp && f->max_size && f->size
          && f->size + msg->len + 1 > f->max_size)
        ok = file_rotate (self, f);
      if (ok && f->fp && fwrite (msg->json, 1, msg->len, f->fp) == msg->len
          && fputc ('\n', f->fp) != EOF) {
        f->size += msg->len + 1;
        f->warned = FALSE;
        written++;
      } else {
        failed++;
        file_write_failed (self, f);
      }
      msg_free (msg);
    }
    if (written && f->fp && fflush (f->fp) != 0) {
      failed += written;
      written = 0;
      file_write_failed (self, f);
    }
    if (written || failed) {
      count_done (self, written, 0, TRUE);
      count_done (self, failed, 0, FALSE);
    }
    wait_wake (self, -1, 0, -1);
  }
}

static void
file_close (GstEarlyExitPublish *self)
{
  FileOut *f = self->backend;

  if (f->fp && f->path)
    fclose (f->fp);
  else if (f->fp)
    fflush (f->fp);
  g_free (f->path);
  g_free (f);
}

/* method=mqtt */

#ifdef HAVE_MQTT
typedef enum
{
  MQTT_DOWN,
  MQTT_CONNECTING,
  MQTT_UP,
} MqttState;

/* The problems posted as warnings, once each until the next connection. */
typedef enum
{
  MQTT_OK,
  MQTT_UNREACHABLE,
  MQTT_TLS,
  MQTT_REFUSED,
  MQTT_LOST,
} MqttProblem;

typedef struct
{
  struct mosquitto *mosq;
  gchar *host;
  gint port;
  MqttState state;
  gboolean ever_connected;
  gboolean refused; /* this attempt's CONNACK refused the login */
  gint64 next_try;  /* monotonic µs */
  gint64 backoff;
  MqttProblem warned;
  gchar *tls_error; /* the last error libmosquitto logged */
} Mqtt;

static void
mqtt_warn (GstEarlyExitPublish *self, Mqtt *m, MqttProblem problem,
           const gchar *what, const gchar *fix)
{
  count_error (self);
  GST_INFO_OBJECT (self, "%s", what);
  if (m->warned == problem)
    return;
  m->warned = problem;
  if (problem == MQTT_LOST)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                         ("%s: %s. Results are queued (up to max-queued) "
                          "meanwhile.",
                          what, fix),
                         (NULL));
  else
    GST_ELEMENT_WARNING (self, RESOURCE, OPEN_WRITE,
                         ("%s: %s. Results are queued (up to max-queued) and "
                          "the element retries.",
                          what, fix),
                         (NULL));
}

static void
mqtt_schedule_retry (Mqtt *m)
{
  m->state = MQTT_DOWN;
  m->backoff = m->backoff ? MIN (m->backoff * 2, BACKOFF_MAX) : BACKOFF_MIN;
  m->next_try = g_get_monotonic_time () + m->backoff;
}

/* The connection failed or dropped with libmosquitto's `rc`. */
static void
mqtt_lost (GstEarlyExitPublish *self, Mqtt *m, int rc)
{
  gchar *what;

  if (m->state == MQTT_DOWN)
    return;
  if (self->run_qos == 0) {
    /* QoS 0 messages not yet written are gone with the connection */
    guint n;

    g_mutex_lock (&self->lock);
    n = self->inflight;
    g_mutex_unlock (&self->lock);
    count_done (self, n, n, FALSE);
  }
  if (m->refused) {
    /* already reported by the CONNACK */
  } else if (m->state == MQTT_UP) {
    what = g_strdup_printf ("Lost the connection to the MQTT broker at %s:%d "
                            "(%s)",
                            m->host, m->port,
                            rc == MOSQ_ERR_ERRNO ? g_strerror (errno)
                                                 : mosquitto_strerror (rc));
    mqtt_warn (self, m, MQTT_LOST, what,
               "check that the broker runs; reconnecting");
    g_free (what);
  } else if (rc == MOSQ_ERR_TLS) {
    what = g_strdup_printf ("TLS handshake with the MQTT broker at %s:%d "
                            "failed (%s)",
                            m->host, m->port,
                            m->tls_error ? m->tls_error : "no detail");
    mqtt_warn (self, m, MQTT_TLS, what,
               "check that tls-ca-file holds the CA that signed the broker's "
               "certificate, that host is a name or address in that "
               "certificate, and that port is the broker's TLS listener");
    g_free (what);
  } else if (rc == MOSQ_ERR_EAI) {
    what = g_strdup_printf ("Cannot find the MQTT broker's host \"%s\" (the "
                            "name does not resolve)",
                            m->host);
    mqtt_warn (self, m, MQTT_UNREACHABLE, what,
               "check the host property and the name service");
    g_free (what);
  } else {
    what = g_strdup_printf (
        "Cannot connect to the MQTT broker at %s:%d (%s)", m->host, m->port,
        rc == MOSQ_ERR_ERRNO ? g_strerror (errno) : mosquitto_strerror (rc));
    mqtt_warn (self, m, MQTT_UNREACHABLE, what,
               "check the host and port properties and that the broker runs "
               "and is reachable from here");
    g_free (what);
  }
  mqtt_schedule_retry (m);
}

static void
mqtt_on_connect (struct mosquitto *mosq, void *data, int rc)
{
  GstEarlyExitPublish *self = data;
  Mqtt *m = self->backend;

  if (rc != 0) {
    gchar *what
        = g_strdup_printf ("The MQTT broker at %s:%d refused the "
                           "login (%s)",
                           m->host, m->port, mosquitto_connack_string (rc));

    m->refused = TRUE;
    mqtt_warn (self, m, MQTT_REFUSED, what,
               "check username and the password in password-file or "
               "password-env, and the broker's access rules for this client");
    g_free (what);
    return;
  }
  GST_INFO_OBJECT (self, "connected to %s:%d", m->host, m->port);
  g_mutex_lock (&self->lock);
  if (m->ever_connected)
    self->reconnects++;
  g_mutex_unlock (&self->lock);
  m->ever_connected = TRUE;
  m->state = MQTT_UP;
  m->backoff = 0;
  m->warned = MQTT_OK;
}

static void
mqtt_on_publish (struct mosquitto *mosq, void *data, int mid)
{
  count_done (data, 1, 1, TRUE);
}

static void
mqtt_on_log (struct mosquitto *mosq, void *data, int level, const char *str)
{
  GstEarlyExitPublish *self = data;
  Mqtt *m = self->backend;

  if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
    GST_INFO_OBJECT (self, "libmosquitto: %s", str);
    g_free (m->tls_error);
    m->tls_error = g_strdup (str);
  } else {
    GST_LOG_OBJECT (self, "libmosquitto: %s", str);
  }
}

/* The password from password-file (its first line) or password-env; NULL
 * with an element error when it cannot be read. */
static gchar *
read_password (GstEarlyExitPublish *self, const gchar *file, const gchar *env)
{
  GError *err = NULL;
  gchar *contents;

  if (file && env) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Both password-file and password-env are set: set "
                        "only one."),
                       (NULL));
    return NULL;
  }
  if (env) {
    const gchar *value = g_getenv (env);

    if (!value) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                         ("The environment variable \"%s\" (password-env) is "
                          "not set: export it with the broker password.",
                          env),
                         (NULL));
      return NULL;
    }
    return g_strdup (value);
  }
  if (!g_file_get_contents (file, &contents, NULL, &err)) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
                       ("Cannot read the password file \"%s\": %s. Check "
                        "password-file.",
                        file, err->message),
                       (NULL));
    g_error_free (err);
    return NULL;
  }
  contents[strcspn (contents, "\r\n")] = '\0';
  return contents;
}

static gboolean
mqtt_open (GstEarlyExitPublish *self)
{
  static gsize lib_init = 0;
  Mqtt *m = g_new0 (Mqtt, 1);
  gchar *client_id, *ca, *user, *pw_file, *pw_env;
  gboolean ok = FALSE;
  int rc;

  if (g_once_init_enter (&lib_init)) {
    mosquitto_lib_init ();
    g_once_init_leave (&lib_init, 1);
  }
  self->backend = m;
  GST_OBJECT_LOCK (self);
  m->host = g_strdup (self->host);
  m->port = self->port;
  client_id = g_strdup (self->client_id);
  ca = g_strdup (self->tls_ca_file);
  user = g_strdup (self->username);
  pw_file = g_strdup (self->password_file);
  pw_env = g_strdup (self->password_env);
  GST_OBJECT_UNLOCK (self);

  if (!m->host || !m->host[0]) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("No MQTT broker: set the host property."), (NULL));
    goto done;
  }
  if (mosquitto_pub_topic_check (self->run_topic) != MOSQ_ERR_SUCCESS) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("\"%s\" is not an MQTT topic to publish to: set topic "
                        "(and source) without '+' or '#'.",
                        self->run_topic),
                       (NULL));
    goto done;
  }
  m->mosq = mosquitto_new (client_id, TRUE, self);
  if (!m->mosq) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Cannot create the MQTT client (client-id \"%s\"): %s.",
                        client_id ? client_id : "", g_strerror (errno)),
                       (NULL));
    goto done;
  }
  mosquitto_connect_callback_set (m->mosq, mqtt_on_connect);
  mosquitto_publish_callback_set (m->mosq, mqtt_on_publish);
  mosquitto_log_callback_set (m->mosq, mqtt_on_log);
  mosquitto_int_option (m->mosq, MOSQ_OPT_SEND_MAXIMUM, MAX_INFLIGHT + 4);
  if (user) {
    gchar *password = NULL;

    if ((pw_file || pw_env)
        && !(password = read_password (self, pw_file, pw_env)))
      goto done;
    rc = mosquitto_username_pw_set (m->mosq, user, password);
    if (password) {
      memset (password, 0, strlen (password));
      g_free (password);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                         ("Cannot use the MQTT login of \"%s\": %s.", user,
                          mosquitto_strerror (rc)),
                         (NULL));
      goto done;
    }
  } else if (pw_file || pw_env) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("A password is set but no username: set username."),
                       (NULL));
    goto done;
  }
  if (ca) {
    if (!g_file_test (ca, G_FILE_TEST_IS_REGULAR)
        || (rc = mosquitto_tls_set (m->mosq, ca, NULL, NULL, NULL, NULL))
               != MOSQ_ERR_SUCCESS) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
                         ("Cannot use \"%s\" as the TLS CA certificate: check "
                          "tls-ca-file names a readable PEM file.",
                          ca),
                         (NULL));
      goto done;
    }
  }
  ok = TRUE;
done:
  g_free (client_id);
  g_free (ca);
  g_free (user);
  g_free (pw_file);
  g_free (pw_env);
  return ok;
}

static void
mqtt_connect (GstEarlyExitPublish *self, Mqtt *m)
{
  int rc;

  m->refused = FALSE;
  m->state = MQTT_CONNECTING;
  GST_DEBUG_OBJECT (self, "connecting to %s:%d", m->host, m->port);
  rc = m->ever_connected || m->backoff
           ? mosquitto_reconnect_async (m->mosq)
           : mosquitto_connect_async (m->mosq, m->host, m->port, 10);
  if (rc != MOSQ_ERR_SUCCESS)
    mqtt_lost (self, m, rc);
}

/* Hands queued messages to libmosquitto while fewer than MAX_INFLIGHT wait
 * for confirmation. */
static void
mqtt_send (GstEarlyExitPublish *self, Mqtt *m)
{
  EePublishMsg *msg;

  for (;;) {
    int rc;

    g_mutex_lock (&self->lock);
    msg = self->inflight < MAX_INFLIGHT ? g_queue_pop_head (&self->queue)
                                        : NULL;
    if (msg)
      self->inflight++;
    g_mutex_unlock (&self->lock);
    if (!msg)
      return;
    rc = mosquitto_publish (m->mosq, NULL, self->run_topic, (int)msg->len,
                            msg->json, self->run_qos, false);
    if (rc == MOSQ_ERR_SUCCESS
        || (self->run_qos > 0
            && (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST
                || rc == MOSQ_ERR_ERRNO))) {
      /* QoS 1: queued in libmosquitto, which sends it on (re)connection */
      msg_free (msg);
      continue;
    }
    g_mutex_lock (&self->lock);
    self->inflight--;
    g_mutex_unlock (&self->lock);
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST
        || rc == MOSQ_ERR_ERRNO) {
      queue_unpop (self, msg);
      mqtt_lost (self, m, rc);
      return;
    }
    GST_WARNING_OBJECT (self, "message %.60s... refused by libmosquitto: %s",
                        msg->json, mosquitto_strerror (rc));
    count_error (self);
    count_done (self, 1, 0, FALSE);
    msg_free (msg);
  }
}

static void
mqtt_run (GstEarlyExitPublish *self)
{
  Mqtt *m = self->backend;

  while (!is_stopping (self)) {
    gint64 now = g_get_monotonic_time ();
    gint timeout = 1000, sock;
    short revents;

    if (m->state == MQTT_DOWN && now >= m->next_try)
      mqtt_connect (self, m);
    if (m->state == MQTT_UP)
      mqtt_send (self, m);
    if (m->state == MQTT_DOWN)
      timeout = (gint)CLAMP ((m->next_try - now) / 1000 + 1, 0, 1000);
    sock = m->state == MQTT_DOWN ? -1 : mosquitto_socket (m->mosq);
    revents = wait_wake (
        self, sock, POLLIN | (mosquitto_want_write (m->mosq) ? POLLOUT : 0),
        timeout);
    if (sock < 0)
      continue;
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
      int rc = mosquitto_loop_read (m->mosq, 1);

      if (rc != MOSQ_ERR_SUCCESS || m->refused) {
        mqtt_lost (self, m, rc);
        continue;
      }
    }
    if (mosquitto_want_write (m->mosq)) {
      int rc = mosquitto_loop_write (m->mosq, 1);

      if (rc != MOSQ_ERR_SUCCESS) {
        mqtt_lost (self, m, rc);
        continue;
      }
    }
    if (mosquitto_loop_misc (m->mosq) != MOSQ_ERR_SUCCESS)
      mqtt_lost (self, m, MOSQ_ERR_CONN_LOST);
  }
}

static void
mqtt_close (GstEarlyExitPublish *self)
{
  Mqtt *m = self->backend;

  if (m->mosq) {
    if (m->state == MQTT_UP) {
      mosquitto_disconnect (m->mosq);
      mosquitto_loop_write (m->mosq, 1);
    }
    mosquitto_destroy (m->mosq);
  }
  g_free (m->host);
  g_free (m->tls_error);
  g_free (m);
}
#endif /* HAVE_MQTT */

/* method=kafka */

#ifdef HAVE_KAFKA
typedef struct
{
  rd_kafka_t *rk;
  gchar *brokers;
  gboolean down;    /* all brokers down since the last delivery */
  gboolean warned;  /* a warning was posted since the last delivery */
  gboolean closing; /* purged at stop: failed deliveries are expected */
} Kafka;

static void
kafka_on_delivery (rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *data)
{
  GstEarlyExitPublish *self = data;
  Kafka *k = self->backend;

  if (rkm->err) {
    if (k->closing) {
      count_done (self, 1, 1, FALSE);
      return;
    }
    count_error (self);
    if (!k->warned)
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                           ("Kafka did not take a result (%s): check the "
                            "brokers and the topic \"%s\".",
                            rd_kafka_err2str (rkm->err), self->run_topic),
                           (NULL));
    k->warned = TRUE;
    count_done (self, 1, 1, FALSE);
    return;
  }
  if (k->down) {
    g_mutex_lock (&self->lock);
    self->reconnects++;
    g_mutex_unlock (&self->lock);
  }
  k->down = FALSE;
  k->warned = FALSE;
  count_done (self, 1, 1, TRUE);
}

static void
kafka_on_error (rd_kafka_t *rk, int err, const char *reason, void *data)
{
  GstEarlyExitPublish *self = data;
  Kafka *k = self->backend;

  count_error (self);
  GST_INFO_OBJECT (self, "librdkafka: %s: %s",
                   rd_kafka_err2name ((rd_kafka_resp_err_t)err), reason);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    k->down = TRUE;
  if (k->warned
      || (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
          && err != RD_KAFKA_RESP_ERR__RESOLVE
          && err != RD_KAFKA_RESP_ERR__AUTHENTICATION
          && err != RD_KAFKA_RESP_ERR__SSL
          && !rd_kafka_fatal_error (rk, NULL, 0)))
    return;
  k->warned = TRUE;
  GST_ELEMENT_WARNING (self, RESOURCE, OPEN_WRITE,
                       ("Cannot reach the Kafka brokers %s (%s): check the "
                        "brokers property and that the brokers run. Results "
                        "are queued (up to max-queued) and librdkafka "
                        "retries.",
                        k->brokers, reason),
                       (NULL));
}

/* librdkafka's log, into the element's debug category (not stderr) */
static void
kafka_on_log (const rd_kafka_t *rk, int level, const char *facility,
              const char *message)
{
  GstEarlyExitPublish *self = rd_kafka_opaque (rk);

  if (level <= 4)
    GST_WARNING_OBJECT (self, "librdkafka %s: %s", facility, message);
  else
    GST_INFO_OBJECT (self, "librdkafka %s: %s", facility, message);
}

static gboolean
kafka_topic_valid (const gchar *topic)
{
  if (!topic[0] || strlen (topic) > 249 || !strcmp (topic, ".")
      || !strcmp (topic, ".."))
    return FALSE;
  for (const gchar *p = topic; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

static gboolean
kafka_open (GstEarlyExitPublish *self)
{
  Kafka *k = g_new0 (Kafka, 1);
  rd_kafka_conf_t *conf = rd_kafka_conf_new ();
  rd_kafka_queue_t *mainq;
  gchar errstr[512], *client_id;

  self->backend = k;
  GST_OBJECT_LOCK (self);
  k->brokers = g_strdup (self->brokers);
  client_id = g_strdup (self->client_id);
  GST_OBJECT_UNLOCK (self);
  if (!kafka_topic_valid (self->run_topic)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("\"%s\" is not a Kafka topic: use letters, digits, "
                        "'.', '_' and '-' in topic (and source).",
                        self->run_topic),
                       (NULL));
    goto fail;
  }
  if (!k->brokers || !k->brokers[0]
      || rd_kafka_conf_set (conf, "bootstrap.servers", k->brokers, errstr,
                            sizeof errstr)
             != RD_KAFKA_CONF_OK
      || (client_id
          && rd_kafka_conf_set (conf, "client.id", client_id, errstr,
                                sizeof errstr)
                 != RD_KAFKA_CONF_OK)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Cannot use the Kafka brokers \"%s\": set brokers to "
                        "host:port[,host:port...].",
                        k->brokers ? k->brokers : ""),
                       (NULL));
    goto fail;
  }
  /* reconnection backoff capped as the MQTT method's */
  rd_kafka_conf_set (conf, "reconnect.backoff.max.ms", "5000", errstr,
                     sizeof errstr);
  rd_kafka_conf_set_opaque (conf, self);
  rd_kafka_conf_set_dr_msg_cb (conf, kafka_on_delivery);
  rd_kafka_conf_set_error_cb (conf, kafka_on_error);
  rd_kafka_conf_set_log_cb (conf, kafka_on_log);
  k->rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  conf = NULL; /* owned by rk, or freed below */
  if (!k->rk) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Cannot create the Kafka producer: %s.", errstr),
                       (NULL));
    goto fail;
  }
  /* deliveries and errors wake the publishing thread */
  mainq = rd_kafka_queue_get_main (k->rk);
  rd_kafka_queue_io_event_enable (mainq, self->wake[1], "k", 1);
  rd_kafka_queue_destroy (mainq);
  g_free (client_id);
  return TRUE;
fail:
  if (conf)
    rd_kafka_conf_destroy (conf);
  g_free (client_id);
  return FALSE;
}

static void
kafka_send (GstEarlyExitPublish *self, Kafka *k)
{
  EePublishMsg *msg;

  for (;;) {
    rd_kafka_resp_err_t err;

    g_mutex_lock (&self->lock);
    msg = self->inflight < MAX_INFLIGHT ? g_queue_pop_head (&self->queue)
                                        : NULL;
    if (msg)
      self->inflight++;
    g_mutex_unlock (&self->lock);
    if (!msg)
      return;
    err = rd_kafka_producev (
        k->rk, RD_KAFKA_V_TOPIC (self->run_topic),
        RD_KAFKA_V_KEY (self->run_source, strlen (self->run_source)),
        RD_KAFKA_V_VALUE (msg->json, msg->len),
        RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!err) {
      msg_free (msg);
      continue;
    }
    g_mutex_lock (&self->lock);
    self->inflight--;
    g_mutex_unlock (&self->lock);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      queue_unpop (self, msg);
      return;
    }
    GST_WARNING_OBJECT (self, "librdkafka refused a message: %s",
                        rd_kafka_err2str (err));
    count_error (self);
    count_done (self, 1, 0, FALSE);
    msg_free (msg);
  }
}

static void
kafka_run (GstEarlyExitPublish *self)
{
  Kafka *k = self->backend;

  while (!is_stopping (self)) {
    kafka_send (self, k);
    wait_wake (self, -1, 0, 1000);
    rd_kafka_poll (k->rk, 0);
  }
}

static void
kafka_close (GstEarlyExitPublish *self)
{
  Kafka *k = self->backend;

  if (k->rk) {
    /* what is not delivered by now is dropped (counted by its report) */
    k->closing = TRUE;
    rd_kafka_purge (k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll (k->rk, 0);
    rd_kafka_destroy (k->rk);
  }
  g_free (k->brokers);
  g_free (k);
}
#endif /* HAVE_KAFKA */

static const PublishMethod *
method_table (GstEarlyExitPublishMethod method)
{
  static const PublishMethod file = { file_open, file_run, file_close };
#ifdef HAVE_MQTT
  static const PublishMethod mqtt = { mqtt_open, mqtt_run, mqtt_close };
#endif
#ifdef HAVE_KAFKA
  static const PublishMethod kafka = { kafka_open, kafka_run, kafka_close };
#endif

  switch (method) {
    case GST_EARLYEXIT_PUBLISH_FILE:
      return &file;
#ifdef HAVE_MQTT
    case GST_EARLYEXIT_PUBLISH_MQTT:
      return &mqtt;
#endif
#ifdef HAVE_KAFKA
    case GST_EARLYEXIT_PUBLISH_KAFKA:
      return &kafka;
#endif
    default:
      return NULL;
  }
}

/* The name of the outermost bin holding the element, else its own. */
static gchar *
default_source (GstEarlyExitPublish *self)
{
  GstObject *top = gst_object_ref (GST_OBJECT (self)), *parent;
  gchar *name;

  while ((parent = gst_object_get_parent (top))) {
    gst_object_unref (top);
    top = parent;
  }
  name = gst_object_get_name (top);
  gst_object_unref (top);
  return name;
}

static gchar *
topic_for (const gchar *pattern, const gchar *source)
{
  gchar **parts = g_strsplit (pattern, "{source}", -1);
  gchar *topic = g_strjoinv (source, parts);

  g_strfreev (parts);
  return topic;
}

static gboolean
gst_earlyexit_publish_start (GstBaseTransform *trans)
{
  GstEarlyExitPublish *self = GST_EARLYEXIT_PUBLISH (trans);
  const PublishMethod *method;
  gchar *topic;

  GST_OBJECT_LOCK (self);
  self->run_method = self->method;
  self->run_source = g_strdup (self->source);
  topic = g_strdup (self->topic);
  self->run_max_queued = self->max_queued;
  self->run_qos = self->qos;
  GST_OBJECT_UNLOCK (self);
  if (!self->run_source)
    self->run_source = default_source (self);
  if (!topic)
    topic = g_strdup (self->run_method == GST_EARLYEXIT_PUBLISH_KAFKA
                          ? DEFAULT_KAFKA_TOPIC
                          : DEFAULT_MQTT_TOPIC);
  self->run_topic = topic_for (topic, self->run_source);
  g_free (topic);

  method = method_table (self->run_method);
  if (!method) {
    const gchar *name = self->run_method == GST_EARLYEXIT_PUBLISH_MQTT
                            ? "MQTT (libmosquitto-dev)"
                            : "Kafka (librdkafka-dev)";

    GST_ELEMENT_ERROR (self, CORE, NOT_IMPLEMENTED,
                       ("This build of earlyexitpublish has no %s support: "
                        "install the package and rebuild, or use another "
                        "method.",
                        name),
                       (NULL));
    goto fail;
  }

  g_mutex_lock (&self->lock);
  self->seq = 0;
  self->published = self->dropped = self->reconnects = self->errors = 0;
  self->inflight = 0;
  self->stopping = self->unblock = FALSE;
  g_mutex_unlock (&self->lock);
  if (pipe2 (self->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
                       ("Cannot create a pipe: %s.", g_strerror (errno)),
                       (NULL));
    goto fail;
  }
  if (!method->open (self)) {
    method->close (self);
    self->backend = NULL;
    goto fail;
  }
  GST_INFO_OBJECT (self, "publishing the results of \"%s\" (topic %s)",
                   self->run_source, self->run_topic);
  self->thread = g_thread_new ("earlyexitpublish", publish_thread, self);
  return TRUE;

fail:
  for (int i = 0; i < 2; i++)
    if (self->wake[i] >= 0) {
      close (self->wake[i]);
      self->wake[i] = -1;
    }
  g_clear_pointer (&self->run_source, g_free);
  g_clear_pointer (&self->run_topic, g_free);
  return FALSE;
}

static gboolean
gst_earlyexit_publish_stop (GstBaseTransform *trans)
{
  GstEarlyExitPublish *self = GST_EARLYEXIT_PUBLISH (trans);

  g_mutex_lock (&self->lock);
  self->stopping = self->unblock = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  wake_publisher (self);
  if (self->thread) {
    g_thread_join (self->thread);
    self->thread = NULL;
  }
  if (self->backend) {
    method_table (self->run_method)->close (self);
    self->backend = NULL;
  }
  /* what was not published by now never will be */
  g_mutex_lock (&self->lock);
  self->dropped += self->queue.length + self->inflight;
  self->inflight = 0;
  g_queue_clear_full (&self->queue, msg_free);
  g_mutex_unlock (&self->lock);
  for (int i = 0; i < 2; i++)
    if (self->wake[i] >= 0) {
      close (self->wake[i]);
      self->wake[i] = -1;
    }
  GST_INFO_OBJECT (self,
                   "published %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT
                   ", errors %" G_GUINT64_FORMAT,
                   self->published, self->dropped, self->errors);
  g_clear_pointer (&self->run_source, g_free);
  g_clear_pointer (&self->run_topic, g_free);
  return TRUE;
}

static GstStateChangeReturn
gst_earlyexit_publish_change_state (GstElement *element,
                                    GstStateChange transition)
{
  GstEarlyExitPublish *self = GST_EARLYEXIT_PUBLISH (element);

  /* an EOS drain holds the streaming thread: let it go before the pads
   * deactivate (they wait for it) */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_mutex_lock (&self->lock);
    self->unblock = TRUE;
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
  }
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

/* At EOS: waits up to flush-timeout for the queue to be published. */
static void
drain (GstEarlyExitPublish *self)
{
  gint64 end;
  guint left;
  GstClockTime timeout;

  GST_OBJECT_LOCK (self);
  timeout = self->flush_timeout;
  GST_OBJECT_UNLOCK (self);
  end = g_get_monotonic_time ()
        + (gint64)MIN (timeout / GST_USECOND, (guint64)G_MAXINT64 / 2);
  g_mutex_lock (&self->lock);
  while ((self->queue.length || self->inflight) && !self->unblock)
    if (!g_cond_wait_until (&self->cond, &self->lock, end))
      break;
  left = self->queue.length + self->inflight;
  g_mutex_unlock (&self->lock);
  if (left)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                         ("%u results were not published within flush-timeout "
                          "(%" GST_TIME_FORMAT ") at the end of the stream: "
                          "check that the destination is reachable, or raise "
                          "flush-timeout.",
                          left, GST_TIME_ARGS (timeout)),
                         (NULL));
}

static gboolean
gst_earlyexit_publish_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstEarlyExitPublish *self = GST_EARLYEXIT_PUBLISH (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      drain (self);
      break;
    case GST_EVENT_FLUSH_START:
      g_mutex_lock (&self->lock);
      self->unblock = TRUE;
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->lock);
      self->unblock = FALSE;
      g_mutex_unlock (&self->lock);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstFlowReturn
gst_earlyexit_publish_transform_ip (GstBaseTransform *trans, GstBuffer *buf)
{
  GstEarlyExitPublish *self = GST_EARLYEXIT_PUBLISH (trans);
  GstClockTime pts = GST_BUFFER_PTS (buf), running_time = GST_CLOCK_TIME_NONE;
  gboolean timed = FALSE;
  CaptureTime ct = { 0, NULL };
  gpointer state = NULL;
  const GstStructure *r;

  while ((r = gst_buffer_iterate_earlyexit_results (buf, &state))) {
    if (!timed) {
      if (GST_CLOCK_TIME_IS_VALID (pts)
          && trans->segment.format == GST_FORMAT_TIME)
        running_time = gst_segment_to_running_time (&trans->segment,
                                                    GST_FORMAT_TIME, pts);
      ct = capture_time (self, buf, running_time);
      timed = TRUE;
    }
    queue_push (self, message_new (self, r, pts, running_time, ct));
  }
  return GST_FLOW_OK;
}
