/* gst-earlyexit: GstCheck tests of earlyexitpublish method=kafka against
 * librdkafka's built-in mock cluster (no Kafka server): the test makes the
 * cluster, the element produces to its bootstrap address, a librdkafka
 * consumer of the test reads the topic back. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "publish-check.h"

#define SOURCE "cam-kafka"
#define TOPIC "earlyexit"

typedef struct
{
  rd_kafka_t *owner; /* the handle the mock cluster lives in */
  rd_kafka_mock_cluster_t *cluster;
  const gchar *bootstraps;
} Mock;

static void
mock_start (Mock *m)
{
  rd_kafka_conf_t *conf = rd_kafka_conf_new ();
  gchar errstr[256];

  /* no bootstrap.servers for this handle: keep its notice quiet */
  rd_kafka_conf_set (conf, "log_level", "3", errstr, sizeof errstr);
  m->owner = rd_kafka_new (RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  fail_unless (m->owner != NULL, "%s", errstr);
  m->cluster = rd_kafka_mock_cluster_new (m->owner, 3);
  fail_unless (m->cluster != NULL);
  m->bootstraps = rd_kafka_mock_cluster_bootstraps (m->cluster);
  fail_unless (rd_kafka_mock_topic_create (m->cluster, TOPIC, 2, 1) == 0);
}

static void
mock_stop (Mock *m)
{
  rd_kafka_mock_cluster_destroy (m->cluster);
  rd_kafka_destroy (m->owner);
}

/* Reads partitions 0 and 1 of TOPIC from the start until `n` distinct
 * messages (or 60 s); checks each message's key is the source. */
static void
consume (Mock *m, Collected *c, guint n)
{
  rd_kafka_conf_t *conf = rd_kafka_conf_new ();
  rd_kafka_topic_partition_list_t *parts
      = rd_kafka_topic_partition_list_new (2);
  gchar errstr[256];
  rd_kafka_t *rk;

  fail_unless (rd_kafka_conf_set (conf, "bootstrap.servers", m->bootstraps,
                                  errstr, sizeof errstr)
               == RD_KAFKA_CONF_OK);
  fail_unless (
      rd_kafka_conf_set (conf, "group.id", "ee-test", errstr, sizeof errstr)
      == RD_KAFKA_CONF_OK);
  rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  fail_unless (rk != NULL, "%s", errstr);
  for (int p = 0; p < 2; p++)
    rd_kafka_topic_partition_list_add (parts, TOPIC, p)->offset
        = RD_KAFKA_OFFSET_BEGINNING;
  fail_unless (rd_kafka_assign (rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy (parts);
  for (gint i = 0; i < 600 && collected_unique (c) < n; i++) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll (rk, 100);

    if (!msg)
      continue;
    if (!msg->err) {
      fail_unless (msg->key_len == strlen (SOURCE)
                       && !memcmp (msg->key, SOURCE, msg->key_len),
                   "message not keyed by the source");
      collected_add (c, NULL, msg->payload, msg->len);
    }
    rd_kafka_message_destroy (msg);
  }
  rd_kafka_consumer_close (rk);
  rd_kafka_destroy (rk);
}

/* `n` frames of videotestsrc (live at 25 fps when `live`) through
 * exitclassify into the publisher. */
static Run *
classify_run_full (guint n, gboolean live, const gchar *pub_props)
{
  gchar *desc = g_strdup_printf (
      "videotestsrc num-buffers=%u is-live=%s ! "
      "video/x-raw,width=32,height=24,framerate=25/1 ! "
      "exitclassify model-file=\"%s\" device=cpu interval=5 ! "
      "earlyexitpublish name=pub method=kafka source=" SOURCE " %s ! "
      "fakesink name=sink sync=%s",
      n, live ? "true" : "false", env_path ("EE_TEST_IMAGE_MODEL"), pub_props,
      live ? "true" : "false");
  Run *r = run_new (desc);

  g_free (desc);
  return r;
}

static Run *
classify_run (guint n, const gchar *pub_props)
{
  return classify_run_full (n, FALSE, pub_props);
}

/* Every frame's message reaches the topic, keyed by the source, and
 * validates against the schema. */
GST_START_TEST (test_kafka_every_frame)
{
  const guint n = 30;
  gchar *dir = make_tmp_dir ();
  Mock m;
  Collected c;
  gchar *props;
  Run *r;

  mock_start (&m);
  props
      = g_strdup_printf ("brokers=%s flush-timeout=30000000000", m.bootstraps);
  r = classify_run (n, props);
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, n);
  fail_unless_equals_uint64 (run_stat (r, "published"), n);
  fail_unless_equals_uint64 (run_stat (r, "dropped"), 0);
  fail_unless_equals_uint64 (run_stat (r, "queued"), 0);

  collected_init (&c, SOURCE, NULL);
  consume (&m, &c, n);
  fail_unless_equals_int (collected_unique (&c), n);
  for (gint64 i = 0; i < n; i++)
    fail_unless (g_hash_table_contains (c.seqs, &i),
                 "seq %" G_GINT64_FORMAT " missing", i);
  collected_validate (&c, dir);

  collected_clear (&c);
  run_free (r);
  g_free (props);
  mock_stop (&m);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

typedef struct
{
  Mock *m;
  gint down_at; /* sink frames when the brokers go down */
  gint at_down, at_up;
} Outage;

static void
outage_tick (Run *r, gpointer data)
{
  Outage *o = data;

  if (o->at_down || g_atomic_int_get (&r->frames) < o->down_at)
    return;
  o->at_down = g_atomic_int_get (&r->frames);
  for (int id = 1; id <= 3; id++)
    rd_kafka_mock_broker_set_down (o->m->cluster, id);
  g_usleep (3 * G_TIME_SPAN_SECOND);
  o->at_up = g_atomic_int_get (&r->frames);
  for (int id = 1; id <= 3; id++)
    rd_kafka_mock_broker_set_up (o->m->cluster, id);
}

/* Every broker down for 3 s mid-stream, live source: every frame reaches the
 * sink and frames kept coming meanwhile; once the brokers are back the
 * element publishes again, and the messages the topic lacks are exactly the
 * drops counted (max-queued=10, far less than 3 s of results). */
GST_START_TEST (test_kafka_brokers_down)
{
  const guint n = 150;
  gchar *dir = make_tmp_dir ();
  Mock m;
  Outage o = { &m, 30 };
  Collected c;
  gchar *props;
  guint64 published, dropped;
  Run *r;

  mock_start (&m);
  props = g_strdup_printf ("brokers=%s max-queued=10 "
                           "flush-timeout=30000000000",
                           m.bootstraps);
  r = classify_run_full (n, TRUE, props);
  run_play (r, outage_tick, &o);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (o.at_down > 0, "the brokers never went down");
  fail_unless_equals_int (r->frames, n);
  fail_unless (o.at_up > o.at_down, "no frame while the brokers were down");
  published = run_stat (r, "published");
  dropped = run_stat (r, "dropped");
  fail_unless_equals_uint64 (published + dropped, n);
  fail_unless_equals_uint64 (run_stat (r, "queued"), 0);
  fail_unless (dropped > 0, "nothing dropped: the outage did not fill the "
                            "queue");

  collected_init (&c, SOURCE, NULL);
  consume (&m, &c, (guint)published);
  fail_unless_equals_uint64 (collected_unique (&c), published);
  collected_validate (&c, dir);

  collected_clear (&c);
  run_free (r);
  g_free (props);
  mock_stop (&m);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

/* An invalid topic is an error at start; brokers nobody listens on are a
 * warning, the video goes on, and what could not be delivered is counted as
 * dropped. */
GST_START_TEST (test_kafka_errors)
{
  Run *r = classify_run (3, "topic=results/x");

  run_play (r, NULL, NULL);
  fail_unless (r->error != NULL && strstr (r->error, "topic"), "%s", r->error);
  run_free (r);

  r = classify_run (10, "brokers=127.0.0.1:1 flush-timeout=2000000000");
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, 10);
  fail_unless (run_warned (r, "Kafka"), "no warning");
  fail_unless_equals_uint64 (run_stat (r, "published"), 0);
  fail_unless_equals_uint64 (run_stat (r, "dropped"), 10);
  run_free (r);
}

GST_END_TEST;

static Suite *
earlyexitpublish_kafka_suite (void)
{
  Suite *s = suite_create ("earlyexitpublish-kafka");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 0);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_kafka_every_frame);
  tcase_add_test (tc, test_kafka_brokers_down);
  tcase_add_test (tc, test_kafka_errors);
  return s;
}

GST_CHECK_MAIN (earlyexitpublish_kafka);
