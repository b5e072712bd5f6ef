/* gst-earlyexit: GstCheck tests of earlyexitpublish, method=file and
 * method=mqtt against a real mosquitto broker that each test starts on a free
 * port of 127.0.0.1 (publish-check.h). Real pipelines: exitclassify (the demo
 * classifier) or avcrowdcount (the test model) ahead of the publisher. */
#define PUBLISH_CHECK_MQTT
#include "publish-check.h"

#define SOURCE "cam-test"
#define VIDEO "video/x-raw,width=32,height=24,framerate=25/1"

/* `n` frames of videotestsrc through exitclassify into the publisher with
 * the properties `pub_props`. */
static Run *
classify_run (guint n, gboolean live, const gchar *classify_props,
              const gchar *pub_props)
{
  gchar *desc = g_strdup_printf (
      "videotestsrc num-buffers=%u is-live=%s ! " VIDEO " ! "
      "exitclassify model-file=\"%s\" device=cpu %s ! "
      "earlyexitpublish name=pub source=" SOURCE " %s ! "
      "fakesink name=sink sync=%s",
      n, live ? "true" : "false", env_path ("EE_TEST_IMAGE_MODEL"),
      classify_props, pub_props, live ? "true" : "false");
  Run *r = run_new (desc);

  g_free (desc);
  return r;
}

/* method=file with rotation: every message of avcrowdcount (task count) in
 * one of the rotated files, none lost or doubled, each file under the size,
 * every line valid. */
GST_START_TEST (test_file_rotation)
{
  const guint n = 40;
  const guint64 max_size = 3000;
  gchar *dir = make_tmp_dir ();
  gchar *path = g_build_filename (dir, "results.jsonl", NULL);
  gchar *all_path = g_build_filename (dir, "all.jsonl", NULL);
  gchar *desc = g_strdup_printf (
      "avcrowdcount name=c model-file=\"%s\" device=cpu ! "
      "earlyexitpublish name=pub source=" SOURCE " location=\"%s\" "
      "max-file-size=%" G_GUINT64_FORMAT " max-files=100 ! fakesink name=sink "
      "videotestsrc num-buffers=%u ! " VIDEO " ! c.video "
      "audiotestsrc num-buffers=%u samplesperbuffer=1600 ! "
      "audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio",
      env_path ("EE_TEST_COUNT_MODEL"), path, max_size, n, n / 4 + 10);
  Run *r = run_new (desc);
  GHashTable *seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  GString *all = g_string_new (NULL);
  guint files = 0;

  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, n);
  fail_unless_equals_uint64 (run_stat (r, "published"), n);
  fail_unless_equals_uint64 (run_stat (r, "dropped"), 0);
  for (guint i = 0; i <= 100; i++) {
    gchar *p = i ? g_strdup_printf ("%s.%u", path, i) : g_strdup (path);
    gchar *text, **lines;
    gsize len;

    if (g_file_get_contents (p, &text, &len, NULL)) {
      files++;
      fail_unless (len <= max_size, "%s has %" G_GSIZE_FORMAT " bytes", p, len);
      lines = g_strsplit (text, "\n", -1);
      for (gchar **l = lines; *l; l++) {
        gint64 seq;

        if (!**l)
          continue;
        seq = message_seq (*l, strlen (*l), SOURCE);
        fail_unless (seq >= 0 && seq < n, "seq %" G_GINT64_FORMAT, seq);
        fail_if (g_hash_table_contains (seen, GINT_TO_POINTER (seq)),
                 "seq %" G_GINT64_FORMAT " twice", seq);
        g_hash_table_add (seen, GINT_TO_POINTER (seq));
        g_string_append_printf (all, "%s\n", *l);
        fail_unless (strstr (*l, "\"task\":\"count\"") != NULL);
      }
      g_strfreev (lines);
      g_free (text);
    }
    g_free (p);
  }
  fail_unless (files > 2, "only %u files: no rotation", files);
  fail_unless_equals_int (g_hash_table_size (seen), n);
  fail_unless (g_file_set_contents (all_path, all->str, all->len, NULL));
  validate_file (all_path, n);

  g_string_free (all, TRUE);
  g_hash_table_unref (seen);
  run_free (r);
  g_free (desc);
  g_free (all_path);
  g_free (path);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

/* Audio (any caps): audioexitclassify with a hop of 250 ms on 1 s buffers
 * completes several windows per buffer; each window is a message of its own,
 * as many as the results the buffers carried past the publisher, in order,
 * valid. */
GST_START_TEST (test_file_audio_windows)
{
  gchar *dir = make_tmp_dir ();
  gchar *path = g_build_filename (dir, "audio.jsonl", NULL);
  gchar *desc = g_strdup_printf (
      "audiotestsrc wave=pink-noise num-buffers=5 samplesperbuffer=44100 ! "
      "audio/x-raw,rate=44100 ! audioconvert ! audioresample ! "
      "audioexitclassify model-file=\"%s\" device=cpu hop=250000000 ! "
      "earlyexitpublish name=pub source=" SOURCE " location=\"%s\" ! "
      "fakesink name=sink",
      env_path ("EE_TEST_SC_MODEL"), path);
  Run *r = run_new (desc);
  gchar *text, **lines;
  guint n = 0, same_pts = 0;
  gchar *last_pts = NULL;

  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (r->results > 4, "%d windows", r->results);
  fail_unless_equals_uint64 (run_stat (r, "published"), r->results);
  fail_unless (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (gchar **l = lines; *l && **l; l++, n++) {
    gchar *pts = g_strndup (strstr (*l, "\"pts\":"), 20);

    fail_unless_equals_int (message_seq (*l, strlen (*l), SOURCE), n);
    fail_unless (strstr (*l, "\"window-end\":") != NULL);
    if (last_pts && !strcmp (pts, last_pts))
      same_pts++;
    g_free (last_pts);
    last_pts = pts;
  }
  fail_unless_equals_int (n, r->results);
  fail_unless (same_pts > 0, "no buffer with several windows");
  validate_file (path, n);

  g_free (last_pts);
  g_strfreev (lines);
  g_free (text);
  run_free (r);
  g_free (desc);
  g_free (path);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

/* Every frame's message reaches a subscriber of the broker, on the topic with
 * the source substituted, and validates against the schema. */
GST_START_TEST (test_mqtt_every_frame)
{
  const guint n = 30;
  gchar *dir = make_tmp_dir ();
  Broker *b = broker_new (dir, "allow_anonymous true\n");
  Collected c;
  Sub *s;
  gchar *props = g_strdup_printf ("method=mqtt host=127.0.0.1 port=%d qos=1 "
                                  "topic=ee/{source}/results",
                                  b->port);
  Run *r = classify_run (n, FALSE, "", props);

  collected_init (&c, SOURCE, "ee/" SOURCE "/results");
  s = sub_new (b, &c, FALSE, NULL, NULL, NULL);
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, n);
  fail_unless_equals_uint64 (run_stat (r, "published"), n);
  fail_unless_equals_uint64 (run_stat (r, "dropped"), 0);
  fail_unless_equals_uint64 (run_stat (r, "queued"), 0);
  collected_wait (&c, n);
  fail_unless_equals_int (collected_unique (&c), n);
  fail_unless (c.bad_topic == NULL, "message on %s", c.bad_topic);
  for (gint64 i = 0; i < n; i++)
    fail_unless (g_hash_table_contains (c.seqs, &i),
                 "seq %" G_GINT64_FORMAT " missing", i);
  collected_validate (&c, dir);

  sub_free (s);
  collected_clear (&c);
  run_free (r);
  g_free (props);
  broker_free (b);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

typedef struct
{
  Broker *b;
  gint kill_at; /* sink frames when the broker is stopped */
  gint at_kill, at_restart;
  gint64 t_kill, t_restart;
} Outage;

static void
outage_tick (Run *r, gpointer data)
{
  Outage *o = data;

  if (o->t_kill || g_atomic_int_get (&r->frames) < o->kill_at)
    return;
  o->at_kill = g_atomic_int_get (&r->frames);
  o->t_kill = g_get_monotonic_time ();
  broker_stop (o->b);
  g_usleep (3 * G_TIME_SPAN_SECOND);
  o->at_restart = g_atomic_int_get (&r->frames);
  o->t_restart = g_get_monotonic_time ();
  broker_start (o->b);
}

/* The broker stopped for 3 s mid-stream and started again, live source at
 * 25 fps: every frame reaches the sink and frames kept coming while the
 * broker was away; the element reconnects and publishes again; the messages
 * the subscriber never got are exactly the drops counted (max-queued=10 is
 * far less than 3 s of results). The broker persists its sessions and the
 * subscriber's is persistent, so no message the broker acknowledged is lost
 * on the way to the subscriber: the accounting is exact. */
GST_START_TEST (test_mqtt_broker_restart)
{
  const guint n = 200;
  gchar *dir = make_tmp_dir ();
  gchar *extra = g_strdup_printf ("allow_anonymous true\npersistence true\n"
                                  "persistence_location %s/\n",
                                  dir);
  Broker *b = broker_new (dir, extra);
  Outage o = { b, 40 };
  Collected c;
  Sub *s;
  gchar *props = g_strdup_printf ("method=mqtt host=127.0.0.1 port=%d qos=1 "
                                  "max-queued=10 flush-timeout=30000000000",
                                  b->port);
  /* interval=5: one inference in 5 frames keeps the CPU load low; the other
   * frames carry the result and are published all the same */
  Run *r = classify_run (n, TRUE, "interval=5", props);
  guint64 published, dropped, received;

  collected_init (&c, SOURCE, "earlyexit/" SOURCE);
  s = sub_new (b, &c, TRUE, NULL, NULL, NULL);
  run_play (r, outage_tick, &o);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (o.t_kill != 0, "the broker was never stopped");
  /* no frame lost, and the stream did not wait for the broker */
  fail_unless_equals_int (r->frames, n);
  fail_unless (o.at_restart > o.at_kill, "no frame while the broker was away");
  if (!RUNNING_ON_VALGRIND) {
    gdouble away = (o.t_restart - o.t_kill) / 1e6;

    GST_INFO ("%d frames in %.2f s without a broker", o.at_restart - o.at_kill,
              away);
    fail_unless (o.at_restart - o.at_kill >= 25 * away / 2,
                 "%d frames in %.2f s without a broker: the stream slowed",
                 o.at_restart - o.at_kill, away);
  }

  published = run_stat (r, "published");
  dropped = run_stat (r, "dropped");
  fail_unless_equals_uint64 (published + dropped, n);
  fail_unless_equals_uint64 (run_stat (r, "queued"), 0);
  fail_unless (dropped > 0, "nothing dropped: the outage did not fill the "
                            "queue");
  fail_unless (run_stat (r, "reconnects") >= 1);
  fail_unless (run_warned (r, "MQTT broker"), "no warning about the broker");

  collected_wait (&c, (guint)published);
  received = collected_unique (&c);
  fail_unless_equals_uint64 (received, published);
  fail_unless_equals_uint64 (n - received, dropped);
  /* the last results were published after the restart */
  {
    gint64 last = n - 1;

    fail_unless (g_hash_table_contains (c.seqs, &last));
  }
  collected_validate (&c, dir);

  sub_free (s);
  collected_clear (&c);
  run_free (r);
  g_free (props);
  g_free (extra);
  broker_free (b);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

static void
run_cmd (const gchar *const *argv)
{
  gchar *err = NULL;
  gint status;

  fail_unless (g_spawn_sync (NULL, (gchar **)argv, NULL,
                             G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                             NULL, NULL, NULL, &err, &status, NULL),
               "cannot run %s", argv[0]);
  fail_unless (g_spawn_check_wait_status (status, NULL), "%s failed: %s",
               argv[0], err);
  g_free (err);
}

/* A self-signed CA `name`.pem (key `name`.key) in `dir`. */
static gchar *
make_ca (const gchar *dir, const gchar *name)
{
  gchar *key = g_strdup_printf ("%s/%s.key", dir, name);
  gchar *pem = g_strdup_printf ("%s/%s.pem", dir, name);
  gchar *subj = g_strdup_printf ("/CN=%s", name);
  const gchar *argv[] = { "openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:prime256v1",
                          "-nodes",
                          "-keyout",
                          key,
                          "-out",
                          pem,
                          "-days",
                          "2",
                          "-subj",
                          subj,
                          NULL };

  run_cmd (argv);
  g_free (key);
  g_free (subj);
  return pem;
}

/* MQTT over TLS with a login: with the right CA and password every frame's
 * message arrives; with a wrong password, and with a CA that did not sign
 * the broker's certificate, an element warning says what failed and what to
 * check, and every frame still reaches the sink. The password never shows in
 * a property or in the element's log. */
static gchar *logged;

static void
log_collect (GstDebugCategory *cat, GstDebugLevel level, const gchar *file,
             const gchar *function, gint line, GObject *object,
             GstDebugMessage *message, gpointer data)
{
  const gchar *text = gst_debug_message_get (message);

  if (text && strstr (text, (const gchar *)data))
    logged = g_strdup (text);
}

GST_START_TEST (test_mqtt_tls_login)
{
  const guint n = 20;
  const gchar *password = "s3cret-Pass-7781", *wrong = "wrong-Pass-4410";
  gchar *dir = make_tmp_dir ();
  gchar *ca = make_ca (dir, "ca"), *other_ca = make_ca (dir, "other-ca");
  gchar *key = g_build_filename (dir, "server.key", NULL);
  gchar *csr = g_build_filename (dir, "server.csr", NULL);
  gchar *crt = g_build_filename (dir, "server.pem", NULL);
  gchar *ext = g_build_filename (dir, "san.ext", NULL);
  gchar *ca_key = g_build_filename (dir, "ca.key", NULL);
  gchar *pwfile = g_build_filename (dir, "passwd", NULL);
  gchar *mypw = g_build_filename (dir, "password.txt", NULL);
  gchar *extra, *props;
  Broker *b;
  Collected c;
  Sub *s;
  Run *r;

  {
    const gchar *req[] = { "openssl",
                           "req",
                           "-newkey",
                           "ec",
                           "-pkeyopt",
                           "ec_paramgen_curve:prime256v1",
                           "-nodes",
                           "-keyout",
                           key,
                           "-out",
                           csr,
                           "-subj",
                           "/CN=localhost",
                           NULL };
    const gchar *sign[]
        = { "openssl", "x509", "-req",   "-in",  csr,
            "-CA",     ca,     "-CAkey", ca_key, "-CAcreateserial",
            "-out",    crt,    "-days",  "2",    "-extfile",
            ext,       NULL };
    const gchar *passwd[] = { env_path ("EE_MOSQUITTO_PASSWD"),
                              "-b",
                              "-c",
                              pwfile,
                              "publisher",
                              password,
                              NULL };

    fail_unless (g_file_set_contents (
        ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n", -1, NULL));
    run_cmd (req);
    run_cmd (sign);
    run_cmd (passwd);
  }
  fail_unless (g_file_set_contents (mypw, password, -1, NULL));
  extra = g_strdup_printf ("cafile %s\ncertfile %s\nkeyfile %s\n"
                           "allow_anonymous false\npassword_file %s\n",
                           ca, crt, key, pwfile);
  b = broker_new (dir, extra);
  collected_init (&c, SOURCE, "earlyexit/" SOURCE);
  s = sub_new (b, &c, FALSE, ca, "publisher", password);
  gst_debug_set_threshold_for_name ("earlyexitpublish", GST_LEVEL_MEMDUMP);

  /* the right CA and password: everything arrives */
  gst_debug_add_log_function (log_collect, (gpointer)password, NULL);
  props = g_strdup_printf ("method=mqtt host=127.0.0.1 port=%d "
                           "tls-ca-file=\"%s\" username=publisher "
                           "password-file=\"%s\"",
                           b->port, ca, mypw);
  r = classify_run (n, FALSE, "", props);
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, n);
  fail_unless_equals_uint64 (run_stat (r, "published"), n);
  collected_wait (&c, n);
  fail_unless_equals_int (collected_unique (&c), n);
  collected_validate (&c, dir);
  /* no property shows the password */
  {
    guint np;
    GParamSpec **specs
        = g_object_class_list_properties (G_OBJECT_GET_CLASS (r->publish), &np);

    for (guint i = 0; i < np; i++) {
      GValue v = G_VALUE_INIT;
      gchar *str;

      if (!(specs[i]->flags & G_PARAM_READABLE))
        continue;
      g_value_init (&v, specs[i]->value_type);
      g_object_get_property (G_OBJECT (r->publish), specs[i]->name, &v);
      str = g_strdup_value_contents (&v);
      fail_if (strstr (str, password), "property %s shows the password",
               specs[i]->name);
      g_free (str);
      g_value_unset (&v);
    }
    g_free (specs);
  }
  run_free (r);
  g_free (props);
  gst_debug_remove_log_function (log_collect);
  fail_unless (logged == NULL, "the password was logged: %s", logged);

  /* a wrong password (from the environment): a warning, the video goes on */
  g_setenv ("EE_TEST_MQTT_PASSWORD", wrong, TRUE);
  gst_debug_add_log_function (log_collect, (gpointer)wrong, NULL);
  props = g_strdup_printf ("method=mqtt host=127.0.0.1 port=%d "
                           "tls-ca-file=\"%s\" username=publisher "
                           "password-env=EE_TEST_MQTT_PASSWORD "
                           "flush-timeout=500000000",
                           b->port, ca);
  r = classify_run (n, FALSE, "", props);
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, n);
  fail_unless (run_warned (r, "refused the login"), "no login warning");
  fail_unless (run_warned (r, "password-file or password-env"));
  fail_unless_equals_uint64 (run_stat (r, "published"), 0);
  fail_unless_equals_uint64 (run_stat (r, "dropped"), n);
  fail_unless (run_stat (r, "errors") >= 1);
  for (guint i = 0; i < r->warnings->len; i++)
    fail_if (strstr (g_ptr_array_index (r->warnings, i), wrong));
  run_free (r);
  g_free (props);
  gst_debug_remove_log_function (log_collect);
  fail_unless (logged == NULL, "the password was logged: %s", logged);

  /* a CA that did not sign the broker's certificate */
  props = g_strdup_printf ("method=mqtt host=127.0.0.1 port=%d "
                           "tls-ca-file=\"%s\" username=publisher "
                           "password-file=\"%s\" flush-timeout=500000000",
                           b->port, other_ca, mypw);
  r = classify_run (n, FALSE, "", props);
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, n);
  fail_unless (run_warned (r, "TLS handshake"), "no TLS warning");
  fail_unless (run_warned (r, "tls-ca-file"));
  fail_unless_equals_uint64 (run_stat (r, "published"), 0);
  fail_unless_equals_uint64 (run_stat (r, "dropped"), n);
  run_free (r);
  g_free (props);

  fail_unless_equals_int (collected_unique (&c), n);
  sub_free (s);
  collected_clear (&c);
  g_unsetenv ("EE_TEST_MQTT_PASSWORD");
  g_free (extra);
  broker_free (b);
  g_free (ca);
  g_free (other_ca);
  g_free (key);
  g_free (csr);
  g_free (crt);
  g_free (ext);
  g_free (ca_key);
  g_free (pwfile);
  g_free (mypw);
  rm_tree (dir);
  g_free (dir);
}

GST_END_TEST;

/* Settings that cannot work are an element error at start that names the
 * property; a host that does not resolve is a warning and the video goes
 * on. */
GST_START_TEST (test_settings_errors)
{
  static const struct
  {
    const gchar *props, *text;
  } bad[] = {
    { "method=mqtt username=u password-file=/nonexistent/pw", "password file" },
    { "method=mqtt password-env=EE_TEST_UNSET_VARIABLE", "no username" },
    { "method=mqtt username=u password-env=EE_TEST_UNSET_VARIABLE",
      "EE_TEST_UNSET_VARIABLE" },
    { "method=mqtt tls-ca-file=/nonexistent/ca.pem", "tls-ca-file" },
    { "method=mqtt topic=results/#", "topic" },
    { "method=file location=/nonexistent/dir/results.jsonl", "location" },
  };
  Run *r;

  g_unsetenv ("EE_TEST_UNSET_VARIABLE");
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    r = classify_run (3, FALSE, "", bad[i].props);
    run_play (r, NULL, NULL);
    fail_unless (r->error != NULL, "%s: no error", bad[i].props);
    fail_unless (strstr (r->error, bad[i].text) != NULL,
                 "%s: \"%s\" does not say %s", bad[i].props, r->error,
                 bad[i].text);
    run_free (r);
  }

  r = classify_run (10, FALSE, "",
                    "method=mqtt host=host-that-does-not-exist.invalid "
                    "flush-timeout=200000000");
  run_play (r, NULL, NULL);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->frames, 10);
  fail_unless (run_warned (r, "does not resolve"), "no warning on the host");
  fail_unless_equals_uint64 (run_stat (r, "dropped"), 10);
  run_free (r);
}

GST_END_TEST;

static Suite *
earlyexitpublish_suite (void)
{
  Suite *s = suite_create ("earlyexitpublish");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 0);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_file_rotation);
  tcase_add_test (tc, test_file_audio_windows);
  tcase_add_test (tc, test_mqtt_every_frame);
  tcase_add_test (tc, test_mqtt_broker_restart);
  tcase_add_test (tc, test_mqtt_tls_login);
  tcase_add_test (tc, test_settings_errors);
  return s;
}

GST_CHECK_MAIN (earlyexitpublish);
